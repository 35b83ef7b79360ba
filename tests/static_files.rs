//! Static files as a browser expects them: the built `.wasm`, JS and CSS
//! precompressed and sent in the encoding asked for, hashed names cached
//! for a year, pages compressed on the fly and never stored, the API's JSON
//! never compressed.

mod common;

use std::{io::Read as _, path::Path};

use axum::{
    body::Body,
    http::{header, HeaderMap, Method, Request, StatusCode},
};
use common::{credentials, unique_email, TestApp, ORIGIN, PASSWORD};
use http_body_util::BodyExt;
use silent_refresh::assets::{self, Levels, IMMUTABLE};
use tower::ServiceExt;

const WASM_HASH: &str = "G5AWy3-2SJfq7eMHTCq2ZQ";
const JS_HASH: &str = "b0Ww7PS1Cr6dqkbpC6MIKw";
const CSS_HASH: &str = "Tq7ZfDx0yW0n2fHc3m0b6g";

/// A site folder as `cargo leptos build --release` leaves it, with
/// stand-ins for the files: compressible, but not trivially.
struct Site {
    dir: tempfile::TempDir,
    wasm: Vec<u8>,
}

impl Site {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pkg = dir.path().join("pkg");
        std::fs::create_dir(&pkg).unwrap();
        let wasm: Vec<u8> = b"\0asm\x01\0\0\0"
            .iter()
            .copied()
            .chain((0..200_000usize).map(|i| ((i * 7919) % 251) as u8 ^ (i / 4096) as u8))
            .collect();
        std::fs::write(pkg.join(format!("silent-refresh.{WASM_HASH}.wasm")), &wasm).unwrap();
        let js = "export function hydrate() { return 42; }\n".repeat(200);
        std::fs::write(pkg.join(format!("silent-refresh.{JS_HASH}.js")), js).unwrap();
        let css = ".notice { color: #333; margin: 0 auto; }\n".repeat(100);
        std::fs::write(pkg.join(format!("silent-refresh.{CSS_HASH}.css")), css).unwrap();
        std::fs::write(dir.path().join("robots.txt"), "User-agent: *\n").unwrap();
        std::fs::write(
            dir.path().join("hash.txt"),
            format!("js: {JS_HASH}\nwasm: {WASM_HASH}\ncss: {CSS_HASH}\n"),
        )
        .unwrap();
        Self { dir, wasm }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn precompress(&self) {
        let done = assets::precompress(&self.root().join("pkg"), Levels::RELEASE).unwrap();
        assert_eq!(done.written.len(), 6, "{done:?}");
        assert!(done.failed.is_empty(), "{done:?}");
    }

    /// The app on this site, its pages linking the hashed names.
    async fn app(&self) -> TestApp {
        let hash_file = self.root().join("hash.txt");
        TestApp::with_site(self.root(), move |options| {
            options.hash_files = true;
            options.hash_file = hash_file.to_string_lossy().into_owned().into();
        })
        .await
    }
}

struct Raw {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn varies_on_encoding(&self) -> bool {
        self.headers.get_all(header::VARY).iter().any(|v| {
            v.to_str()
                .unwrap()
                .to_ascii_lowercase()
                .contains("accept-encoding")
        })
    }

