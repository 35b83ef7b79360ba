//! What a first visit to a page downloads, as a browser with an empty cache
//! fetches it: the HTML, then every stylesheet, script, module preload and
//! preload it links, and the `.wasm` and JS its hydration script imports,
//! each asked for with `Accept-Encoding: br, gzip`. The figure is the bodies'
//! bytes as the server sent them (compressed when it compressed them; the
//! client here never decompresses on its own), headers and chunk framing
//! excluded. Names are read from the HTML, so hashed file names are found.

use std::{fmt::Write as _, io::Read as _, time::Duration};

use reqwest::{header, redirect, Client, Url};

use crate::browser::Server;
use crate::report::kb;
use crate::size;

const ACCEPT_ENCODING: &str = "br, gzip";
const ACCEPT_HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
const ACCEPT_CSS: &str = "text/css,*/*;q=0.1";
/// No decoded body may grow past this (a page and its wasm are far smaller).
const MAX_DECODED: u64 = 64 * 1024 * 1024;

/// One response of the visit.
pub struct Resource {
    pub path: String,
    pub kind: Kind,
    pub status: u16,
    /// `Content-Encoding` as sent, empty when the body was sent as is.
    pub encoding: String,
    /// Body bytes as received.
    pub bytes: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Html,
    Css,
    Js,
    Wasm,
    Other,
}

impl Kind {
    fn of(path: &str) -> Self {
        let path = path.split(['?', '#']).next().unwrap_or(path);
        if path.ends_with(".wasm") {
            Kind::Wasm
        } else if path.ends_with(".js") || path.ends_with(".mjs") {
            Kind::Js
        } else if path.ends_with(".css") {
            Kind::Css
        } else {
            Kind::Other
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Html => "HTML",
            Kind::Css => "CSS",
            Kind::Js => "JS",
            Kind::Wasm => "WASM",
            Kind::Other => "other",
        }
    }

    fn accept(self) -> &'static str {
        match self {
            Kind::Html => ACCEPT_HTML,
            Kind::Css => ACCEPT_CSS,
            _ => "*/*",
        }
    }
}

pub struct FirstVisit {
    pub page: String,
    pub resources: Vec<Resource>,
    /// Why the total is not a first visit's figure (an asset missing, ...).
    pub problems: Vec<String>,
}

impl FirstVisit {
    pub fn total(&self) -> u64 {
        self.resources.iter().map(|r| r.bytes).sum()
    }

    /// The file name of the `.wasm` the page loads, if it loads one.
    pub fn wasm_file(&self) -> Option<&str> {
        self.resources
            .iter()
            .find(|r| r.kind == Kind::Wasm)
            .and_then(|r| r.path.split(['?', '#']).next())
            .and_then(|p| p.rsplit('/').next())
    }

    pub fn markdown(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\n| first visit to {}: resource | type | status | Content-Encoding | bytes |",
            self.page
        );
        let _ = writeln!(out, "| --- | --- | ---: | --- | ---: |");
        for r in &self.resources {
            let encoding = if r.encoding.is_empty() {
                "none"
            } else {
                &r.encoding
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {encoding} | {} |",
                r.path,
                r.kind.label(),
                r.status,
                r.bytes
            );
        }
        let _ = writeln!(
            out,
            "| total ({} KB) | | | | {} |",
            kb(self.total()),
            self.total()
        );
        let _ = writeln!(
            out,
            "\nBytes: response bodies as sent to `Accept-Encoding: {ACCEPT_ENCODING}` (compressed when the server compresses), headers excluded."
        );
    }
}

/// `loadgen first-visit`: the table and the total; false when something
/// the page links did not come back.
pub async fn run(target: &crate::Target, page: &str) -> Result<bool, String> {
    let server = Server::new(target)?;
    let visit = measure(&server, page).await?;
    let mut out = String::new();
    visit.markdown(&mut out);
    print!("{}", out.trim_start());
    for problem in &visit.problems {
        println!("Note: {problem}");
    }
    Ok(visit.problems.is_empty())
}

