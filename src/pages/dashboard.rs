//! The dashboard: who is logged in, the token's remaining life, the live
//! event log, protected data, and the demo controls (which double as test
//! hooks).

use leptos::{prelude::*, task::spawn_local};

use super::history::ReuseNotice;
use super::widgets::{local_time, ticking_now, EventLog, MainHeading, StateBadge};
use crate::auth::{
    client::{use_auth, AuthState, EventKind},
    model::{ApiError, Dashboard, User},
};

/// The outcome of the last burst of calls fired from the controls.
#[derive(Clone, Default, PartialEq)]
struct Burst {
    id: u32,
    total: u32,
    ok: u32,
    failed: u32,
    last_error: Option<String>,
}

impl Burst {
    fn summary(&self) -> String {
        let done = self.ok + self.failed;
        if self.total == 0 {
            String::new()
        } else if done < self.total {
            format!("Running: {done} of {} answered…", self.total)
        } else if self.failed == 0 {
            format!("{} of {} calls succeeded.", self.ok, self.total)
        } else {
            format!(
                "{} of {} calls succeeded; last error: {}",
                self.ok,
                self.total,
                self.last_error.clone().unwrap_or_default()
            )
        }
    }
}

#[component]
pub fn DashboardPage() -> impl IntoView {
    let auth = use_auth();
    let now = ticking_now(200);
    let data = RwSignal::new(None::<Result<Dashboard, ApiError>>);
    let burst = RwSignal::new(Burst::default());

    let load_data = move || {
        spawn_local(async move {
            let answer = auth.get_json::<Dashboard>("/api/dashboard").await;
            data.try_set(Some(answer));
        })
    };
    // Once, in the browser (effects don't run on the server).
    Effect::new(move |_| load_data());
    // This session, once known: the reuse notice looks for its sign-in.
    let session_id = Memo::new(move |_| {
        data.with(|d| {
            d.as_ref()
                .and_then(|answer| answer.as_ref().ok())
                .map(|d| d.session.id.clone())
        })
    });

    let fire = move |count: u32| {
        let id = burst.get_untracked().id + 1;
        burst.set(Burst {
            id,
            total: count,
            ..Default::default()
        });
        for _ in 0..count {
            spawn_local(async move {
                let answer = auth.get_json::<User>("/api/me").await;
                burst.try_update(|b| {
                    if b.id != id {
                        return;
                    }
                    match answer {
                        Ok(_) => b.ok += 1,
                        Err(error) => {
                            b.failed += 1;
                            b.last_error = Some(error.message);
                        }
                    }
                });
            });
        }
    };

    let expiry = Memo::new(
        move |previous: Option<&Option<f64>>| match auth.state().get() {
            AuthState::Authenticated { expires_at } => Some(expires_at),
            _ => previous.copied().flatten(),
        },
    );
    let remaining_ms = move || expiry.get().map(|at| (at - now.get()).max(0.0));
    let lifetime_ms = move || {
        auth.spans()
            .with(|spans| spans.last().map(|s| s.expires_at - s.issued_at))
    };
    let countdown = move || match (auth.state().get(), remaining_ms()) {
        (AuthState::Refreshing, _) => "renewing…".to_string(),
        (_, Some(ms)) if ms > 0.0 => format!("{:.1} s", ms / 1000.0),
        (_, Some(_)) => "expired".to_string(),
        (_, None) => "–".to_string(),
    };
    let fraction = move || match (remaining_ms(), lifetime_ms()) {
        (Some(left), Some(total)) if total > 0.0 => (left / total).clamp(0.0, 1.0),
        _ => 0.0,
    };
    let low = move || fraction() < 0.25;
    let refreshes = move || {
        auth.events().with(|e| {
            e.iter()
                .filter(|e| e.kind == EventKind::RefreshDone)
                .count()
        })
    };
    let email = move || auth.user().get().map(|u| u.email).unwrap_or_default();

    // Each card type-erased: one view type this deep overflows the
    // compiler's query depth in the release wasm build.
    let token_card = view! {
        <section class="card" aria-labelledby="token-title">
            <h2 id="token-title">"Access token"</h2>
            <p class="muted small">"Held in this tab's memory only. Remaining life:"</p>
            <p class="countdown" class:low=low data-testid="countdown"
                data-remaining-ms=move || remaining_ms().map(|ms| ms.round().to_string())
                aria-live="off">
                {countdown}
            </p>
            <div class="meter" role="progressbar" aria-label="Access token life left"
                aria-valuemin="0" aria-valuemax="100"
                aria-valuenow=move || format!("{:.0}", fraction() * 100.0)>
                <span style:width=move || format!("{:.1}%", fraction() * 100.0)></span>
            </div>
            <p class="muted small">
                "Silent refreshes in this tab: "
                <strong data-testid="refresh-count">{refreshes}</strong>
            </p>
            <label class="switch-row">
                <input type="checkbox" data-testid="proactive-toggle"
                    prop:checked=move || auth.proactive().get()
                    on:change=move |ev| auth.set_proactive(event_target_checked(&ev)) />
                " Renew ahead of expiry (turn off to watch expired tokens recover on demand)"
            </label>
        </section>
    }
    .into_any();
    let controls_card = view! {
        <section class="card" aria-labelledby="controls-title">
            <h2 id="controls-title">"Try it"</h2>
            <div class="controls">
                <button class="button" data-testid="call-one" on:click=move |_| fire(1)>
                    "One protected call"
                </button>
                <button class="button" data-testid="call-ten" on:click=move |_| fire(10)>
                    "Ten calls at once"
                </button>
                <button class="button secondary" data-testid="drop-token"
                    on:click=move |_| auth.drop_token()>
                    "Drop the token"
                </button>
                <button class="button secondary" data-testid="stale-token"
                    on:click=move |_| auth.make_token_stale()>
                    "Make the token stale"
                </button>
                <button class="button danger" data-testid="logout"
                    on:click=move |_| spawn_local(auth.logout())>
                    "Log out"
                </button>
            </div>
            <p class="call-result" role="status" data-testid="call-result"
                data-ok=move || burst.get().ok data-failed=move || burst.get().failed
                data-total=move || burst.get().total
                data-burst=move || burst.get().id>
                {move || burst.get().summary()}
            </p>
            <p class="muted small">
                "Calls go to " <code>"GET /api/me"</code>
                ". Dropping the token makes the next call refresh first; a stale token gets a 401, one refresh, one retry."
            </p>
        </section>
    }
    .into_any();
    let data_card = view! {
        <section class="card" aria-labelledby="data-title">
            <h2 id="data-title">"Protected data"</h2>
            {move || match data.get() {
                None => view! { <p class="muted" role="status">"Loading…"</p> }.into_any(),
                Some(Err(error)) => view! {
                    <div class="alert error" role="alert">{error.message}</div>
                }.into_any(),
                Some(Ok(d)) => view! {
                    <dl class="facts wide" data-testid="dashboard-data">
                        <dt>"User"</dt><dd>{d.user.email.clone()}</dd>
                        <dt>"User id"</dt><dd><code>{d.user.id.clone()}</code></dd>
                        <dt>"Member since"</dt><dd>{local_time(&d.user.created_at)}</dd>
                        <dt>"Session"</dt><dd><code data-testid="session-id">{d.session.id.clone()}</code></dd>
                        <dt>"Session started"</dt><dd>{local_time(&d.session.created_at)}</dd>
                        <dt>"Live sessions"</dt><dd>{d.live_sessions}</dd>
                        <dt>"Token expires (server)"</dt><dd>{local_time(&d.access_token_expires_at)}</dd>
                        <dt>"Server time"</dt><dd>{local_time(&d.server_time)}</dd>
                    </dl>
                }.into_any(),
            }}
            <button class="button small secondary" data-testid="reload-data"
                on:click=move |_| load_data()>
                "Reload"
            </button>
        </section>
    }
    .into_any();
    let timeline_card = view! {
        <section class="card" aria-labelledby="timeline-title">
            <h2 id="timeline-title">"Token timeline"</h2>
            <Timeline now />
        </section>
    }
    .into_any();
    let log_card = view! {
        <section class="card" aria-labelledby="log-title">
            <h2 id="log-title">"Auth events"</h2>
            <EventLog events=auth.events() />
        </section>
    }
    .into_any();

    view! {
        <div class="page-head">
            <div>
                <MainHeading>"Dashboard"</MainHeading>
                <p class="muted">
                    "Logged in as " <strong data-testid="user-email">{email}</strong>
                </p>
            </div>
            <StateBadge state=auth.state() />
        </div>

        {move || session_id.get().map(|session_id| view! { <ReuseNotice session_id /> })}

        <div class="grid">
            {token_card}

            {controls_card}
        </div>

        {data_card}

        {timeline_card}

        {log_card}
    }
}

