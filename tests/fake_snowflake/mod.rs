//! A local fake of Snowflake's SQL API v2 that runs each statement on a real Postgres database.
//!
//! It speaks the documented protocol: `POST /api/v2/statements?requestId=…&async=true` answers
//! `202` with a `statementHandle`; `GET /api/v2/statements/{handle}` answers `202` while the
//! statement runs (and for a scripted number of polls), then `200` with `resultSetMetaData`
//! (`rowType`, `partitionInfo`, `numRows`) and partition 0 as `jsonv2` (every value a string or
//! null); `?partition=N` gives the others, gzip-compressed as Snowflake sends them;
//! `POST …/{handle}/cancel` cancels the statement in Postgres (`pg_cancel_backend`); a SQL error
//! is a `422` with `code`, `sqlState` and `message`; the request's `timeout` becomes Postgres's
//! `statement_timeout` and a `408`. Every request must carry a key-pair JWT signed by the test
//! key, with Snowflake's `iss`/`sub` and an `exp` in the future of the fake's clock, else `401`.
//! `INFORMATION_SCHEMA` and `SHOW PRIMARY KEYS` / `SHOW IMPORTED KEYS` are served from
//! Postgres's catalog, upper-cased like Snowflake's, and `EXPLAIN USING JSON` from its plan.
use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use sqlx::postgres::PgRow;
use sqlx::{Column as _, Connection as _, Executor as _, PgConnection, Row as _, TypeInfo as _};
use threadql::warehouse::snowflake::Clock;
use tokio::sync::{mpsc, watch};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The test key pair (never used anywhere else).
pub const TEST_PRIVATE_KEY: &str = include_str!("../fixtures/snowflake_TEST_ONLY_rsa_key.p8");
const TEST_PUBLIC_KEY: &str = include_str!("../fixtures/snowflake_TEST_ONLY_rsa_key.pub");
/// `openssl pkey -pubout -outform DER | openssl dgst -sha256 -binary | base64` of the test key.
pub const TEST_KEY_FINGERPRINT: &str = "SHA256:oCLmZzrNQ89ksH3E9P+25CFdGUWV0nkM5bUr0arGujc=";
pub const ACCOUNT: &str = "TESTORG-TESTACCOUNT";
pub const USER: &str = "THREADQL_SVC";

/// A clock the test moves; the fake and the warehouse read the same one.
#[derive(Debug, Default)]
pub struct MovableClock {
    ahead: Mutex<Duration>,
}

impl MovableClock {
    pub fn advance(&self, by: Duration) {
        *self.ahead.lock().unwrap() += by;
    }
}

impl Clock for MovableClock {
    fn now(&self) -> SystemTime {
        SystemTime::now() + *self.ahead.lock().unwrap()
    }
}

/// How a statement ended in Postgres, as the fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    Finished,
    /// A Postgres error, with its SQLSTATE (`57014`: cancelled, by `pg_cancel_backend` or
    /// `statement_timeout`) and message.
    Failed {
        sql_state: String,
        message: String,
    },
}

#[derive(Debug, Clone)]
enum Outcome {
    Rows {
        row_type: Vec<Value>,
        rows: Vec<Vec<Option<String>>>,
    },
    Failed {
        sql_state: String,
        message: String,
    },
    TimedOut,
    Cancelled,
}

#[derive(Debug)]
struct Statement {
    sql: String,
    polls_left: usize,
    /// Postgres's process running it, once it runs.
    pid: Option<i32>,
    outcome: Option<Outcome>,
    ended: Option<Ended>,
}

/// What the test scripts.
#[derive(Debug, Clone, Copy)]
struct Script {
    /// `202` answers to polls of each statement before its result is given.
    polls: usize,
    partition_rows: usize,
    /// The next submissions answered `429`.
    throttled: usize,
    /// Whether the request's `timeout` is applied (off: only the client's deadline stops it).
    honour_timeout: bool,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Option<Value>,
    /// `iat` of the request's JWT.
    pub token_issued_at: u64,
}

#[derive(Debug)]
enum Job {
    Run {
        handle: String,
        sql: String,
        timeout_secs: Option<u64>,
    },
    Cancel {
        handle: String,
    },
}

