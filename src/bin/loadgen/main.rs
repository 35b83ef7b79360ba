//! Load generator for the benchmarks (issue 5) and the soak (issue 6).
//!
//! It starts nothing: `scripts/bench.sh` and `scripts/soak.sh` run the
//! server. It only sends requests, only to a loopback address, and every
//! loop is bounded in time and count. Tokens and passwords stay in memory.

mod accounts;
mod bench;
mod browser;
mod checks;
mod cpu;
mod drain;
mod first_visit;
mod lanes;
mod report;
mod revocation;
mod rss;
mod size;
mod soak;
mod stats;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "loadgen",
    about = "Load for the silent-refresh server, on loopback only"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The server to load: one instance, or several sharing one database.
#[derive(clap::Args, Clone)]
pub struct Target {
    /// Base URL, e.g. http://127.0.0.1:3900 (loopback only).
    #[arg(long)]
    pub base: String,
    /// Another instance of the same service (loopback only; repeatable).
    /// Requests take turns between --base and the peers; one whose
    /// connection is refused goes to the next address, as a load balancer
    /// would send it to a live instance.
    #[arg(long = "peer", value_name = "BASE")]
    pub peers: Vec<String>,
    /// `Origin` of the auth POSTs: the server's PUBLIC_ORIGIN (default: the base URL).
    #[arg(long)]
    pub origin: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Every benchmark scenario and one table of figures and targets.
    Bench(bench::Args),
    /// Many tabs signing in, calling and refreshing for a while.
    Soak(soak::Args),
    /// Slow requests in flight while the script sends SIGTERM.
    Drain(drain::Args),
    /// What a first visit to a page downloads, as the server sends it.
    FirstVisit {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value = "/login")]
        page: String,
    },
    /// Raw, gzip and brotli sizes of the `.wasm` and `.js` in a folder.
    Size {
        #[arg(long, default_value = "target/site/pkg")]
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Size { dir } = &cli.command {
        return match size::measure(dir) {
            Ok(files) => {
                size::print(&files);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("loadgen: {e}");
                ExitCode::from(2)
            }
        };
    }
    // The machine has two cores; the server needs them as much as we do.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Bench(args) => bench::run(args).await,
            Command::Soak(args) => soak::run(args).await,
            Command::Drain(args) => drain::run(args).await,
            Command::FirstVisit { target, page } => first_visit::run(&target, &page).await,
            Command::Size { .. } => unreachable!("handled above"),
        }
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(2)
        }
    }
}
