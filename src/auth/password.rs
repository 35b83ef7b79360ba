//! Argon2id hashing off the async threads, with a cap on how many run at
//! once so a burst of logins can't starve token refreshes.

use std::{sync::Arc, time::Duration};

use argon2::{
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Algorithm, Argon2, Params, Version,
};
use tokio::sync::Semaphore;

use super::error::Failure;

/// How long a login waits for a free hashing slot before answering 503.
const SLOT_WAIT: Duration = Duration::from_secs(5);

/// A PHC string, never printed.
pub struct PasswordHashString(pub String);

impl std::fmt::Debug for PasswordHashString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHashString(..)")
    }
}

#[derive(Clone)]
pub struct Passwords {
    slots: Arc<Semaphore>,
    /// Verified against when the email is unknown, so timing reveals nothing.
    dummy_hash: Arc<str>,
}

/// OWASP's argon2id parameters: 19 MiB, two passes, one lane.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(password: &[u8]) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut rand_core::OsRng);
    Ok(argon2().hash_password(password, &salt)?.to_string())
}

impl Passwords {
    /// `concurrent` hashes may run at once (one per core leaves the async
    /// threads room to breathe on small machines).
    pub fn new(concurrent: usize) -> Self {
        let dummy = hash_blocking(b"dummy password that matches no account")
            .expect("argon2 hashes a constant");
        Self {
            slots: Arc::new(Semaphore::new(concurrent.max(1))),
            dummy_hash: dummy.into(),
        }
    }

    pub async fn hash(&self, password: &str) -> Result<PasswordHashString, Failure> {
        let password = password.as_bytes().to_vec();
        let hash = self.run(move || hash_blocking(&password)).await?;
        hash.map(PasswordHashString).map_err(|e| {
            tracing::error!(error = %e, "password hashing failed");
            Failure::unavailable()
        })
    }

    /// Verifies against `stored`, or against the dummy hash when there is no
    /// account, so both take the same time. Returns false for the dummy.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<bool, Failure> {
        let password = password.as_bytes().to_vec();
        let known = stored.is_some();
        let hash = stored.map_or_else(|| self.dummy_hash.to_string(), str::to_string);
        let matched = self
            .run(move || {
                PasswordHash::new(&hash)
                    .map(|parsed| argon2().verify_password(&password, &parsed).is_ok())
                    .unwrap_or(false)
            })
            .await?;
        Ok(known && matched)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Failure> {
        let busy = || {
            Failure::new(
                super::model::ErrorCode::Unavailable,
                "Too many sign-ins at once; try again in a moment.",
            )
            .retry_after(Duration::from_secs(1))
        };
        let _slot = tokio::time::timeout(SLOT_WAIT, self.slots.acquire())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        tokio::task::spawn_blocking(work).await.map_err(|e| {
            tracing::error!(error = %e, "password task failed");
            Failure::unavailable()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_dummy_never_matches() {
        let passwords = Passwords::new(1);
        let hash = passwords.hash("correct horse battery").await.unwrap();
        assert!(hash.0.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(passwords
            .verify("correct horse battery", Some(&hash.0))
            .await
            .unwrap());
        assert!(!passwords
            .verify("wrong horse", Some(&hash.0))
            .await
            .unwrap());
        assert!(!passwords
            .verify("dummy password that matches no account", None)
            .await
            .unwrap());
        assert!(!format!("{hash:?}").contains("argon2"));
    }
}
