//! Typed settings read once from the environment (and `.env`), with the
//! defaults of the documented configuration. A bad value stops the start
//! with one line that names the variable.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

/// Where the process runs; production refuses weak or missing secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Production,
}

/// Key material, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub const MIN_LEN: usize = 32;

    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Which database engine a `DATABASE_URL` names, by its scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// One file, one instance: the embedded default.
    Sqlite,
    /// A server that any number of instances share.
    Postgres,
}

/// `DATABASE_URL`. A PostgreSQL URL may carry a password, so the value is
/// only ever printed through `redacted` (which `Debug` uses too).
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    url: String,
    engine: Engine,
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        let engine = if url.starts_with("sqlite:") {
            Engine::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            url::Url::parse(url).map_err(|e| format!("not a valid URL ({e})"))?;
            Engine::Postgres
        } else {
            return Err("expected a sqlite:// or postgres:// URL".into());
        };
        Ok(Self {
            url: url.to_string(),
            engine,
        })
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The URL itself, password included: for the driver only.
    pub fn expose(&self) -> &str {
        &self.url
    }

    /// The URL without its password (and, for PostgreSQL, without its
    /// query, which may hold one too): safe for logs and errors.
    pub fn redacted(&self) -> String {
        match self.engine {
            Engine::Sqlite => self.url.clone(),
            Engine::Postgres => match url::Url::parse(&self.url) {
                Ok(mut url) => {
                    if url.password().is_some() {
                        let _ = url.set_password(Some("***"));
                    }
                    url.set_query(None);
                    url.to_string()
                }
                Err(_) => "postgres://…".into(),
            },
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: DatabaseUrl,
    pub site_addr: SocketAddr,
    pub public_origin: String,
    pub app_env: AppEnv,
    pub access_secret: Secret,
    pub refresh_secret: Secret,
    pub audience: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// The idle limit of a session started without "keep me signed in";
    /// the store never lets it exceed `refresh_token_ttl`.
    pub browser_session_idle: Duration,
    pub session_max_age: Duration,
    /// How long security events are kept.
    pub security_history_retention: Duration,
    pub refresh_reuse_grace: Duration,
    pub login_max_failures: u32,
    pub login_lockout: Duration,
    pub auth_rate_per_minute: u32,
    pub trust_x_forwarded_for: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {var}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub reason: String,
}

fn bad(var: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        reason: reason.into(),
    }
}

impl Config {
    /// Reads the process environment, after loading `.env` if there is one.
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing .env is normal; a malformed one is worth stopping for.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(bad(".env", e.to_string())),
        }
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Builds the settings from any key lookup, so tests need no process env.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |key: &str| get(key).filter(|v| !v.trim().is_empty());

        let app_env = match get("APP_ENV").as_deref() {
            None | Some("development") => AppEnv::Development,
            Some("production") => AppEnv::Production,
            Some(other) => {
                return Err(bad(
                    "APP_ENV",
                    format!("expected development or production, got {other:?}"),
                ))
            }
        };
        let database_url = DatabaseUrl::parse(
            &get("DATABASE_URL").unwrap_or_else(|| "sqlite://data/app.db?mode=rwc".into()),
        )
        .map_err(|reason| bad("DATABASE_URL", reason))?;
        // Instances sharing one PostgreSQL must share their secrets, so
        // none is made up at start; with SQLite only production needs them.
        let secrets_required =
            app_env == AppEnv::Production || database_url.engine() == Engine::Postgres;
        let site_addr: SocketAddr = get("LEPTOS_SITE_ADDR")
            .unwrap_or_else(|| "127.0.0.1:3000".into())
            .parse()
            .map_err(|e| bad("LEPTOS_SITE_ADDR", format!("expected host:port ({e})")))?;
        let public_origin = match get("PUBLIC_ORIGIN") {
            Some(origin) => parse_origin(&origin)?,
            None => format!("http://{site_addr}"),
        };

        let access_secret = secret(&get, "JWT_ACCESS_SECRET", secrets_required)?;
        let refresh_secret = secret(&get, "REFRESH_TOKEN_SECRET", secrets_required)?;
        if let (Some(a), Some(r)) = (&access_secret, &refresh_secret) {
            if a == r {
                return Err(bad(
                    "REFRESH_TOKEN_SECRET",
                    "must differ from JWT_ACCESS_SECRET",
                ));
            }
        }

        let config = Config {
            audience: get("JWT_AUDIENCE").unwrap_or_else(|| "silent-refresh".into()),
            access_token_ttl: duration(&get, "ACCESS_TOKEN_TTL", "15m", false)?,
            refresh_token_ttl: duration(&get, "REFRESH_TOKEN_TTL", "7d", false)?,
            browser_session_idle: duration(&get, "BROWSER_SESSION_IDLE", "12h", false)?,
            session_max_age: duration(&get, "SESSION_MAX_AGE", "30d", false)?,
            security_history_retention: duration(&get, "SECURITY_HISTORY_RETENTION", "90d", false)?,
            refresh_reuse_grace: duration(&get, "REFRESH_REUSE_GRACE", "10s", true)?,
            login_max_failures: number(&get, "LOGIN_MAX_FAILURES", 5)?,
            login_lockout: duration(&get, "LOGIN_LOCKOUT", "15m", false)?,
            auth_rate_per_minute: number(&get, "AUTH_RATE_PER_MINUTE", 60)?,
            trust_x_forwarded_for: boolean(&get, "TRUST_X_FORWARDED_FOR")?,
            database_url,
            site_addr,
            public_origin,
            app_env,
            // Development fills missing secrets from the data folder at start.
            access_secret: access_secret.unwrap_or_else(|| Secret::new(Vec::new())),
            refresh_secret: refresh_secret.unwrap_or_else(|| Secret::new(Vec::new())),
        };
        Ok(config)
    }

    pub fn is_production(&self) -> bool {
        self.app_env == AppEnv::Production
    }

    /// The folder holding the SQLite file; development secrets live beside
    /// it. None for PostgreSQL: its URL names a server, not a place.
    pub fn data_dir(&self) -> Option<PathBuf> {
        if self.database_url.engine() != Engine::Sqlite {
            return None;
        }
        let path = self
            .database_url
            .expose()
            .trim_start_matches("sqlite:")
            .trim_start_matches("//");
        let path = path.split('?').next().unwrap_or_default();
        if path.is_empty() || path.starts_with(":memory:") {
            return None;
        }
        Some(
            PathBuf::from(path)
                .parent()
                .map(PathBuf::from)
                .unwrap_or_default(),
        )
    }

    /// Origins accepted on the cookie-bearing POSTs.
    pub fn allowed_origins(&self) -> Vec<String> {
        let mut origins = vec![self.public_origin.clone()];
        if !self.is_production() {
            let port = self.site_addr.port();
            origins.push(format!("http://localhost:{port}"));
            origins.push(format!("http://127.0.0.1:{port}"));
        }
        origins
    }
}