struct Shared {
    database_url: String,
    clock: Arc<MovableClock>,
    key: DecodingKey,
    script: Mutex<Script>,
    statements: Mutex<HashMap<String, Statement>>,
    received: Mutex<Vec<Received>>,
    /// Requests answered `401`, with the `code` of the answer.
    refused: Mutex<Vec<String>>,
    jobs: mpsc::UnboundedSender<Job>,
    /// Bumped whenever a statement starts or ends in Postgres.
    changed: watch::Sender<u64>,
}

pub struct FakeSnowflake {
    server: MockServer,
    shared: Arc<Shared>,
    pub clock: Arc<MovableClock>,
}

impl FakeSnowflake {
    /// A fake serving the Postgres database at `database_url`, where it adds the views of its
    /// `INFORMATION_SCHEMA`.
    pub async fn start(database_url: &str) -> Self {
        let mut conn = PgConnection::connect(database_url).await.unwrap();
        sqlx::raw_sql(INFORMATION_SCHEMA_VIEWS)
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.ok();

        let (jobs, job_queue) = mpsc::unbounded_channel();
        let clock = Arc::new(MovableClock::default());
        let shared = Arc::new(Shared {
            database_url: database_url.to_string(),
            clock: clock.clone(),
            key: DecodingKey::from_rsa_pem(TEST_PUBLIC_KEY.as_bytes()).unwrap(),
            script: Mutex::new(Script {
                polls: 0,
                partition_rows: 1_000,
                throttled: 0,
                honour_timeout: true,
            }),
            statements: Mutex::new(HashMap::new()),
            received: Mutex::new(Vec::new()),
            refused: Mutex::new(Vec::new()),
            jobs,
            changed: watch::channel(0).0,
        });
        // Statements run on the test's runtime; the mock server answers from its own thread.
        tokio::spawn(run_jobs(shared.clone(), job_queue));

        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/v2/statements"))
            .respond_with(Api(shared.clone()))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path_regex(r"^/api/v2/statements/[^/]+$"))
            .respond_with(Api(shared.clone()))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path_regex(r"^/api/v2/statements/[^/]+/cancel$"))
            .respond_with(Api(shared.clone()))
            .mount(&server)
            .await;
        Self { server, shared, clock }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// Each statement answers this many polls with `202` before its result.
    pub fn set_polls(&self, polls: usize) {
        self.shared.script.lock().unwrap().polls = polls;
    }

    pub fn set_partition_rows(&self, rows: usize) {
        self.shared.script.lock().unwrap().partition_rows = rows.max(1);
    }

    /// The next `count` submissions are answered `429`.
    pub fn throttle_next(&self, count: usize) {
        self.shared.script.lock().unwrap().throttled = count;
    }

    /// Stops applying the request's `timeout` (a Snowflake that does not stop the statement).
    pub fn ignore_timeouts(&self) {
        self.shared.script.lock().unwrap().honour_timeout = false;
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// The Snowflake error codes of the requests refused for their token.
    pub fn refused(&self) -> Vec<String> {
        self.shared.refused.lock().unwrap().clone()
    }

    /// The handle of the statement whose text contains `needle`.
    pub fn handle_of(&self, needle: &str) -> Option<String> {
        self.shared
            .statements
            .lock()
            .unwrap()
            .iter()
            .find(|(_, s)| s.sql.contains(needle))
            .map(|(handle, _)| handle.clone())
    }

    /// Waits until a statement whose text contains `needle` runs in Postgres; its handle.
    pub async fn running(&self, needle: &str) -> String {
        let mut changes = self.shared.changed.subscribe();
        let find = || {
            self.shared
                .statements
                .lock()
                .unwrap()
                .iter()
                .find(|(_, s)| s.sql.contains(needle) && s.pid.is_some() && s.ended.is_none())
                .map(|(handle, _)| handle.clone())
        };
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if let Some(handle) = find() {
                    return handle;
                }
                changes.changed().await.unwrap();
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no statement with {needle:?} ran in Postgres"))
    }

    /// Waits until the statement has ended in Postgres; how it ended.
    pub async fn ended(&self, handle: &str) -> Ended {
        let mut changes = self.shared.changed.subscribe();
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let ended = self
                    .shared
                    .statements
                    .lock()
                    .unwrap()
                    .get(handle)
                    .and_then(|s| s.ended.clone());
                if let Some(ended) = ended {
                    return ended;
                }
                changes.changed().await.unwrap();
            }
        })
        .await
        .expect("the statement did not end in Postgres within 30 s")
    }
}

