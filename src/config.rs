//! Typed configuration from the environment (and a `.env` file when present). Parsed once at
//! start; a bad or missing value stops start-up with a message naming the variable.
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use crate::domain::{CostLimit, DailyBudgets};

pub const THREADQL_LISTEN: &str = "THREADQL_LISTEN";
pub const THREADQL_METRICS_LISTEN: &str = "THREADQL_METRICS_LISTEN";
pub const SLACK_SIGNING_SECRET: &str = "SLACK_SIGNING_SECRET";
pub const SLACK_BOT_TOKEN: &str = "SLACK_BOT_TOKEN";
pub const SLACK_APP_TOKEN: &str = "SLACK_APP_TOKEN";
pub const SLACK_API_URL: &str = "SLACK_API_URL";
pub const SLACK_CLIENT_ID: &str = "SLACK_CLIENT_ID";
pub const SLACK_CLIENT_SECRET: &str = "SLACK_CLIENT_SECRET";
pub const SLACK_REDIRECT_URI: &str = "SLACK_REDIRECT_URI";
/// Seals installed workspaces' tokens at rest (`src/slack/install/seal.rs` reads its forms).
pub const THREADQL_ENCRYPTION_KEY: &str = "THREADQL_ENCRYPTION_KEY";
/// The key before a rotation: still opens what it sealed, never seals.
pub const THREADQL_ENCRYPTION_KEY_PREVIOUS: &str = "THREADQL_ENCRYPTION_KEY_PREVIOUS";
pub const DATABASE_URL: &str = "DATABASE_URL";
pub const REDIS_URL: &str = "REDIS_URL";
pub const WAREHOUSE_URL: &str = "WAREHOUSE_URL";
pub const OPENAI_API_KEY: &str = "OPENAI_API_KEY";
pub const OPENAI_BASE_URL: &str = "OPENAI_BASE_URL";
pub const OPENAI_MODEL: &str = "OPENAI_MODEL";
pub const THREADQL_RATE_LIMIT_PER_MINUTE: &str = "THREADQL_RATE_LIMIT_PER_MINUTE";
pub const THREADQL_MAX_ROWS: &str = "THREADQL_MAX_ROWS";
pub const THREADQL_EXPORT_MAX_ROWS: &str = "THREADQL_EXPORT_MAX_ROWS";
pub const THREADQL_QUERY_TIMEOUT_SECS: &str = "THREADQL_QUERY_TIMEOUT_SECS";
pub const THREADQL_CONFIRM_ABOVE: &str = "THREADQL_CONFIRM_ABOVE";
pub const THREADQL_REFUSE_ABOVE: &str = "THREADQL_REFUSE_ABOVE";
pub const THREADQL_DAILY_BYTES_PER_USER: &str = "THREADQL_DAILY_BYTES_PER_USER";
pub const THREADQL_DAILY_BYTES_PER_CHANNEL: &str = "THREADQL_DAILY_BYTES_PER_CHANNEL";
pub const THREADQL_IDLE_SECS: &str = "THREADQL_IDLE_SECS";
pub const THREADQL_TIMEZONE: &str = "THREADQL_TIMEZONE";
pub const THREADQL_CONFIG: &str = "THREADQL_CONFIG";
pub const THREADQL_DBT_PROJECT: &str = "THREADQL_DBT_PROJECT";
pub const THREADQL_DEMO_WAREHOUSE: &str = "THREADQL_DEMO_WAREHOUSE";
pub const THREADQL_LOG_FORMAT: &str = "THREADQL_LOG_FORMAT";
pub const THREADQL_MAX_QUERIES_PER_USER: &str = "THREADQL_MAX_QUERIES_PER_USER";
pub const THREADQL_MAX_QUERIES: &str = "THREADQL_MAX_QUERIES";
pub const THREADQL_REDIS_PREFIX: &str = "THREADQL_REDIS_PREFIX";
pub const THREADQL_REACTIONS: &str = "THREADQL_REACTIONS";
pub const THREADQL_AUDIENCE_CHECK: &str = "THREADQL_AUDIENCE_CHECK";
pub const THREADQL_SOCKET_CONNECTIONS: &str = "THREADQL_SOCKET_CONNECTIONS";
pub const THREADQL_MAX_BACKLOG: &str = "THREADQL_MAX_BACKLOG";
pub const THREADQL_SHUTDOWN_GRACE: &str = "THREADQL_SHUTDOWN_GRACE";
pub const THREADQL_MODEL_REFRESH_SECS: &str = "THREADQL_MODEL_REFRESH_SECS";
pub const THREADQL_AUDIT_RETENTION_DAYS: &str = "THREADQL_AUDIT_RETENTION_DAYS";
pub const THREADQL_ADMINS: &str = "THREADQL_ADMINS";
pub const THREADQL_SCHEDULE_POLL_SECS: &str = "THREADQL_SCHEDULE_POLL_SECS";
pub const THREADQL_ADVERTISE_URL: &str = "THREADQL_ADVERTISE_URL";
pub const THREADQL_CLUSTER_SECRET: &str = "THREADQL_CLUSTER_SECRET";
pub const THREADQL_LEASE_SECS: &str = "THREADQL_LEASE_SECS";
pub const SNOWFLAKE_USER: &str = "SNOWFLAKE_USER";
pub const SNOWFLAKE_PRIVATE_KEY_PATH: &str = "SNOWFLAKE_PRIVATE_KEY_PATH";
pub const SNOWFLAKE_PRIVATE_KEY: &str = "SNOWFLAKE_PRIVATE_KEY";
pub const SNOWFLAKE_API_URL: &str = "SNOWFLAKE_API_URL";
/// The service-account key file of a `bigquery://` warehouse (Google's standard variable).
pub const GOOGLE_APPLICATION_CREDENTIALS: &str = "GOOGLE_APPLICATION_CREDENTIALS";
pub const BIGQUERY_API_URL: &str = "BIGQUERY_API_URL";
pub const BIGQUERY_MAXIMUM_BYTES_BILLED: &str = "BIGQUERY_MAXIMUM_BYTES_BILLED";

pub const DEFAULT_SLACK_API_URL: &str = "https://slack.com/api/";
pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
pub const DEFAULT_OPENAI_MODEL: &str = "gpt-4o-mini";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://threadql.db";
/// Slack's limit on open Socket Mode connections per app.
pub const MAX_SOCKET_CONNECTIONS: usize = 10;

/// A configuration value that cannot be used, with the variable it came from.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

impl ConfigError {
    fn new(variable: &'static str, message: impl Into<String>) -> Self {
        Self {
            variable,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A connection URL that may carry a password (`postgres://user:pass@host/db`). `Debug` and
/// `Display` replace the password (and a `password=` query parameter) with `***`, so logs,
/// `threadql check` and error chains never print it; `expose` gives the real text to the code
/// that connects.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionUrl(String);

impl ConnectionUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL with its password, for the connecting code only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn starts_with(&self, prefix: &str) -> bool {
        self.0.starts_with(prefix)
    }

    fn redacted(&self) -> String {
        let Ok(mut parsed) = Url::parse(&self.0) else {
            // Not a URL we can read: show only its scheme, never the rest.
            return match self.0.split_once(':') {
                Some((scheme, _)) => format!("{scheme}:***"),
                None => "***".to_string(),
            };
        };
        if parsed.password().is_some() {
            let _ = parsed.set_password(Some("***"));
        }
        if parsed.query().is_some() {
            let pairs: Vec<(String, String)> = parsed
                .query_pairs()
                .map(|(k, v)| {
                    let secret = k.to_ascii_lowercase().contains("password");
                    (k.into_owned(), if secret { "***".to_string() } else { v.into_owned() })
                })
                .collect();
            parsed.query_pairs_mut().clear().extend_pairs(pairs);
        }
        parsed.to_string()
    }
}

impl fmt::Debug for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnectionUrl({})", self.redacted())
    }
}

