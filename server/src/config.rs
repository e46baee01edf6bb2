//! Configuration from environment variables, checked at start-up.
//!
//! Names and defaults follow the Bun chat server where it has them (`WS_PORT`,
//! `HTTP_API_URL`, `CORS_ORIGIN`, `HEARTBEAT_INTERVAL`, `TYPING_TIMEOUT`,
//! `MAX_MESSAGE_SIZE`, `CONNECTION_TIMEOUT`, `LOG_LEVEL`). A bad value fails start-up
//! with a [`ConfigError`] that names the variable.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use relaywire_protocol::{
    AUTH_TIMEOUT_MS, CONNECTION_TIMEOUT_MS, CloseCode, HEARTBEAT_INTERVAL_MS, Limits,
    MAX_MESSAGE_SIZE, TYPING_TIMEOUT_MS,
};

/// Why the configuration is unusable; always names the variable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The variable's value does not parse.
    #[error("{name}={value:?} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is expected.
        reason: String,
    },
    /// A variable another one needs is missing.
    #[error("{name} must be set {reason}")]
    Missing {
        /// The variable.
        name: &'static str,
        /// Why it is needed.
        reason: &'static str,
    },
    /// Two settings contradict each other.
    #[error("{0}")]
    Conflict(&'static str),
}

/// How tokens are verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMode {
    /// HS256 with a shared secret (`JWT_SECRET`).
    Hs256 {
        /// The shared secret.
        secret: String,
    },
    /// RS256 against a JWKS, the way AWS Cognito issues tokens.
    Jwks(JwksConfig),
    /// Delegated to `GET {HTTP_API_URL}/auth/profile`, as the Bun server does.
    Profile {
        /// The HTTP API's base URL.
        api_url: String,
    },
}

/// RS256/JWKS verification settings (`JWKS_URL`, `JWT_ISSUER`, `JWT_AUDIENCE`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksConfig {
    /// Where the key set is fetched from.
    pub url: String,
    /// Required `iss` claim, e.g. `https://cognito-idp.{region}.amazonaws.com/{poolId}`.
    pub issuer: Option<String>,
    /// Required audience: `aud` of id tokens or `client_id` of access tokens.
    pub audience: Option<String>,
    /// Required `token_use` claim (`id` or `access`), as Cognito sets it.
    pub token_use: Option<String>,
    /// How long a fetched key set is trusted.
    pub cache_ttl: Duration,
    /// The least time between two fetches caused by unknown key ids.
    pub refetch_cooldown: Duration,
}

/// How many connections a user may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionPolicy {
    /// Any number; the user is online until the last one closes.
    Multiple,
    /// One; a new connection replaces the old, which closes with 4003.
    Single,
}

/// Where messages are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file.
    File(PathBuf),
    /// An in-memory database, lost at exit.
    Memory,
    /// A PostgreSQL database (`postgres://...`), shared by every node.
    Postgres(String),
}

/// The bus between nodes (`REDIS_URL`): with it, several nodes serve one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// The Redis server (`redis://host:port/db`).
    pub redis_url: String,
    /// What this app's keys and channel names start with (`REDIS_KEY_PREFIX`, default
    /// `relaywire`): apps sharing one Redis keep apart by it.
    pub key_prefix: String,
}

/// Default of `HEADER_READ_TIMEOUT`, in milliseconds: Node's `headersTimeout` is 60 s,
/// Cowboy's idle timeout 5 s; 10 s is ample for any real client's headers.
const HEADER_READ_TIMEOUT_MS: u32 = 10_000;
/// Default of `MAX_CONNECTIONS`.
const MAX_CONNECTIONS: usize = 10_000;
/// Default of `USER_CONNECTION_LIMIT`: room for many tabs and devices, not for a flood.
const USER_CONNECTION_LIMIT: usize = 32;
/// Default of `DEDUP_WINDOW`, in milliseconds: a day, far longer than any client keeps
/// a message in its outbox.
const DEDUP_WINDOW_MS: u32 = 24 * 60 * 60 * 1000;
/// The shortest secret a service key or `JWT_SECRET` may be.
const MIN_SECRET_LEN: usize = 16;

