use leptos::prelude::*;

/// The landing page; its button only responds once the WASM half runs.
#[component]
pub fn HomePage() -> impl IntoView {
    let clicks = RwSignal::new(0u32);

    view! {
        <section class="hero">
            <h1>"Silent Refresh"</h1>
            <p>
                "A short-lived access token lives in memory; an HttpOnly refresh cookie rotates on every use."
            </p>
            <button
                class="button"
                data-testid="hydration-probe"
                on:click=move |_| clicks.update(|n| *n += 1)
            >
                {move || format!("Clicked {} times", clicks.get())}
            </button>
        </section>
    }
}