/// Visits `page` on the first address of `server` with an empty cache.
pub async fn measure(server: &Server, page: &str) -> Result<FirstVisit, String> {
    // No cookies, no redirects followed (a redirect would show as one),
    // and no decompression: reqwest does that only with features this
    // crate leaves off, and never asks for an encoding unless told to.
    let http = Client::builder()
        .no_proxy()
        .redirect(redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(2))
        .user_agent("silent-refresh-loadgen")
        .build()
        .map_err(|e| format!("an HTTP client: {e}"))?;
    let page_url = server.url(page);
    let mut visit = FirstVisit {
        page: page.into(),
        resources: Vec::new(),
        problems: Vec::new(),
    };
    let (resource, html) = fetch(&http, &page_url, Kind::Html).await?;
    let ok = resource.status == 200;
    visit.resources.push(resource);
    if !ok {
        visit
            .problems
            .push(format!("GET {page} answered {}", visit.resources[0].status));
        return Ok(visit);
    }
    let html = String::from_utf8_lossy(&html).into_owned();
    let mut queue: Vec<Url> = Vec::new();
    for href in linked_assets(&html) {
        match resolve(&page_url, &href) {
            Ok(Some(url)) => push_new(&mut queue, url),
            Ok(None) => {}
            Err(problem) => visit.problems.push(problem),
        }
    }
    // Scripts may import more modules (wasm-bindgen's snippets): those are
    // part of the first visit too.
    let mut next = 0;
    while next < queue.len() {
        let url = queue[next].clone();
        next += 1;
        let (resource, body) = fetch(&http, &url, Kind::of(url.path())).await?;
        if resource.status != 200 {
            // Leptos links `NAME_bg.wasm` when the server was compiled
            // without LEPTOS_OUTPUT_NAME (a plain `cargo build`); cargo-leptos
            // sets it, and writes `NAME.wasm`.
            let hint = if resource.path.ends_with("_bg.wasm") {
                " (a server compiled without LEPTOS_OUTPUT_NAME links that name; build it as scripts/bench.sh or cargo leptos does)"
            } else {
                ""
            };
            visit.problems.push(format!(
                "GET {} answered {}{hint}",
                resource.path, resource.status
            ));
        } else if resource.kind == Kind::Js {
            for import in module_imports(&String::from_utf8_lossy(&body)) {
                match resolve(&url, &import) {
                    Ok(Some(url)) => push_new(&mut queue, url),
                    Ok(None) => {}
                    Err(problem) => visit.problems.push(problem),
                }
            }
        } else if resource.kind == Kind::Wasm && size::is_debug_wasm(&body) {
            visit.problems.push(format!(
                "{} is a debug build (`cargo leptos build --release` makes a release one)",
                resource.path
            ));
        }
        visit.resources.push(resource);
    }
    if !visit.resources.iter().any(|r| r.kind == Kind::Wasm) {
        visit.problems.push(format!(
            "{page} links no .wasm, so this is not the app's first visit"
        ));
    }
    Ok(visit)
}

fn push_new(queue: &mut Vec<Url>, url: Url) {
    if !queue.contains(&url) {
        queue.push(url);
    }
}

/// `href` against `base`: Some(url) to fetch, None for what costs no
/// request (a `data:` URL), or why it can't be fetched here.
fn resolve(base: &Url, href: &str) -> Result<Option<Url>, String> {
    let mut url = base
        .join(href)
        .map_err(|e| format!("{href}: not a URL ({e})"))?;
    if url.scheme() == "data" {
        return Ok(None);
    }
    if url.origin() != base.origin() {
        return Err(format!(
            "{url} is on another origin; the load generator only talks to the server"
        ));
    }
    url.set_fragment(None);
    Ok(Some(url))
}

/// GETs `url` as a browser would for a `kind`; the resource and its body,
/// decoded for reading (the byte count is the body as sent).
async fn fetch(http: &Client, url: &Url, kind: Kind) -> Result<(Resource, Vec<u8>), String> {
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    };
    let response = http
        .get(url.clone())
        .header(header::ACCEPT, kind.accept())
        .header(header::ACCEPT_ENCODING, ACCEPT_ENCODING)
        .send()
        .await
        .map_err(|e| format!("GET {path}: {e}"))?;
    let status = response.status().as_u16();
    let encoding = response
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let kind = match kind {
        Kind::Html => Kind::Html,
        _ => {
            // A preload of unknown extension is typed by what came back.
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            match kind {
                Kind::Other if content_type.starts_with("application/wasm") => Kind::Wasm,
                Kind::Other if content_type.contains("javascript") => Kind::Js,
                Kind::Other if content_type.starts_with("text/css") => Kind::Css,
                kind => kind,
            }
        }
    };
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("GET {path}: {e}"))?;
    let decoded = decode(&encoding, &body).map_err(|e| format!("GET {path}: {e}"))?;
    Ok((
        Resource {
            path,
            kind,
            status,
            encoding,
            bytes: body.len() as u64,
        },
        decoded,
    ))
}