/// The server's configuration. [`Config::from_env`] reads it; tests build it directly.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (`BIND_ADDR`, default 127.0.0.1, and `WS_PORT`, default 8080).
    pub listen: SocketAddr,
    /// Allowed `Origin`s (`CORS_ORIGIN`, comma-separated; `*` allows any).
    pub allowed_origins: Vec<String>,
    /// Token verification (`JWT_SECRET`, `JWKS_URL`, or `AUTH_MODE=profile`).
    pub auth: AuthMode,
    /// Cookies a token may come in (`AUTH_COOKIES`, default `authToken,auth,id_token`).
    pub auth_cookies: Vec<String>,
    /// Close code for a missing or invalid token (`AUTH_CLOSE_CODE`: 4001 or 1008).
    pub auth_close_code: CloseCode,
    /// How long to wait for a first `auth` message (`AUTH_TIMEOUT`, ms).
    pub auth_timeout: Duration,
    /// Role that may use the admin HTTP API (`ADMIN_ROLE`, default `admin`).
    pub admin_role: String,
    /// Keys that services present as `Authorization: Bearer <key>` (`SERVICE_KEYS`).
    pub service_keys: Vec<String>,
    /// Whether `POST /auth/dev-login` is enabled (`DEV_LOGIN`).
    pub dev_login: bool,
    /// Connections per user (`CONNECTION_POLICY`: `multiple` or `single`).
    pub connection_policy: ConnectionPolicy,
    /// Client ping interval announced in `connected`, and the server's WebSocket ping
    /// interval (`HEARTBEAT_INTERVAL`, ms).
    pub heartbeat_interval: Duration,
    /// How long an ephemeral state (a typing indicator) lasts without a renewal
    /// (`TYPING_TIMEOUT`, ms).
    pub state_timeout: Duration,
    /// A connection silent this long is closed (`CONNECTION_TIMEOUT`, ms).
    pub connection_timeout: Duration,
    /// An HTTP request whose headers have not all arrived this long after the
    /// connection opened (or after its previous request) is closed
    /// (`HEADER_READ_TIMEOUT`, ms, default 10000): silent and trickling connections
    /// cannot hold descriptors.
    pub header_read_timeout: Duration,
    /// Open connections, HTTP and WebSocket, above which new ones are closed at once
    /// (`MAX_CONNECTIONS`, default 10000). Keep it below the process's descriptor limit
    /// (`ulimit -n`), less room for the store and logs.
    pub max_connections: usize,
    /// Decoder limits; `max_message_bytes` is `MAX_MESSAGE_SIZE`.
    pub limits: Limits,
    /// Sustained messages per second per connection (`RATE_LIMIT`).
    pub rate_limit_per_sec: u32,
    /// Burst above the sustained rate (`RATE_LIMIT_BURST`).
    pub rate_limit_burst: u32,
    /// Sustained messages per second of one user across all their connections
    /// (`USER_RATE_LIMIT`, default 50): more connections do not buy more rate.
    pub user_rate_limit_per_sec: u32,
    /// Burst above the user's sustained rate (`USER_RATE_LIMIT_BURST`, default 100).
    pub user_rate_limit_burst: u32,
    /// Connections one user may hold at once (`USER_CONNECTION_LIMIT`, default 32); one
    /// more is refused with `RATE_LIMITED` and closed with 1013 (try again later).
    pub user_connection_limit: usize,
    /// How long the id of a durable message is remembered for deduplication
    /// (`DEDUP_WINDOW`, ms, default a day): a resend within it is answered as the first
    /// was; the id may be used again after it.
    pub dedup_window: Duration,
    /// Frames waiting for a slow client before it is closed with 4006 (`OUTBOUND_QUEUE`).
    pub outbound_queue: usize,
    /// The store (`DATABASE_URL`: a path, `sqlite://path`, `:memory:` or
    /// `postgres://...`).
    pub database: Database,
    /// The bus between nodes (`REDIS_URL`); none: one node, the in-process bus.
    pub cluster: Option<Cluster>,
    /// Folder for the database and generated secrets (`DATA_DIR`, default `./data`).
    pub data_dir: PathBuf,
    /// Static files served at `/`, e.g. the built React app (`STATIC_DIR`).
    pub static_dir: Option<PathBuf>,
    /// Whether `/test/*` endpoints exist, for end-to-end tests only (`TEST_HOOKS`).
    pub test_hooks: bool,
    /// `tracing` filter (`LOG_LEVEL`: debug, info, warn, error, or a filter expression).
    pub log_level: String,
}