/// Postgres's catalog as Snowflake's `INFORMATION_SCHEMA` shows it: upper-case names,
/// Snowflake's type names and `COMMENT` columns.
const INFORMATION_SCHEMA_VIEWS: &str = "
CREATE SCHEMA sf_information_schema;
-- A name Postgres folded to lower case (unquoted), as Snowflake folds it: to upper case.
CREATE FUNCTION sf_information_schema.folded(name text) RETURNS text LANGUAGE sql IMMUTABLE
    AS $$ SELECT CASE WHEN name = lower(name) THEN upper(name) ELSE name END $$;
CREATE VIEW sf_information_schema.tables AS
SELECT upper(t.table_schema) AS table_schema, sf_information_schema.folded(t.table_name) AS table_name, t.table_type,
       obj_description(format('%I.%I', t.table_schema, t.table_name)::regclass, 'pg_class') AS comment
FROM information_schema.tables t
WHERE t.table_schema NOT IN ('pg_catalog', 'information_schema', 'sf_information_schema');
CREATE VIEW sf_information_schema.columns AS
SELECT upper(c.table_schema) AS table_schema, sf_information_schema.folded(c.table_name) AS table_name,
       sf_information_schema.folded(c.column_name) AS column_name, c.ordinal_position,
       CASE WHEN c.data_type IN ('smallint', 'integer', 'bigint', 'numeric') THEN 'NUMBER'
            WHEN c.data_type IN ('real', 'double precision') THEN 'FLOAT'
            WHEN c.data_type IN ('text', 'character varying', 'character') THEN 'TEXT'
            WHEN c.data_type = 'date' THEN 'DATE'
            WHEN c.data_type = 'timestamp without time zone' THEN 'TIMESTAMP_NTZ'
            WHEN c.data_type = 'timestamp with time zone' THEN 'TIMESTAMP_LTZ'
            WHEN c.data_type = 'boolean' THEN 'BOOLEAN'
            ELSE 'VARIANT' END AS data_type,
       CASE WHEN c.data_type IN ('smallint', 'integer', 'bigint') THEN 38
            WHEN c.data_type = 'numeric' THEN coalesce(c.numeric_precision, 38) END AS numeric_precision,
       CASE WHEN c.data_type IN ('smallint', 'integer', 'bigint') THEN 0
            WHEN c.data_type = 'numeric' THEN coalesce(c.numeric_scale, 0) END AS numeric_scale,
       col_description(format('%I.%I', c.table_schema, c.table_name)::regclass, c.ordinal_position) AS comment
FROM information_schema.columns c
WHERE c.table_schema NOT IN ('pg_catalog', 'information_schema', 'sf_information_schema');
-- SHOW PRIMARY KEYS: one row per key column.
CREATE VIEW sf_information_schema.primary_keys AS
SELECT upper(current_database()) AS database_name, upper(n.nspname) AS schema_name,
       sf_information_schema.folded(t.relname) AS table_name, sf_information_schema.folded(a.attname) AS column_name,
       k.n AS key_sequence, upper(c.conname) AS constraint_name
FROM pg_constraint c
CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(att, n)
JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.att
WHERE c.contype = 'p' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'sf_information_schema');
-- SHOW IMPORTED KEYS: one row per foreign key column.
CREATE VIEW sf_information_schema.imported_keys AS
SELECT upper(pn.nspname) AS pk_schema_name, sf_information_schema.folded(pt.relname) AS pk_table_name,
       sf_information_schema.folded(pa.attname) AS pk_column_name,
       upper(fn.nspname) AS fk_schema_name, sf_information_schema.folded(ft.relname) AS fk_table_name,
       sf_information_schema.folded(fa.attname) AS fk_column_name,
       k.n AS key_sequence, upper(c.conname) AS fk_name
