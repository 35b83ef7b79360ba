//! Test accounts: registered up front so scenarios start signed in.

use std::sync::Arc;

use crate::browser::{Browser, Server};

/// Never printed; long enough for the server's password rule.
pub const PASSWORD: &str = "loadgen password, not a secret";

/// A signed-in browser: its jar holds the session's refresh cookie.
pub struct Account {
    pub browser: Browser,
    pub email: String,
    pub access_token: String,
    pub expires_in: u64,
}

/// A prefix that keeps this run's emails apart from earlier runs on the
/// same database (the crash phase restarts on one).
pub fn run_prefix(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{label}-{nanos:x}")
}

pub fn email(prefix: &str, index: usize) -> String {
    format!("{prefix}-{index}@loadgen.test")
}

/// Registers `count` accounts, `parallel` at a time (argon2 is the cost).
pub async fn register_many(
    server: &Arc<Server>,
    prefix: &str,
    count: usize,
    parallel: usize,
) -> Result<Vec<Account>, String> {
    let mut accounts = Vec::with_capacity(count);
    let mut start = 0;
    while start < count {
        let end = (start + parallel.max(1)).min(count);
        let batch = (start..end).map(|i| register_one(server.clone(), email(prefix, i)));
        for result in join_all(batch).await {
            accounts.push(result?);
        }
        start = end;
    }
    Ok(accounts)
}

async fn register_one(server: Arc<Server>, email: String) -> Result<Account, String> {
    let browser = Browser::new(server);
    // A busy server may ask us to come back (503 while hashes queue).
    for attempt in 0..5u32 {
        match browser.register(&email, PASSWORD).await {
            Ok(answer) if answer.ok() => {
                let access_token = answer
                    .access_token
                    .ok_or("register answered 200 without an access token")?;
                return Ok(Account {
                    browser,
                    email,
                    access_token,
                    expires_in: answer.expires_in,
                });
            }
            Ok(answer) if answer.status == 503 || answer.status == 429 => {}
            Ok(answer) => {
                return Err(format!(
                    "register answered {} {}",
                    answer.status, answer.code
                ))
            }
            Err(e) if attempt == 4 => return Err(format!("register failed: {e}")),
            Err(_) => {}
        }
        tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
    }
    Err("register kept answering 503/429".into())
}

/// Runs every future on its own task and returns their outputs in order.
pub async fn join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.expect("a load task panicked"));
    }
    outputs
}