impl Config {
    /// Defaults for a local server with HS256 and the given secret, on an ephemeral port,
    /// with an in-memory database: the starting point of tests.
    pub fn local(secret: impl Into<String>) -> Self {
        Self {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            allowed_origins: vec!["http://localhost:5173".to_owned()],
            auth: AuthMode::Hs256 {
                secret: secret.into(),
            },
            auth_cookies: default_cookies(),
            auth_close_code: CloseCode::AuthFailed,
            auth_timeout: Duration::from_millis(AUTH_TIMEOUT_MS.into()),
            admin_role: "admin".to_owned(),
            service_keys: Vec::new(),
            dev_login: false,
            connection_policy: ConnectionPolicy::Multiple,
            heartbeat_interval: Duration::from_millis(HEARTBEAT_INTERVAL_MS.into()),
            state_timeout: Duration::from_millis(TYPING_TIMEOUT_MS.into()),
            connection_timeout: Duration::from_millis(CONNECTION_TIMEOUT_MS.into()),
            header_read_timeout: Duration::from_millis(HEADER_READ_TIMEOUT_MS.into()),
            max_connections: MAX_CONNECTIONS,
            limits: Limits::default(),
            rate_limit_per_sec: 20,
            rate_limit_burst: 40,
            user_rate_limit_per_sec: 50,
            user_rate_limit_burst: 100,
            user_connection_limit: USER_CONNECTION_LIMIT,
            dedup_window: Duration::from_millis(DEDUP_WINDOW_MS.into()),
            outbound_queue: 1024,
            database: Database::Memory,
            cluster: None,
            data_dir: PathBuf::from("data"),
            static_dir: None,
            test_hooks: false,
            log_level: "info".to_owned(),
        }
    }

    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from(&Env::from_process())
    }

    /// Reads the configuration from the given variables.
    pub fn from_vars(vars: HashMap<String, String>) -> Result<Self, ConfigError> {
        Self::from(&Env::new(vars))
    }

    /// Reads the configuration from `env`; an app reads its own settings from the same
    /// variables.
    pub fn from(env: &Env) -> Result<Self, ConfigError> {
        let data_dir = PathBuf::from(env.get("DATA_DIR").unwrap_or("data"));
        let dev_login = env.flag("DEV_LOGIN")?;
        let auth = auth_mode(env, dev_login, &data_dir)?;
        if dev_login && !matches!(auth, AuthMode::Hs256 { .. }) {
            return Err(ConfigError::Conflict(
                "DEV_LOGIN works only with HS256 tokens: unset JWKS_URL / AUTH_MODE or DEV_LOGIN",
            ));
        }
        let ip: IpAddr = env.parse(
            "BIND_ADDR",
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            "an IP address",
        )?;
        let port: u16 = env.parse("WS_PORT", 8080, "a port number")?;
        let max_message_bytes: usize =
            env.parse("MAX_MESSAGE_SIZE", MAX_MESSAGE_SIZE, "a size in bytes")?;
        if max_message_bytes < 256 {
            return Err(env.invalid("MAX_MESSAGE_SIZE", "at least 256 bytes"));
        }
        let auth_close_code = match env.get("AUTH_CLOSE_CODE") {
            None | Some("4001") => CloseCode::AuthFailed,
            Some("1008") => CloseCode::PolicyViolation,
            Some(_) => return Err(env.invalid("AUTH_CLOSE_CODE", "4001 or 1008")),
        };
        let connection_policy = match env.get("CONNECTION_POLICY") {
            None | Some("multiple") => ConnectionPolicy::Multiple,
            Some("single") => ConnectionPolicy::Single,
            Some(_) => return Err(env.invalid("CONNECTION_POLICY", "`multiple` or `single`")),
        };
        let database = match env.get("DATABASE_URL") {
            None => Database::File(data_dir.join("relaywire.db")),
            Some(":memory:" | "sqlite::memory:") => Database::Memory,
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                if url.parse::<tokio_postgres::Config>().is_err() {
                    return Err(env.invalid(
                        "DATABASE_URL",
                        "a PostgreSQL URL: postgres://user:password@host:port/database",
                    ));
                }
                Database::Postgres(url.to_owned())
            }
            Some(url) => {
                // A URL of another engine must not become a SQLite file named after it.
                if let Some((scheme, _)) = url.split_once("://")
                    && scheme != "sqlite"
                {
                    return Err(env.invalid(
                        "DATABASE_URL",
                        "a SQLite file path, sqlite://path, :memory: or postgres://...",
                    ));
                }
                let path = url.strip_prefix("sqlite://").unwrap_or(url);
                if path.is_empty() {
                    return Err(env.invalid("DATABASE_URL", "a file path or :memory:"));
                }
                Database::File(PathBuf::from(path))
            }
        };
        let cluster = match env.get("REDIS_URL") {
            // A prefix for a Redis that is not there: the setting would do nothing.
            None if env.get("REDIS_KEY_PREFIX").is_some() => {
                return Err(ConfigError::Conflict(
                    "REDIS_KEY_PREFIX names the cluster's Redis keys: set REDIS_URL too, or unset it",
                ));
            }
            None => None,
            Some(url) => {
                let usable = (url.starts_with("redis://") || url.starts_with("rediss://"))
                    && redis::Client::open(url).is_ok();
                if !usable {
                    return Err(env.invalid("REDIS_URL", "a Redis URL: redis://host:port/db"));
                }
                if !matches!(database, Database::Postgres(_)) {
                    return Err(ConfigError::Conflict(
                        "REDIS_URL joins nodes that share one store: set DATABASE_URL to postgres://... (a SQLite file belongs to one process)",
                    ));
                }
                let key_prefix = env.get("REDIS_KEY_PREFIX").unwrap_or("relaywire");
                if key_prefix.is_empty()
                    || !key_prefix
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                {
                    return Err(env.invalid("REDIS_KEY_PREFIX", "letters, digits, `-`, `_` or `.`"));
                }
                Some(Cluster {
                    redis_url: url.to_owned(),
                    key_prefix: key_prefix.to_owned(),
                })
            }
        };
        let rate_limit_per_sec = env.at_least_one("RATE_LIMIT", 20, "messages per second")?;
        let rate_limit_burst = env.at_least_one("RATE_LIMIT_BURST", 40, "messages")?;
        let user_rate_limit_per_sec =
            env.at_least_one("USER_RATE_LIMIT", 50, "messages per second")?;
        let user_rate_limit_burst = env.at_least_one("USER_RATE_LIMIT_BURST", 100, "messages")?;
        let user_connection_limit = env.at_least_one(
            "USER_CONNECTION_LIMIT",
            USER_CONNECTION_LIMIT,
            "connections",
        )?;
        let allowed_origins = env.list("CORS_ORIGIN", "http://localhost:5173");
        if let Some(bad) = allowed_origins
            .iter()
            .find(|origin| *origin != crate::origin::ANY && !crate::origin::is_origin(origin))
        {
            return Err(ConfigError::Invalid {
                name: "CORS_ORIGIN",
                value: bad.clone(),
                reason: "expected origins such as https://app.example or http://localhost:5173 (scheme, host, port; no path), comma-separated, or *".to_owned(),
            });
        }
        let service_keys = env.list("SERVICE_KEYS", "");
        if service_keys.iter().any(|key| key.len() < MIN_SECRET_LEN) {
            return Err(env.invalid(
                "SERVICE_KEYS",
                &format!("comma-separated keys of at least {MIN_SECRET_LEN} characters each"),
            ));
        }
        let auth_cookies = match env.get("AUTH_COOKIES") {
            Some(_) => env.list("AUTH_COOKIES", ""),
            None => default_cookies(),
        };
        if auth_cookies.is_empty() || !auth_cookies.iter().all(|name| is_cookie_name(name)) {
            return Err(env.invalid("AUTH_COOKIES", "comma-separated cookie names"));
        }
        let static_dir = env.get("STATIC_DIR").map(PathBuf::from);
        if let Some(dir) = &static_dir
            && !dir.is_dir()
        {
            return Err(env.invalid("STATIC_DIR", "an existing folder"));
        }
        let outbound_queue = env.at_least_one("OUTBOUND_QUEUE", 1024, "frames")?;
        let max_connections =
            env.at_least_one("MAX_CONNECTIONS", MAX_CONNECTIONS, "connections")?;
        let config = Self {
            listen: SocketAddr::new(ip, port),
            allowed_origins,
            auth,
            auth_cookies,
            auth_close_code,
            auth_timeout: env.millis("AUTH_TIMEOUT", AUTH_TIMEOUT_MS)?,
            admin_role: env.get("ADMIN_ROLE").unwrap_or("admin").to_owned(),
            service_keys,
            dev_login,
            connection_policy,
            heartbeat_interval: env.millis("HEARTBEAT_INTERVAL", HEARTBEAT_INTERVAL_MS)?,
            state_timeout: env.millis("TYPING_TIMEOUT", TYPING_TIMEOUT_MS)?,
            connection_timeout: env.millis("CONNECTION_TIMEOUT", CONNECTION_TIMEOUT_MS)?,
            header_read_timeout: env.millis("HEADER_READ_TIMEOUT", HEADER_READ_TIMEOUT_MS)?,
            max_connections,
            limits: Limits {
                max_message_bytes,
                ..Limits::default()
            },
            rate_limit_per_sec,
            rate_limit_burst,
            user_rate_limit_per_sec,
            user_rate_limit_burst,
            user_connection_limit,
            dedup_window: env.millis("DEDUP_WINDOW", DEDUP_WINDOW_MS)?,
            outbound_queue,
            database,
            cluster,
            data_dir,
            static_dir,
            test_hooks: env.flag("TEST_HOOKS")?,
            log_level: env.get("LOG_LEVEL").unwrap_or("info").to_owned(),
        };
        if config.test_hooks && !config.listen.ip().is_loopback() {
            return Err(ConfigError::Conflict(
                "TEST_HOOKS mints tokens for anyone (/test/token): it is refused unless BIND_ADDR is a loopback address",
            ));
        }
        if config.connection_timeout <= config.heartbeat_interval {
            return Err(ConfigError::Conflict(
                "CONNECTION_TIMEOUT must be longer than HEARTBEAT_INTERVAL, or every client times out",
            ));
        }
        Ok(config)
    }
}