impl fmt::Display for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Where answers come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarehouseSource {
    /// The embedded demo data set, generated on first use at this path.
    Demo(PathBuf),
    /// A real warehouse: `postgres://…`, `mysql://…` (or `mariadb://…`) or `sqlite://…`.
    Url(ConnectionUrl),
    /// Snowflake through its SQL API (`snowflake://account/database/schema?…`).
    Snowflake(Box<SnowflakeConfig>),
}

pub const DEFAULT_BIGQUERY_API_URL: &str = "https://bigquery.googleapis.com";
/// 10 GiB: what one query may bill when `BIGQUERY_MAXIMUM_BYTES_BILLED` is not set.
pub const DEFAULT_BIGQUERY_MAXIMUM_BYTES_BILLED: u64 = 10 * 1024 * 1024 * 1024;

/// Where the data set is and how jobs run, from `bigquery://<project>/<dataset>?location=<loc>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BigQuerySettings {
    pub project: String,
    pub dataset: String,
    /// `US`, `EU`, `europe-west1`...; `None` lets BigQuery find it from the data set.
    pub location: Option<String>,
    pub credentials: PathBuf,
    /// The REST API's base URL (tests point it at a fake).
    pub api_url: String,
    pub maximum_bytes_billed: u64,
}

impl BigQuerySettings {
    /// Reads `bigquery://<project>/<dataset>?location=<loc>` (the location is optional).
    /// Project and data set names are checked, because they end up in URLs and SQL.
    pub fn parse_url(url: &str) -> Result<(String, String, Option<String>), String> {
        let rest = url.strip_prefix("bigquery://").ok_or("must start with bigquery://")?;
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let (project, dataset) = path
            .trim_end_matches('/')
            .split_once('/')
            .ok_or("must name a project and a data set: bigquery://<project>/<dataset>?location=<location>")?;
        // Project ids: lowercase letters, digits and hyphens, or `example.com:project`.
        let project_ok = !project.is_empty()
            && project
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | ':'));
        if !project_ok {
            return Err(format!("{project:?} is not a Google Cloud project id"));
        }
        let dataset_ok = !dataset.is_empty() && dataset.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !dataset_ok {
            return Err(format!(
                "{dataset:?} is not a BigQuery data set name (letters, digits and underscores)"
            ));
        }
        let mut location = None;
        for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "location" if !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => {
                    location = Some(value.into_owned())
                }
                "location" => return Err(format!("{value:?} is not a BigQuery location")),
                other => return Err(format!("unknown parameter {other:?} (only location=… is read)")),
            }
        }
        Ok((project.to_string(), dataset.to_string(), location))
    }
}

/// Where Snowflake is and who threadql is there: `WAREHOUSE_URL=snowflake://<account>/<database>/
/// <schema>?warehouse=<wh>&role=<role>&user=<user>` with a key pair's private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnowflakeConfig {
    /// The account identifier as in `<account>.snowflakecomputing.com` (`myorg-myaccount`, or a
    /// locator with its region, `xy12345.eu-west-1`).
    pub account: String,
    /// The URL's `user=`, else `SNOWFLAKE_USER`.
    pub user: String,
    pub database: String,
    pub schema: String,
    /// `None`: the user's default warehouse.
    pub warehouse: Option<String>,
    /// `None`: the user's default role.
    pub role: Option<String>,
    pub private_key: SnowflakeKey,
    /// The SQL API's base (`SNOWFLAKE_API_URL`, default `https://<account>.snowflakecomputing.com`).
    pub api_url: Url,
}

/// The unencrypted PKCS#8 PEM private key whose public key is set on the Snowflake user.
#[derive(Debug, Clone)]
pub enum SnowflakeKey {
    /// `SNOWFLAKE_PRIVATE_KEY_PATH`: read when connecting.
    Path(PathBuf),
    /// `SNOWFLAKE_PRIVATE_KEY`: the PEM text itself.
    Pem(SecretString),
}

impl PartialEq for SnowflakeKey {
    fn eq(&self, other: &Self) -> bool {
        use secrecy::ExposeSecret;
        match (self, other) {
            (SnowflakeKey::Path(a), SnowflakeKey::Path(b)) => a == b,
            (SnowflakeKey::Pem(a), SnowflakeKey::Pem(b)) => a.expose_secret() == b.expose_secret(),
            _ => false,
        }
    }
}

impl Eq for SnowflakeKey {}

impl SnowflakeConfig {
    /// Parses a `snowflake://` URL and the Snowflake variables.
    fn parse(url: &str, get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let bad = |message: String| ConfigError::new(WAREHOUSE_URL, message);
        let parsed = Url::parse(url).map_err(|e| bad(format!("not a snowflake:// URL: {e}")))?;
        let account = parsed
            .host_str()
            .filter(|host| !host.is_empty())
            .ok_or_else(|| bad("names no account (snowflake://<account>/<database>/<schema>)".into()))?
            .to_string();
        let path: Vec<String> = parsed
            .path_segments()
            .map(|segments| segments.filter(|s| !s.is_empty()).map(decode_segment).collect())
            .unwrap_or_default();
        let [database, schema] = <[String; 2]>::try_from(path)
            .map_err(|_| bad("must name a database and a schema (snowflake://<account>/<database>/<schema>)".into()))?;
        let mut user = None;
        let mut warehouse = None;
        let mut role = None;
        for (key, value) in parsed.query_pairs() {
            let value = Some(value.trim().to_string()).filter(|v| !v.is_empty());
            match key.as_ref() {
                "user" => user = value,
                "warehouse" => warehouse = value,
                "role" => role = value,
                other => {
                    return Err(bad(format!(
                        "unknown parameter {other:?} (use warehouse, role and user)"
                    )))
                }
            }
        }
        let user = user
            .or_else(|| get(SNOWFLAKE_USER))
            .ok_or_else(|| ConfigError::new(SNOWFLAKE_USER, "is required for Snowflake (or user= in WAREHOUSE_URL)"))?;
        let private_key = match (get(SNOWFLAKE_PRIVATE_KEY_PATH), get(SNOWFLAKE_PRIVATE_KEY)) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    SNOWFLAKE_PRIVATE_KEY,
                    "set either SNOWFLAKE_PRIVATE_KEY or SNOWFLAKE_PRIVATE_KEY_PATH, not both",
                ))
            }
            (Some(path), None) => SnowflakeKey::Path(PathBuf::from(path)),
            (None, Some(pem)) => SnowflakeKey::Pem(SecretString::from(pem)),
            (None, None) => {
                return Err(ConfigError::new(
                    SNOWFLAKE_PRIVATE_KEY_PATH,
                    "is required for Snowflake: the PKCS#8 PEM private key of the user's key pair \
                     (or its text in SNOWFLAKE_PRIVATE_KEY)",
                ))
            }
        };
        let api_url = match get(SNOWFLAKE_API_URL) {
            Some(base) => Url::parse(base.trim_end_matches('/'))
                .map_err(|e| ConfigError::new(SNOWFLAKE_API_URL, format!("not a URL: {e}")))?,
            None => Url::parse(&format!("https://{account}.snowflakecomputing.com"))
                .map_err(|e| bad(format!("the account {account:?} does not make a host name: {e}")))?,
        };
        Ok(Self {
            account,
            user,
            database,
            schema,
            warehouse,
            role,
            private_key,
            api_url,
        })
    }
}

