//! Server entry: read the configuration, then serve until a shutdown signal.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    silent_refresh::server::init_tracing();
    match silent_refresh::server::run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line that names what is wrong (a variable, a file, a port).
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}
