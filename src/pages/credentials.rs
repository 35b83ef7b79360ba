//! Login and register: one accessible form, two wordings.

use leptos::{ev::SubmitEvent, prelude::*, task::spawn_local};
use leptos_router::{
    components::A,
    hooks::{use_navigate, use_query_map},
    NavigateOptions,
};

use super::widgets::{EventLog, LogoutNotice, MainHeading};
use crate::auth::{
    client::{safe_next, use_auth, AuthState, CredentialsError},
    model::{form_query, ApiError, ErrorCode},
};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Login,
    Register,
}

#[component]
pub fn LoginPage() -> impl IntoView {
    view! { <CredentialsForm mode=Mode::Login /> }
}

#[component]
pub fn RegisterPage() -> impl IntoView {
    view! { <CredentialsForm mode=Mode::Register /> }
}

/// Which field an error is about, for `aria-invalid`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Culprit {
    Email,
    Password,
    Both,
    Neither,
}

#[derive(Clone)]
struct FormError {
    message: String,
    culprit: Culprit,
}

fn describe(error: &CredentialsError, mode: Mode) -> FormError {
    let wait = error.retry_after_secs.map(human_wait);
    let (message, culprit) = match error.error.error {
        ErrorCode::InvalidCredentials => ("Wrong email or password.".to_string(), Culprit::Both),
        ErrorCode::EmailTaken => (
            "An account with this email already exists. Log in instead?".to_string(),
            Culprit::Email,
        ),
        ErrorCode::RateLimited => (
            match wait {
                Some(wait) => format!("Too many attempts. Try again in {wait}."),
                None => "Too many attempts. Try again later.".to_string(),
            },
            Culprit::Neither,
        ),
        ErrorCode::InvalidInput => {
            let message = error.error.message.clone();
            let lower = message.to_lowercase();
            let culprit = if lower.contains("password") {
                Culprit::Password
            } else if lower.contains("email") {
                Culprit::Email
            } else {
                Culprit::Both
            };
            (message, culprit)
        }
        ErrorCode::Unavailable => (
            match wait {
                Some(wait) => format!("The server is busy. Try again in {wait}."),
                None => "The server is busy. Try again in a moment.".to_string(),
            },
            Culprit::Neither,
        ),
        ErrorCode::ForbiddenOrigin => (
            "The request was refused because it did not come from this site.".to_string(),
            Culprit::Neither,
        ),
        _ => (
            match mode {
                Mode::Login => format!("Login failed: {}", error.error.message),
                Mode::Register => format!("Registration failed: {}", error.error.message),
            },
            Culprit::Neither,
        ),
    };
    FormError { message, culprit }
}

/// The error a form post without JavaScript came back with (`POST /login`
/// answers `303 /login?error=code`). Both renders read the same URL, so
/// hydration sees the same page. Only known codes are shown, and only in
/// our own words: the URL can't make the page say anything else.
fn error_from_query(
    mode: Mode,
    code: Option<String>,
    field: Option<String>,
    wait: Option<String>,
) -> Option<FormError> {
    let code = serde_json::from_value::<ErrorCode>(serde_json::Value::String(code?)).ok()?;
    let message = match (code, field.as_deref(), mode) {
        (ErrorCode::Unknown | ErrorCode::NetworkError, ..) => return None,
        (ErrorCode::InvalidInput, Some("password"), Mode::Register) => {
            "Use a password of at least 10 characters and at most 1024 bytes."
        }
        (ErrorCode::InvalidInput, Some("password"), Mode::Login) => "Enter your password.",
        (ErrorCode::InvalidInput, ..) => "Enter an email address like name@example.com.",
        (ErrorCode::PayloadTooLarge, ..) => "The form was too large to send.",
        _ => "The request could not be completed.",
    };
    let error = CredentialsError {
        error: ApiError::new(code, message),
        retry_after_secs: wait.and_then(|w| w.parse().ok()),
    };
    Some(describe(&error, mode))
}

/// "14 minutes 32 seconds", "1 second".
pub(super) fn human_wait(seconds: u64) -> String {
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match (seconds / 60, seconds % 60) {
        (0, s) => plural(s, "second"),
        (m, 0) => plural(m, "minute"),
        (m, s) => format!("{} {}", plural(m, "minute"), plural(s, "second")),
    }
}

