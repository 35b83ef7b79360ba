//! Whether a revoked session's access token is refused on the very next
//! request, right after `/api/me` ran flat out: the condition that goes
//! with the `/api/me` throughput target (a faster `/api/me` must not come
//! from trusting a session it no longer looks up).

use std::sync::Arc;

use crate::accounts::{self, Account};
use crate::browser::{Browser, Server};

/// Probes per way of revoking.
pub const PER_ROUTE: usize = 2;
/// The ways a session ends while its access token is still unexpired.
const ROUTES: [Route; 3] = [Route::Logout, Route::RevokeAll, Route::RevokeFromElsewhere];
pub const PROBES: usize = PER_ROUTE * ROUTES.len();

#[derive(Clone, Copy)]
enum Route {
    /// `POST /api/auth/logout` with the session's own cookie.
    Logout,
    /// `DELETE /api/sessions` with the session's own bearer.
    RevokeAll,
    /// `DELETE /api/sessions/{id}` from another session of the same user.
    RevokeFromElsewhere,
}

impl Route {
    fn label(self) -> &'static str {
        match self {
            Route::Logout => "logout",
            Route::RevokeAll => "DELETE /api/sessions",
            Route::RevokeFromElsewhere => "DELETE /api/sessions/{id} from another session",
        }
    }
}

#[derive(Default)]
pub struct Outcome {
    /// Probes whose next `/api/me` after the revocation answered 401.
    pub refused: usize,
    pub probes: usize,
    /// What went wrong, for the notes: a token still accepted, or a step
    /// that did not work.
    pub problems: Vec<String>,
}

impl Outcome {
    pub fn all_refused(&self) -> bool {
        self.probes > 0 && self.refused == self.probes && self.problems.is_empty()
    }
}

/// For each account: `/api/me` answers 200 (twice, so anything cached is
/// warm), the session is revoked one of three ways, and the next `/api/me`
/// with the same, unexpired access token must answer 401.
pub async fn probe(server: &Arc<Server>, accounts: Vec<Account>) -> Outcome {
    let mut outcome = Outcome::default();
    for (i, account) in accounts.into_iter().enumerate() {
        let route = ROUTES[i % ROUTES.len()];
        outcome.probes += 1;
        match probe_one(server, &account, route).await {
            Ok(401) => outcome.refused += 1,
            Ok(status) => outcome.problems.push(format!(
                "after {}, the next /api/me with the revoked session's token answered {status}",
                route.label()
            )),
            Err(e) => outcome
                .problems
                .push(format!("revocation probe ({}): {e}", route.label())),
        }
    }
    outcome
}

/// The status of the first `/api/me` after the revocation.
async fn probe_one(server: &Arc<Server>, account: &Account, route: Route) -> Result<u16, String> {
    // The other session signs in first: argon2 is no part of the window
    // between the revocation and the next request.
    let elsewhere = match route {
        Route::RevokeFromElsewhere => {
            let browser = Browser::new(server.clone());
            let answer = browser
                .login(&account.email, accounts::PASSWORD)
                .await
                .map_err(|e| format!("second login: {e}"))?;
            let token = answer
                .access_token
                .filter(|_| answer.status == 200)
                .ok_or(format!("second login answered {}", answer.status))?;
            Some((browser, token))
        }
        _ => None,
    };
    for _ in 0..2 {
        let status = me(account).await?;
        if status != 200 {
            return Err(format!("/api/me answered {status} before the revocation"));
        }
    }
    let token = &account.access_token;
    let revoked = match (route, &elsewhere) {
        (Route::Logout, _) => account.browser.logout().await,
        (Route::RevokeAll, _) => {
            account
                .browser
                .delete_protected("/api/sessions", token)
                .await
        }
        (Route::RevokeFromElsewhere, Some((browser, other_token))) => {
            let ids = browser.other_sessions(other_token).await?;
            let [id] = ids.as_slice() else {
                return Err(format!("{} other live sessions, not 1", ids.len()));
            };
            browser
                .delete_protected(&format!("/api/sessions/{id}"), other_token)
                .await
        }
        (Route::RevokeFromElsewhere, None) => unreachable!("signed in above"),
    }
    .map_err(|e| format!("revoking: {e}"))?;
    if !revoked.ok() {
        return Err(format!("revoking answered {}", revoked.status));
    }
    me(account).await
}

async fn me(account: &Account) -> Result<u16, String> {
    account
        .browser
        .get_protected("/api/me", &account.access_token)
        .await
        .map(|a| a.status)
        .map_err(|e| format!("GET /api/me: {e}"))
}