FROM pg_constraint c
CROSS JOIN LATERAL unnest(c.conkey, c.confkey) WITH ORDINALITY AS k(fk_att, pk_att, n)
JOIN pg_class ft ON ft.oid = c.conrelid JOIN pg_namespace fn ON fn.oid = ft.relnamespace
JOIN pg_class pt ON pt.oid = c.confrelid JOIN pg_namespace pn ON pn.oid = pt.relnamespace
JOIN pg_attribute fa ON fa.attrelid = c.conrelid AND fa.attnum = k.fk_att
JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = k.pk_att
WHERE c.contype = 'f';
";

struct Api(Arc<Shared>);

fn error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({"code": code, "message": message, "data": null, "success": false}))
}

impl Respond for Api {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let shared = &self.0;
        let issued_at = match shared.check_token(request) {
            Ok(iat) => iat,
            Err((code, response)) => {
                shared.refused.lock().unwrap().push(code.to_string());
                return response;
            }
        };
        let body: Option<Value> = serde_json::from_slice(&request.body).ok();
        shared.received.lock().unwrap().push(Received {
            method: request.method.to_string(),
            path: request.url.path().to_string(),
            query: request.url.query().unwrap_or_default().to_string(),
            body: body.clone(),
            token_issued_at: issued_at,
        });
        let path = request.url.path().trim_start_matches("/api/v2/statements");
        let query: HashMap<String, String> = request.url.query_pairs().into_owned().collect();
        match (request.method.as_str(), path.split('/').collect::<Vec<_>>().as_slice()) {
            ("POST", [""]) => shared.submit(&query, body),
            ("GET", ["", handle]) => shared.status(handle, query.get("partition")),
            ("POST", ["", handle, "cancel"]) => shared.cancel(handle),
            _ => error(404, "390404", "Not found"),
        }
    }
}

