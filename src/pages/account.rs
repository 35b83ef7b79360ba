//! The account page (change the password, delete the account) and the page
//! a deleted account lands on.

use leptos::{ev::SubmitEvent, prelude::*, task::spawn_local};
use leptos_router::components::A;

use super::credentials::human_wait;
use super::widgets::MainHeading;
use crate::auth::{
    client::{use_auth, CredentialsError},
    model::ErrorCode,
};

/// Which field an error is about, for `aria-invalid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Current,
    New,
    Repeat,
    None,
}

#[derive(Clone)]
struct FieldError {
    message: String,
    field: Field,
}

impl FieldError {
    fn on(field: Field, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            field,
        }
    }
}

/// The server's answer in the person's terms; `password_field` is the
/// field holding the password that was checked.
fn describe(failure: &CredentialsError, password_field: Field) -> FieldError {
    let wait = failure.retry_after_secs.map(human_wait);
    match failure.error.error {
        ErrorCode::InvalidCredentials => {
            FieldError::on(password_field, "That is not your current password.")
        }
        ErrorCode::RateLimited => FieldError::on(
            Field::None,
            match wait {
                Some(wait) => format!("Too many wrong passwords. Try again in {wait}."),
                None => "Too many wrong passwords. Try again later.".to_string(),
            },
        ),
        ErrorCode::InvalidInput if password_field == Field::Current => {
            FieldError::on(Field::New, failure.error.message.clone())
        }
        _ => FieldError::on(Field::None, failure.error.message.clone()),
    }
}

/// `aria-invalid` for `field`: whether the error shown is about it.
fn invalid_when(error: RwSignal<Option<FieldError>>, field: Field) -> impl Fn() -> String {
    move || {
        error
            .with(|e| e.as_ref().is_some_and(|e| e.field == field))
            .to_string()
    }
}

/// Checked here first, as the server checks them, to spare a round trip.
fn check_locally(current: &str, new: &str, repeat: &str) -> Option<FieldError> {
    if current.is_empty() {
        return Some(FieldError::on(
            Field::Current,
            "Enter your current password.",
        ));
    }
    if new.chars().count() < 10 {
        return Some(FieldError::on(
            Field::New,
            "Choose a new password of at least 10 characters.",
        ));
    }
    if new == current {
        return Some(FieldError::on(
            Field::New,
            "Choose a new password that differs from the current one.",
        ));
    }
    if new != repeat {
        return Some(FieldError::on(
            Field::Repeat,
            "The two new passwords differ.",
        ));
    }
    None
}

#[component]
pub fn AccountPage() -> impl IntoView {
    view! {
        <div class="page-head">
            <div>
                <MainHeading>"Account"</MainHeading>
                <p class="muted">"Your password, and your account itself."</p>
            </div>
        </div>
        <div class="stack">
            <ChangePassword />
            <DeleteAccount />
        </div>
    }
}

#[component]
fn ChangePassword() -> impl IntoView {
    let auth = use_auth();
    let current = RwSignal::new(String::new());
    let new = RwSignal::new(String::new());
    let repeat = RwSignal::new(String::new());
    let error = RwSignal::new(None::<FieldError>);
    let done = RwSignal::new(false);
    let pending = RwSignal::new(false);

    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if pending.get_untracked() {
            return;
        }
        done.set(false);
        let (current_value, new_value) = (current.get_untracked(), new.get_untracked());
        if let Some(problem) = check_locally(&current_value, &new_value, &repeat.get_untracked()) {
            error.set(Some(problem));
            return;
        }
        error.set(None);
        pending.set(true);
        spawn_local(async move {
            let outcome = auth.change_password(current_value, new_value).await;
            pending.try_set(false);
            match outcome {
                Ok(()) => {
                    for field in [current, new, repeat] {
                        field.try_set(String::new());
                    }
                    done.try_set(true);
                }
                Err(failure) => {
                    error.try_set(Some(describe(&failure, Field::Current)));
                }
            }
        });
    };
    let invalid = move |field| invalid_when(error, field);
    let described_by = move |hint: &'static str| {
        move || {
            if error.with(Option::is_some) {
                format!("{hint} password-error").trim().to_string()
            } else {
                hint.to_string()
            }
        }
    };

    let fields = view! {
        <div class="field">
            <label for="current-password">"Current password"</label>
            <input id="current-password" name="current_password" type="password" required
                autocomplete="current-password" data-testid="current-password"
                aria-invalid=invalid(Field::Current) aria-describedby=described_by("")
                bind:value=current />
        </div>
        <div class="field">
            <label for="new-password">"New password"</label>
            <input id="new-password" name="new_password" type="password" required minlength="10"
                autocomplete="new-password" data-testid="new-password"
                aria-invalid=invalid(Field::New) aria-describedby=described_by("new-password-hint")
                bind:value=new />
            <span class="hint" id="new-password-hint">"At least 10 characters, not your current one."</span>
        </div>
        <div class="field">
            <label for="repeat-password">"New password again"</label>
            <input id="repeat-password" type="password" required
                autocomplete="new-password" data-testid="repeat-password"
                aria-invalid=invalid(Field::Repeat) aria-describedby=described_by("")
                bind:value=repeat />
        </div>
    }
    .into_any();

    view! {
        <section class="card" aria-labelledby="change-password-title">
            <h2 id="change-password-title">"Change password"</h2>
            <p class="muted small">
                "Every other browser and device signed in to this account is logged out at once; this one stays signed in."
            </p>
            // POST: submitted before the script runs, the browser must not
            // put the passwords in a URL (nothing answers that POST).
            <form method="post" on:submit=on_submit data-testid="change-password-form" novalidate>
                <div class="alert error" id="password-error" role="alert" data-testid="password-error"
                    hidden=move || error.with(Option::is_none)>
                    {move || error.get().map(|e| e.message)}
                </div>
                <div class="alert info" role="status" data-testid="password-changed"
                    hidden=move || !done.get()>
                    "Password changed. Every other session of this account has been logged out."
                </div>
                {fields}
                <button type="submit" class="button" data-testid="change-password"
                    disabled=move || pending.get() aria-busy=move || pending.get().to_string()>
                    {move || if pending.get() { "Changing…" } else { "Change password" }}
                </button>
            </form>
        </section>
    }
}

