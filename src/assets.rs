//! The site's static files as a browser expects them: the `.wasm`, `.js`
//! and `.css` compressed once (brotli and gzip copies beside each file) and
//! sent in the encoding the browser asked for, content-hashed names cached
//! for a year, everything else revalidated; and the one hash file that maps
//! the plain names to the hashed ones found wherever a deployment put it.

use std::{
    convert::Infallible,
    ffi::OsString,
    io::Write as _,
    path::{Path, PathBuf},
    time::Instant,
};

use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    middleware::{self, Next},
    response::Response,
    Router,
};
use leptos::config::LeptosOptions;
use tower::Service;
use tower_http::{
    compression::{predicate::SizeAbove, CompressionLayer, Predicate},
    services::ServeDir,
};

/// Content-hashed files never change under their name.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Anything else under the site root: kept, but checked (`Last-Modified`)
/// before each use.
pub const REVALIDATE: &str = "no-cache";

/// The kinds of file worth compressing ahead of time.
const COMPRESSIBLE: [&str; 3] = ["wasm", "js", "css"];
/// Below this, a compressed copy saves less than its headers cost.
const MIN_BYTES: u64 = 1024;
/// Dynamic compression: HTML this small goes as it is.
const MIN_HTML_BYTES: u16 = 1024;

/// The copies written beside each file, as `ServeDir` looks for them.
const ENCODINGS: [Encoding; 2] = [Encoding::Brotli, Encoding::Gzip];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Brotli,
    Gzip,
}

impl Encoding {
    fn suffix(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Gzip => "gz",
        }
    }
}

/// How hard to compress. Once per file, so a release server takes the
/// smallest output whatever it costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Levels {
    /// 0-11.
    pub brotli: u32,
    /// 0-9.
    pub gzip: u32,
}

impl Levels {
    /// About 6 s for the 1 MB release `.wasm` on one core of a 2.5 GHz
    /// Xeon, nearly all of it brotli.
    pub const RELEASE: Levels = Levels {
        brotli: 11,
        gzip: 9,
    };
    /// A debug `.wasm` is several times larger; these take a fraction of
    /// a second for it.
    pub const DEBUG: Levels = Levels { brotli: 5, gzip: 6 };

    /// By how this binary was built: a debug server serves a debug site.
    pub fn for_this_build() -> Self {
        if cfg!(debug_assertions) {
            Self::DEBUG
        } else {
            Self::RELEASE
        }
    }
}

/// What [`precompress`] did.
#[derive(Debug, Default)]
pub struct Precompressed {
    /// Compressed copies written.
    pub written: Vec<PathBuf>,
    /// Copies already there and newer than their file.
    pub kept: usize,
    /// Stale or orphaned copies deleted.
    pub removed: usize,
    /// Files whose copy could not be written (a read-only folder, say);
    /// they go out as they are.
    pub failed: Vec<(PathBuf, std::io::Error)>,
}

/// Writes `NAME.br` and `NAME.gz` beside every `.wasm`, `.js` and `.css`
/// of at least 1 KiB under `dir`, unless a copy newer than the file is
/// already there (from an earlier start, or `cargo leptos build -P`).
/// Copies older than their file, or whose file is gone, are deleted first:
/// `ServeDir` sends a copy without looking at the file. Each copy is
/// written to a temporary name and renamed, so a concurrent request never
/// reads half of one. A copy no smaller than its file is not kept.
pub fn precompress(dir: &Path, levels: Levels) -> std::io::Result<Precompressed> {
    let mut done = Precompressed::default();
    for file in files_under(dir)? {
        if let Some(original) = copy_of(&file) {
            if !original.is_file() {
                remove(&file, &mut done);
            }
            continue;
        }
        if !is_compressible(&file) {
            continue;
        }
        let meta = std::fs::metadata(&file)?;
        let modified = meta.modified()?;
        let mut bytes: Option<Vec<u8>> = None;
        for encoding in ENCODINGS {
            let copy = with_suffix(&file, encoding.suffix());
            let fresh = std::fs::metadata(&copy)
                .and_then(|m| m.modified())
                .is_ok_and(|copied| copied >= modified);
            if fresh {
                done.kept += 1;
                continue;
            }
            if copy.exists() {
                remove(&copy, &mut done);
            }
            if meta.len() < MIN_BYTES {
                continue;
            }
            let raw = match &bytes {
                Some(raw) => raw,
                None => bytes.insert(std::fs::read(&file)?),
            };
            let compressed = compress(raw, encoding, levels);
            if compressed.len() >= raw.len() {
                continue;
            }
            match write_atomically(&copy, &compressed) {
                Ok(()) => done.written.push(copy),
                Err(e) => done.failed.push((copy, e)),
            }
        }
    }
    Ok(done)
}