/// Whether `name` is a cookie name (an HTTP token).
fn is_cookie_name(name: &str) -> bool {
    name.bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
}

/// Whether `url` is an absolute http(s) URL with a host.
fn is_http_url(url: &str) -> bool {
    url.strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with(['/', '?', '#']))
}

fn default_cookies() -> Vec<String> {
    ["authToken", "auth", "id_token"]
        .map(str::to_owned)
        .to_vec()
}

fn auth_mode(
    env: &Env,
    dev_login: bool,
    data_dir: &std::path::Path,
) -> Result<AuthMode, ConfigError> {
    match env.get("AUTH_MODE") {
        Some("profile") => {
            let api_url = env.get("HTTP_API_URL").unwrap_or("http://localhost:3000");
            if !is_http_url(api_url) {
                return Err(env.invalid("HTTP_API_URL", "an http:// or https:// URL"));
            }
            return Ok(AuthMode::Profile {
                api_url: api_url.trim_end_matches('/').to_owned(),
            });
        }
        None | Some("jwt") => {}
        Some(_) => return Err(env.invalid("AUTH_MODE", "`jwt` (default) or `profile`")),
    }
    if let Some(url) = env.get("JWKS_URL") {
        if !is_http_url(url) {
            return Err(env.invalid("JWKS_URL", "an http:// or https:// URL"));
        }
        let cache_ttl = env.millis("JWKS_CACHE_TTL", 24 * 60 * 60 * 1000)?;
        let token_use = env.get("JWT_TOKEN_USE").map(str::to_owned);
        if let Some(token_use) = &token_use
            && token_use != "id"
            && token_use != "access"
        {
            return Err(env.invalid("JWT_TOKEN_USE", "`id` or `access`"));
        }
        return Ok(AuthMode::Jwks(JwksConfig {
            url: url.to_owned(),
            issuer: env.get("JWT_ISSUER").map(str::to_owned),
            audience: env.get("JWT_AUDIENCE").map(str::to_owned),
            token_use,
            cache_ttl,
            refetch_cooldown: Duration::from_millis(env.parse(
                "JWKS_REFETCH_COOLDOWN",
                5_000,
                "milliseconds",
            )?),
        }));
    }
    match env.get("JWT_SECRET") {
        Some(secret) if secret.len() >= MIN_SECRET_LEN => Ok(AuthMode::Hs256 {
            secret: secret.to_owned(),
        }),
        Some(_) => Err(env.invalid(
            "JWT_SECRET",
            &format!("at least {MIN_SECRET_LEN} characters"),
        )),
        None if dev_login => Ok(AuthMode::Hs256 {
            secret: dev_secret(data_dir)?,
        }),
        None => Err(ConfigError::Missing {
            name: "JWT_SECRET",
            reason: "(or JWKS_URL, AUTH_MODE=profile, or DEV_LOGIN=true for local use)",
        }),
    }
}

