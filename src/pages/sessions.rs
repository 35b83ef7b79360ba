//! This user's live sessions: which one is this browser, revoke one, or
//! log out everywhere.

use leptos::{prelude::*, task::spawn_local};

use super::history::SecurityHistory;
use super::widgets::{local_time, MainHeading};
use crate::auth::{
    client::{encode_query_value, use_auth},
    model::{ApiError, ErrorCode, Session},
};

#[component]
pub fn SessionsPage() -> impl IntoView {
    let auth = use_auth();
    let sessions = RwSignal::new(None::<Result<Vec<Session>, ApiError>>);
    let notice = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);

    let load = move || {
        spawn_local(async move {
            let answer = auth.get_json::<Vec<Session>>("/api/sessions").await;
            sessions.try_set(Some(answer));
        })
    };
    Effect::new(move |_| load());

    let revoke = move |id: String| {
        busy.set(true);
        spawn_local(async move {
            let path = format!("/api/sessions/{}", encode_query_value(&id));
            match auth.delete(&path).await {
                Ok(()) => {
                    notice.try_set(Some(
                        "Session revoked: that device is logged out now.".into(),
                    ));
                }
                Err(error) if error.error == ErrorCode::NotFound => {
                    notice.try_set(Some("That session had already ended.".into()));
                }
                Err(error) => {
                    notice.try_set(Some(format!("Could not revoke it: {}", error.message)));
                }
            }
            busy.try_set(false);
            load();
        });
    };
    let everywhere = move |_| {
        busy.set(true);
        spawn_local(async move {
            if let Err(error) = auth.logout_everywhere().await {
                notice.try_set(Some(format!(
                    "Could not log out everywhere: {}",
                    error.message
                )));
                busy.try_set(false);
            }
        });
    };

    view! {
        <div class="page-head">
            <div>
                <MainHeading>"Sessions"</MainHeading>
                <p class="muted">"Every browser or device where you are logged in. Revoking one signs it out at once."</p>
            </div>
            <button class="button danger" data-testid="logout-everywhere"
                disabled=move || busy.get() on:click=everywhere>
                "Log out everywhere"
            </button>
        </div>
        <div role="status" class="alert info" data-testid="sessions-notice"
            hidden=move || notice.with(Option::is_none)>
            {move || notice.get()}
        </div>
        <section class="card">
            {move || match sessions.get() {
                None => view! { <p class="muted" role="status">"Loading…"</p> }.into_any(),
                Some(Err(error)) => view! {
                    <div class="alert error" role="alert">{error.message}</div>
                }.into_any(),
                Some(Ok(list)) => view! {
                    <table data-testid="sessions-table">
                        <caption class="sr-only">"Live sessions, newest first"</caption>
                        <thead>
                            <tr>
                                <th scope="col">"Device"</th>
                                <th scope="col">"Kept"</th>
                                <th scope="col">"Started"</th>
                                <th scope="col">"Last used"</th>
                                <th scope="col"><span class="sr-only">"Actions"</span></th>
                            </tr>
                        </thead>
                        <tbody>
                            {list.into_iter().map(|session| {
                                let id = session.id.clone();
                                // The parsed name, else the agent as sent.
                                let device = session.device.clone()
                                    .or_else(|| session.user_agent.clone())
                                    .unwrap_or_else(|| "Unknown device".into());
                                let started = local_time(&session.created_at);
                                // Said to a screen reader: which row, and what it does.
                                let revoke_label = format!(
                                    "Revoke {device}, signed in {started}: signs it out at once"
                                );
                                let address = session.address.clone().map(|a| view! {
                                    <span class="muted small from">"from " {a}</span>
                                });
                                view! {
                                    <tr data-testid="session-row" data-session-id=session.id.clone()
                                        data-current=session.current.to_string()>
                                        <td class="ua">
                                            {session.current.then(|| view! {
                                                <span class="badge ok" data-testid="current-session">"This browser"</span>" "
                                            })}
                                            <span data-testid="session-device"
                                                title=session.user_agent.clone().unwrap_or_default()>
                                                {device.clone()}
                                            </span>
                                            " " {address}
                                        </td>
                                        <td data-testid="session-kind"
                                            data-remembered=session.remembered.to_string()>
                                            {if session.remembered {
                                                "Signed in until you log out"
                                            } else {
                                                "Until the browser closes"
                                            }}
                                        </td>
                                        <td>{started}</td>
                                        <td>{local_time(&session.last_used_at)}</td>
                                        <td>
                                            {if session.current {
                                                view! {
                                                    <button class="button small secondary" data-testid="logout-here"
                                                        on:click=move |_| spawn_local(auth.logout())>
                                                        "Log out"
                                                    </button>
                                                }.into_any()
                                            } else {
                                                view! {
                                                    <button class="button small danger" data-testid="revoke-session"
                                                        aria-label=revoke_label
                                                        disabled=move || busy.get()
                                                        on:click=move |_| revoke(id.clone())>
                                                        "Revoke"
                                                    </button>
                                                }.into_any()
                                            }}
                                        </td>
                                    </tr>
                                }
                                .into_any()
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any(),
            }}
        </section>
        <SecurityHistory />
    }
}