/// Deletes every compressed copy under `dir`: for `cargo leptos watch`,
/// which rewrites files in place under their plain names while the server
/// runs, so any copy could be older than its file by the next request.
/// Returns how many it deleted.
pub fn remove_copies(dir: &Path) -> std::io::Result<usize> {
    let mut done = Precompressed::default();
    for file in files_under(dir)? {
        if copy_of(&file).is_some() {
            remove(&file, &mut done);
        }
    }
    Ok(done.removed)
}

fn remove(path: &Path, done: &mut Precompressed) {
    match std::fs::remove_file(path) {
        Ok(()) => done.removed += 1,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => done.failed.push((path.to_path_buf(), e)),
    }
}

/// Every file under `dir`, subfolders included (wasm-bindgen's
/// `snippets/`). A missing folder has none.
fn files_under(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                folders.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    Ok(files)
}

fn is_compressible(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| COMPRESSIBLE.contains(&e))
}

/// For `x.wasm.br` or `x.wasm.gz`: `x.wasm`. Only copies of the kinds
/// this module writes; other `.gz` files are left alone.
fn copy_of(path: &Path) -> Option<PathBuf> {
    let suffix = path.extension()?.to_str()?;
    if !ENCODINGS.iter().any(|e| e.suffix() == suffix) {
        return None;
    }
    let original = path.with_extension("");
    is_compressible(&original).then_some(original)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

fn compress(bytes: &[u8], encoding: Encoding, levels: Levels) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() / 3);
    match encoding {
        Encoding::Brotli => {
            // A 4 MiB window: the whole of a release `.wasm`.
            let mut writer = brotli::CompressorWriter::new(&mut out, 64 * 1024, levels.brotli, 22);
            writer.write_all(bytes).expect("writing to memory");
        }
        Encoding::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(&mut out, flate2::Compression::new(levels.gzip));
            encoder.write_all(bytes).expect("writing to memory");
            encoder.finish().expect("writing to memory");
        }
    }
    out
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = with_suffix(path, &format!("tmp-{}", std::process::id()));
    let written =
        std::fs::write(&temporary, bytes).and_then(|()| std::fs::rename(&temporary, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// The site's `pkg` folder, where the build puts the `.wasm`, JS and CSS.
pub fn pkg_dir(options: &LeptosOptions) -> PathBuf {
    Path::new(options.site_root.as_ref()).join(options.site_pkg_dir.as_ref())
}

/// At start, before listening: compressed copies for the build's files,
/// so the first browser already gets them (a file sent uncompressed in the
/// meantime would be cached for a year as it is). A release build's first
/// start pays once (about 6 s for the `.wasm`); later starts find the copies.
/// Under `cargo leptos watch` (it sets `LEPTOS_WATCH`) copies are deleted
/// instead, and dev rebuilds cost nothing. Never stops the server: what
/// can't be compressed goes out as it is.
pub async fn prepare(options: &LeptosOptions) {
    let dir = pkg_dir(options);
    let watching = std::env::var("LEPTOS_WATCH").is_ok_and(|v| v == "true");
    let started = Instant::now();
    let task = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || {
            if watching {
                remove_copies(&dir).map(|removed| Precompressed {
                    removed,
                    ..Default::default()
                })
            } else {
                precompress(&dir, Levels::for_this_build())
            }
        }
    });
    match task.await {
        Ok(Ok(done)) => {
            for (path, e) in &done.failed {
                tracing::warn!(file = %path.display(), error = %e, "could not write a compressed copy; the file goes out uncompressed");
            }
            if !done.written.is_empty() || done.removed > 0 {
                tracing::info!(
                    folder = %dir.display(),
                    written = done.written.len(),
                    kept = done.kept,
                    removed = done.removed,
                    ms = started.elapsed().as_millis() as u64,
                    "compressed copies of the static files"
                );
            }
        }
        Ok(Err(e)) => {
            tracing::warn!(folder = %dir.display(), error = %e, "could not precompress the static files; they go out uncompressed")
        }
        Err(e) => tracing::warn!(error = %e, "precompressing the static files failed"),
    }
}

/// Where Leptos finds the hashed file names (cargo-leptos `hash-files`).
///
/// Whether names are hashed: `LEPTOS_HASH_FILES` at run time, else its
/// value when the binary was built (cargo-leptos sets it for both), so a
/// deployed binary needs no variable. The hash file (`hash.txt`, or
/// `LEPTOS_HASH_FILE_NAME`): beside the binary, where cargo-leptos writes
/// it and Leptos looks, else in the site folder, so it may travel with the
/// site. Whichever is found is handed to Leptos as an absolute path. None
/// found: a warning, and pages link the plain names.
pub fn locate_hash_file(options: &mut LeptosOptions) -> Result<(), String> {
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    locate_hash_file_from(options, &|name| std::env::var(name).ok(), &exe_dir)
}