fn parse_origin(value: &str) -> Result<String, ConfigError> {
    let trimmed = value.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains('/') => Ok(trimmed.to_string()),
        _ => Err(bad(
            "PUBLIC_ORIGIN",
            "expected scheme://host[:port] with no path",
        )),
    }
}

fn secret(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    required: bool,
) -> Result<Option<Secret>, ConfigError> {
    match get(var) {
        Some(value) if value.len() >= Secret::MIN_LEN => Ok(Some(Secret::new(value.into_bytes()))),
        Some(_) => Err(bad(
            var,
            format!("must be at least {} bytes", Secret::MIN_LEN),
        )),
        None if required => Err(bad(
            var,
            "required when APP_ENV=production or DATABASE_URL is postgres://",
        )),
        None => Ok(None),
    }
}

fn duration(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: &str,
    zero_ok: bool,
) -> Result<Duration, ConfigError> {
    let raw = get(var).unwrap_or_else(|| default.into());
    let value = humantime::parse_duration(raw.trim())
        .map_err(|e| bad(var, format!("expected a duration like 30s or 15m ({e})")))?;
    if value.is_zero() && !zero_ok {
        return Err(bad(var, "must be longer than zero"));
    }
    Ok(value)
}

fn number(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: u32,
) -> Result<u32, ConfigError> {
    match get(var) {
        None => Ok(default),
        Some(raw) => match raw.trim().parse::<u32>() {
            Ok(0) => Err(bad(var, "must be at least 1")),
            Ok(n) => Ok(n),
            Err(_) => Err(bad(var, "expected a positive whole number")),
        },
    }
}

fn boolean(get: &impl Fn(&str) -> Option<String>, var: &'static str) -> Result<bool, ConfigError> {
    match get(var).as_deref().map(str::trim) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(_) => Err(bad(var, "expected true or false")),
    }
}

/// Development only: a secret left unset is generated once and kept in the
/// data folder, so a restart logs nobody out.
pub fn fill_development_secrets(config: &mut Config) -> Result<(), ConfigError> {
    if config.is_production() {
        return Ok(());
    }
    let dir = config.data_dir();
    for (var, slot) in [
        ("JWT_ACCESS_SECRET", &mut config.access_secret),
        ("REFRESH_TOKEN_SECRET", &mut config.refresh_secret),
    ] {
        if slot.expose().is_empty() {
            *slot = match &dir {
                Some(dir) => kept_secret(dir, var)?,
                None => random_secret(),
            };
        }
    }
    if config.access_secret == config.refresh_secret {
        return Err(bad(
            "REFRESH_TOKEN_SECRET",
            "must differ from JWT_ACCESS_SECRET",
        ));
    }
    Ok(())
}