impl Shared {
    /// The JWT of the request, checked as Snowflake checks it; its `iat`.
    #[expect(
        clippy::result_large_err,
        reason = "a refusal is the response itself, built once per request"
    )]
    fn check_token(&self, request: &Request) -> Result<u64, (&'static str, ResponseTemplate)> {
        let refuse = |status: u16, code: &'static str, message: &str| (code, error(status, code, message));
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        if header("x-snowflake-authorization-token-type") != "KEYPAIR_JWT" {
            return Err(refuse(401, "390101", "Authorization token type is not KEYPAIR_JWT."));
        }
        if header("accept") != "application/json" || header("user-agent").is_empty() {
            return Err(refuse(
                400,
                "391904",
                "Accept must be application/json and User-Agent set.",
            ));
        }
        let token = header("authorization");
        let Some(token) = token.strip_prefix("Bearer ") else {
            return Err(refuse(401, "390102", "Authorization header is missing a bearer token."));
        };
        let mut validation = Validation::new(Algorithm::RS256);
        // `exp` is checked against the fake's clock below.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["iss", "sub", "exp", "iat"]);
        let claims = match jsonwebtoken::decode::<Value>(token, &self.key, &validation) {
            Ok(data) => data.claims,
            Err(e) => return Err(refuse(401, "390144", &format!("JWT token is invalid. [{e}]"))),
        };
        let subject = format!("{ACCOUNT}.{USER}");
        let now = self.clock.now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let (iat, exp) = (claims["iat"].as_u64().unwrap_or(0), claims["exp"].as_u64().unwrap_or(0));
        if claims["sub"] != subject.as_str() || claims["iss"] != format!("{subject}.{TEST_KEY_FINGERPRINT}").as_str() {
            return Err(refuse(401, "390144", "JWT token is invalid. [issuer or subject]"));
        }
        if exp <= now || exp.saturating_sub(iat) > 3600 {
            return Err(refuse(
                401,
                "390318",
                "JWT token has expired. The user must authenticate again.",
            ));
        }
        Ok(iat)
    }

    fn submit(&self, query: &HashMap<String, String>, body: Option<Value>) -> ResponseTemplate {
        if query.get("async").map(String::as_str) != Some("true") || !query.contains_key("requestId") {
            return error(400, "391900", "The fake expects requestId and async=true.");
        }
        {
            let mut script = self.script.lock().unwrap();
            if script.throttled > 0 {
                script.throttled -= 1;
                return error(429, "390415", "Too many requests. Please retry later.");
            }
        }
        let Some(body) = body else {
            return error(400, "391901", "The request body is not JSON.");
        };
        let Some(sql) = body["statement"].as_str() else {
            return error(400, "391902", "No statement.");
        };
        if body["parameters"]["MULTI_STATEMENT_COUNT"] != "1" {
            return error(
                422,
                "000008",
                "Actual statement count did not match the desired statement count 1.",
            );
        }
        let handle = uuid::Uuid::new_v4().to_string();
        let script = *self.script.lock().unwrap();
        self.statements.lock().unwrap().insert(
            handle.clone(),
            Statement {
                sql: sql.to_string(),
                polls_left: script.polls,
                pid: None,
                outcome: None,
                ended: None,
            },
        );
        let timeout_secs = body["timeout"].as_u64().filter(|_| script.honour_timeout);
        self.jobs
            .send(Job::Run {
                handle: handle.clone(),
                sql: sql.to_string(),
                timeout_secs,
            })
            .unwrap();
        ResponseTemplate::new(202).set_body_json(json!({
            "code": "333334",
            "message": "Asynchronous execution in progress. Use provided query id to perform query monitoring and management.",
            "statementHandle": handle,
            "statementStatusUrl": format!("/api/v2/statements/{handle}"),
        }))
    }

    fn status(&self, handle: &str, partition: Option<&String>) -> ResponseTemplate {
        let mut statements = self.statements.lock().unwrap();
        let Some(statement) = statements.get_mut(handle) else {
            return error(404, "333333", "Statement not found.");
        };
        let running = ResponseTemplate::new(202).set_body_json(json!({
            "code": "333334",
            "message": "Asynchronous execution in progress.",
            "statementHandle": handle,
            "statementStatusUrl": format!("/api/v2/statements/{handle}"),
        }));
        if partition.is_none() && statement.polls_left > 0 {
            statement.polls_left -= 1;
            return running;
        }
        let partition_rows = self.script.lock().unwrap().partition_rows;
        match &statement.outcome {
            None => running,
            Some(Outcome::Rows { row_type, rows }) => {
                let partitions: Vec<&[Vec<Option<String>>]> = if rows.is_empty() {
                    vec![&rows[..]]
                } else {
                    rows.chunks(partition_rows).collect()
                };
                match partition.map(|p| p.parse::<usize>()) {
                    None => {
                        let info: Vec<Value> = partitions
                            .iter()
                            .map(|p| {
                                let size = serde_json::to_vec(p).unwrap().len();
                                json!({"rowCount": p.len(), "uncompressedSize": size})
                            })
                            .collect();
                        ResponseTemplate::new(200).set_body_json(json!({
                            "resultSetMetaData": {
                                "numRows": rows.len(),
                                "format": "jsonv2",
                                "rowType": row_type,
                                "partitionInfo": info,
                            },
                            "data": partitions[0],
                            "code": "090001",
                            "statementStatusUrl": format!("/api/v2/statements/{handle}"),
                            "requestId": uuid::Uuid::new_v4().to_string(),
                            "sqlState": "00000",
                            "statementHandle": handle,
                            "message": "Statement executed successfully.",
                            "createdOn": 1_700_000_000_000_u64,
                        }))
                    }
                    Some(Ok(n)) if n < partitions.len() => {
                        // Later partitions come gzip-compressed, with only their rows.
                        let body = serde_json::to_vec(&json!({"data": partitions[n]})).unwrap();
                        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                        gzip.write_all(&body).unwrap();
                        ResponseTemplate::new(200)
                            .insert_header("Content-Encoding", "gzip")
                            .insert_header("Content-Type", "application/json")
                            .set_body_bytes(gzip.finish().unwrap())
                    }
                    Some(_) => error(422, "333335", "The partition does not exist."),
                }
            }
            Some(Outcome::Failed { sql_state, message }) => ResponseTemplate::new(422).set_body_json(json!({
                "code": "002003",
                "sqlState": sql_state,
                "message": message,
                "statementHandle": handle,
                "statementStatusUrl": format!("/api/v2/statements/{handle}"),
            })),
            Some(Outcome::TimedOut) => ResponseTemplate::new(408).set_body_json(json!({
                "code": "000630",
                "sqlState": "57014",
                "message": "Statement reached its statement or warehouse timeout of 1 second(s) and was canceled.",
                "statementHandle": handle,
            })),
            Some(Outcome::Cancelled) => ResponseTemplate::new(422).set_body_json(json!({
                "code": "000604",
                "sqlState": "57014",
                "message": "SQL execution canceled",
                "statementHandle": handle,
            })),
        }
    }

    fn cancel(&self, handle: &str) -> ResponseTemplate {
        if !self.statements.lock().unwrap().contains_key(handle) {
            return error(404, "333333", "Statement not found.");
        }
        self.jobs
            .send(Job::Cancel {
                handle: handle.to_string(),
            })
            .unwrap();
        ResponseTemplate::new(200).set_body_json(json!({
            "code": "000000",
            "sqlState": "00000",
            "message": "successfully canceled",
            "statementHandle": handle,
            "statementStatusUrl": format!("/api/v2/statements/{handle}"),
        }))
    }

    fn update(&self, handle: &str, change: impl FnOnce(&mut Statement)) {
        if let Some(statement) = self.statements.lock().unwrap().get_mut(handle) {
            change(statement);
        }
        self.changed.send_modify(|version| *version += 1);
    }
}