/// [`locate_hash_file`] with the environment and the binary's folder given.
pub fn locate_hash_file_from(
    options: &mut LeptosOptions,
    env: &dyn Fn(&str) -> Option<String>,
    exe_dir: &Path,
) -> Result<(), String> {
    let setting =
        |name: &str, built: Option<&'static str>| env(name).or_else(|| built.map(str::to_owned));
    options.hash_files = match setting("LEPTOS_HASH_FILES", option_env!("LEPTOS_HASH_FILES")) {
        None => false,
        Some(value) => value
            .trim()
            .parse()
            .map_err(|_| format!("LEPTOS_HASH_FILES: {value:?} is not true or false"))?,
    };
    if !options.hash_files {
        return Ok(());
    }
    if env("LEPTOS_WATCH").is_some_and(|v| v == "true") {
        tracing::warn!("hash-files under `cargo leptos watch`: rebuilt files keep their plain names and pages go on linking the first build's; run it with LEPTOS_HASH_FILES=false (scripts/dev.sh does)");
    }
    let name = setting(
        "LEPTOS_HASH_FILE_NAME",
        option_env!("LEPTOS_HASH_FILE_NAME"),
    )
    .unwrap_or_else(|| "hash.txt".into());
    let beside_binary = exe_dir.join(&name);
    let in_site = Path::new(options.site_root.as_ref()).join(&name);
    let Some(found) = [&beside_binary, &in_site]
        .into_iter()
        .find(|path| path.is_file())
    else {
        tracing::warn!(
            beside_binary = %beside_binary.display(),
            in_site = %in_site.display(),
            "hash-files is on but there is no {name}: pages link the plain file names, which a hashed build doesn't have; copy {name} from beside the built binary"
        );
        options.hash_files = false;
        return Ok(());
    };
    let found = std::path::absolute(found).unwrap_or_else(|_| found.clone());
    let text = std::fs::read_to_string(&found).map_err(|e| format!("{}: {e}", found.display()))?;
    let pkg = pkg_dir(options);
    let missing: Vec<String> = text
        .lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(kind, _)| COMPRESSIBLE.contains(&kind.trim()))
        .map(|(kind, hash)| format!("{}.{}.{}", options.output_name, hash.trim(), kind.trim()))
        .filter(|name| !pkg.join(name).is_file())
        .collect();
    if !missing.is_empty() {
        tracing::warn!(
            hash_file = %found.display(),
            folder = %pkg.display(),
            missing = missing.join(" "),
            "the site has none or only some of the files the hash file names: pages won't hydrate; is one of them from another build?"
        );
    }
    options.hash_file = found.to_string_lossy().into_owned().into();
    Ok(())
}

/// `name.<hash>.ext` as cargo-leptos names it: the part before the
/// extension is an MD5 in unpadded base64url, 22 characters.
pub fn is_content_hashed(file_name: &str) -> bool {
    let mut parts = file_name.rsplit('.');
    let (Some(_extension), Some(hash), Some(stem)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    !stem.is_empty()
        && hash.len() == 22
        && hash
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Files under the site root, precompressed copies preferred (brotli, then
/// gzip, as the request accepts); a path that is no file goes to
/// `not_found` (the app's own page), whatever the method.
pub fn site_files<F>(options: &LeptosOptions, not_found: F) -> Router
where
    F: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    F::Future: Send + 'static,
{
    let files = ServeDir::new(options.site_root.as_ref())
        .precompressed_br()
        .precompressed_gzip()
        .call_fallback_on_method_not_allowed(true)
        .fallback(not_found);
    Router::new()
        .fallback_service(files)
        .layer(middleware::from_fn_with_state(
            PkgRoute(options.site_pkg_dir_route_base().into()),
            cache_headers,
        ))
}

#[derive(Clone)]
struct PkgRoute(std::sync::Arc<str>);

/// A file sent (or confirmed unchanged) says how long to keep it and that
/// its bytes depend on `Accept-Encoding`. Anything else, the app's pages
/// included, keeps what the security headers give it (`no-store`).
async fn cache_headers(State(pkg): State<PkgRoute>, req: Request, next: Next) -> Response {
    let immutable = req
        .uri()
        .path()
        .strip_prefix(pkg.0.as_ref())
        .and_then(|rest| rest.rsplit('/').next())
        .is_some_and(is_content_hashed);
    let mut response = next.run(req).await;
    let sent = matches!(
        response.status(),
        StatusCode::OK | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED
    );
    if !sent || is_html(response.headers()) {
        return response;
    }
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if immutable { IMMUTABLE } else { REVALIDATE }),
    );
    if !varies_on_encoding(headers) {
        headers.append(header::VARY, HeaderValue::from(header::ACCEPT_ENCODING));
    }
    response
}

fn is_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"))
}

