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

/// Migrates a fresh SQLite file with the shipped migrations older than
/// `version` only, as a server of that time left it. Returns its URL.
/// (Tests used to migrate fully and then forget the later migrations, so
/// they ran twice; `20261202010000` still says so. Rebuilding a table can't
/// run twice, hence this.)
async fn sqlite_before(dir: &std::path::Path, version: i64) -> String {
    let earlier = dir.join("earlier");
    std::fs::create_dir(&earlier).unwrap();
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let shipped: i64 = name.split('_').next().unwrap().parse().unwrap();
        if shipped < version {
            std::fs::copy(&path, earlier.join(&name)).unwrap();
        }
    }
    let url = format!("sqlite://{}?mode=rwc", dir.join("app.db").display());
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("PRAGMA foreign_keys = ON")
        .execute(&mut conn)
        .await
        .unwrap();
    Migrator::new(earlier.as_path())
        .await
        .unwrap()
        .run(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    url
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
    // It never saw the migrations after the edited one.
    let url = sqlite_before(dir.path(), 20261126120000 + 1).await;

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

/// A foreign key whose column has no index makes every delete of the row
/// it names scan the referencing table: with `successor_id`'s key, purging
/// 200 ended sessions from 200,000 tokens took 155 s under the write lock.
#[tokio::test]
async fn every_foreign_key_has_an_index_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("app.db").display());
    let pool = sqlite::connect(&url).await.unwrap();
    let keys: Vec<(String, String)> = sqlx::query_as(
        "SELECT m.name, k.\"from\" FROM sqlite_master m, pragma_foreign_key_list(m.name) k
         WHERE m.type = 'table'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(keys.len() >= 3, "{keys:?}");
    for (table, column) in keys {
        let leading: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pragma_index_list(?1) l, pragma_index_info(l.name) i
             WHERE i.seqno = 0 AND i.name = ?2",
        )
        .bind(&table)
        .bind(&column)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert!(
            leading > 0,
            "{table}.{column} is a foreign key without an index"
        );
    }
}

/// Tokens stored before `successor_id` went keep their chains: the rebuilt
/// table has every row, every link through `parent_id`, and a session's
/// delete still takes its tokens, however long its chain (SQLite cascades
/// one level per link, and stops at 1,000).
#[tokio::test]
async fn tokens_keep_their_chains_when_successor_id_goes() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_before(dir.path(), 20261202120000).await;
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    // Two sessions, each a chain of three tokens linked both ways, and a
    // third whose chain is 1,200 tokens long.
    sqlx::raw_sql(
        "INSERT INTO users (id, email, email_key, password_hash, created_at)
             VALUES ('u', 'a@example.com', 'a@example.com', 'h', 0);
         INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at)
             VALUES ('s1', 'u', 0, 2, 9), ('s2', 'u', 0, 2, 9), ('long', 'u', 0, 2, 9);
         INSERT INTO refresh_tokens (id, session_id, token_hash, parent_id, issued_at, used_at)
             VALUES (1, 's1', x'01', NULL, 0, 1), (2, 's1', x'02', 1, 1, 2), (3, 's1', x'03', 2, 2, NULL),
                    (4, 's2', x'04', NULL, 0, 1), (5, 's2', x'05', 4, 1, 2), (6, 's2', x'06', 5, 2, NULL);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1200)
         INSERT INTO refresh_tokens (id, session_id, token_hash, parent_id, issued_at, used_at)
             SELECT 100 + i, 'long', randomblob(32), CASE WHEN i > 1 THEN 99 + i END, i,
                    CASE WHEN i < 1200 THEN i + 1 END
             FROM n;
         UPDATE refresh_tokens SET successor_id = id + 1 WHERE used_at IS NOT NULL;",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    let pool = sqlite::connect(&url).await.expect("it migrates");
    let columns: Vec<String> =
        sqlx::query_scalar("SELECT name FROM pragma_table_info('refresh_tokens')")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(
        !columns.contains(&"successor_id".to_string()),
        "{columns:?}"
    );
    let chains: Vec<(i64, i64, String)> = sqlx::query_as(
        "SELECT parent.id, child.id, child.session_id FROM refresh_tokens parent
         JOIN refresh_tokens child ON child.parent_id = parent.id
         WHERE child.session_id <> 'long' ORDER BY parent.id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let s = |id: &str| id.to_string();
    assert_eq!(
        chains,
        [
            (1, 2, s("s1")),
            (2, 3, s("s1")),
            (4, 5, s("s2")),
            (5, 6, s("s2"))
        ]
    );
    let violations: Vec<(String,)> = sqlx::query_as("PRAGMA foreign_key_check")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(violations.is_empty());
    let long_links: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM refresh_tokens parent
         JOIN refresh_tokens child ON child.parent_id = parent.id
         WHERE child.session_id = 'long'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(long_links, 1199);
    // A second successor of one token is refused by the schema itself.
    let second = sqlx::query(
        "INSERT INTO refresh_tokens (session_id, token_hash, parent_id, issued_at)
         VALUES ('s1', x'07', 2, 3)",
    )
    .execute(&pool)
    .await
    .expect_err("a second successor of token 2");
    let refused = second.as_database_error().expect("refused by the database");
    assert!(refused.is_unique_violation(), "{refused}");
    sqlx::query("DELETE FROM sessions WHERE id IN ('s1', 'long')")
        .execute(&pool)
        .await
        .expect("a session goes with its tokens, however long its chain");
    let left: Vec<i64> = sqlx::query_scalar("SELECT id FROM refresh_tokens ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(left, [4, 5, 6]);
}