fn run_jobs(shared: Arc<Shared>, mut jobs: mpsc::UnboundedReceiver<Job>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        while let Some(job) = jobs.recv().await {
            match job {
                Job::Run {
                    handle,
                    sql,
                    timeout_secs,
                } => {
                    tokio::spawn(run_statement(shared.clone(), handle, sql, timeout_secs));
                }
                Job::Cancel { handle } => {
                    shared.update(&handle, |s| {
                        if s.outcome.is_none() {
                            s.outcome = Some(Outcome::Cancelled);
                        }
                    });
                    tokio::spawn(cancel_until_ended(shared.clone(), handle));
                }
            }
        }
    })
}

fn run_statement(
    shared: Arc<Shared>,
    handle: String,
    sql: String,
    timeout_secs: Option<u64>,
) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let mut conn = PgConnection::connect(&shared.database_url).await.unwrap();
        let timeout_ms = timeout_secs.map(|s| s * 1000).unwrap_or(0);
        let pid = begin(&mut conn, timeout_ms).await;
        shared.update(&handle, |s| s.pid = Some(pid));
        let outcome = execute(&mut conn, &sql).await;
        conn.close().await.ok();
        shared.update(&handle, |s| {
            s.ended = Some(match &outcome {
                Ok(_) => Ended::Finished,
                Err((sql_state, message)) => Ended::Failed {
                    sql_state: sql_state.clone(),
                    message: message.clone(),
                },
            });
            s.outcome = Some(match outcome {
                _ if matches!(s.outcome, Some(Outcome::Cancelled)) => Outcome::Cancelled,
                Ok((row_type, rows)) => Outcome::Rows { row_type, rows },
                Err((state, message)) if state == "57014" && message.contains("statement timeout") => Outcome::TimedOut,
                Err((sql_state, message)) => Outcome::Failed { sql_state, message },
            });
        });
    })
}

/// Sets the statement's timeout and zone; Postgres's process id of the connection.
fn begin(conn: &mut PgConnection, timeout_ms: u64) -> BoxFuture<'_, i32> {
    Box::pin(async move {
        let pid: i32 = (&mut *conn).fetch_one("SELECT pg_backend_pid()").await.unwrap().get(0);
        (&mut *conn)
            .execute(format!("SET statement_timeout = {timeout_ms}; SET TimeZone = 'UTC'").as_str())
            .await
            .unwrap();
        pid
    })
}

/// Cancels the statement in Postgres until it has ended: the process is known a moment before
/// the statement reaches it, and a `pg_cancel_backend` in that moment finds nothing to stop (the
/// statement then ran its full length: 1 in a few CI runs).
fn cancel_until_ended(shared: Arc<Shared>, handle: String) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let mut changes = shared.changed.subscribe();
        loop {
            let (pid, ended) = match shared.statements.lock().unwrap().get(&handle) {
                Some(statement) => (statement.pid, statement.ended.is_some()),
                None => return,
            };
            if ended {
                return;
            }
            if let Some(pid) = pid {
                cancel_backend(&shared.database_url, pid).await;
            }
            // Again on the next change, or after a short while if nothing changes.
            let _ = tokio::time::timeout(Duration::from_millis(50), changes.changed()).await;
        }
    })
}