/// The local-development secret: generated once and kept in the data folder so that
/// dev-login sessions survive restarts.
fn dev_secret(data_dir: &std::path::Path) -> Result<String, ConfigError> {
    let path = data_dir.join("dev-jwt-secret");
    if let Ok(secret) = std::fs::read_to_string(&path)
        && secret.trim().len() >= 16
    {
        return Ok(secret.trim().to_owned());
    }
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let io_error = |err: std::io::Error| ConfigError::Invalid {
        name: "DATA_DIR",
        value: data_dir.display().to_string(),
        reason: format!("cannot store the dev-login secret there: {err}"),
    };
    std::fs::create_dir_all(data_dir).map_err(io_error)?;
    std::fs::write(&path, &secret).map_err(io_error)?;
    Ok(secret)
}

/// Environment variables, read with errors that name the variable: the server's
/// configuration reads them, and an app reads its own settings with the same rules.
///
/// ```
/// use relaywire_server::config::Env;
///
/// let env = Env::new([("SEED_DEMO".to_owned(), "yes".to_owned())].into());
/// assert!(env.flag("SEED_DEMO")?);
/// let wrong = Env::new([("SEED_DEMO".to_owned(), "maybe".to_owned())].into());
/// assert!(wrong.flag("SEED_DEMO").unwrap_err().to_string().contains("SEED_DEMO"));
/// # Ok::<(), relaywire_server::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Env(HashMap<String, String>);

