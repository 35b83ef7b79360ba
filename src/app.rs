//! The HTML shell, the root component, the route table and the guard that
//! keeps protected pages for logged-in people.

use leptos::{prelude::*, task::spawn_local};
use leptos_meta::{provide_meta_context, HashedStylesheet, MetaTags, Title};
use leptos_router::{
    components::{Redirect, Route, Router, Routes, A},
    hooks::use_location,
    NavigateOptions, StaticSegment,
};

use crate::auth::client::{
    encode_query_value, provide_auth_client, use_auth, AuthState, LogoutReason,
};
use crate::pages::{
    account::{AccountDeletedPage, AccountPage},
    credentials::{LoginPage, RegisterPage},
    dashboard::DashboardPage,
    home::HomePage,
    sessions::SessionsPage,
    widgets::{MainHeading, SessionLoading},
};

/// The document around the app; rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                // No icon: without this line every first visit also asks for
                // /favicon.ico, and gets the app's rendered 404 page.
                <link rel="icon" href="data:," />
                <HashedStylesheet options=options.clone() id="leptos" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

const APP_NAME: &str = "Silent Refresh";

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    provide_auth_client();

    view! {
        // Each route names its page; the tab reads "Page · Silent Refresh",
        // and the home page just the name.
        <Title formatter=|page: String| {
            if page == APP_NAME { page } else { format!("{page} · {APP_NAME}") }
        } />
        <Router>
            <TopBar />
            <main>
                <Routes fallback=|| view! { <Title text="Page not found" /><NotFound /> }>
                    <Route path=StaticSegment("") view=|| view! { <Title text=APP_NAME /><HomePage /> } />
                    <Route path=StaticSegment("login") view=|| view! { <Title text="Log in" /><LoginPage /> } />
                    <Route
                        path=StaticSegment("register")
                        view=|| view! { <Title text="Create an account" /><RegisterPage /> }
                    />
                    <Route
                        path=StaticSegment("dashboard")
                        view=|| view! { <Title text="Dashboard" /><RequireAuth><DashboardPage /></RequireAuth> }
                    />
                    <Route
                        path=StaticSegment("sessions")
                        view=|| view! { <Title text="Sessions" /><RequireAuth><SessionsPage /></RequireAuth> }
                    />
                    <Route
                        path=StaticSegment("account")
                        view=|| view! { <Title text="Account" /><RequireAuth><AccountPage /></RequireAuth> }
                    />
                    <Route
                        path=(StaticSegment("account"), StaticSegment("deleted"))
                        view=|| view! { <Title text="Account deleted" /><AccountDeletedPage /> }
                    />
                </Routes>
            </main>
        </Router>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    view! {
        <section class="notice">
            <MainHeading>"Page not found"</MainHeading>
            <p>"Nothing lives at this address. " <A href="/">"Go home"</A></p>
        </section>
    }
}

/// What the top bar offers; a memo so renewals (which flip the state to
/// `Refreshing` and back) don't rebuild it.
#[derive(Clone, PartialEq)]
enum NavMode {
    SignedIn { email: String },
    Restoring,
    SignedOut,
}

#[component]
fn TopBar() -> impl IntoView {
    let auth = use_auth();
    let mode = Memo::new(move |_| match (auth.user().get(), auth.state().get()) {
        (Some(user), _) => NavMode::SignedIn { email: user.email },
        (None, AuthState::Refreshing) => NavMode::Restoring,
        (None, _) => NavMode::SignedOut,
    });
    let nav = move || match mode.get() {
        NavMode::SignedIn { email } => view! {
            <A href="/dashboard">"Dashboard"</A>
            <A href="/sessions">"Sessions"</A>
            <A href="/account">"Account"</A>
            <span class="who" data-testid="topbar-email">{email}</span>
            <button class="button small secondary" data-testid="topbar-logout"
                on:click=move |_| spawn_local(auth.logout())>
                "Log out"
            </button>
        }
        .into_any(),
        NavMode::Restoring => view! {
            <span class="muted small" role="status">"Restoring session…"</span>
        }
        .into_any(),
        NavMode::SignedOut => view! {
            <A href="/login">"Log in"</A>
            <A href="/register" attr:class="button small">"Register"</A>
        }
        .into_any(),
    };
    view! {
        <header class="topbar">
            <A href="/" attr:class="brand">"Silent Refresh"</A>
            <nav aria-label="Main">{nav}</nav>
        </header>
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Gate {
    Show,
    /// The page-load refresh hasn't answered yet.
    Wait,
    /// Nobody is logged in; `voluntary` when they just logged out themselves.
    Leave {
        voluntary: bool,
    },
    /// The account was just deleted, here or in another tab.
    Deleted,
}

/// Protected pages: shown once someone is logged in, a neutral shell while
/// the page-load refresh runs (no login flash), otherwise off to login with
/// the way back in `next`.
#[component]
fn RequireAuth(children: ChildrenFn) -> impl IntoView {
    let auth = use_auth();
    let location = use_location();
    // Arriving signed out (a link, or the back button after logout) replaces
    // this history entry, so "back" can't bounce here again; being logged
    // out while here keeps it, so "back" lands here and is sent away again.
    let arrived_signed_out = auth.state().get_untracked().is_signed_out();
    let gate = Memo::new(move |_| match auth.state().get() {
        AuthState::LoggedOut {
            reason: LogoutReason::AccountDeleted,
        } => Gate::Deleted,
        AuthState::LoggedOut { reason } => Gate::Leave {
            voluntary: reason.is_voluntary(),
        },
        AuthState::Anonymous => Gate::Leave { voluntary: false },
        _ if auth.user().with(Option::is_some) => Gate::Show,
        _ => Gate::Wait,
    });

    move || match gate.get() {
        Gate::Show => children().into_any(),
        Gate::Wait => view! { <SessionLoading /> }.into_any(),
        Gate::Deleted => {
            let options = NavigateOptions {
                replace: true,
                ..Default::default()
            };
            view! { <Redirect path="/account/deleted" options /> }.into_any()
        }
        Gate::Leave { voluntary } => {
            let path = if voluntary && !arrived_signed_out {
                "/login".to_string()
            } else {
                let search = location.search.get_untracked();
                let here = if search.is_empty() {
                    location.pathname.get_untracked()
                } else {
                    format!("{}?{search}", location.pathname.get_untracked())
                };
                format!("/login?next={}", encode_query_value(&here))
            };
            let options = NavigateOptions {
                replace: arrived_signed_out,
                ..Default::default()
            };
            view! { <Redirect path options /> }.into_any()
        }
    }
}