/// Stops the statement Postgres's process `pid` runs, from a connection of its own.
fn cancel_backend(database_url: &str, pid: i32) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        let mut admin = PgConnection::connect(database_url).await.unwrap();
        (&mut admin)
            .execute(format!("SELECT pg_cancel_backend({pid})").as_str())
            .await
            .unwrap();
        admin.close().await.ok();
    })
}

type Executed = Result<(Vec<Value>, Vec<Vec<Option<String>>>), (String, String)>;

fn database_error(error: sqlx::Error) -> (String, String) {
    match error {
        sqlx::Error::Database(db) => (db.code().unwrap_or_default().to_string(), db.message().to_string()),
        other => ("XX000".into(), other.to_string()),
    }
}

/// Runs a Snowflake statement on Postgres and returns its `rowType` and `jsonv2` rows.
///
/// Boxed (like the fake's other steps on a connection): `tokio::spawn` needs a `Send` future,
/// and a boxed one at a concrete lifetime spares the compiler proving that for sqlx's executors.
fn execute<'a>(conn: &'a mut PgConnection, sql: &'a str) -> BoxFuture<'a, Executed> {
    Box::pin(async move {
        let sql = replace_case_insensitive(
            &folded_for_postgres(sql),
            "INFORMATION_SCHEMA.",
            "sf_information_schema.",
        );
        // The fake serves one schema: the scope of `SHOW … IN SCHEMA` is not read.
        let sql = if strip_prefix_case_insensitive(&sql, "SHOW PRIMARY KEYS ").is_some() {
            "SELECT * FROM sf_information_schema.primary_keys".to_string()
        } else if strip_prefix_case_insensitive(&sql, "SHOW IMPORTED KEYS ").is_some() {
            "SELECT * FROM sf_information_schema.imported_keys".to_string()
        } else {
            sql
        };
        if let Some(query) = strip_prefix_case_insensitive(&sql, "EXPLAIN USING JSON ") {
            return explain(conn, query).await;
        }
        let described = (&mut *conn).describe(&sql).await.map_err(database_error)?;
        let columns: Vec<(String, String)> = described
            .columns()
            .iter()
            .map(|c| (snowflake_name(c.name()), c.type_info().name().to_string()))
            .collect();
        let rows: Vec<PgRow> = (&mut *conn)
            .fetch_all(sqlx::raw_sql(&sql))
            .await
            .map_err(database_error)?;
        // Text protocol: every value arrives as Postgres's text.
        let texts: Vec<Vec<Option<String>>> = rows
            .iter()
            .map(|row| {
                (0..columns.len())
                    .map(|i| row.try_get_unchecked::<Option<String>, _>(i).unwrap())
                    .collect()
            })
            .collect();
        let mut row_type = Vec::new();
        let mut converted: Vec<Vec<Option<String>>> = texts.iter().map(|_| Vec::new()).collect();
        for (index, (name, pg_type)) in columns.iter().enumerate() {
            let column: Vec<Option<&String>> = texts.iter().map(|row| row[index].as_ref()).collect();
            let (kind, scale) = match pg_type.as_str() {
                "INT2" | "INT4" | "INT8" => ("fixed", Some(0)),
                "NUMERIC" => {
                    let scale = column
                        .iter()
                        .flatten()
                        .map(|v| v.split_once('.').map(|(_, f)| f.len()).unwrap_or(0))
                        .max()
                        .unwrap_or(0);
                    ("fixed", Some(scale as i64))
                }
                "FLOAT4" | "FLOAT8" => ("real", None),
                "BOOL" => ("boolean", None),
                "DATE" => ("date", None),
                "TIMESTAMP" => ("timestamp_ntz", Some(9)),
                "TIMESTAMPTZ" => ("timestamp_ltz", Some(9)),
                _ => ("text", None),
            };
            row_type.push(json!({
                "name": name,
                "database": "", "schema": "", "table": "",
                "type": kind,
                "scale": scale,
                "precision": scale.map(|_| 38),
                "nullable": true,
                "byteLength": null, "length": null, "collation": null,
            }));
            for (row, value) in converted.iter_mut().zip(column) {
                row.push(value.map(|text| jsonv2(kind, text)));
            }
        }
        Ok((row_type, converted))
    })
}

