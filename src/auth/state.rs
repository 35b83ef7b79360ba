//! The auth feature's state: what its handlers, extractors, guard and the
//! refresh server function read. The server embeds it in its own state and
//! hands it out through `FromRef` (and a Leptos context), so auth never
//! imports the server module.

use std::sync::Arc;

use sqlx::SqlitePool;

use crate::clock::Clock;
use crate::config::Config;

use super::service::Auth;

/// Cheap to clone: one shared pointer. (Not `AuthState`: that name is the
/// browser client's state, in `auth::client`.)
#[derive(Clone)]
pub struct AuthContext(Arc<AuthParts>);

pub struct AuthParts {
    /// The database, until the store seam stands in front of it.
    pub pool: SqlitePool,
    pub clock: Arc<dyn Clock>,
    /// Tokens, refresh store, passwords, throttle and request policy.
    pub service: Auth,
}

impl AuthContext {
    pub fn new(config: &Config, pool: SqlitePool, clock: Arc<dyn Clock>) -> Self {
        let service = Auth::new(config, pool.clone());
        Self(Arc::new(AuthParts {
            pool,
            clock,
            service,
        }))
    }
}

impl std::ops::Deref for AuthContext {
    type Target = AuthParts;

    fn deref(&self) -> &AuthParts {
        &self.0
    }
}