fn decode(encoding: &str, body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let read = match encoding {
        "" | "identity" => return Ok(body.to_vec()),
        "br" => brotli::Decompressor::new(body, 64 * 1024)
            .take(MAX_DECODED)
            .read_to_end(&mut out),
        "gzip" | "x-gzip" => flate2::read::GzDecoder::new(body)
            .take(MAX_DECODED)
            .read_to_end(&mut out),
        other => return Err(format!("Content-Encoding {other}, which was not asked for")),
    };
    read.map_err(|e| format!("a {encoding} body that does not decode: {e}"))?;
    Ok(out)
}

/// The URLs a first paint fetches, in document order: stylesheets, module
/// preloads, preloads, external scripts, and what the inline hydration
/// script imports. (Stylesheets' own `url()`s are not followed.)
fn linked_assets(html: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for tag in tags(html) {
        match tag.name.as_str() {
            "link" => {
                let rel = tag.attr("rel").unwrap_or("").to_ascii_lowercase();
                let fetched = rel
                    .split_ascii_whitespace()
                    .any(|r| matches!(r, "stylesheet" | "modulepreload" | "preload"));
                if let (true, Some(href)) = (fetched, tag.attr("href")) {
                    urls.push(href.to_string());
                }
            }
            "script" => match tag.attr("src") {
                Some(src) => urls.push(src.to_string()),
                None => urls.extend(hydration_imports(&tag.text)),
            },
            _ => {}
        }
    }
    urls
}

/// Leptos's hydration script is a function of `(root, pkg_path,
/// output_name, wasm_output_name, ...)` that imports
/// `${root}/${pkg_path}/${output_name}.js` and loads
/// `${root}/${pkg_path}/${wasm_output_name}.wasm`, called with string
/// literals: those two URLs. Any other inline script: nothing.
fn hydration_imports(script: &str) -> Vec<String> {
    if !(script.contains("${output_name}.js") && script.contains("${wasm_output_name}.wasm")) {
        return Vec::new();
    }
    let Some(call) = script.rfind("})") else {
        return Vec::new();
    };
    let args = string_literals(&script[call + 2..]);
    match args.as_slice() {
        [root, pkg, js, wasm, ..] => vec![
            format!("{root}/{pkg}/{js}.js"),
            format!("{root}/{pkg}/{wasm}.wasm"),
        ],
        _ => Vec::new(),
    }
}

/// The double- or single-quoted literals in `code`, in order (no escapes:
/// file names have none).
fn string_literals(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(open) = rest.find(['"', '\'']) {
        let quote = rest[open..].chars().next().unwrap_or('"');
        let after = &rest[open + 1..];
        let Some(close) = after.find(quote) else {
            break;
        };
        out.push(after[..close].to_string());
        rest = &after[close + 1..];
    }
    out
}

/// Relative module specifiers a script imports statically or dynamically
/// with a literal (`from"./snippets/x.js"`, `import("./y.js")`).
fn module_imports(js: &str) -> Vec<String> {
    let mut out = Vec::new();
    for keyword in ["from", "import"] {
        let mut rest = js;
        while let Some(at) = rest.find(keyword) {
            let after = rest[at + keyword.len()..].trim_start();
            let after = after.strip_prefix('(').unwrap_or(after).trim_start();
            if let Some(quote) = after.chars().next().filter(|c| matches!(c, '"' | '\'')) {
                if let Some(close) = after[1..].find(quote) {
                    let spec = &after[1..1 + close];
                    if spec.starts_with("./") || spec.starts_with("../") || spec.starts_with('/') {
                        out.push(spec.to_string());
                    }
                }
            }
            rest = &rest[at + keyword.len()..];
        }
    }
    out
}

/// A start tag, its attributes, and for a `<script>` its text.
struct Tag {
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
}

