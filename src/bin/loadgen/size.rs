//! Sizes of the release `.wasm` and its JS glue: raw, gzip and brotli, as
//! the server sends them (it precompresses at brotli 11 and gzip 9,
//! src/assets.rs).

use std::{io::Write as _, path::Path};

pub struct FileSize {
    pub name: String,
    /// A `.wasm` that still has its `name` section did not come through the
    /// release pipeline (wasm-opt drops it): its size says nothing.
    pub debug_build: bool,
    pub raw: u64,
    pub gzip: u64,
    pub brotli: u64,
}

/// Every `.wasm` and `.js` file directly in `dir`, by name.
pub fn measure(dir: &Path) -> Result<Vec<FileSize>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut sizes = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.ends_with(".wasm") || name.ends_with(".js")) {
            continue;
        }
        let bytes = std::fs::read(entry.path()).map_err(|e| format!("{name}: {e}"))?;
        sizes.push(FileSize {
            debug_build: name.ends_with(".wasm") && has_name_section(&bytes),
            raw: bytes.len() as u64,
            gzip: gzip_len(&bytes),
            brotli: brotli_len(&bytes),
            name: without_hash(&name),
        });
    }
    sizes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(sizes)
}

/// `silent-refresh.<hash>.wasm` (cargo-leptos `hash-files`) as
/// `silent-refresh.wasm`, so the rows keep their names from build to build.
fn without_hash(name: &str) -> String {
    let parts: Vec<&str> = name.split('.').collect();
    match parts.as_slice() {
        [stem @ .., hash, extension]
            if !stem.is_empty()
                && hash.len() == 22
                && hash
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            format!("{}.{extension}", stem.join("."))
        }
        _ => name.to_string(),
    }
}

fn has_name_section(wasm: &[u8]) -> bool {
    wasmparser::Parser::new(0)
        .parse_all(wasm)
        .filter_map(Result::ok)
        .any(|payload| {
            matches!(payload, wasmparser::Payload::CustomSection(section) if section.name() == "name")
        })
}

fn gzip_len(bytes: &[u8]) -> u64 {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).expect("writing to memory");
    encoder.finish().expect("writing to memory").len() as u64
}

fn brotli_len(bytes: &[u8]) -> u64 {
    let mut out = Vec::new();
    {
        // Quality 11, 4 MiB window: what static precompression uses.
        let mut writer = brotli::CompressorWriter::new(&mut out, 64 * 1024, 11, 22);
        writer.write_all(bytes).expect("writing to memory");
    }
    out.len() as u64
}

pub fn print(files: &[FileSize]) {
    println!("| release file | raw bytes | gzip bytes | brotli bytes |");
    println!("| --- | ---: | ---: | ---: |");
    for file in files {
        let note = if file.debug_build {
            " (debug build)"
        } else {
            ""
        };
        println!(
            "| {}{note} | {} | {} | {} |",
            file.name, file.raw, file.gzip, file.brotli
        );
    }
}

/// Whether a `.wasm` still has its `name` section (a debug build).
pub fn is_debug_wasm(bytes: &[u8]) -> bool {
    has_name_section(bytes)
}

/// The release `.wasm` in `dir`, found by its extension (cargo-leptos's
/// `hash-files` puts a hash in the name; `.wasm.br` and `.wasm.gz` beside it
/// are not it), measured under its file name. With several, the one named
/// `linked` (the one `/login` loads) is it.
pub fn release_wasm(dir: &Path, linked: Option<&str>) -> Result<FileSize, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".wasm"))
        .collect();
    names.sort();
    let name = match (names.as_slice(), linked) {
        ([], _) => return Err(format!("no .wasm in {}", dir.display())),
        ([only], _) => only.clone(),
        (_, Some(linked)) if names.iter().any(|n| n == linked) => linked.to_string(),
        (several, _) => {
            return Err(format!(
                "{} .wasm files in {} ({}), none of them the one /login loads",
                several.len(),
                dir.display(),
                several.join(", ")
            ))
        }
    };
    let bytes = std::fs::read(dir.join(&name)).map_err(|e| format!("{name}: {e}"))?;
    Ok(FileSize {
        debug_build: has_name_section(&bytes),
        raw: bytes.len() as u64,
        gzip: gzip_len(&bytes),
        brotli: brotli_len(&bytes),
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_hashed_wasm_by_its_extension() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str| std::fs::write(dir.path().join(name), b"\0asm\x01\0\0\0").unwrap();
        write("silent-refresh.AbC_-12345678901234567.wasm");
        write("silent-refresh.AbC_-12345678901234567.wasm.br");
        write("silent-refresh.AbC_-12345678901234567.wasm.gz");
        write("silent-refresh.AbC_-12345678901234567.js");
        let wasm = release_wasm(dir.path(), None).unwrap();
        assert_eq!(wasm.name, "silent-refresh.AbC_-12345678901234567.wasm");
        assert_eq!(wasm.raw, 8);
        assert!(!wasm.debug_build);

        // A stale build beside it: the one the page loads is it.
        write("silent-refresh.old.wasm");
        assert!(release_wasm(dir.path(), None).is_err());
        let linked = release_wasm(dir.path(), Some("silent-refresh.old.wasm")).unwrap();
        assert_eq!(linked.name, "silent-refresh.old.wasm");
    }
}
