//! Silent refresh with Leptos: the browser holds a short-lived access token in
//! memory; the server rotates an HttpOnly refresh cookie on every use.

// Leptos views are deeply nested types; the release wasm build of the forms
// needs more room than the default 128 to compute their layout.
#![recursion_limit = "256"]

pub mod app;
pub mod auth;
pub mod pages;

#[cfg(feature = "ssr")]
pub mod assets;
#[cfg(feature = "ssr")]
pub mod clock;
#[cfg(feature = "ssr")]
pub mod config;
#[cfg(feature = "ssr")]
pub mod db;
#[cfg(feature = "ssr")]
pub mod server;

/// The WASM entry: take over the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
    // Tests (and curious people) can tell when the page became interactive.
    if let Some(body) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.body())
    {
        let _ = body.set_attribute("data-hydrated", "");
    }
    // After the effects hydration queued: headings that appear from now on
    // came with a navigation, and take focus (`MainHeading`).
    gloo_timers::callback::Timeout::new(0, pages::widgets::hydration_settled).forget();
}