impl Tag {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Start tags of `html`, enough of HTML's rules for a server-rendered page:
/// comments skipped, attribute values quoted or not, `&amp;` decoded, and a
/// script's text running to its `</script`.
fn tags(html: &str) -> Vec<Tag> {
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(offset) = html[at..].find('<') {
        let start = at + offset;
        if html[start..].starts_with("<!--") {
            at = html[start..]
                .find("-->")
                .map_or(html.len(), |end| start + end + 3);
            continue;
        }
        let rest = &html[start + 1..];
        let name_len = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        if name_len == 0 {
            at = start + 1;
            continue;
        }
        let name = rest[..name_len].to_ascii_lowercase();
        let (attrs, end) = attributes(html, start + 1 + name_len);
        let mut text = String::new();
        at = end;
        if name == "script" {
            let close = lower[end..]
                .find("</script")
                .map_or(html.len(), |i| end + i);
            text = html[end..close].to_string();
            at = close;
        }
        out.push(Tag { name, attrs, text });
    }
    out
}

/// The attributes from `at` to the tag's `>`, and the index after it.
fn attributes(html: &str, mut at: usize) -> (Vec<(String, String)>, usize) {
    let bytes = html.as_bytes();
    let mut attrs = Vec::new();
    loop {
        while at < bytes.len() && (bytes[at].is_ascii_whitespace() || bytes[at] == b'/') {
            at += 1;
        }
        if at >= bytes.len() {
            return (attrs, at);
        }
        if bytes[at] == b'>' {
            return (attrs, at + 1);
        }
        let name_start = at;
        while at < bytes.len()
            && !matches!(bytes[at], b'=' | b'>' | b'/')
            && !bytes[at].is_ascii_whitespace()
        {
            at += 1;
        }
        let name = html[name_start..at].to_ascii_lowercase();
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        let mut value = String::new();
        if at < bytes.len() && bytes[at] == b'=' {
            at += 1;
            while at < bytes.len() && bytes[at].is_ascii_whitespace() {
                at += 1;
            }
            if at < bytes.len() && matches!(bytes[at], b'"' | b'\'') {
                let quote = bytes[at];
                let value_start = at + 1;
                at = value_start;
                while at < bytes.len() && bytes[at] != quote {
                    at += 1;
                }
                value = html[value_start..at].to_string();
                at = (at + 1).min(bytes.len());
            } else {
                let value_start = at;
                while at < bytes.len() && bytes[at] != b'>' && !bytes[at].is_ascii_whitespace() {
                    at += 1;
                }
                value = html[value_start..at].to_string();
            }
        }
        attrs.push((name, value.replace("&amp;", "&")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Leptos 0.8 renders in the head of /login, shortened.
    const HEAD: &str = r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><!--a <link rel="stylesheet" href="/commented.css">--><link rel="modulepreload" href="/pkg/app.abc.js" crossorigin="n"><link rel="preload" href="/pkg/app.abc.wasm" as="fetch" type="application/wasm" crossorigin="n"><script type="module" nonce="n">(function (root, pkg_path, output_name, wasm_output_name, defer) {
	const hydrate = () =>
		import(`${root}/${pkg_path}/${output_name}.js`)
			.then(mod => {
				mod.default({module_or_path: `${root}/${pkg_path}/${wasm_output_name}.wasm`}).then(() => {
					mod.hydrate();
				});
			});
	hydrate();
})
("", "pkg", "app.abc", "app.abc", false);</script><link rel="icon" href="data:,"><link id="leptos" rel=stylesheet href='/pkg/app.def.css'><script src="/extra.js?v=1&amp;x=2"></script></head><body></body></html>"#;

    #[test]
    fn finds_what_a_first_paint_fetches() {
        assert_eq!(
            linked_assets(HEAD),
            [
                "/pkg/app.abc.js",
                "/pkg/app.abc.wasm",
                "/pkg/app.abc.js",
                "/pkg/app.abc.wasm",
                "/pkg/app.def.css",
                "/extra.js?v=1&x=2",
            ]
        );
    }

    #[test]
    fn resolves_once_and_skips_data_urls() {
        let base = Url::parse("http://127.0.0.1:9/login").unwrap();
        let mut queue = Vec::new();
        for href in linked_assets(HEAD) {
            if let Some(url) = resolve(&base, &href).unwrap() {
                push_new(&mut queue, url);
            }
        }
        assert_eq!(queue.len(), 4);
        assert_eq!(resolve(&base, "data:,").unwrap(), None);
        assert!(resolve(&base, "http://cdn.example/x.js").is_err());
    }

    #[test]
    fn reads_relative_module_imports() {
        let js = r#"import{a}from"./snippets/x/inline0.js";import * as b from '../y.js';const u=new URL("z.wasm",import.meta.url);import("./lazy.js");"#;
        let mut found = module_imports(js);
        found.sort();
        assert_eq!(found, ["../y.js", "./lazy.js", "./snippets/x/inline0.js"]);
    }

    #[test]
    fn decodes_what_it_reads() {
        use std::io::Write as _;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"<html>").unwrap();
        assert_eq!(decode("gzip", &gz.finish().unwrap()).unwrap(), b"<html>");
        let mut br = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut br, 4096, 5, 22);
            w.write_all(b"<html>").unwrap();
        }
        assert_eq!(decode("br", &br).unwrap(), b"<html>");
        assert!(decode("zstd", b"x").is_err());
    }
}