/// Postgres's text of a value as Snowflake's `jsonv2` writes it.
fn jsonv2(kind: &str, text: &str) -> String {
    match kind {
        "boolean" => (text == "t").to_string(),
        "date" => {
            let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap();
            (date - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
                .num_days()
                .to_string()
        }
        "timestamp_ntz" => {
            let at = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").unwrap();
            let utc = at.and_utc();
            format!("{}.{:09}", utc.timestamp(), utc.timestamp_subsec_nanos())
        }
        "timestamp_ltz" => {
            let at = chrono::DateTime::parse_from_str(&format!("{text}00"), "%Y-%m-%d %H:%M:%S%.f%z").unwrap();
            format!("{}.{:09}", at.timestamp(), at.timestamp_subsec_nanos())
        }
        _ => text.to_string(),
    }
}

/// Snowflake's plan of `query`, from Postgres's: the bytes the plan reads (its rows times their
/// width at the root) stand in for the micro-partitions' bytes.
fn explain<'a>(conn: &'a mut PgConnection, query: &'a str) -> BoxFuture<'a, Executed> {
    Box::pin(async move {
        let explain = format!("EXPLAIN (FORMAT JSON) {query}");
        let row = (&mut *conn).fetch_one(explain.as_str()).await.map_err(database_error)?;
        let plan: Value = row.try_get(0).map_err(database_error)?;
        let root = &plan[0]["Plan"];
        let bytes = root["Plan Rows"].as_f64().unwrap_or(0.0) * root["Plan Width"].as_f64().unwrap_or(0.0);
        let content = json!({
            "GlobalStats": {"partitionsTotal": 1, "partitionsAssigned": 1, "bytesAssigned": bytes as u64},
            "Operations": [[{"id": 0, "operation": "Result"}]],
        });
        Ok((
            vec![json!({"name": "content", "type": "text", "nullable": true})],
            vec![vec![Some(content.to_string())]],
        ))
    })
}

/// An unquoted name Postgres folded to lower case, as Snowflake would fold it: upper case.
fn snowflake_name(name: &str) -> String {
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        name.to_string()
    } else {
        name.to_ascii_uppercase()
    }
}

/// Snowflake's `"DATE"` is the column created as `date` (unquoted names fold to upper case);
/// Postgres folds them to lower case, so a quoted all-upper-case name becomes lower case, and a
/// quoted all-lower-case one names nothing.
fn folded_for_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_string = !in_string;
                out.push(c);
            }
            '"' if !in_string => {
                let mut name = String::new();
                while let Some(next) = chars.next() {
                    if next == '"' {
                        if chars.peek() == Some(&'"') {
                            chars.next();
                            name.push_str("\"\"");
                            continue;
                        }
                        break;
                    }
                    name.push(next);
                }
                let plain = |upper: bool| {
                    name.chars().any(|c| c.is_ascii_alphabetic())
                        && name.chars().all(|c| {
                            c.is_ascii_digit()
                                || c == '_'
                                || c == '$'
                                || (c.is_ascii_alphabetic() && c.is_ascii_uppercase() == upper)
                        })
                };
                let name = if plain(true) {
                    name.to_ascii_lowercase()
                } else if plain(false) {
                    // Snowflake's `"user"` is not the column created as `user` (that one is
                    // USER): a name that exists nowhere, as in Snowflake.
                    format!("quoted lower case {name}")
                } else {
                    name
                };
                out.push('"');
                out.push_str(&name);
                out.push('"');
            }
            _ => out.push(c),
        }
    }
    out
}

fn replace_case_insensitive(text: &str, from: &str, to: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let needle = from.to_ascii_lowercase();
    let mut out = String::new();
    let mut at = 0;
    while let Some(found) = lower[at..].find(&needle) {
        out.push_str(&text[at..at + found]);
        out.push_str(to);
        at += found + needle.len();
    }
    out.push_str(&text[at..]);
    out
}

fn strip_prefix_case_insensitive<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}
