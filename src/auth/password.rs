//! Argon2id hashing off the async threads, with a cap on how many run at
//! once so a burst of logins can't starve token refreshes.
//!
//! A hash holds its slot until it has finished, not until its caller stops
//! waiting: a client that hangs up mid-login does not free a slot while its
//! 19 MiB hash is still running on a blocking thread.

use std::{sync::Arc, time::Duration};

use argon2::{
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Algorithm, Argon2, Params, Version,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::Failure;

/// How long a login waits for a free hashing slot before answering 503.
pub const SLOT_WAIT: Duration = Duration::from_secs(5);

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
    slot_wait: Duration,
    /// Verified against when the email is unknown, so timing reveals nothing.
    dummy_hash: Arc<str>,
}

/// The right to run one hash. It moves into the blocking task that runs the
/// hash and is released when that task ends, whatever became of the caller.
pub struct Slot {
    permit: OwnedSemaphorePermit,
    dummy_hash: Arc<str>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slot")
    }
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
    /// threads room to breathe on small machines); a caller waits at most
    /// `slot_wait` for one (`SLOT_WAIT` in the server) before a 503.
    pub fn new(concurrent: usize, slot_wait: Duration) -> Self {
        let dummy = hash_blocking(b"dummy password that matches no account")
            .expect("argon2 hashes a constant");
        Self {
            slots: Arc::new(Semaphore::new(concurrent.max(1))),
            slot_wait,
            dummy_hash: dummy.into(),
        }
    }

    /// Waits up to the slot wait for a free hashing slot; 503 `unavailable`
    /// with `Retry-After` when none frees up in time.
    pub async fn slot(&self) -> Result<Slot, Failure> {
        let busy = || {
            Failure::new(
                super::model::ErrorCode::Unavailable,
                "Too many sign-ins at once; try again in a moment.",
            )
            .retry_after(Duration::from_secs(1))
        };
        let permit = tokio::time::timeout(self.slot_wait, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        Ok(Slot {
            permit,
            dummy_hash: self.dummy_hash.clone(),
        })
    }

    /// Slots free right now.
    pub fn available_slots(&self) -> usize {
        self.slots.available_permits()
    }

    pub async fn hash(&self, password: &str) -> Result<PasswordHashString, Failure> {
        self.slot().await?.hash(password).await
    }

    /// Verifies against `stored`, or against the dummy hash when there is no
    /// account, so both take the same time. Returns false for the dummy.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<bool, Failure> {
        self.slot().await?.verify(password, stored).await
    }
}

impl Slot {
    pub async fn hash(self, password: &str) -> Result<PasswordHashString, Failure> {
        let password = password.as_bytes().to_vec();
        let hash = self.run(move || hash_blocking(&password)).await?;
        hash.map(PasswordHashString).map_err(|e| {
            tracing::error!(error = %e, "password hashing failed");
            Failure::unavailable()
        })
    }

    /// As `Passwords::verify`, in this slot.
    pub async fn verify(self, password: &str, stored: Option<&str>) -> Result<bool, Failure> {
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

    /// Runs `work` on a blocking thread that owns the slot until `work`
    /// returns; dropping the returned future does not release it early.
    async fn run<T: Send + 'static>(
        self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Failure> {
        let permit = self.permit;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "password task failed");
            Failure::unavailable()
        })
    }
}

#[cfg(test)]
mod tests {
    use axum::{
        http::{header::RETRY_AFTER, StatusCode},
        response::IntoResponse,
    };

    use super::*;
    use crate::auth::model::ErrorCode;

    const SHORT_WAIT: Duration = Duration::from_millis(20);

    #[tokio::test]
    async fn hashes_verify_and_dummy_never_matches() {
        let passwords = Passwords::new(1, SLOT_WAIT);
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

    #[tokio::test]
    async fn busy_slots_past_the_wait_answer_503_unavailable_with_retry_after() {
        let passwords = Passwords::new(1, SHORT_WAIT);
        let held = passwords.slot().await.unwrap();
        let failure = passwords
            .verify("any password at all", None)
            .await
            .unwrap_err();
        assert_eq!(failure.code, ErrorCode::Unavailable);
        let response = failure.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[RETRY_AFTER], "1");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "unavailable");

        drop(held);
        assert!(passwords.verify("any password at all", None).await.is_ok());
    }

    #[tokio::test]
    async fn a_cancelled_hash_keeps_its_slot_until_the_hash_ends() {
        let passwords = Passwords::new(1, SHORT_WAIT);
        // Stands in for a hash that is still running: it ends when told.
        let (finish, finished) = std::sync::mpsc::channel::<()>();
        let slot = passwords.slot().await.unwrap();
        let mut running = Box::pin(slot.run(move || finished.recv()));
        assert!(futures::poll!(&mut running).is_pending());

        // The caller hangs up; the hash goes on, and so does its claim.
        drop(running);
        assert_eq!(passwords.available_slots(), 0);
        let failure = passwords.verify("a second login", None).await.unwrap_err();
        assert_eq!(failure.code, ErrorCode::Unavailable);

        finish.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(30), async {
            while passwords.available_slots() == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("the slot comes back once the hash ends");
        assert!(passwords.verify("a second login", None).await.is_ok());
    }
}
