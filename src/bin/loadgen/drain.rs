//! SIGTERM with requests in flight: slow requests (logins, argon2id) are
//! sent, the script is told to stop the server, and every one of them must
//! still get its answer.

use std::{path::PathBuf, sync::Arc, time::Duration};

use crate::accounts;
use crate::browser::Server;
use crate::checks::Checks;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: crate::Target,
    /// Logins in flight when the server is told to stop.
    #[arg(long, default_value_t = 64)]
    pub requests: usize,
    /// Created once every request is on the wire: the script's cue to
    /// send SIGTERM.
    #[arg(long)]
    pub ready_file: PathBuf,
    /// The script creates this right after SIGTERM; answers that arrive
    /// after it exists were in flight at the signal.
    #[arg(long)]
    pub signalled_file: PathBuf,
}

/// Time for the requests to reach the server before the cue.
const SETTLE: Duration = Duration::from_millis(150);

pub async fn run(args: Args) -> Result<bool, String> {
    let server = Arc::new(Server::new(&args.target)?);
    let prefix = accounts::run_prefix("drain");
    eprintln!("drain: registering {} accounts", args.requests);
    let accounts = accounts::register_many(&server, &prefix, args.requests, 4).await?;
    // Warm every connection so the logins ride ones the server already
    // accepted (a listener that is shutting down takes no new ones).
    for account in &accounts {
        account
            .browser
            .healthz()
            .await
            .map_err(|e| format!("healthz before the drain: {e}"))?;
    }
    let signalled = Arc::new(args.signalled_file.clone());
    let logins = accounts.into_iter().map(|account| {
        let signalled = signalled.clone();
        async move {
            let outcome = account
                .browser
                .login(&account.email, accounts::PASSWORD)
                .await;
            let after_signal = signalled.exists();
            (outcome.map(|a| a.status).ok(), after_signal)
        }
    });
    let handles: Vec<_> = logins.map(tokio::spawn).collect();
    tokio::time::sleep(SETTLE).await;
    std::fs::write(&args.ready_file, b"ready\n")
        .map_err(|e| format!("{}: {e}", args.ready_file.display()))?;

    let mut answered = 0u64;
    let mut in_flight_at_signal = 0u64;
    let mut failed = 0u64;
    for handle in handles {
        let (status, after_signal) = handle.await.map_err(|e| e.to_string())?;
        match status {
            Some(200) => answered += 1,
            _ => failed += 1,
        }
        if after_signal {
            in_flight_at_signal += 1;
        }
    }
    println!(
        "drain: {} logins sent, {answered} answered 200, {in_flight_at_signal} still in flight at SIGTERM",
        args.requests
    );
    let mut checks = Checks::default();
    checks.zero("in-flight requests lost at SIGTERM", failed);
    checks.at_least(
        "requests still in flight at SIGTERM",
        in_flight_at_signal,
        1,
    );
    Ok(checks.print("drain"))
}