fn random_secret() -> Secret {
    use base64::Engine as _;
    use rand_core::RngCore as _;
    let mut bytes = [0u8; 48];
    rand_core::OsRng.fill_bytes(&mut bytes);
    Secret::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn kept_secret(dir: &std::path::Path, var: &'static str) -> Result<Secret, ConfigError> {
    let path = dir.join(format!(".{}", var.to_ascii_lowercase()));
    let fail = |e: std::io::Error| bad(var, format!("{}: {e}", path.display()));
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().len() >= Secret::MIN_LEN => Ok(Secret::new(text.trim())),
        Ok(_) => Err(bad(var, format!("{} is too short", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(fail)?;
            let secret = random_secret();
            write_private(&path, secret.expose()).map_err(fail)?;
            Ok(secret)
        }
        Err(e) => Err(fail(e)),
    }
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_documented_table() {
        let c = config(&[]).unwrap();
        assert_eq!(c.database_url.expose(), "sqlite://data/app.db?mode=rwc");
        assert_eq!(c.database_url.engine(), Engine::Sqlite);
        assert_eq!(c.site_addr.to_string(), "127.0.0.1:3000");
        assert_eq!(c.public_origin, "http://127.0.0.1:3000");
        assert_eq!(c.access_token_ttl, Duration::from_secs(15 * 60));
        assert_eq!(c.refresh_token_ttl, Duration::from_secs(7 * 86400));
        assert_eq!(c.browser_session_idle, Duration::from_secs(12 * 3600));
        assert_eq!(c.session_max_age, Duration::from_secs(30 * 86400));
        assert_eq!(c.refresh_reuse_grace, Duration::from_secs(10));
        assert_eq!(c.login_max_failures, 5);
        assert_eq!(c.auth_rate_per_minute, 60);
        assert!(!c.trust_x_forwarded_for);
        assert_eq!(c.data_dir().unwrap(), PathBuf::from("data"));
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("ACCESS_TOKEN_TTL", "soon"),
            ("ACCESS_TOKEN_TTL", "0s"),
            ("LEPTOS_SITE_ADDR", "nowhere"),
            ("LOGIN_MAX_FAILURES", "-1"),
            ("TRUST_X_FORWARDED_FOR", "maybe"),
            ("APP_ENV", "staging"),
            ("PUBLIC_ORIGIN", "example.com"),
            ("JWT_ACCESS_SECRET", "short"),
        ] {
            let err = config(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, var, "{value}");
            assert!(err.to_string().contains(var));
        }
    }

    #[test]
    fn production_demands_distinct_secrets() {
        let err = config(&[("APP_ENV", "production")]).unwrap_err();
        assert_eq!(err.var, "JWT_ACCESS_SECRET");
        let same = "x".repeat(40);
        let err = config(&[
            ("APP_ENV", "production"),
            ("JWT_ACCESS_SECRET", &same),
            ("REFRESH_TOKEN_SECRET", &same),
        ])
        .unwrap_err();
        assert_eq!(err.var, "REFRESH_TOKEN_SECRET");
    }

    #[test]
    fn postgres_demands_secrets_in_every_environment() {
        let url = "postgres://app:hunter2-password@db.internal:5432/auth?password=again";
        let err = config(&[("DATABASE_URL", url)]).unwrap_err();
        assert_eq!(err.var, "JWT_ACCESS_SECRET");
        assert!(err.to_string().contains("postgres://"));
        let c = config(&[
            ("DATABASE_URL", url),
            ("JWT_ACCESS_SECRET", &"a".repeat(40)),
            ("REFRESH_TOKEN_SECRET", &"r".repeat(40)),
        ])
        .unwrap();
        assert_eq!(c.database_url.engine(), Engine::Postgres);
        // Nothing is derived from a server's URL as a path.
        assert_eq!(c.data_dir(), None);
        // The password never leaves through Debug or `redacted`.
        let shown = format!("{c:?} {}", c.database_url.redacted());
        assert!(
            !shown.contains("hunter2") && !shown.contains("again"),
            "{shown}"
        );
        assert!(shown.contains("db.internal"), "{shown}");
    }

    #[test]
    fn other_database_schemes_are_refused() {
        for url in ["mysql://db/app", "postgres://[::1", "app.db"] {
            let err = config(&[("DATABASE_URL", url)]).unwrap_err();
            assert_eq!(err.var, "DATABASE_URL", "{url}");
        }
    }

    #[test]
    fn zero_grace_turns_it_off() {
        let c = config(&[("REFRESH_REUSE_GRACE", "0s")]).unwrap();
        assert!(c.refresh_reuse_grace.is_zero());
    }

    #[test]
    fn localhost_origins_only_in_development() {
        let dev = config(&[]).unwrap();
        assert!(dev
            .allowed_origins()
            .contains(&"http://localhost:3000".to_string()));
        let s = "s".repeat(40);
        let r = "r".repeat(40);
        let prod = config(&[
            ("APP_ENV", "production"),
            ("JWT_ACCESS_SECRET", &s),
            ("REFRESH_TOKEN_SECRET", &r),
            ("PUBLIC_ORIGIN", "https://app.example"),
        ])
        .unwrap();
        assert_eq!(
            prod.allowed_origins(),
            vec!["https://app.example".to_string()]
        );
    }
}