fn varies_on_encoding(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case("accept-encoding") || v.trim() == "*")
}

/// Compression on the fly, for the pages: HTML of 1 KiB or more (a
/// streamed page counts as large), brotli or gzip at the libraries'
/// quick default levels. Never JSON, whose answers are small and
/// carry tokens (BREACH-style guessing wants compressed secrets beside
/// attacker-chosen text), never what is already encoded.
pub fn html_compression() -> CompressionLayer<impl Predicate> {
    CompressionLayer::new().compress_when(SizeAbove::new(MIN_HTML_BYTES).and(
        |_: StatusCode, _: axum::http::Version, headers: &HeaderMap, _: &axum::http::Extensions| {
            is_html(headers)
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_names_are_recognised() {
        assert!(is_content_hashed(
            "silent-refresh.G5AWy3-2SJfq7eMHTCq2ZQ.wasm"
        ));
        assert!(is_content_hashed("__wasm_split.G5AWy3-2SJfq7eMHTCq2ZQ.js"));
        for plain in [
            "silent-refresh.wasm",
            "silent-refresh_bg.wasm",
            "G5AWy3-2SJfq7eMHTCq2ZQ.wasm",
            ".G5AWy3-2SJfq7eMHTCq2ZQ.wasm",
            "silent-refresh.G5AWy3-2SJfq7eMHTCq2Z.wasm",
            "silent-refresh.G5AWy3+2SJfq7eMHTCq2ZQ.wasm",
            "",
        ] {
            assert!(!is_content_hashed(plain), "{plain}");
        }
    }

    #[test]
    fn copies_belong_to_compressible_files_only() {
        assert_eq!(
            copy_of(Path::new("pkg/a.wasm.br")),
            Some(PathBuf::from("pkg/a.wasm"))
        );
        assert_eq!(
            copy_of(Path::new("pkg/a.css.gz")),
            Some(PathBuf::from("pkg/a.css"))
        );
        assert_eq!(copy_of(Path::new("pkg/backup.tar.gz")), None);
        assert_eq!(copy_of(Path::new("pkg/a.wasm")), None);
    }

    fn wasm_like(len: usize) -> Vec<u8> {
        // Compressible, but not trivially: a repeating run of varied bytes.
        (0..len).map(|i| ((i * 7919) % 251) as u8).collect()
    }

    #[test]
    fn precompress_writes_fresh_copies_once_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("app.wasm");
        std::fs::write(&wasm, wasm_like(64 * 1024)).unwrap();
        std::fs::create_dir(dir.path().join("snippets")).unwrap();
        std::fs::write(dir.path().join("snippets/inline0.js"), "x;".repeat(2000)).unwrap();
        std::fs::write(dir.path().join("tiny.css"), "a{}").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "n".repeat(4000)).unwrap();
        std::fs::write(dir.path().join("gone.js.br"), "stale").unwrap();

        let done = precompress(dir.path(), Levels::DEBUG).unwrap();
        assert_eq!(done.written.len(), 4, "{done:?}");
        assert_eq!(done.removed, 1, "the orphan");
        for copy in [
            "app.wasm.br",
            "app.wasm.gz",
            "snippets/inline0.js.br",
            "snippets/inline0.js.gz",
        ] {
            assert!(dir.path().join(copy).is_file(), "{copy}");
        }
        for absent in ["tiny.css.br", "notes.txt.gz", "gone.js.br"] {
            assert!(!dir.path().join(absent).exists(), "{absent}");
        }

        let again = precompress(dir.path(), Levels::DEBUG).unwrap();
        assert!(again.written.is_empty(), "{again:?}");
        assert_eq!(again.kept, 4);

        // A rebuilt file makes its copies stale: they are redone.
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::write(&wasm, wasm_like(32 * 1024)).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&wasm)
            .unwrap()
            .set_modified(later)
            .unwrap();
        let redone = precompress(dir.path(), Levels::DEBUG).unwrap();
        assert_eq!(redone.written.len(), 2, "{redone:?}");
        let mut decoded = Vec::new();
        brotli::BrotliDecompress(
            &mut std::fs::File::open(dir.path().join("app.wasm.br")).unwrap(),
            &mut decoded,
        )
        .unwrap();
        assert_eq!(decoded, wasm_like(32 * 1024));

        assert_eq!(remove_copies(dir.path()).unwrap(), 4);
        assert!(wasm.is_file());
    }
}
