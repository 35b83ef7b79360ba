//! The auth feature's share of the server state, built once from the config.

use std::sync::Arc;

use crate::config::Config;

use super::cookies::CookiePolicy;
use super::password::{Passwords, SLOT_WAIT};
use super::store::Store;
use super::throttle::{Limits, Throttle};
use super::tokens::AccessTokens;

#[derive(Clone)]
pub struct Auth {
    pub access: Arc<AccessTokens>,
    pub passwords: Passwords,
    pub throttle: Throttle,
    pub cookies: CookiePolicy,
    pub trust_forwarded: bool,
    /// Origins accepted on the cookie-bearing POSTs, worked out once.
    pub allowed_origins: Arc<[String]>,
}

impl Auth {
    /// `store` keeps the throttle's state.
    pub fn new(config: &Config, store: Store) -> Self {
        // Leave one core free of argon2, so refreshes never wait behind a
        // burst of logins (on one core there is no choice).
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let hashing_slots = cores.saturating_sub(1).max(1);
        Self {
            access: Arc::new(AccessTokens::new(
                config.access_secret.expose(),
                &config.public_origin,
                &config.audience,
                config.access_token_ttl,
            )),
            passwords: Passwords::new(hashing_slots, SLOT_WAIT),
            throttle: Throttle::new(
                Limits {
                    max_failures: config.login_max_failures,
                    lockout: config.login_lockout,
                    rate_per_minute: config.auth_rate_per_minute,
                },
                store,
            ),
            cookies: CookiePolicy {
                secure: config.is_production(),
            },
            trust_forwarded: config.trust_x_forwarded_for,
            allowed_origins: config.allowed_origins().into(),
        }
    }
}