/// The same rules as the server, checked first so the common mistakes get
/// an answer without a round trip.
fn check_locally(mode: Mode, email: &str, password: &str) -> Option<FormError> {
    let email = email.trim();
    if email.is_empty() || !email.contains('@') {
        return Some(FormError {
            message: "Enter your email address, like name@example.com.".into(),
            culprit: Culprit::Email,
        });
    }
    if password.is_empty() {
        return Some(FormError {
            message: "Enter your password.".into(),
            culprit: Culprit::Password,
        });
    }
    if mode == Mode::Register && password.chars().count() < 10 {
        return Some(FormError {
            message: "Choose a password of at least 10 characters.".into(),
            culprit: Culprit::Password,
        });
    }
    None
}

#[component]
fn CredentialsForm(mode: Mode) -> impl IntoView {
    let auth = use_auth();
    let query = use_query_map();
    let next = Memo::new(move |_| safe_next(query.read().get(form_query::NEXT)));
    let navigate = use_navigate();

    // Logged in (by this form, a page-load refresh or another tab): go on.
    Effect::new(move |_| {
        if matches!(auth.state().get(), AuthState::Authenticated { .. })
            && auth.user().with(Option::is_some)
        {
            navigate(
                &next.get_untracked(),
                NavigateOptions {
                    replace: true,
                    ..Default::default()
                },
            );
        }
    });

    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    // Unticked by default: on a shared computer, closing the browser ends it.
    let remember = RwSignal::new(false);
    let error = RwSignal::new(query.with_untracked(|q| {
        error_from_query(
            mode,
            q.get(form_query::ERROR),
            q.get(form_query::FIELD),
            q.get(form_query::WAIT),
        )
    }));
    let pending = RwSignal::new(false);

    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if pending.get_untracked() {
            return;
        }
        let (email_value, password_value) = (email.get_untracked(), password.get_untracked());
        let remember_value = remember.get_untracked();
        if let Some(problem) = check_locally(mode, &email_value, &password_value) {
            error.set(Some(problem));
            return;
        }
        error.set(None);
        pending.set(true);
        spawn_local(async move {
            let email_value = email_value.trim().to_string();
            let outcome = match mode {
                Mode::Login => {
                    auth.login(email_value, password_value, remember_value)
                        .await
                }
                Mode::Register => {
                    auth.register(email_value, password_value, remember_value)
                        .await
                }
            };
            pending.set(false);
            if let Err(failure) = outcome {
                error.set(Some(describe(&failure, mode)));
            }
        });
    };

    let invalid = move |field: Culprit| {
        move || {
            error
                .with(|e| {
                    e.as_ref()
                        .is_some_and(|e| e.culprit == field || e.culprit == Culprit::Both)
                })
                .to_string()
        }
    };
    let described_by = move |hint: &'static str| {
        move || {
            if error.with(Option::is_some) {
                format!("{hint} form-error").trim().to_string()
            } else {
                hint.to_string()
            }
        }
    };

    let (title, action, submit, busy, testid) = match mode {
        Mode::Login => ("Log in", "/login", "Log in", "Logging in…", "login-form"),
        Mode::Register => (
            "Create an account",
            "/register",
            "Create account",
            "Creating account…",
            "register-form",
        ),
    };
    let logout_reason = move || match auth.state().get() {
        AuthState::LoggedOut { reason } => Some(reason),
        _ => None,
    };

    // Built in parts, each type-erased: one nested view type this deep
    // overflows the compiler's query depth in the release wasm build.
    let email_field = view! {
        <div class="field">
            <label for="email">"Email"</label>
            <input id="email" name="email" type="email" autocomplete="email" required
                inputmode="email" spellcheck="false" data-testid="email"
                aria-invalid=invalid(Culprit::Email)
                aria-describedby=described_by("")
                bind:value=email />
        </div>
    }
    .into_any();
    let password_field = view! {
        <div class="field">
            <label for="password">"Password"</label>
            <input id="password" name="password" type="password" required
                data-testid="password"
                autocomplete=if mode == Mode::Register { "new-password" } else { "current-password" }
                minlength=if mode == Mode::Register { "10" } else { "1" }
                aria-invalid=invalid(Culprit::Password)
                aria-describedby=described_by(if mode == Mode::Register { "password-hint" } else { "" })
                bind:value=password />
            {(mode == Mode::Register).then(|| view! {
                <span class="hint" id="password-hint">"At least 10 characters."</span>
            })}
        </div>
    }
    .into_any();
    // Without the WASM the browser posts `remember=1` only when ticked.
    let remember_field = view! {
        <div class="field checkbox">
            <label>
                <input type="checkbox" name="remember" value="1" data-testid="remember"
                    aria-describedby="remember-hint" bind:checked=remember />
                " Keep me signed in"
            </label>
            <span class="hint" id="remember-hint">
                "Otherwise closing the browser signs you out, and so do some hours unused. Leave it unticked on a shared computer."
            </span>
        </div>
    }
    .into_any();
    let submit_button = view! {
        <button type="submit" class="button full" data-testid="submit"
            disabled=move || pending.get() aria-busy=move || pending.get().to_string()>
            {move || if pending.get() { busy } else { submit }}
        </button>
    }
    .into_any();
    // Without the WASM the browser posts the form itself, to the page's own
    // endpoint (a 303 back to a page, never JSON); the password never lands
    // in a URL.
    let form = view! {
        <form method="post" action=action on:submit=on_submit data-testid=testid novalidate>
            <input type="hidden" name="next" value=move || next.get() />
            <div class="alert error" id="form-error" role="alert" data-testid="form-error"
                hidden=move || error.with(Option::is_none)>
                {move || error.get().map(|e| e.message)}
            </div>
            {email_field}
            {password_field}
            {remember_field}
            {submit_button}
        </form>
    }
    .into_any();
    let switch = match mode {
        Mode::Login => view! {
            "No account yet? " <A href=move || with_next("/register", &next.get())>"Create one"</A>
        }
        .into_any(),
        Mode::Register => view! {
            "Already registered? " <A href=move || with_next("/login", &next.get())>"Log in"</A>
        }
        .into_any(),
    };
    let what_happened = move || {
        logout_reason().filter(|r| !r.is_voluntary()).map(|_| {
            view! {
                <details class="what-happened">
                    <summary>"What happened"</summary>
                    <EventLog events=auth.events() limit=12 />
                </details>
            }
            .into_any()
        })
    };
    let checking = move || {
        (auth.state().get() == AuthState::Refreshing && mode == Mode::Login).then(|| {
            view! { <p class="muted small" role="status">"Checking for an existing session…"</p> }
        })
    };

    view! {
        <section class="card auth-card" aria-labelledby="form-title">
            <MainHeading id="form-title">{title}</MainHeading>
            {move || logout_reason().map(|reason| view! { <LogoutNotice reason /> })}
            {checking}
            {form}
            <p class="muted small switch">{switch}</p>
            {what_happened}
        </section>
    }
}

fn with_next(page: &str, next: &str) -> String {
    if next == "/dashboard" {
        page.to_string()
    } else {
        format!(
            "{page}?next={}",
            crate::auth::client::encode_query_value(next)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_from_the_url_use_our_own_words() {
        let shown = |code: &str, field: Option<&str>| {
            error_from_query(
                Mode::Register,
                Some(code.to_string()),
                field.map(str::to_string),
                Some("90".into()),
            )
            .map(|e| e.message)
        };
        assert_eq!(
            shown("invalid_input", Some("password")).as_deref(),
            Some("Use a password of at least 10 characters and at most 1024 bytes.")
        );
        assert_eq!(
            shown("rate_limited", None).as_deref(),
            Some("Too many attempts. Try again in 1 minute 30 seconds.")
        );
        assert!(shown("email_taken", None)
            .unwrap()
            .contains("already exists"));
        assert_eq!(shown("<script>alert(1)</script>", None), None);
        assert_eq!(shown("network_error", None), None);
    }

    #[test]
    fn waits_read_naturally() {
        assert_eq!(human_wait(1), "1 second");
        assert_eq!(human_wait(120), "2 minutes");
        assert_eq!(human_wait(872), "14 minutes 32 seconds");
    }
}
