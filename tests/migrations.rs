//! Migrations are never edited once they reach main: sqlx records each one's
//! checksum, and a database migrated with an earlier text refuses to start.
//! `migration-checksums.txt` lists every migration that has shipped; this
//! test fails when one changes or disappears, or when a new one is missing
//! from the list. (`.ci/run` checks that the list itself only grows.)

use sha2::{Digest, Sha384};
use silent_refresh::db::{postgres, sqlite, sqlite::MIGRATOR};
use sqlx::migrate::Migrator;
use sqlx::{Connection, SqliteConnection};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Entry {
    engine: String,
    version: i64,
    checksum: String,
    name: String,
}

fn manifest() -> Vec<Entry> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/migration-checksums.txt"
    ))
    .expect("migration-checksums.txt exists");
    text.lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields.len(), 4, "malformed manifest line: {line}");
            assert!(
                ["sqlite", "postgres"].contains(&fields[0]),
                "unknown engine in: {line}"
            );
            Entry {
                engine: fields[0].to_string(),
                version: fields[1].parse().expect("a numeric version"),
                checksum: fields[2].to_string(),
                name: fields[3].to_string(),
            }
        })
        .collect()
}

/// Each engine's migrations, as the server embeds them.
fn migrators() -> [(&'static str, &'static Migrator); 2] {
    [
        ("sqlite", &sqlite::MIGRATOR),
        ("postgres", &postgres::MIGRATOR),
    ]
}

fn migrator(engine: &str) -> &'static Migrator {
    migrators()
        .into_iter()
        .find(|(name, _)| *name == engine)
        .map(|(_, migrator)| migrator)
        .unwrap()
}

#[test]
fn shipped_migrations_are_unchanged() {
    for entry in manifest() {
        let migration = migrator(&entry.engine)
            .iter()
            .find(|m| m.version == entry.version)
            .unwrap_or_else(|| {
                panic!(
                    "{} migration {} ({}) has shipped and must not disappear",
                    entry.engine, entry.version, entry.name
                )
            });
        assert_eq!(
            hex(&migration.checksum),
            entry.checksum,
            "{} migration {} ({}) was edited after it shipped: add a new migration instead",
            entry.engine,
            entry.version,
            entry.name
        );
    }
}

#[test]
fn every_migration_is_in_the_manifest() {
    let manifest = manifest();
    for (engine, migrator) in migrators() {
        for migration in migrator.iter() {
            let listed = manifest
                .iter()
                .any(|e| e.engine == engine && e.version == migration.version);
            assert!(
                listed,
                "add this line to migration-checksums.txt:\n{engine} {} {} {}",
                migration.version,
                hex(&migration.checksum),
                migration.description.replace(' ', "_"),
            );
        }
    }
}

/// The text `20261126120000` had before commit 0e4d45f edited it.
const FIRST_ROTATION_TRIGGER: &str = "CREATE TRIGGER refresh_tokens_spend_parent
AFTER INSERT ON refresh_tokens
WHEN NEW.parent_id IS NOT NULL
BEGIN
    UPDATE refresh_tokens SET used_at = NEW.issued_at, successor_id = NEW.id
    WHERE id = NEW.parent_id;
    UPDATE sessions SET last_used_at = NEW.issued_at WHERE id = NEW.session_id;
END;
";

/// A database migrated between the edit's two texts starts, records the
/// current checksum, and goes on to the later migrations like any other
/// (`20261201210000` drops the trigger again: rotation is decided in Rust).
#[tokio::test]
async fn database_migrated_with_the_edited_text_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("app.db").display());
    sqlite::connect(&url).await.unwrap().close().await;

    // Put it back the way the first text left it.
    let first_text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/migrations/sqlite/20261126120000_rotation_in_one_statement.sql"
    ))
    .unwrap()
    .replace(
        "WHERE id = NEW.parent_id AND used_at IS NULL;",
        "WHERE id = NEW.parent_id;",
    );
    assert!(first_text.ends_with(FIRST_ROTATION_TRIGGER));
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    // It never saw the migrations after the edited one.
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version > 20261126120000")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::raw_sql("DROP TRIGGER IF EXISTS refresh_tokens_spend_parent")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::raw_sql(FIRST_ROTATION_TRIGGER)
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("UPDATE _sqlx_migrations SET checksum = ? WHERE version = 20261126120000")
        .bind(Sha384::digest(first_text.as_bytes()).to_vec())
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let pool = sqlite::connect(&url)
        .await
        .expect("a database migrated with the first text starts");
    let recorded: Vec<u8> =
        sqlx::query_scalar("SELECT checksum FROM _sqlx_migrations WHERE version = 20261126120000")
            .fetch_one(&pool)
            .await
            .unwrap();
    let current = MIGRATOR
        .iter()
        .find(|m| m.version == 20261126120000)
        .unwrap();
    assert_eq!(hex(&recorded), hex(&current.checksum));
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(applied as usize, MIGRATOR.iter().count());
    let triggers: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(triggers, 0, "no rule hides in a trigger");
}
