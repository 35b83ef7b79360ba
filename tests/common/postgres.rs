//! PostgreSQL for tests: a fresh schema on the server `TEST_POSTGRES_URL`
//! names (engine-neutral tests), or a private cluster that a test may stop
//! and start again (outages) or share between two server processes.

use std::{
    path::PathBuf,
    process::{Command, Output},
};

use sqlx::Connection;

/// A new, empty schema on the PostgreSQL server at `server`, and a URL
/// whose connections see only it: each test migrates and uses its own.
pub async fn fresh_schema(server: &str) -> String {
    let schema = format!("test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(server)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {server}: {e}"));
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    let mut url = url::Url::parse(server).expect("a postgres:// URL");
    url.query_pairs_mut()
        .append_pair("options", &format!("-c search_path={schema}"));
    url.to_string()
}

/// A PostgreSQL cluster of the test's own, on a temporary folder and a free
/// loopback port, with trust authentication. Stopped and removed on drop.
pub struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
}

impl Cluster {
    pub fn start() -> Self {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("pg-test-")
            .tempdir_in("/tmp")
            .unwrap();
        if is_root() {
            // PostgreSQL refuses to run as root; its own user owns the folder.
            run(Command::new("chown").arg("postgres").arg(dir.path()));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Self { dir, port, bin };
        run(cluster
            .command("initdb")
            .args(["--auth=trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .arg("-D")
            .arg(cluster.data()));
        cluster.resume();
        cluster
    }

    /// The admin URL: the `postgres` database as the `postgres` user.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server at once, as a crash or a network cut would look.
    pub fn stop(&self) {
        run(self
            .command("pg_ctl")
            .args(["-m", "immediate", "-w", "stop", "-D"])
            .arg(self.data()));
    }

    /// Starts the server (again) on the same port and data.
    pub fn resume(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        run(self
            .command("pg_ctl")
            .args(["-w", "start", "-o", &options, "-l"])
            .arg(self.dir.path().join("server.log"))
            .arg("-D")
            .arg(self.data()));
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-m", "immediate", "stop", "-D"])
            .arg(self.data())
            .output();
    }
}

/// `TEST_PG_BIN_DIR`, or the newest installed server's binaries.
fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("TEST_PG_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort_by_key(|bin| {
        bin.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
    });
    found
        .pop()
        .expect("PostgreSQL's server binaries (scripts/setup.sh installs them)")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