    /// The body as the browser reads it, whatever it was sent as.
    fn decoded(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self.header("content-encoding") {
            None => out.clone_from(&self.body),
            Some("br") => {
                brotli::Decompressor::new(self.body.as_slice(), 4096)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            Some("gzip") => {
                flate2::read::GzDecoder::new(self.body.as_slice())
                    .read_to_end(&mut out)
                    .unwrap();
            }
            Some(other) => panic!("unexpected Content-Encoding {other}"),
        }
        out
    }
}

async fn fetch(app: &TestApp, method: Method, path: &str, headers: &[(&str, &str)]) -> Raw {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app
        .router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Raw {
        status,
        headers,
        body,
    }
}

async fn get(app: &TestApp, path: &str, accept_encoding: Option<&str>) -> Raw {
    let headers: Vec<(&str, &str)> = accept_encoding
        .map(|value| ("accept-encoding", value))
        .into_iter()
        .collect();
    fetch(app, Method::GET, path, &headers).await
}

#[tokio::test]
async fn the_wasm_goes_out_precompressed_in_the_encoding_asked_for() {
    let site = Site::new();
    site.precompress();
    let app = site.app().await;
    let path = format!("/pkg/silent-refresh.{WASM_HASH}.wasm");

    for (accepted, sent) in [
        (Some("br, gzip"), Some("br")),
        (Some("gzip, deflate, br, zstd"), Some("br")),
        (Some("gzip"), Some("gzip")),
        (Some("br;q=0, gzip"), Some("gzip")),
        (Some("identity"), None),
        (None, None),
    ] {
        let reply = get(&app, &path, accepted).await;
        assert_eq!(reply.status, StatusCode::OK, "{accepted:?}");
        assert_eq!(reply.header("content-encoding"), sent, "{accepted:?}");
        assert_eq!(
            reply.header("content-type"),
            Some("application/wasm"),
            "{accepted:?}"
        );
        assert_eq!(
            reply.header("cache-control"),
            Some(IMMUTABLE),
            "{accepted:?}"
        );
        assert!(reply.varies_on_encoding(), "{accepted:?}");
        assert_eq!(reply.decoded(), site.wasm, "{accepted:?}");
        if sent.is_some() {
            assert!(
                reply.body.len() < site.wasm.len() / 2,
                "{accepted:?}: {} bytes",
                reply.body.len()
            );
        }
    }
    // Brotli 11 beats gzip 9.
    let br = get(&app, &path, Some("br")).await.body.len();
    let gzip = get(&app, &path, Some("gzip")).await.body.len();
    assert!(br < gzip, "br {br}, gzip {gzip}");

    // The JS glue and the stylesheet go the same way.
    for path in [
        format!("/pkg/silent-refresh.{JS_HASH}.js"),
        format!("/pkg/silent-refresh.{CSS_HASH}.css"),
    ] {
        let reply = get(&app, &path, Some("br, gzip")).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert_eq!(reply.header("content-encoding"), Some("br"), "{path}");
        assert_eq!(reply.header("cache-control"), Some(IMMUTABLE), "{path}");
        assert!(reply.varies_on_encoding(), "{path}");
    }
}

#[tokio::test]
async fn a_revalidation_keeps_the_cache_headers() {
    let site = Site::new();
    site.precompress();
    let app = site.app().await;
    let path = format!("/pkg/silent-refresh.{WASM_HASH}.wasm");
    let first = get(&app, &path, Some("br")).await;
    let since = first.header("last-modified").unwrap().to_string();
    let reply = fetch(
        &app,
        Method::GET,
        &path,
        &[("accept-encoding", "br"), ("if-modified-since", &since)],
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_MODIFIED);
    assert_eq!(reply.header("cache-control"), Some(IMMUTABLE));
    assert!(reply.varies_on_encoding());
}

#[tokio::test]
async fn files_without_a_hash_are_revalidated_and_missing_ones_not_kept() {
    let site = Site::new();
    site.precompress();
    let app = site.app().await;

    let robots = get(&app, "/robots.txt", Some("br, gzip")).await;
    assert_eq!(robots.status, StatusCode::OK);
    assert_eq!(robots.header("cache-control"), Some("no-cache"));
    assert_eq!(robots.decoded(), b"User-agent: *\n");

    // An unhashed build (cargo leptos watch): the same bytes may change.
    std::fs::copy(
        site.root().join(format!("pkg/silent-refresh.{JS_HASH}.js")),
        site.root().join("pkg/silent-refresh.js"),
    )
    .unwrap();
    let plain = get(&app, "/pkg/silent-refresh.js", Some("br, gzip")).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert_eq!(plain.header("cache-control"), Some("no-cache"));

    for path in [
        "/pkg/silent-refresh.AAAAAAAAAAAAAAAAAAAAAA.wasm",
        "/pkg/nothing.js",
    ] {
        let missing = get(&app, path, Some("br, gzip")).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(missing.header("cache-control"), Some("no-store"), "{path}");
    }
}

#[tokio::test]
async fn pages_are_compressed_when_accepted_and_never_stored() {
    let site = Site::new();
    let app = site.app().await;

    for (accepted, sent) in [
        (Some("br, gzip"), Some("br")),
        (Some("gzip"), Some("gzip")),
        (None, None),
    ] {
        let page = get(&app, "/login", accepted).await;
        assert_eq!(page.status, StatusCode::OK, "{accepted:?}");
        assert!(page
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/html")));
        assert_eq!(page.header("content-encoding"), sent, "{accepted:?}");
        assert_eq!(
            page.header("cache-control"),
            Some("no-store"),
            "{accepted:?}"
        );
        assert!(page.varies_on_encoding(), "{accepted:?}");
        let html = String::from_utf8(page.decoded()).unwrap();
        assert!(html.contains(r#"action="/login""#), "{accepted:?}");
        // The page links the build's hashed names.
        for name in [
            format!("/pkg/silent-refresh.{WASM_HASH}.wasm"),
            format!("/pkg/silent-refresh.{JS_HASH}.js"),
            format!("/pkg/silent-refresh.{CSS_HASH}.css"),
        ] {
            assert!(html.contains(&name), "{accepted:?}: no {name}");
        }
    }

    // The app's own 404 page too.
    let missing = get(&app, "/no-such-page", Some("br")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.header("content-encoding"), Some("br"));
    assert_eq!(missing.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn api_json_is_never_compressed() {
    let site = Site::new();
    let app = site.app().await;
    let email = unique_email("gzip");
    let everything = "gzip, deflate, br, zstd";

    let post = |path: &str, body: String| {
        Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ORIGIN, ORIGIN)
            .header(header::ACCEPT_ENCODING, everything)
            .body(Body::from(body))
            .unwrap()
    };
    let register = app
        .router
        .clone()
        .oneshot(post("/api/auth/register", credentials(&email, PASSWORD)))
        .await
        .unwrap();
    assert_eq!(register.status(), StatusCode::OK);
    assert!(register.headers().get(header::CONTENT_ENCODING).is_none());
    let body = register.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let access = json["access_token"].as_str().unwrap().to_string();

    let bearer = format!("Bearer {access}");
    for (path, headers) in [
        ("/api/me", vec![("authorization", bearer.as_str())]),
        ("/api/dashboard", vec![("authorization", bearer.as_str())]),
        ("/api/sessions", vec![("authorization", bearer.as_str())]),
        ("/api/me", vec![]),
        ("/api/no-such-endpoint", vec![]),
        ("/healthz", vec![]),
    ] {
        let mut headers = headers;
        headers.push(("accept-encoding", everything));
        let reply = fetch(&app, Method::GET, path, &headers).await;
        assert!(
            reply
                .header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{path}"
        );
        assert_eq!(reply.header("content-encoding"), None, "{path}");
        assert!(!reply.varies_on_encoding(), "{path}");
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{path}");
        serde_json::from_slice::<serde_json::Value>(&reply.body).unwrap();
    }
}

#[test]
fn the_hash_file_is_found_beside_the_binary_or_in_the_site() {
    let site = Site::new();
    let binary_dir = tempfile::tempdir().unwrap();
    let options = || {
        leptos::config::LeptosOptions::builder()
            .output_name("silent-refresh")
            .site_root(site.root().to_string_lossy().into_owned())
            .build()
    };
    let on = |name: &str| (name == "LEPTOS_HASH_FILES").then(|| "true".to_string());

    // Only in the site folder (a deployment that copied it there).
    let mut found = options();
    assets::locate_hash_file_from(&mut found, &on, binary_dir.path()).unwrap();
    assert!(found.hash_files);
    assert_eq!(
        Path::new(found.hash_file.as_ref()),
        std::path::absolute(site.root().join("hash.txt")).unwrap()
    );

    // Beside the binary wins: that is where cargo-leptos writes it.
    std::fs::write(binary_dir.path().join("hash.txt"), "wasm: x\n").unwrap();
    let mut beside = options();
    assets::locate_hash_file_from(&mut beside, &on, binary_dir.path()).unwrap();
    assert_eq!(
        Path::new(beside.hash_file.as_ref()),
        binary_dir.path().join("hash.txt")
    );

    // Nowhere: pages link the plain names rather than fail.
    std::fs::remove_file(binary_dir.path().join("hash.txt")).unwrap();
    std::fs::remove_file(site.root().join("hash.txt")).unwrap();
    let mut missing = options();
    assets::locate_hash_file_from(&mut missing, &on, binary_dir.path()).unwrap();
    assert!(!missing.hash_files);

    // Off: nothing is looked for.
    let mut off = options();
    assets::locate_hash_file_from(
        &mut off,
        &|name| (name == "LEPTOS_HASH_FILES").then(|| "false".to_string()),
        binary_dir.path(),
    )
    .unwrap();
    assert!(!off.hash_files);
    let mut bad = options();
    assert!(assets::locate_hash_file_from(
        &mut bad,
        &|name| (name == "LEPTOS_HASH_FILES").then(|| "yes".to_string()),
        binary_dir.path(),
    )
    .is_err());
}