impl fmt::Display for SnowflakeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "snowflake://{}/{}/{}", self.account, self.database, self.schema)
    }
}

/// A path segment with its `%xx` escapes decoded (`my%20db` names `my db`).
fn decode_segment(segment: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_else(|| segment.to_string())
}

#[derive(Debug, Clone)]
pub struct SlackConfig {
    pub signing_secret: Option<SecretString>,
    pub bot_token: Option<SecretString>,
    pub app_token: Option<SecretString>,
    /// Web API base, always ending in `/` (`https://slack.com/api/`).
    pub api_url: Url,
}

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `THREADQL_ADVERTISE_URL`: the other replicas forward this one's threads' events here;
    /// the server listens for them on its port.
    pub advertise_url: Url,
    pub secret: SecretString,
    pub lease: Duration,
}

#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    pub api_key: SecretString,
    pub base_url: Url,
    pub model: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// A separate listener for `/metrics` (then not served on `listen`), so that the metrics
    /// need not be public; `None` serves them on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    pub slack: SlackConfig,
    pub database_url: ConnectionUrl,
    pub redis_url: Option<ConnectionUrl>,
    pub warehouse: WarehouseSource,
    /// The project, data set, key file and limits of a `bigquery://` warehouse.
    pub bigquery: Option<BigQuerySettings>,
    pub openai: Option<OpenAiConfig>,
    pub rate_limit_per_minute: NonZeroU32,
    /// Queries one user may have running at once.
    pub max_queries_per_user: usize,
    /// Queries running at once against the warehouse, all users together.
    pub max_queries: usize,
    /// Prefix of every Redis key, so deployments (and tests) sharing a Redis stay apart.
    pub redis_prefix: String,
    /// Mark questions with 👀 while working and ✅ / ⚠️ when done.
    pub reactions: bool,
    /// Whether an answer some member of its channel may not see is kept from the channel.
    pub audience_check: crate::access::AudienceCheck,
    /// Socket Mode connections kept open when `SLACK_APP_TOKEN` is set (Slack allows 10).
    pub socket_connections: usize,
    /// Messages handed to thread actors and not finished yet, beyond which a message that would
    /// start a new thread is refused (HTTP 503 / no Socket Mode ack) so that Slack redelivers it.
    pub max_backlog: usize,
    pub max_rows: usize,
    pub export_max_rows: usize,
    pub query_timeout: Duration,
    /// The cost guard: a statement the warehouse estimates above this waits for "Run anyway".
    pub confirm_above: Option<CostLimit>,
    /// The cost guard: a statement estimated above this is refused.
    pub refuse_above: Option<CostLimit>,
    /// What the warehouse may read per day for one user and one channel.
    pub daily_budgets: DailyBudgets,
    pub idle_after: Duration,
    /// How long a stopping server (SIGTERM, SIGINT) may take, whatever is stuck: turns under way
    /// and replies queued for Slack get this long, then the process exits anyway.
    pub shutdown_grace: Duration,
    /// How often the warehouse is described again and the model rebuilt from it, so new tables
    /// and columns are answered without a restart.
    pub model_refresh: Duration,
    /// Days audit rows are kept before the server deletes them; 0 keeps them forever.
    pub audit_retention_days: u32,
    /// Slack user ids who see and change everyone's schedules.
    pub admins: Vec<String>,
    /// How often due schedules are looked for; `None` (0) leaves it to `threadql schedules run`
    /// and to tests that drive the runner's clock.
    pub schedule_poll: Option<Duration>,
    /// Several replicas: how this one is reached by the others, with what secret, and how long
    /// its claim on a thread lasts without renewal. `None`: one replica owns every thread.
    pub cluster: Option<ClusterConfig>,
    /// Installed into workspaces through Slack's OAuth flow (`SLACK_CLIENT_ID`, …) rather than
    /// with one `SLACK_BOT_TOKEN`.
    pub installs: Option<InstallsConfig>,
    pub timezone: chrono_tz::Tz,
    /// `threadql.toml` (semantic model, glossary); `None` = the built-in demo model.
    pub model_path: Option<PathBuf>,
    /// A dbt project whose MetricFlow semantic models and metrics complete the model
    /// (`[dbt] project` in threadql.toml names one too; this one wins).
    pub dbt_project: Option<PathBuf>,
    pub log_format: LogFormat,
}