impl Env {
    /// These variables.
    pub fn new(vars: HashMap<String, String>) -> Self {
        Self(vars)
    }

    /// The process environment.
    pub fn from_process() -> Self {
        Self(std::env::vars().collect())
    }

    /// A variable's value, trimmed; `None` when unset or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// The error for `name`'s value, which should have been `expected`.
    pub fn invalid(&self, name: &'static str, expected: &str) -> ConfigError {
        ConfigError::Invalid {
            name,
            value: self.get(name).unwrap_or_default().to_owned(),
            reason: format!("expected {expected}"),
        }
    }

    /// `name` parsed, or `default` when unset.
    pub fn parse<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: T,
        expected: &str,
    ) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(value) => value.parse().map_err(|_| self.invalid(name, expected)),
        }
    }

    /// `name` as a positive number of milliseconds, or `default` when unset.
    pub fn millis(&self, name: &'static str, default: u32) -> Result<Duration, ConfigError> {
        let ms: u64 = self.parse(name, default.into(), "milliseconds (a positive integer)")?;
        if ms == 0 || ms > u64::from(u32::MAX) {
            return Err(self.invalid(name, "milliseconds between 1 and 4294967295"));
        }
        Ok(Duration::from_millis(ms))
    }

    /// `name` as a boolean (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`); `false`
    /// when unset.
    pub fn flag(&self, name: &'static str) -> Result<bool, ConfigError> {
        match self.get(name) {
            None | Some("0" | "false" | "no" | "off") => Ok(false),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some(_) => Err(self.invalid(name, "true or false")),
        }
    }

    /// `name` parsed as a number of at least 1, or `default` when unset.
    pub fn at_least_one<T>(
        &self,
        name: &'static str,
        default: T,
        unit: &str,
    ) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + From<u8>,
    {
        let value = self.parse(name, default, &format!("a number of {unit}"))?;
        if value < T::from(1) {
            return Err(self.invalid(name, &format!("at least 1 ({unit})")));
        }
        Ok(value)
    }

    /// `name` as a comma-separated list, or `default` when unset.
    pub fn list(&self, name: &str, default: &str) -> Vec<String> {
        self.get(name)
            .unwrap_or(default)
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_follow_the_bun_server() {
        let config = Config::from_vars(vars(&[("JWT_SECRET", "0123456789abcdef")])).unwrap();
        assert_eq!(config.listen.port(), 8080);
        assert_eq!(config.allowed_origins, ["http://localhost:5173"]);
        assert_eq!(config.heartbeat_interval, Duration::from_millis(30_000));
        assert_eq!(config.state_timeout, Duration::from_millis(3_000));
        assert_eq!(config.connection_timeout, Duration::from_millis(60_000));
        assert_eq!(config.limits.max_message_bytes, 10_000);
        assert_eq!(config.log_level, "info");
        assert_eq!(config.auth_close_code, CloseCode::AuthFailed);
        assert_eq!(config.connection_policy, ConnectionPolicy::Multiple);
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases = [
            ("WS_PORT", "eighty"),
            ("HEARTBEAT_INTERVAL", "-5"),
            ("TYPING_TIMEOUT", "0"),
            ("MAX_MESSAGE_SIZE", "12"),
            ("CONNECTION_POLICY", "some"),
            ("AUTH_CLOSE_CODE", "1000"),
            ("CORS_ORIGIN", ""),
            ("DEV_LOGIN", "maybe"),
            ("HEADER_READ_TIMEOUT", "0"),
            ("MAX_CONNECTIONS", "0"),
            ("MAX_CONNECTIONS", "many"),
            ("DATABASE_URL", "mysql://127.0.0.1/chat"),
            ("DATABASE_URL", "redis://127.0.0.1"),
            ("SERVICE_KEYS", "a"),
            ("SERVICE_KEYS", "0123456789abcdef,short"),
            ("CORS_ORIGIN", "localhost:5173"),
            ("CORS_ORIGIN", "https://app.example/"),
            ("AUTH_COOKIES", "bad cookie"),
            ("STATIC_DIR", "/nonexistent/relaywire"),
            ("JWKS_URL", "cognito"),
            ("USER_CONNECTION_LIMIT", "0"),
            ("USER_RATE_LIMIT", "fast"),
            ("USER_RATE_LIMIT_BURST", "0"),
            ("RATE_LIMIT_BURST", "0"),
            ("OUTBOUND_QUEUE", "-1"),
            ("DEDUP_WINDOW", "0"),
        ];
        for (name, value) in cases {
            let result =
                Config::from_vars(vars(&[("JWT_SECRET", "0123456789abcdef"), (name, value)]));
            if (name, value) == ("CORS_ORIGIN", "") {
                // Empty means unset: the default applies.
                assert!(result.is_ok());
                continue;
            }
            let err = result.unwrap_err().to_string();
            assert!(err.contains(name), "{name}: {err}");
        }
    }

    #[test]
    fn test_hooks_are_refused_off_loopback() {
        let base = [("JWT_SECRET", "0123456789abcdef"), ("TEST_HOOKS", "true")];
        assert!(Config::from_vars(vars(&base)).is_ok());
        let err = Config::from_vars(vars(&[base[0], base[1], ("BIND_ADDR", "0.0.0.0")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("TEST_HOOKS") && err.contains("BIND_ADDR"),
            "{err}"
        );
    }

    #[test]
    fn a_secret_or_another_verifier_is_required() {
        let err = Config::from_vars(vars(&[])).unwrap_err().to_string();
        assert!(err.contains("JWT_SECRET"), "{err}");
        let err = Config::from_vars(vars(&[("JWT_SECRET", "short")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("JWT_SECRET"), "{err}");
    }

    #[test]
    fn dev_login_is_refused_with_jwks() {
        let err = Config::from_vars(vars(&[
            ("JWKS_URL", "http://127.0.0.1:1/jwks.json"),
            ("DEV_LOGIN", "true"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("DEV_LOGIN"), "{err}");
    }

    #[test]
    fn timeout_must_exceed_heartbeat() {
        let err = Config::from_vars(vars(&[
            ("JWT_SECRET", "0123456789abcdef"),
            ("HEARTBEAT_INTERVAL", "5000"),
            ("CONNECTION_TIMEOUT", "5000"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("CONNECTION_TIMEOUT"), "{err}");
    }

    #[test]
    fn database_urls() {
        let with = |url: &str| {
            Config::from_vars(vars(&[
                ("JWT_SECRET", "0123456789abcdef"),
                ("DATABASE_URL", url),
            ]))
            .unwrap()
            .database
        };
        assert_eq!(with(":memory:"), Database::Memory);
        assert_eq!(
            with("sqlite:///tmp/x.db"),
            Database::File("/tmp/x.db".into())
        );
        assert_eq!(with("chat.db"), Database::File("chat.db".into()));
    }
}