/// Token lifetimes of the last few minutes as bars; each new bar is a
/// refresh (or a login, or a token adopted from another tab); red ticks are 401s.
#[component]
fn Timeline(now: ReadSignal<f64>) -> impl IntoView {
    let auth = use_auth();
    const WIDTH: f64 = 800.0;
    const HEIGHT: f64 = 70.0;
    let window_ms = move || {
        auth.spans()
            .with(|spans| spans.last().map(|s| s.expires_at - s.issued_at))
            .map(|lifetime| (lifetime * 4.0).clamp(30_000.0, 3_600_000.0))
            .unwrap_or(60_000.0)
    };
    let x = move |t: f64| {
        let window = window_ms();
        ((t - (now.get() - window * 0.8)) / window * WIDTH).clamp(0.0, WIDTH)
    };
    let bars = move || {
        auth.spans()
            .get()
            .into_iter()
            .enumerate()
            .map(|(index, span)| {
                // Alternate lanes so a replaced token's unused life stays visible.
                let y = if index % 2 == 0 { 14.0 } else { 30.0 };
                let used_until = span.replaced_at.unwrap_or(span.expires_at).min(now.get());
                let (x0, x1, x2) = (x(span.issued_at), x(used_until), x(span.expires_at));
                let class = format!("span {}", span.via);
                view! {
                    <g class=class>
                        <rect class="unused" x=x0 y=y width=(x2 - x0).max(0.0) height="14" rx="3" />
                        <rect class="used" x=x0 y=y width=(x1 - x0).max(0.0) height="14" rx="3" />
                        <line class="mark" x1=x0 x2=x0 y1="8" y2="50" />
                    </g>
                }
            })
            .collect_view()
    };
    let unauthorized = move || {
        auth.events()
            .get()
            .into_iter()
            .filter(|e| e.kind == EventKind::Unauthorized)
            .map(|e| {
                let at = x(e.at);
                view! { <line class="tick-401" x1=at x2=at y1="46" y2="58" /> }
            })
            .collect_view()
    };
    let now_x = move || x(now.get());
    view! {
        // Stretched to the card's width at a fixed height, so it stays legible on a phone.
        <svg class="timeline" viewBox=format!("0 0 {WIDTH} {HEIGHT}") preserveAspectRatio="none" role="img"
            aria-label="Access token lifetimes: each bar is one token, each new bar a refresh">
            <line class="axis" x1="0" x2=WIDTH y1="46" y2="46" />
            {bars}
            {unauthorized}
            <line class="now" x1=now_x x2=now_x y1="4" y2="66" />
        </svg>
        <p class="legend muted small">
            <span class="key used"></span>" token in use "
            <span class="key unused"></span>" life it had left when replaced "
            <span class="key tick"></span>" 401 "
            <span class="key now"></span>" now"
        </p>
    }
}