impl Config {
    /// Reads the process environment, after loading `.env` when present.
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing .env is normal; a malformed one is reported by the values it leaves unset.
        let _ = dotenvy::dotenv();
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Parses configuration from any variable lookup (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let secret = |name: &str| get(name).map(SecretString::from);

        let listen = parse_or(get(THREADQL_LISTEN), THREADQL_LISTEN, "127.0.0.1:3000".parse().ok())?;
        let metrics_listen = match get(THREADQL_METRICS_LISTEN) {
            Some(value) => Some(parse_or(Some(value), THREADQL_METRICS_LISTEN, None)?),
            None => None,
        };
        let api_url = get(SLACK_API_URL).unwrap_or_else(|| DEFAULT_SLACK_API_URL.to_string());
        let api_url = parse_url_with_slash(&api_url, SLACK_API_URL)?;
        let bot_token = secret(SLACK_BOT_TOKEN);
        if let Some(token) = get(SLACK_BOT_TOKEN) {
            if !token.starts_with("xoxb-") {
                return Err(ConfigError::new(
                    SLACK_BOT_TOKEN,
                    "must be a bot token starting with xoxb-",
                ));
            }
        }
        if let Some(token) = get(SLACK_APP_TOKEN) {
            if !token.starts_with("xapp-") {
                return Err(ConfigError::new(
                    SLACK_APP_TOKEN,
                    "must be an app-level token starting with xapp-",
                ));
            }
        }
        let slack = SlackConfig {
            signing_secret: secret(SLACK_SIGNING_SECRET),
            bot_token,
            app_token: secret(SLACK_APP_TOKEN),
            api_url,
        };

        let database_url = get(DATABASE_URL).unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string());
        if !["postgres://", "postgresql://", "sqlite:"]
            .iter()
            .any(|p| database_url.starts_with(p))
        {
            return Err(ConfigError::new(DATABASE_URL, "must start with postgres:// or sqlite:"));
        }
        let redis_url = get(REDIS_URL);
        if let Some(url) = &redis_url {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(ConfigError::new(REDIS_URL, "must start with redis:// or rediss://"));
            }
        }
        let warehouse = match get(WAREHOUSE_URL) {
            Some(url) if url.starts_with("snowflake://") => {
                WarehouseSource::Snowflake(Box::new(SnowflakeConfig::parse(&url, get)?))
            }
            Some(url) => {
                if ![
                    "postgres://",
                    "postgresql://",
                    "mysql://",
                    "mariadb://",
                    "sqlite:",
                    "bigquery://",
                ]
                .iter()
                .any(|p| url.starts_with(p))
                {
                    return Err(ConfigError::new(
                        WAREHOUSE_URL,
                        "must start with postgres://, mysql://, mariadb://, snowflake://, bigquery:// or sqlite:",
                    ));
                }
                WarehouseSource::Url(ConnectionUrl::new(url))
            }
            None => WarehouseSource::Demo(
                get(THREADQL_DEMO_WAREHOUSE)
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("threadql-demo.db")),
            ),
        };
        let bigquery = match &warehouse {
            WarehouseSource::Url(url) if url.starts_with("bigquery://") => Some(bigquery_settings(url.expose(), &get)?),
            _ => None,
        };
        let openai = match secret(OPENAI_API_KEY) {
            Some(api_key) => {
                let base = get(OPENAI_BASE_URL).unwrap_or_else(|| DEFAULT_OPENAI_BASE_URL.to_string());
                let base_url = Url::parse(base.trim_end_matches('/'))
                    .map_err(|e| ConfigError::new(OPENAI_BASE_URL, format!("not a URL: {e}")))?;
                Some(OpenAiConfig {
                    api_key,
                    base_url,
                    model: get(OPENAI_MODEL).unwrap_or_else(|| DEFAULT_OPENAI_MODEL.to_string()),
                })
            }
            None => None,
        };
        let rate_limit_per_minute = parse_or(
            get(THREADQL_RATE_LIMIT_PER_MINUTE),
            THREADQL_RATE_LIMIT_PER_MINUTE,
            NonZeroU32::new(10),
        )?;
        let max_queries_per_user = positive(get(THREADQL_MAX_QUERIES_PER_USER), THREADQL_MAX_QUERIES_PER_USER, 2)?;
        let max_queries = positive(get(THREADQL_MAX_QUERIES), THREADQL_MAX_QUERIES, 8)?;
        let redis_prefix = get(THREADQL_REDIS_PREFIX).unwrap_or_else(|| "threadql:".to_string());
        let reactions = match get(THREADQL_REACTIONS).as_deref() {
            None | Some("true" | "on" | "1" | "yes") => true,
            Some("false" | "off" | "0" | "no") => false,
            Some(other) => {
                return Err(ConfigError::new(
                    THREADQL_REACTIONS,
                    format!("{other:?} is not on or off"),
                ))
            }
        };
        let audience_check = match get(THREADQL_AUDIENCE_CHECK) {
            None => crate::access::AudienceCheck::default(),
            Some(text) => crate::access::AudienceCheck::parse(&text)
                .map_err(|problem| ConfigError::new(THREADQL_AUDIENCE_CHECK, problem))?,
        };
        let socket_connections = positive(get(THREADQL_SOCKET_CONNECTIONS), THREADQL_SOCKET_CONNECTIONS, 2)?;
        if socket_connections > MAX_SOCKET_CONNECTIONS {
            return Err(ConfigError::new(
                THREADQL_SOCKET_CONNECTIONS,
                format!("Slack allows at most {MAX_SOCKET_CONNECTIONS} Socket Mode connections per app"),
            ));
        }
        let max_backlog = positive(get(THREADQL_MAX_BACKLOG), THREADQL_MAX_BACKLOG, 200_000)?;
        let max_rows = positive(get(THREADQL_MAX_ROWS), THREADQL_MAX_ROWS, 20)?;
        let export_max_rows = positive(get(THREADQL_EXPORT_MAX_ROWS), THREADQL_EXPORT_MAX_ROWS, 100_000)?;
        let query_timeout =
            Duration::from_secs(positive(get(THREADQL_QUERY_TIMEOUT_SECS), THREADQL_QUERY_TIMEOUT_SECS, 30)? as u64);
        let cost_limit = |name: &'static str| -> Result<Option<CostLimit>, ConfigError> {
            get(name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| CostLimit::parse(&v).map_err(|message| ConfigError::new(name, message)))
                .transpose()
        };
        let confirm_above = cost_limit(THREADQL_CONFIRM_ABOVE)?;
        let refuse_above = cost_limit(THREADQL_REFUSE_ABOVE)?;
        let budget = |name: &'static str| -> Result<Option<u64>, ConfigError> {
            get(name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| DailyBudgets::parse_bytes(&v).map_err(|message| ConfigError::new(name, message)))
                .transpose()
        };
        let daily_budgets = DailyBudgets {
            per_user: budget(THREADQL_DAILY_BYTES_PER_USER)?,
            per_channel: budget(THREADQL_DAILY_BYTES_PER_CHANNEL)?,
        };
        let idle_after = Duration::from_secs(positive(get(THREADQL_IDLE_SECS), THREADQL_IDLE_SECS, 900)? as u64);
        let shutdown_grace =
            Duration::from_secs(positive(get(THREADQL_SHUTDOWN_GRACE), THREADQL_SHUTDOWN_GRACE, 20)? as u64);
        let model_refresh =
            Duration::from_secs(positive(get(THREADQL_MODEL_REFRESH_SECS), THREADQL_MODEL_REFRESH_SECS, 3_600)? as u64);
        let audit_retention_days = match get(THREADQL_AUDIT_RETENTION_DAYS) {
            Some(value) => value.parse::<u32>().map_err(|_| {
                ConfigError::new(
                    THREADQL_AUDIT_RETENTION_DAYS,
                    format!("{value:?} is not a whole number of days (0 keeps audit rows forever)"),
                )
            })?,
            None => 90,
        };
        let admins: Vec<String> = get(THREADQL_ADMINS)
            .unwrap_or_default()
            .split([',', ' '])
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .collect();
        if let Some(bad) = admins.iter().find(|id| !id.starts_with(['U', 'W'])) {
            return Err(ConfigError::new(
                THREADQL_ADMINS,
                format!("{bad:?} is not a Slack user id (they start with U or W, e.g. U0123ABCD)"),
            ));
        }
        let schedule_poll = match get(THREADQL_SCHEDULE_POLL_SECS) {
            Some(value) => match value.parse::<u64>() {
                Ok(0) => None,
                Ok(secs) => Some(Duration::from_secs(secs)),
                Err(_) => {
                    return Err(ConfigError::new(
                        THREADQL_SCHEDULE_POLL_SECS,
                        format!("{value:?} is not a whole number of seconds (0 turns polling off)"),
                    ))
                }
            },
            None => Some(Duration::from_secs(30)),
        };
        let cluster = cluster_config(&get, secret(THREADQL_CLUSTER_SECRET), &database_url)?;
        let installs = installs_config(&get, slack.bot_token.is_some(), &database_url)?;
        let timezone = match get(THREADQL_TIMEZONE) {
            Some(zone) => zone.parse::<chrono_tz::Tz>().map_err(|_| {
                ConfigError::new(
                    THREADQL_TIMEZONE,
                    format!("unknown time zone {zone:?} (use an IANA name such as Europe/Paris)"),
                )
            })?,
            None => chrono_tz::UTC,
        };
        let model_path = match get(THREADQL_CONFIG) {
            Some(path) => {
                let path = PathBuf::from(path);
                if !path.is_file() {
                    return Err(ConfigError::new(
                        THREADQL_CONFIG,
                        format!("no file at {}", path.display()),
                    ));
                }
                Some(path)
            }
            None => Some(PathBuf::from("threadql.toml")).filter(|p| p.is_file()),
        };
        let dbt_project = match get(THREADQL_DBT_PROJECT) {
            Some(path) => {
                let path = PathBuf::from(path);
                if !path.join("dbt_project.yml").is_file() {
                    return Err(ConfigError::new(
                        THREADQL_DBT_PROJECT,
                        format!("no dbt_project.yml in {}", path.display()),
                    ));
                }
                Some(path)
            }
            None => None,
        };
        let log_format = match get(THREADQL_LOG_FORMAT).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::new(
                    THREADQL_LOG_FORMAT,
                    format!("{other:?} is not text or json"),
                ))
            }
        };
        Ok(Self {
            listen,
            metrics_listen,
            slack,
            database_url: ConnectionUrl::new(database_url),
            redis_url: redis_url.map(ConnectionUrl::new),
            warehouse,
            bigquery,
            openai,
            rate_limit_per_minute,
            max_queries_per_user,
            max_queries,
            redis_prefix,
            reactions,
            audience_check,
            socket_connections,
            max_backlog,
            max_rows,
            export_max_rows,
            query_timeout,
            confirm_above,
            daily_budgets,
            refuse_above,
            idle_after,
            shutdown_grace,
            model_refresh,
            audit_retention_days,
            admins,
            schedule_poll,
            cluster,
            installs,
            timezone,
            model_path,
            dbt_project,
            log_format,
        })
    }

    /// Today's date where "last month" and "yesterday" are meant.
    pub fn today(&self) -> chrono::NaiveDate {
        chrono::Utc::now().with_timezone(&self.timezone).date_naive()
    }
}