#[component]
fn DeleteAccount() -> impl IntoView {
    let auth = use_auth();
    let password = RwSignal::new(String::new());
    let understood = RwSignal::new(false);
    let error = RwSignal::new(None::<FieldError>);
    let pending = RwSignal::new(false);

    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if pending.get_untracked() {
            return;
        }
        let password_value = password.get_untracked();
        if password_value.is_empty() {
            error.set(Some(FieldError::on(Field::Current, "Enter your password.")));
            return;
        }
        if !understood.get_untracked() {
            error.set(Some(FieldError::on(
                Field::Repeat,
                "Tick the box to confirm that the account goes for good.",
            )));
            return;
        }
        error.set(None);
        pending.set(true);
        spawn_local(async move {
            // On success the session ends in every tab and the page moves
            // on (RequireAuth sends a deleted account to its own page).
            let outcome = auth.delete_account(password_value).await;
            pending.try_set(false);
            if let Err(failure) = outcome {
                error.try_set(Some(describe(&failure, Field::Current)));
            }
        });
    };
    let invalid = move |field| invalid_when(error, field);
    let described_by = move || {
        if error.with(Option::is_some) {
            "delete-error"
        } else {
            ""
        }
    };

    let fields = view! {
        <div class="field">
            <label for="delete-password">"Password"</label>
            <input id="delete-password" name="password" type="password" required
                autocomplete="current-password" data-testid="delete-password"
                aria-invalid=invalid(Field::Current) aria-describedby=described_by
                bind:value=password />
        </div>
        <div class="field checkbox">
            <label>
                <input type="checkbox" name="confirm" value="delete" data-testid="delete-confirm"
                    aria-invalid=invalid(Field::Repeat) aria-describedby=described_by
                    bind:checked=understood />
                " I understand that my account, its sessions and its history are deleted for good."
            </label>
        </div>
    }
    .into_any();

    view! {
        <section class="card danger-zone" aria-labelledby="delete-account-title">
            <h2 id="delete-account-title">"Delete account"</h2>
            <p class="muted small">
                "Ends every session on every device and removes the account. The email address can register again afterwards."
            </p>
            <form method="post" on:submit=on_submit data-testid="delete-account-form" novalidate>
                <div class="alert error" id="delete-error" role="alert" data-testid="delete-error"
                    hidden=move || error.with(Option::is_none)>
                    {move || error.get().map(|e| e.message)}
                </div>
                {fields}
                <button type="submit" class="button danger" data-testid="delete-account"
                    disabled=move || pending.get() aria-busy=move || pending.get().to_string()>
                    {move || if pending.get() { "Deleting…" } else { "Delete my account" }}
                </button>
            </form>
        </section>
    }
}

/// Where a deleted account lands, in every tab it was open in.
#[component]
pub fn AccountDeletedPage() -> impl IntoView {
    view! {
        <section class="card auth-card" aria-labelledby="deleted-title" data-testid="account-deleted">
            <MainHeading id="deleted-title">"Your account is deleted"</MainHeading>
            <p>
                "Every session has ended, on every device, and the account is gone from the server with its sessions. Nothing of it is left in this browser."
            </p>
            <p>"You can register again with the same email address whenever you like."</p>
            <p class="row">
                <A href="/register" attr:class="button">"Register"</A>
                <A href="/">"Home"</A>
            </p>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_checks_name_the_field() {
        let field = |c: &str, n: &str, r: &str| check_locally(c, n, r).map(|e| e.field);
        assert_eq!(
            field("", "a long new password", "a long new password"),
            Some(Field::Current)
        );
        assert_eq!(field("old password", "short", "short"), Some(Field::New));
        assert_eq!(
            field("same as before!", "same as before!", "same as before!"),
            Some(Field::New)
        );
        assert_eq!(
            field("old password", "a long new password", "a long new passwort"),
            Some(Field::Repeat)
        );
        assert!(
            check_locally("old password", "a long new password", "a long new password").is_none()
        );
    }
}
