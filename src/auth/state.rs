//! The auth feature's state: what its handlers, extractors, guard and the
//! refresh server function read. The server embeds it in its own state and
//! hands it out through `FromRef` (and a Leptos context), so auth never
//! imports the server module.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Config;

use super::refresh::RefreshKeys;
use super::service::Auth;
use super::store::{Backend, Lifetimes, Store};

/// Cheap to clone: one shared pointer. (Not `AuthState`: that name is the
/// browser client's state, in `auth::client`.)
#[derive(Clone)]
pub struct AuthContext(Arc<AuthParts>);

pub struct AuthParts {
    /// Users, sessions, refresh tokens and the login throttle's state, and
    /// the rules over them: the only way auth reaches the database.
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    /// Access tokens, passwords, throttle and request policy.
    pub service: Auth,
}

impl AuthContext {
    /// `backend` is the database the server connected to (a SQLite pool
    /// converts into one).
    pub fn new(config: &Config, backend: Backend, clock: Arc<dyn Clock>) -> Self {
        let lifetimes = Lifetimes {
            idle: config.refresh_token_ttl,
            browser_idle: config.browser_session_idle,
            absolute: config.session_max_age,
            grace: config.refresh_reuse_grace,
        };
        let keys = RefreshKeys::new(config.refresh_secret.expose());
        let store = Store::new(backend, keys, lifetimes);
        Self(Arc::new(AuthParts {
            service: Auth::new(config, store.clone()),
            store,
            clock,
        }))
    }
}

impl std::ops::Deref for AuthContext {
    type Target = AuthParts;

    fn deref(&self) -> &AuthParts {
        &self.0
    }
}
