use leptos::prelude::*;
use leptos_router::components::A;

use super::widgets::MainHeading;
use crate::auth::client::use_auth;

/// The landing page; its probe button only responds once the WASM half runs.
#[component]
pub fn HomePage() -> impl IntoView {
    let auth = use_auth();
    let clicks = RwSignal::new(0u32);
    let signed_in = move || auth.user().with(Option::is_some);

    view! {
        <section class="hero">
            <MainHeading>"Silent Refresh"</MainHeading>
            <p>
                "A short-lived access token lives in memory; an HttpOnly refresh cookie rotates on every use. Leave the tab, reload, open a second one: you stay logged in, and nobody else does."
            </p>
            <div class="actions">
                <Show
                    when=signed_in
                    fallback=|| view! {
                        <A href="/register" attr:class="button">"Create an account"</A>
                        <A href="/login" attr:class="button secondary">"Log in"</A>
                    }
                >
                    <A href="/dashboard" attr:class="button">"Open the dashboard"</A>
                </Show>
                <button
                    class="button secondary"
                    data-testid="hydration-probe"
                    on:click=move |_| clicks.update(|n| *n += 1)
                >
                    {move || format!("Clicked {} times", clicks.get())}
                </button>
            </div>
        </section>
    }
}