fn parse_or<T: std::str::FromStr>(
    value: Option<String>,
    variable: &'static str,
    default: Option<T>,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match value {
        Some(v) => v
            .parse::<T>()
            .map_err(|e| ConfigError::new(variable, format!("{v:?} is not valid: {e}"))),
        None => default.ok_or_else(|| ConfigError::new(variable, "is required")),
    }
}

/// The settings of a `bigquery://<project>/<dataset>?location=<loc>` warehouse: the URL's parts,
/// a readable service-account key file, the API's URL and the bytes one query may bill.
fn bigquery_settings(url: &str, get: &impl Fn(&str) -> Option<String>) -> Result<BigQuerySettings, ConfigError> {
    let (project, dataset, location) =
        BigQuerySettings::parse_url(url).map_err(|message| ConfigError::new(WAREHOUSE_URL, message))?;
    let credentials = get(GOOGLE_APPLICATION_CREDENTIALS).map(PathBuf::from).ok_or_else(|| {
        ConfigError::new(
            GOOGLE_APPLICATION_CREDENTIALS,
            "a bigquery:// warehouse needs the path of a service-account key file (JSON)",
        )
    })?;
    if let Err(error) = std::fs::File::open(&credentials) {
        return Err(ConfigError::new(
            GOOGLE_APPLICATION_CREDENTIALS,
            format!("cannot read the key file {}: {error}", credentials.display()),
        ));
    }
    let api_url = get(BIGQUERY_API_URL).unwrap_or_else(|| DEFAULT_BIGQUERY_API_URL.to_string());
    let parsed = Url::parse(&api_url)
        .map_err(|e| ConfigError::new(BIGQUERY_API_URL, format!("{api_url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ConfigError::new(BIGQUERY_API_URL, "must be an http:// or https:// URL"));
    }
    let maximum_bytes_billed = match get(BIGQUERY_MAXIMUM_BYTES_BILLED) {
        Some(value) => match value.parse::<u64>() {
            Ok(bytes) if bytes > 0 => bytes,
            _ => {
                return Err(ConfigError::new(
                    BIGQUERY_MAXIMUM_BYTES_BILLED,
                    format!("{value:?} is not a positive number of bytes"),
                ))
            }
        },
        None => DEFAULT_BIGQUERY_MAXIMUM_BYTES_BILLED,
    };
    Ok(BigQuerySettings {
        project,
        dataset,
        location,
        credentials,
        api_url,
        maximum_bytes_billed,
    })
}

fn positive(value: Option<String>, variable: &'static str, default: usize) -> Result<usize, ConfigError> {
    match value {
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(ConfigError::new(
                variable,
                format!("{v:?} is not a positive whole number"),
            )),
        },
        None => Ok(default),
    }
}

fn parse_url_with_slash(value: &str, variable: &'static str) -> Result<Url, ConfigError> {
    let with_slash = if value.ends_with('/') {
        value.to_string()
    } else {
        format!("{value}/")
    };
    let url =
        Url::parse(&with_slash).map_err(|e| ConfigError::new(variable, format!("{value:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::new(variable, "must be an http:// or https:// URL"));
    }
    Ok(url)
}

/// Installs through OAuth: the app's credentials, where Slack sends the browser back, and the
/// keys that seal the tokens at rest.
#[derive(Debug, Clone)]
pub struct InstallsConfig {
    pub client_id: String,
    pub client_secret: SecretString,
    /// `SLACK_REDIRECT_URI`: must be one of the app's redirect URLs; `None` lets Slack use the
    /// app's only one.
    pub redirect_uri: Option<Url>,
    /// `THREADQL_ENCRYPTION_KEY` and `THREADQL_ENCRYPTION_KEY_PREVIOUS`, as given: the
    /// installation store reads their forms (`SealingKeys`), and refuses one it cannot read.
    pub encryption_key: SecretString,
    pub previous_key: Option<SecretString>,
}

/// `SLACK_CLIENT_ID`, `SLACK_CLIENT_SECRET` and `THREADQL_ENCRYPTION_KEY`, all or none; never
/// with `SLACK_BOT_TOKEN` (one workspace, one token), and only over Postgres (the installations
/// are shared by the replicas).
fn installs_config(
    get: &impl Fn(&str) -> Option<String>,
    bot_token: bool,
    database_url: &str,
) -> Result<Option<InstallsConfig>, ConfigError> {
    let (client_id, client_secret) = (get(SLACK_CLIENT_ID), get(SLACK_CLIENT_SECRET));
    if client_id.is_none() && client_secret.is_none() {
        return Ok(None);
    }
    let (Some(client_id), Some(client_secret)) = (client_id, client_secret) else {
        return Err(ConfigError::new(
            SLACK_CLIENT_SECRET,
            "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET come together (the app's Basic Information page)",
        ));
    };
    if bot_token {
        return Err(ConfigError::new(
            SLACK_BOT_TOKEN,
            "set either SLACK_BOT_TOKEN (one workspace) or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET (installs through OAuth), not both",
        ));
    }
    let encryption_key = get(THREADQL_ENCRYPTION_KEY).map(SecretString::from).ok_or_else(|| {
        ConfigError::new(
            THREADQL_ENCRYPTION_KEY,
            "is required with SLACK_CLIENT_ID: installed workspaces' tokens are sealed with it (32 random bytes, in hex or base64)",
        )
    })?;
    let previous_key = get(THREADQL_ENCRYPTION_KEY_PREVIOUS).map(SecretString::from);
    if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
        return Err(ConfigError::new(
            DATABASE_URL,
            "installs through OAuth are kept in Postgres: set a postgres:// URL",
        ));
    }
    let redirect_uri = match get(SLACK_REDIRECT_URI) {
        Some(value) => Some(
            Url::parse(&value)
                .ok()
                .filter(|url| matches!(url.scheme(), "http" | "https"))
                .ok_or_else(|| {
                    ConfigError::new(SLACK_REDIRECT_URI, "must be the https:// URL of /slack/oauth_redirect")
                })?,
        ),
        None => None,
    };
    Ok(Some(InstallsConfig {
        client_id,
        client_secret: SecretString::from(client_secret),
        redirect_uri,
        encryption_key,
        previous_key,
    }))
}

/// `THREADQL_ADVERTISE_URL` and what comes with it. Several replicas share their threads'
/// ownership through Postgres, so an embedded SQLite state store is refused.
fn cluster_config(
    get: &impl Fn(&str) -> Option<String>,
    secret: Option<SecretString>,
    database_url: &str,
) -> Result<Option<ClusterConfig>, ConfigError> {
    let Some(advertise) = get(THREADQL_ADVERTISE_URL) else {
        return Ok(None);
    };
    let advertise_url = Url::parse(&advertise)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.port_or_known_default().is_some())
        .ok_or_else(|| {
            ConfigError::new(
                THREADQL_ADVERTISE_URL,
                format!("{advertise:?} is not an http(s) URL (e.g. http://10.0.3.7:8081, the pod's address)"),
            )
        })?;
    let secret = secret.ok_or_else(|| {
        ConfigError::new(
            THREADQL_CLUSTER_SECRET,
            "is required with THREADQL_ADVERTISE_URL: replicas accept forwarded events only with it",
        )
    })?;
    if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
        return Err(ConfigError::new(
            DATABASE_URL,
            "several replicas (THREADQL_ADVERTISE_URL) share their state through Postgres: set a postgres:// URL",
        ));
    }
    let lease = match get(THREADQL_LEASE_SECS) {
        Some(value) => match value.parse::<u64>() {
            Ok(secs) if secs >= 3 => Duration::from_secs(secs),
            _ => {
                return Err(ConfigError::new(
                    THREADQL_LEASE_SECS,
                    format!("{value:?} is not a whole number of seconds of at least 3"),
                ))
            }
        },
        None => Duration::from_secs(10),
    };
    Ok(Some(ClusterConfig {
        advertise_url,
        secret,
        lease,
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use secrecy::ExposeSecret;

    use super::*;

    fn config_from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn no_password_or_token_is_printed_by_debug_or_display() {
        let config = config_from(&[
            ("SLACK_SIGNING_SECRET", "signing-hunter2"),
            ("SLACK_BOT_TOKEN", "xoxb-token-hunter2"),
            ("SLACK_APP_TOKEN", "xapp-token-hunter2"),
            ("OPENAI_API_KEY", "sk-hunter2"),
            ("DATABASE_URL", "postgres://app:db-hunter2@db.internal/threadql"),
            ("REDIS_URL", "redis://:redis-hunter2@cache.internal:6379/0"),
            (
                "WAREHOUSE_URL",
                "postgres://ro@wh.internal/analytics?password=wh-hunter2&sslmode=require",
            ),
        ])
        .unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "a secret in Debug: {debug}");

        let warehouse = match &config.warehouse {
            WarehouseSource::Url(url) => url.clone(),
            other => panic!("expected a URL, got {other:?}"),
        };
        for (url, shown) in [
            (&config.database_url, "postgres://app:***@db.internal/threadql"),
            (config.redis_url.as_ref().unwrap(), "redis://:***@cache.internal:6379/0"),
            (
                &warehouse,
                "postgres://ro@wh.internal/analytics?password=***&sslmode=require",
            ),
        ] {
            assert_eq!(url.to_string().replace("%2A", "*"), shown);
            assert!(url.expose().contains("hunter2"), "expose keeps the real URL");
        }
        // What cannot be parsed as a URL is not echoed either.
        assert_eq!(
            ConnectionUrl::new("postgres://app:hunter2@[::1").to_string(),
            "postgres:***"
        );
    }

    #[test]
    fn defaults_match_the_documented_table() {
        let config = config_from(&[]).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(config.metrics_listen, None, "metrics on the main listener");
        assert_eq!(config.slack.api_url.as_str(), "https://slack.com/api/");
        assert_eq!(config.database_url.expose(), "sqlite://threadql.db");
        assert_eq!(
            config.warehouse,
            WarehouseSource::Demo(PathBuf::from("threadql-demo.db"))
        );
        assert_eq!(config.rate_limit_per_minute.get(), 10);
        assert_eq!((config.max_rows, config.export_max_rows), (20, 100_000));
        assert_eq!(config.query_timeout, Duration::from_secs(30));
        assert_eq!(config.idle_after, Duration::from_secs(900));
        assert_eq!(config.shutdown_grace, Duration::from_secs(20));
        assert_eq!(config.max_backlog, 200_000);
        assert_eq!(config.audit_retention_days, 90);
        assert_eq!(config.timezone, chrono_tz::UTC);
        assert!(config.openai.is_none());
    }

    #[test]
    fn installs_through_oauth_need_both_credentials_a_sealing_key_postgres_and_no_bot_token() {
        let postgres = (DATABASE_URL, "postgres://postgres@127.0.0.1/test");
        let id = (SLACK_CLIENT_ID, "1234.5678");
        let secret = (SLACK_CLIENT_SECRET, "client-hunter2");
        let key = (
            "THREADQL_ENCRYPTION_KEY",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        );
        assert!(
            config_from(&[postgres]).unwrap().installs.is_none(),
            "one workspace by default"
        );
        let installs = config_from(&[postgres, id, secret, key]).unwrap().installs.unwrap();
        assert_eq!(installs.client_id, "1234.5678");
        assert!(!format!("{installs:?}").contains("hunter2"), "{installs:?}");

        let refused = |pairs: &[(&str, &str)]| config_from(pairs).unwrap_err();
        assert_eq!(refused(&[postgres, id, key]).variable, SLACK_CLIENT_SECRET);
        assert_eq!(refused(&[postgres, id, secret]).variable, "THREADQL_ENCRYPTION_KEY");
        assert_eq!(
            refused(&[postgres, id, secret, key, (SLACK_BOT_TOKEN, "xoxb-1")]).variable,
            SLACK_BOT_TOKEN
        );
        assert_eq!(refused(&[id, secret, key]).variable, DATABASE_URL, "not over SQLite");
        assert_eq!(
            refused(&[postgres, id, secret, key, (SLACK_REDIRECT_URI, "not a url")]).variable,
            SLACK_REDIRECT_URI
        );
    }

    #[test]
    fn several_replicas_need_an_advertise_url_a_secret_and_postgres() {
        let postgres = (DATABASE_URL, "postgres://postgres@127.0.0.1/test");
        let advertise = (THREADQL_ADVERTISE_URL, "http://10.0.3.7:8081");
        let secret = (THREADQL_CLUSTER_SECRET, "s3cret");
        assert!(
            config_from(&[postgres]).unwrap().cluster.is_none(),
            "one replica by default"
        );

        let cluster = config_from(&[postgres, advertise, secret]).unwrap().cluster.unwrap();
        assert_eq!(cluster.advertise_url.as_str(), "http://10.0.3.7:8081/");
        assert_eq!(cluster.lease, Duration::from_secs(10));
        let longer = config_from(&[postgres, advertise, secret, (THREADQL_LEASE_SECS, "30")]).unwrap();
        assert_eq!(longer.cluster.unwrap().lease, Duration::from_secs(30));

        let named = |pairs: &[(&str, &str)]| config_from(pairs).unwrap_err().variable;
        assert_eq!(named(&[postgres, advertise]), THREADQL_CLUSTER_SECRET);
        assert_eq!(
            named(&[advertise, secret]),
            DATABASE_URL,
            "an embedded SQLite is one replica's"
        );
        assert_eq!(
            named(&[postgres, (THREADQL_ADVERTISE_URL, "10.0.3.7"), secret]),
            THREADQL_ADVERTISE_URL
        );
        assert_eq!(
            named(&[postgres, advertise, secret, (THREADQL_LEASE_SECS, "1")]),
            THREADQL_LEASE_SECS
        );
        // The secret is never printed.
        let config = config_from(&[postgres, advertise, secret]).unwrap();
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn schedule_admins_and_polling_are_read_and_checked() {
        let config = config_from(&[
            (THREADQL_ADMINS, "U0ALICE01, W0BOB0001"),
            (THREADQL_SCHEDULE_POLL_SECS, "0"),
        ])
        .unwrap();
        assert_eq!(config.admins, ["U0ALICE01", "W0BOB0001"]);
        assert_eq!(config.schedule_poll, None);
        let default = config_from(&[]).unwrap();
        assert!(default.admins.is_empty());
        assert_eq!(default.schedule_poll, Some(Duration::from_secs(30)));
        assert!(config_from(&[(THREADQL_ADMINS, "alice")]).is_err());
        assert!(config_from(&[(THREADQL_SCHEDULE_POLL_SECS, "soon")]).is_err());
    }

    #[test]
    fn the_cost_guard_reads_sizes_and_row_counts() {
        let config = config_from(&[(THREADQL_CONFIRM_ABOVE, "10GB"), (THREADQL_REFUSE_ABOVE, "5M rows")]).unwrap();
        assert_eq!(config.confirm_above, Some(CostLimit::Bytes(10 * 1024 * 1024 * 1024)));
        assert_eq!(config.refuse_above, Some(CostLimit::Rows(5_000_000)));
        let unset = config_from(&[]).unwrap();
        assert_eq!((unset.confirm_above, unset.refuse_above), (None, None));
        assert!(!unset.daily_budgets.is_set());
    }

    #[test]
    fn daily_budgets_are_sizes() {
        let config = config_from(&[(THREADQL_DAILY_BYTES_PER_USER, "50GB")]).unwrap();
        assert_eq!(config.daily_budgets.per_user, Some(50 * 1024 * 1024 * 1024));
        assert_eq!(config.daily_budgets.per_channel, None);
        let error = config_from(&[(THREADQL_DAILY_BYTES_PER_CHANNEL, "5M rows")]).unwrap_err();
        assert!(error.to_string().contains(THREADQL_DAILY_BYTES_PER_CHANNEL), "{error}");
    }

    #[test]
    fn audit_retention_is_days_and_zero_keeps_rows_forever() {
        assert_eq!(
            config_from(&[(THREADQL_AUDIT_RETENTION_DAYS, "30")])
                .unwrap()
                .audit_retention_days,
            30
        );
        assert_eq!(
            config_from(&[(THREADQL_AUDIT_RETENTION_DAYS, "0")])
                .unwrap()
                .audit_retention_days,
            0
        );
        assert!(config_from(&[(THREADQL_AUDIT_RETENTION_DAYS, "-1")]).is_err());
    }

    #[test]
    fn metrics_listen_is_an_address_of_its_own() {
        let config = config_from(&[(THREADQL_METRICS_LISTEN, "0.0.0.0:9100")]).unwrap();
        assert_eq!(
            config.metrics_listen.map(|a| a.to_string()).as_deref(),
            Some("0.0.0.0:9100")
        );
        assert_eq!(
            config.listen.to_string(),
            "127.0.0.1:3000",
            "the main listener is unchanged"
        );
    }

    #[test]
    fn each_bad_value_is_reported_with_its_variable() {
        let cases = [
            (THREADQL_LISTEN, "not-an-address"),
            (THREADQL_METRICS_LISTEN, ":9100"),
            (THREADQL_MAX_ROWS, "0"),
            (THREADQL_QUERY_TIMEOUT_SECS, "soon"),
            (THREADQL_CONFIRM_ABOVE, "a lot"),
            (THREADQL_REFUSE_ABOVE, "10 parsecs"),
            (THREADQL_TIMEZONE, "Mars/Olympus"),
            (THREADQL_AUDIT_RETENTION_DAYS, "3 months"),
            (DATABASE_URL, "mongodb://x"),
            (WAREHOUSE_URL, "oracle://x"),
            (REDIS_URL, "http://x"),
            (SLACK_BOT_TOKEN, "xoxp-user-token"),
            (SLACK_API_URL, "ftp://example.com"),
            (THREADQL_LOG_FORMAT, "xml"),
            (THREADQL_CONFIG, "/nonexistent/threadql.toml"),
        ];
        for (variable, value) in cases {
            let error = config_from(&[(variable, value)]).expect_err(variable);
            assert_eq!(error.variable, variable, "{variable}={value} blamed {}", error.variable);
        }
    }

    #[test]
    fn slack_api_url_gets_a_trailing_slash_and_openai_key_enables_the_llm() {
        let config = config_from(&[
            (SLACK_API_URL, "http://127.0.0.1:9999/api"),
            (OPENAI_API_KEY, "sk-test"),
            (OPENAI_BASE_URL, "http://127.0.0.1:9998/v1/"),
            (THREADQL_TIMEZONE, "Europe/Paris"),
        ])
        .unwrap();
        assert_eq!(config.slack.api_url.as_str(), "http://127.0.0.1:9999/api/");
        let openai = config.openai.unwrap();
        assert_eq!(openai.api_key.expose_secret(), "sk-test");
        assert_eq!(openai.base_url.as_str(), "http://127.0.0.1:9998/v1");
        assert_eq!(config.timezone, chrono_tz::Europe::Paris);
    }

    #[test]
    fn socket_connections_default_to_two_and_stay_within_slacks_limit() {
        assert_eq!(config_from(&[]).unwrap().socket_connections, 2);
        assert_eq!(
            config_from(&[(THREADQL_SOCKET_CONNECTIONS, "10")])
                .unwrap()
                .socket_connections,
            10
        );
        for value in ["0", "11", "two"] {
            let error = config_from(&[(THREADQL_SOCKET_CONNECTIONS, value)]).expect_err(value);
            assert_eq!(error.variable, THREADQL_SOCKET_CONNECTIONS, "{value}");
        }
    }

    #[test]
    fn a_bigquery_url_needs_a_readable_key_file_and_reads_its_settings() {
        let key = tempfile::NamedTempFile::new().unwrap();
        let key_path = key.path().display().to_string();
        let config = config_from(&[
            (WAREHOUSE_URL, "bigquery://my-project/analytics?location=EU"),
            (GOOGLE_APPLICATION_CREDENTIALS, &key_path),
            (BIGQUERY_MAXIMUM_BYTES_BILLED, "1000000"),
        ])
        .unwrap();
        let bigquery = config.bigquery.unwrap();
        assert_eq!(
            (
                bigquery.project.as_str(),
                bigquery.dataset.as_str(),
                bigquery.location.as_deref()
            ),
            ("my-project", "analytics", Some("EU"))
        );
        assert_eq!(bigquery.credentials, PathBuf::from(&key_path));
        assert_eq!(bigquery.api_url, "https://bigquery.googleapis.com");
        assert_eq!(bigquery.maximum_bytes_billed, 1_000_000);

        let defaults = config_from(&[
            (WAREHOUSE_URL, "bigquery://my-project/analytics"),
            (GOOGLE_APPLICATION_CREDENTIALS, &key_path),
            (BIGQUERY_API_URL, "http://127.0.0.1:9050"),
        ])
        .unwrap()
        .bigquery
        .unwrap();
        assert_eq!(defaults.location, None);
        assert_eq!(defaults.api_url, "http://127.0.0.1:9050");
        assert_eq!(defaults.maximum_bytes_billed, 10 * 1024 * 1024 * 1024);
        assert!(config_from(&[]).unwrap().bigquery.is_none(), "only for bigquery://");
    }

    #[test]
    fn a_bad_bigquery_setting_is_reported_with_its_variable() {
        let key = tempfile::NamedTempFile::new().unwrap();
        let key_path = key.path().display().to_string();
        let url = (WAREHOUSE_URL, "bigquery://my-project/analytics");
        let key_set = (GOOGLE_APPLICATION_CREDENTIALS, key_path.as_str());
        // (variables set, variable blamed, words of the message)
        type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);
        let cases: Vec<Case> = vec![
            (vec![url], GOOGLE_APPLICATION_CREDENTIALS, "service-account key file"),
            (
                vec![url, (GOOGLE_APPLICATION_CREDENTIALS, "/nonexistent/key.json")],
                GOOGLE_APPLICATION_CREDENTIALS,
                "cannot read the key file /nonexistent/key.json",
            ),
            (
                vec![(WAREHOUSE_URL, "bigquery://my-project"), key_set],
                WAREHOUSE_URL,
                "must name a project and a data set",
            ),
            (
                vec![(WAREHOUSE_URL, "bigquery://p/a?region=EU"), key_set],
                WAREHOUSE_URL,
                "unknown parameter",
            ),
            (
                vec![url, key_set, (BIGQUERY_API_URL, "ftp://x")],
                BIGQUERY_API_URL,
                "http",
            ),
            (
                vec![url, key_set, (BIGQUERY_MAXIMUM_BYTES_BILLED, "lots")],
                BIGQUERY_MAXIMUM_BYTES_BILLED,
                "positive number of bytes",
            ),
        ];
        for (pairs, variable, message) in cases {
            let error = config_from(&pairs).expect_err(variable);
            assert_eq!(error.variable, variable, "{pairs:?}: {error}");
            assert!(error.message.contains(message), "{pairs:?}: {error}");
        }
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let config = config_from(&[
            (SLACK_SIGNING_SECRET, "very-secret-value"),
            (SLACK_BOT_TOKEN, "xoxb-secret-token"),
        ])
        .unwrap();
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("very-secret-value") && !debug.contains("xoxb-secret-token"),
            "{debug}"
        );
    }

    fn snowflake(config: &Config) -> &SnowflakeConfig {
        match &config.warehouse {
            WarehouseSource::Snowflake(snowflake) => snowflake,
            other => panic!("expected Snowflake, got {other:?}"),
        }
    }

    #[test]
    fn a_snowflake_url_names_account_database_schema_warehouse_role_and_user() {
        let config = config_from(&[
            (
                WAREHOUSE_URL,
                "snowflake://myorg-acct/ANALYTICS/PUBLIC?warehouse=REPORTING_WH&role=READER&user=threadql",
            ),
            (SNOWFLAKE_PRIVATE_KEY_PATH, "/run/secrets/snowflake.p8"),
        ])
        .unwrap();
        let snowflake = snowflake(&config);
        assert_eq!(snowflake.account, "myorg-acct");
        assert_eq!(snowflake.database, "ANALYTICS");
        assert_eq!(snowflake.schema, "PUBLIC");
        assert_eq!(snowflake.warehouse.as_deref(), Some("REPORTING_WH"));
        assert_eq!(snowflake.role.as_deref(), Some("READER"));
        assert_eq!(snowflake.user, "threadql");
        assert!(
            matches!(&snowflake.private_key, SnowflakeKey::Path(path) if path == Path::new("/run/secrets/snowflake.p8"))
        );
        assert_eq!(snowflake.api_url.as_str(), "https://myorg-acct.snowflakecomputing.com/");
        assert_eq!(snowflake.to_string(), "snowflake://myorg-acct/ANALYTICS/PUBLIC");
    }

    #[test]
    fn the_snowflake_user_may_come_from_the_environment_and_the_key_as_text() {
        let config = config_from(&[
            (WAREHOUSE_URL, "snowflake://xy12345.eu-west-1/my%20db/sales"),
            (SNOWFLAKE_USER, "svc_threadql"),
            (
                SNOWFLAKE_PRIVATE_KEY,
                "-----BEGIN PRIVATE KEY-----\nsecret-key-text\n-----END PRIVATE KEY-----",
            ),
            (SNOWFLAKE_API_URL, "http://127.0.0.1:9999/"),
        ])
        .unwrap();
        let snowflake = snowflake(&config);
        assert_eq!(snowflake.user, "svc_threadql");
        assert_eq!(snowflake.database, "my db");
        assert_eq!((snowflake.warehouse.as_ref(), snowflake.role.as_ref()), (None, None));
        assert!(matches!(snowflake.private_key, SnowflakeKey::Pem(_)));
        assert_eq!(snowflake.api_url.as_str(), "http://127.0.0.1:9999/");
        let debug = format!("{config:?}");
        assert!(!debug.contains("secret-key-text"), "{debug}");
        // A `user=` in the URL wins over the variable.
        let config = config_from(&[
            (WAREHOUSE_URL, "snowflake://acct/db/sc?user=from_url"),
            (SNOWFLAKE_USER, "from_env"),
            (SNOWFLAKE_PRIVATE_KEY_PATH, "key.p8"),
        ])
        .unwrap();
        assert_eq!(self::snowflake(&config).user, "from_url");
    }

    #[test]
    fn a_snowflake_url_without_its_parts_or_key_is_refused_with_the_variable_to_fix() {
        let key = (SNOWFLAKE_PRIVATE_KEY_PATH, "key.p8");
        for (description, pairs, variable, says) in [
            (
                "no schema",
                vec![(WAREHOUSE_URL, "snowflake://acct/db?user=u"), key],
                WAREHOUSE_URL,
                "database and a schema",
            ),
            (
                "no account",
                vec![(WAREHOUSE_URL, "snowflake:///db/sc?user=u"), key],
                WAREHOUSE_URL,
                "account",
            ),
            (
                "an unknown parameter",
                vec![(WAREHOUSE_URL, "snowflake://acct/db/sc?user=u&password=x"), key],
                WAREHOUSE_URL,
                "unknown parameter",
            ),
            (
                "no user",
                vec![(WAREHOUSE_URL, "snowflake://acct/db/sc"), key],
                SNOWFLAKE_USER,
                "required",
            ),
            (
                "no key",
                vec![(WAREHOUSE_URL, "snowflake://acct/db/sc?user=u")],
                SNOWFLAKE_PRIVATE_KEY_PATH,
                "PKCS#8",
            ),
            (
                "two keys",
                vec![
                    (WAREHOUSE_URL, "snowflake://acct/db/sc?user=u"),
                    key,
                    (SNOWFLAKE_PRIVATE_KEY, "pem"),
                ],
                SNOWFLAKE_PRIVATE_KEY,
                "not both",
            ),
            (
                "a bad API URL",
                vec![
                    (WAREHOUSE_URL, "snowflake://acct/db/sc?user=u"),
                    key,
                    (SNOWFLAKE_API_URL, "not a url"),
                ],
                SNOWFLAKE_API_URL,
                "not a URL",
            ),
        ] {
            let error = config_from(&pairs).expect_err(description);
            assert_eq!(error.variable, variable, "{description}: {error}");
            assert!(error.message.contains(says), "{description}: {error}");
        }
    }
}
