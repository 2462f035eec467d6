//! A local fake of BigQuery's REST API v2 and Google's OAuth token endpoint, running the SQL on
//! a real Postgres database (one per test).
//!
//! - `POST /token`: OAuth 2.0's JWT-bearer grant. The assertion's RS256 signature is checked
//!   against the test key, and its `aud`, `iss`, `scope`, `kid`, `iat` and `exp` (at most an
//!   hour); answers `{access_token, expires_in, token_type}`.
//! - `POST /bigquery/v2/projects/{p}/queries` (jobs.query), `GET …/queries/{jobId}`
//!   (jobs.getQueryResults), `POST …/jobs/{jobId}/cancel` (jobs.cancel), `POST …/jobs`
//!   (jobs.insert, dry runs only). Each checks the bearer token (401 with Google's error body
//!   when unknown or expired). A job runs on its own Postgres connection; `jobComplete` is
//!   false while it runs, and for a scripted number of polls more. Results come in pages of
//!   `maxResults` rows (or the scripted page size) with a `pageToken`, cells as BigQuery writes
//!   them (strings; TIMESTAMP as float seconds). Cancelling runs `pg_cancel_backend` on the
//!   job's connection. SQL errors are 400 `invalidQuery`; a scripted number of calls are
//!   refused with 429 `rateLimitExceeded` first.
//!
//! BigQuery SQL is translated to Postgres with sqlparser, covering what threadql emits:
//! backtick identifiers, `dataset.table` names, `<dataset>.INFORMATION_SCHEMA.*` (views over
//! Postgres' catalog with BigQuery's column names and type names, created at start),
//! `DATE(x)`, `DATE_TRUNC(d, MONTH|ISOWEEK|QUARTER|YEAR…)`, `CURRENT_DATE()`,
//! `DATE_SUB`/`DATE_ADD(d, INTERVAL n DAY|WEEK|MONTH|QUARTER|YEAR)`, and BigQuery's
//! NULL ordering (first when ascending, last when descending). `jobTimeoutMs` is not applied:
//! the client's own deadline is what stops a job here.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{json, Value as Json};
use sqlparser::ast::{
    visit_expressions_mut, visit_relations_mut, Expr, Ident, ObjectName, ObjectNamePart, OrderByKind, Query, Statement,
    VisitMut, VisitorMut,
};
use sqlparser::dialect::{BigQueryDialect, PostgreSqlDialect};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};
use sqlx::postgres::PgRow;
use sqlx::{Column as _, Connection as _, Executor as _, PgConnection, Row as _, Statement as _, TypeInfo as _};
use threadql_testkit::TestDatabase;
use tokio::sync::watch;

pub const PROJECT: &str = "threadql-test";
pub const DATASET: &str = "shop";
pub const CLIENT_EMAIL: &str = "threadql-reader@threadql-test.iam.gserviceaccount.com";
pub const GOOGLE_TOKEN_AUDIENCE: &str = "https://oauth2.googleapis.com/token";
pub const KEY_ID: &str = "0123456789abcdef0123456789abcdef01234567";
/// A key made for these tests only (`openssl genpkey -algorithm RSA`): it signs nothing else.
pub const TEST_PRIVATE_KEY: &str = include_str!("../fixtures/bigquery_TEST_ONLY_service_account_key.pem");
pub const TEST_PUBLIC_KEY: &str = include_str!("../fixtures/bigquery_TEST_ONLY_service_account_key.pub.pem");

/// What a job's statement gave.
#[derive(Debug, Clone)]
enum Outcome {
    Rows { schema: Json, rows: Vec<Json> },
    Failed(String),
}

#[derive(Debug)]
struct Job {
    /// The job's BigQuery SQL, for jobs.get.
    query: String,
    /// The Postgres backend running the statement, once connected.
    backend_pid: Option<i32>,
    done: watch::Receiver<Option<Outcome>>,
    /// Polls still to be answered `jobComplete: false` after the statement ended.
    incomplete_polls: usize,
    cancelled: bool,
}

/// What tests script and observe.
#[derive(Debug, Default)]
struct State {
    token_lifetime_secs: u64,
    tokens: HashMap<String, Instant>,
    tokens_issued: usize,
    unauthorized: usize,
    incomplete_polls: usize,
    page_size: Option<usize>,
    rate_limited_calls: usize,
    statement_type: Option<String>,
    jobs: HashMap<String, Job>,
    query_requests: Vec<Json>,
    result_requests: usize,
    cancels: Vec<String>,
    dry_runs: Vec<Json>,
}

struct Shared {
    database_url: String,
    base_url: String,
    state: Mutex<State>,
}

/// The running fake.
pub struct FakeBigQuery {
    shared: Arc<Shared>,
    key_file: tempfile::NamedTempFile,
    server: actix_web::dev::ServerHandle,
}

impl FakeBigQuery {
    /// Starts the fake in front of `database` (creating the INFORMATION_SCHEMA views there).
    pub async fn start(database: &TestDatabase) -> Self {
        database.execute(INFORMATION_SCHEMA_VIEWS).await;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            database_url: database.url().to_string(),
            base_url: base_url.clone(),
            state: Mutex::new(State {
                token_lifetime_secs: 3600,
                ..State::default()
            }),
        });
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/token", web::post().to(token))
                .route("/bigquery/v2/projects/{project}/queries", web::post().to(jobs_query))
                .route(
                    "/bigquery/v2/projects/{project}/queries/{job}",
                    web::get().to(get_query_results),
                )
                .route("/bigquery/v2/projects/{project}/jobs", web::post().to(jobs_insert))
                .route("/bigquery/v2/projects/{project}/jobs/{job}", web::get().to(jobs_get))
                .route(
                    "/bigquery/v2/projects/{project}/jobs/{job}/cancel",
                    web::post().to(jobs_cancel),
                )
        })
        .workers(2)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        let key = json!({
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": KEY_ID,
            "private_key": TEST_PRIVATE_KEY,
            "client_email": CLIENT_EMAIL,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": format!("{base_url}/token"),
        });
        let key_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(key_file.path(), key.to_string()).unwrap();
        Self {
            shared,
            key_file,
            server: handle,
        }
    }

    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// The service-account key file naming this fake's token endpoint.
    pub fn key_file(&self) -> &std::path::Path {
        self.key_file.path()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap()
    }

    /// Tokens issued from now on say (and mean) they expire after this many seconds.
    pub fn set_token_lifetime(&self, seconds: u64) {
        self.state().token_lifetime_secs = seconds;
    }

    /// Every token issued so far stops being accepted.
    pub fn expire_tokens(&self) {
        let past = Instant::now();
        for expiry in self.state().tokens.values_mut() {
            *expiry = past;
        }
    }

    pub fn tokens_issued(&self) -> usize {
        self.state().tokens_issued
    }

    /// Calls refused with 401.
    pub fn unauthorized(&self) -> usize {
        self.state().unauthorized
    }

    /// Answer `jobComplete: false` this many times for each job (jobs.query's answer included),
    /// even after its statement ended.
    pub fn set_incomplete_polls(&self, polls: usize) {
        self.state().incomplete_polls = polls;
    }

    /// Pages hold at most this many rows, whatever `maxResults` says.
    pub fn set_page_size(&self, rows: usize) {
        self.state().page_size = Some(rows);
    }

    /// The next `calls` API calls are refused with 429 `rateLimitExceeded`.
    pub fn rate_limit_next(&self, calls: usize) {
        self.state().rate_limited_calls = calls;
    }

    /// Dry runs report this `statementType` whatever the SQL is.
    pub fn report_statement_type(&self, statement_type: &str) {
        self.state().statement_type = Some(statement_type.to_string());
    }

    pub fn query_requests(&self) -> Vec<Json> {
        self.state().query_requests.clone()
    }

    pub fn result_requests(&self) -> usize {
        self.state().result_requests
    }

    pub fn cancels(&self) -> Vec<String> {
        self.state().cancels.clone()
    }

    pub fn dry_runs(&self) -> Vec<Json> {
        self.state().dry_runs.clone()
    }
}

impl Drop for FakeBigQuery {
    /// Stops the server and its worker threads (the command is sent at once; waiting for it is
    /// optional).
    fn drop(&mut self) {
        drop(self.server.stop(false));
    }
}

/// Google's error body.
fn google_error(status: u16, reason: &str, message: &str) -> HttpResponse {
    let google_status = match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        _ => "INTERNAL",
    };
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).json(json!({
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": google_status,
        }
    }))
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    assertion: String,
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    scope: String,
    aud: String,
    iat: u64,
    exp: u64,
}

fn oauth_error(error: &str, description: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"error": error, "error_description": description}))
}

async fn token(shared: web::Data<Shared>, form: web::Form<TokenForm>) -> HttpResponse {
    if form.grant_type != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
        return oauth_error("unsupported_grant_type", "Invalid grant_type");
    }
    let token_uri = format!("{}/token", shared.base_url);
    let mut validation = Validation::new(Algorithm::RS256);
    // Google's audience; google-auth always names it, while threadql names the key file's
    // token_uri (which is Google's in every real key file, and this fake's in the tests').
    validation.set_audience(&[token_uri.as_str(), GOOGLE_TOKEN_AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
    validation.set_issuer(&[CLIENT_EMAIL]);
    let key = DecodingKey::from_rsa_pem(TEST_PUBLIC_KEY.as_bytes()).unwrap();
    let header = match jsonwebtoken::decode_header(&form.assertion) {
        Ok(header) => header,
        Err(error) => return oauth_error("invalid_grant", &format!("Invalid JWT: {error}")),
    };
    if header.kid.as_deref() != Some(KEY_ID) {
        return oauth_error("invalid_grant", "Invalid JWT Signature.");
    }
    let claims = match jsonwebtoken::decode::<Claims>(&form.assertion, &key, &validation) {
        Ok(data) => data.claims,
        Err(error) => return oauth_error("invalid_grant", &format!("Invalid JWT: {error}")),
    };
    let audience_ok = claims.aud == token_uri || claims.aud == GOOGLE_TOKEN_AUDIENCE;
    if claims.exp.saturating_sub(claims.iat) > 3600 || claims.iss != CLIENT_EMAIL || !audience_ok {
        return oauth_error(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes)",
        );
    }
    if !claims
        .scope
        .split(' ')
        .any(|s| s.starts_with("https://www.googleapis.com/auth/bigquery"))
    {
        return oauth_error("invalid_scope", "Invalid OAuth scope or ID token audience provided.");
    }
    let mut state = shared.state.lock().unwrap();
    state.tokens_issued += 1;
    let access_token = format!("ya29.fake-{}-{}", state.tokens_issued, uuid::Uuid::new_v4().simple());
    let lifetime = state.token_lifetime_secs;
    state
        .tokens
        .insert(access_token.clone(), Instant::now() + Duration::from_secs(lifetime));
    HttpResponse::Ok().json(json!({"access_token": access_token, "expires_in": lifetime, "token_type": "Bearer"}))
}

/// The bearer token's check and the scripted rate limit; `Some` is the refusal to send.
fn refuse(shared: &Shared, request: &HttpRequest) -> Option<HttpResponse> {
    let mut state = shared.state.lock().unwrap();
    let bearer = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let valid = bearer
        .and_then(|token| state.tokens.get(token))
        .is_some_and(|expiry| Instant::now() < *expiry);
    if !valid {
        state.unauthorized += 1;
        return Some(google_error(
            401,
            "authError",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or \
             other valid authentication credential.",
        ));
    }
    if state.rate_limited_calls > 0 {
        state.rate_limited_calls -= 1;
        return Some(google_error(
            429,
            "rateLimitExceeded",
            "Exceeded rate limits: too many api requests per user per method for this user_method.",
        ));
    }
    None
}

async fn jobs_query(shared: web::Data<Shared>, request: HttpRequest, body: web::Json<Json>) -> HttpResponse {
    if let Some(refusal) = refuse(&shared, &request) {
        return refusal;
    }
    let body = body.into_inner();
    shared.state.lock().unwrap().query_requests.push(body.clone());
    let sql = body["query"].as_str().unwrap_or_default().to_string();
    if body["useLegacySql"] != json!(false) {
        return google_error(
            400,
            "invalid",
            "threadql's fake speaks standard SQL only (useLegacySql: false)",
        );
    }
    let dataset = body["defaultDataset"]["datasetId"]
        .as_str()
        .unwrap_or(DATASET)
        .to_string();
    let translated = match translate(&sql, &dataset) {
        Ok(translated) => translated,
        Err(message) => return google_error(400, "invalidQuery", &message),
    };
    let job_id = format!("job_{}", uuid::Uuid::new_v4().simple());
    let (done_tx, done) = watch::channel(None);
    let incomplete_polls = {
        let mut state = shared.state.lock().unwrap();
        let incomplete_polls = state.incomplete_polls;
        state.jobs.insert(
            job_id.clone(),
            Job {
                query: sql.clone(),
                backend_pid: None,
                done,
                incomplete_polls,
                cancelled: false,
            },
        );
        incomplete_polls
    };
    let runner = shared.clone().into_inner();
    let id = job_id.clone();
    actix_web::rt::spawn(async move {
        let outcome = run_statement(&runner, &id, &translated).await;
        let _ = done_tx.send(Some(outcome));
    });
    let wait = Duration::from_millis(body["timeoutMs"].as_u64().unwrap_or(10_000));
    let max_results = body["maxResults"].as_u64().map(|n| n as usize);
    let int64_timestamps = body["formatOptions"]["useInt64Timestamp"] == json!(true);
    answer(
        &shared,
        &job_id,
        wait,
        max_results,
        0,
        incomplete_polls,
        int64_timestamps,
        true,
    )
    .await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResultsQuery {
    location: Option<String>,
    page_token: Option<String>,
    timeout_ms: Option<u64>,
    max_results: Option<usize>,
    start_index: Option<usize>,
    #[serde(rename = "formatOptions.useInt64Timestamp")]
    /// Google reads booleans in query strings case-insensitively (Python sends `True`).
    format_options_use_int64_timestamp: Option<String>,
}

async fn get_query_results(
    shared: web::Data<Shared>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    query: web::Query<ResultsQuery>,
) -> HttpResponse {
    if let Some(refusal) = refuse(&shared, &request) {
        return refusal;
    }
    let (_, job_id) = path.into_inner();
    let polls_left = {
        let mut state = shared.state.lock().unwrap();
        state.result_requests += 1;
        match state.jobs.get(&job_id) {
            Some(job) => job.incomplete_polls,
            None => return google_error(404, "notFound", &format!("Not found: Job {PROJECT}:{job_id}")),
        }
    };
    let start = match &query.page_token {
        Some(token) => match token.strip_prefix("page-").and_then(|n| n.parse().ok()) {
            Some(start) => start,
            None => return google_error(400, "invalid", "Invalid page token"),
        },
        None => query.start_index.unwrap_or(0),
    };
    let _ = &query.location;
    let wait = Duration::from_millis(query.timeout_ms.unwrap_or(10_000));
    let int64 = query
        .format_options_use_int64_timestamp
        .as_deref()
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    answer(
        &shared,
        &job_id,
        wait,
        query.max_results,
        start,
        polls_left,
        int64,
        false,
    )
    .await
}

/// jobs.query's or getQueryResults' answer for a job: incomplete while it runs (up to `wait`)
/// and for the scripted polls, then the page of rows from `start`.
#[allow(clippy::too_many_arguments)]
async fn answer(
    shared: &Shared,
    job_id: &str,
    wait: Duration,
    max_results: Option<usize>,
    start: usize,
    polls_left: usize,
    int64_timestamps: bool,
    first_call: bool,
) -> HttpResponse {
    let mut done = {
        let state = shared.state.lock().unwrap();
        match state.jobs.get(job_id) {
            Some(job) => job.done.clone(),
            None => return google_error(404, "notFound", "Not found: Job"),
        }
    };
    let _ = tokio::time::timeout(wait, done.wait_for(Option::is_some)).await;
    let outcome = done.borrow().clone();
    let job_reference = json!({"projectId": PROJECT, "jobId": job_id, "location": "US"});
    let incomplete = json!({
        "kind": "bigquery#getQueryResultsResponse",
        "jobReference": job_reference,
        "jobComplete": false,
    });
    let outcome = match outcome {
        None => return HttpResponse::Ok().json(incomplete),
        Some(_) if polls_left > 0 => {
            if let Some(job) = shared.state.lock().unwrap().jobs.get_mut(job_id) {
                job.incomplete_polls -= 1;
            }
            return HttpResponse::Ok().json(incomplete);
        }
        Some(outcome) => outcome,
    };
    match outcome {
        Outcome::Failed(message) => {
            let cancelled = shared
                .state
                .lock()
                .unwrap()
                .jobs
                .get(job_id)
                .is_some_and(|job| job.cancelled);
            if cancelled {
                google_error(
                    400,
                    "stopped",
                    "Job execution was cancelled: User requested cancellation",
                )
            } else {
                google_error(400, "invalidQuery", &message)
            }
        }
        Outcome::Rows { schema, rows } => {
            let page_size = {
                let state = shared.state.lock().unwrap();
                [state.page_size, max_results].into_iter().flatten().min()
            }
            .unwrap_or(rows.len().max(1));
            let end = (start + page_size).min(rows.len());
            let page: Vec<Json> = rows
                .get(start..end)
                .unwrap_or_default()
                .iter()
                .map(|row| {
                    if int64_timestamps {
                        as_int64_timestamps(row, &schema)
                    } else {
                        row.clone()
                    }
                })
                .collect();
            let mut body = json!({
                "kind": if first_call { "bigquery#queryResponse" } else { "bigquery#getQueryResultsResponse" },
                "schema": schema,
                "jobReference": job_reference,
                "totalRows": rows.len().to_string(),
                "rows": page,
                "totalBytesProcessed": "0",
                "jobComplete": true,
                "cacheHit": false,
            });
            if end < rows.len() {
                body["pageToken"] = json!(format!("page-{end}"));
            }
            HttpResponse::Ok().json(body)
        }
    }
}

/// TIMESTAMP cells as integer microseconds (`formatOptions.useInt64Timestamp`).
fn as_int64_timestamps(row: &Json, schema: &Json) -> Json {
    let mut row = row.clone();
    if let (Some(cells), Some(fields)) = (row["f"].as_array_mut(), schema["fields"].as_array()) {
        for (cell, field) in cells.iter_mut().zip(fields) {
            if field["type"] == "TIMESTAMP" {
                if let Some(seconds) = cell["v"].as_str().and_then(|s| s.parse::<f64>().ok()) {
                    cell["v"] = json!(format!("{}", (seconds * 1e6).round() as i64));
                }
            }
        }
    }
    row
}

async fn jobs_cancel(
    shared: web::Data<Shared>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    if let Some(refusal) = refuse(&shared, &request) {
        return refusal;
    }
    let (_, job_id) = path.into_inner();
    let pid = {
        let mut state = shared.state.lock().unwrap();
        state.cancels.push(job_id.clone());
        match state.jobs.get_mut(&job_id) {
            Some(job) => {
                job.cancelled = true;
                job.backend_pid
            }
            None => return google_error(404, "notFound", &format!("Not found: Job {PROJECT}:{job_id}")),
        }
    };
    if let Some(pid) = pid {
        let mut admin = PgConnection::connect(&shared.database_url).await.unwrap();
        sqlx::query("SELECT pg_cancel_backend($1)")
            .bind(pid)
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.ok();
    }
    HttpResponse::Ok().json(json!({
        "kind": "bigquery#jobCancelResponse",
        "job": {"jobReference": {"projectId": PROJECT, "jobId": job_id, "location": "US"}, "status": {"state": "RUNNING"}},
    }))
}

/// jobs.get: the job's state (Google's Python client asks before reading further pages).
async fn jobs_get(shared: web::Data<Shared>, request: HttpRequest, path: web::Path<(String, String)>) -> HttpResponse {
    if let Some(refusal) = refuse(&shared, &request) {
        return refusal;
    }
    let (_, job_id) = path.into_inner();
    let state = shared.state.lock().unwrap();
    let Some(job) = state.jobs.get(&job_id) else {
        return google_error(404, "notFound", &format!("Not found: Job {PROJECT}:{job_id}"));
    };
    let outcome = job.done.borrow().clone();
    let mut status = json!({"state": if outcome.is_some() { "DONE" } else { "RUNNING" }});
    if let Some(Outcome::Failed(message)) = &outcome {
        status["errorResult"] = json!({"reason": "invalidQuery", "message": message});
        status["errors"] = json!([{"reason": "invalidQuery", "message": message}]);
    }
    let now = Utc::now().timestamp_millis().to_string();
    HttpResponse::Ok().json(json!({
        "kind": "bigquery#job",
        "id": format!("{PROJECT}:US.{job_id}"),
        "jobReference": {"projectId": PROJECT, "jobId": job_id, "location": "US"},
        "configuration": {
            "jobType": "QUERY",
            "query": {
                "query": job.query,
                "useLegacySql": false,
                "destinationTable": {"projectId": PROJECT, "datasetId": "_fake_anonymous", "tableId": format!("anon_{job_id}")},
            },
        },
        "status": status,
        "statistics": {
            "creationTime": now,
            "startTime": now,
            "query": {"statementType": "SELECT", "totalBytesProcessed": "0"},
        },
    }))
}

/// jobs.insert, for dry runs: the bytes the statement's tables hold and its statement type.
async fn jobs_insert(shared: web::Data<Shared>, request: HttpRequest, body: web::Json<Json>) -> HttpResponse {
    if let Some(refusal) = refuse(&shared, &request) {
        return refusal;
    }
    let body = body.into_inner();
    shared.state.lock().unwrap().dry_runs.push(body.clone());
    if body["configuration"]["dryRun"] != json!(true) {
        return google_error(
            400,
            "invalid",
            "threadql's fake runs only dry-run jobs through jobs.insert",
        );
    }
    let sql = body["configuration"]["query"]["query"].as_str().unwrap_or_default();
    let dataset = body["configuration"]["query"]["defaultDataset"]["datasetId"]
        .as_str()
        .unwrap_or(DATASET);
    let parsed = match Parser::parse_sql(&BigQueryDialect {}, sql) {
        Ok(parsed) => parsed,
        Err(error) => return google_error(400, "invalidQuery", &format!("Syntax error: {error}")),
    };
    let statement_type = match parsed.as_slice() {
        [Statement::Query(_)] => "SELECT",
        [Statement::Insert(_)] => "INSERT",
        [Statement::Update { .. }] => "UPDATE",
        [Statement::Delete(_)] => "DELETE",
        [Statement::Merge { .. }] => "MERGE",
        [Statement::CreateTable(_)] => "CREATE_TABLE",
        _ => "SCRIPT",
    };
    let statement_type = shared
        .state
        .lock()
        .unwrap()
        .statement_type
        .clone()
        .unwrap_or_else(|| statement_type.to_string());
    let mut bytes: i64 = 0;
    if statement_type == "SELECT" {
        let translated = match translate(sql, dataset) {
            Ok(translated) => translated,
            Err(message) => return google_error(400, "invalidQuery", &message),
        };
        let mut conn = PgConnection::connect(&shared.database_url).await.unwrap();
        // Planning proves the statement valid without running it, as a dry run does.
        if let Err(error) = conn.prepare(translated.sql.as_str()).await {
            return google_error(400, "invalidQuery", &database_message(&error));
        }
        for table in &translated.tables {
            bytes += sqlx::query_scalar::<_, i64>("SELECT pg_relation_size(to_regclass($1))")
                .bind(table)
                .fetch_one(&mut conn)
                .await
                .unwrap_or(0);
        }
        conn.close().await.ok();
    }
    HttpResponse::Ok().json(json!({
        "kind": "bigquery#job",
        "jobReference": {"projectId": PROJECT, "location": "US"},
        "configuration": body["configuration"],
        "status": {"state": "DONE"},
        "statistics": {
            "creationTime": Utc::now().timestamp_millis().to_string(),
            "totalBytesProcessed": bytes.to_string(),
            "query": {
                "totalBytesProcessed": bytes.to_string(),
                "totalBytesBilled": "0",
                "cacheHit": false,
                "statementType": statement_type,
            },
        },
    }))
}

fn database_message(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(db) => db.message().to_string(),
        other => other.to_string(),
    }
}

/// Runs the statement of job `id` on a connection of its own, noting the backend first so a
/// cancel can reach it.
async fn run_statement(shared: &Shared, id: &str, translated: &Translated) -> Outcome {
    let mut conn = match PgConnection::connect(&shared.database_url).await {
        Ok(conn) => conn,
        Err(error) => return Outcome::Failed(error.to_string()),
    };
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    if let Some(job) = shared.state.lock().unwrap().jobs.get_mut(id) {
        job.backend_pid = Some(pid);
    }
    let outcome = execute(&mut conn, &translated.sql).await;
    conn.close().await.ok();
    outcome
}

async fn execute(conn: &mut PgConnection, sql: &str) -> Outcome {
    let statement = match conn.prepare(sql).await {
        Ok(statement) => statement,
        Err(error) => return Outcome::Failed(database_message(&error)),
    };
    let columns: Vec<(String, String)> = statement
        .columns()
        .iter()
        .map(|c| (c.name().to_string(), c.type_info().name().to_string()))
        .collect();
    let rows = match sqlx::query(sql).fetch_all(&mut *conn).await {
        Ok(rows) => rows,
        Err(error) => return Outcome::Failed(database_message(&error)),
    };
    let fields: Vec<Json> = columns
        .iter()
        .map(|(name, ty)| json!({"name": name, "type": bigquery_type(ty), "mode": "NULLABLE"}))
        .collect();
    let rows = rows
        .iter()
        .map(|row| {
            let cells: Vec<Json> = columns
                .iter()
                .enumerate()
                .map(|(i, (_, ty))| json!({"v": cell(row, i, ty)}))
                .collect();
            json!({"f": cells})
        })
        .collect();
    Outcome::Rows {
        schema: json!({"fields": fields}),
        rows,
    }
}

/// The BigQuery type of a Postgres result column.
fn bigquery_type(postgres: &str) -> &'static str {
    match postgres {
        "INT2" | "INT4" | "INT8" => "INTEGER",
        "FLOAT4" | "FLOAT8" => "FLOAT",
        "NUMERIC" => "NUMERIC",
        "BOOL" => "BOOLEAN",
        "DATE" => "DATE",
        "TIMESTAMP" => "DATETIME",
        "TIMESTAMPTZ" => "TIMESTAMP",
        _ => "STRING",
    }
}

/// A cell as BigQuery writes it: a string (or null) whatever the type.
fn cell(row: &PgRow, i: usize, ty: &str) -> Json {
    let text: Option<String> = match ty {
        "INT2" => row.get::<Option<i16>, _>(i).map(|v| v.to_string()),
        "INT4" => row.get::<Option<i32>, _>(i).map(|v| v.to_string()),
        "INT8" => row.get::<Option<i64>, _>(i).map(|v| v.to_string()),
        "FLOAT4" => row.get::<Option<f32>, _>(i).map(|v| v.to_string()),
        "FLOAT8" => row.get::<Option<f64>, _>(i).map(|v| v.to_string()),
        "NUMERIC" => row.get::<Option<rust_decimal::Decimal>, _>(i).map(|v| v.to_string()),
        "BOOL" => row.get::<Option<bool>, _>(i).map(|v| v.to_string()),
        "DATE" => row.get::<Option<NaiveDate>, _>(i).map(|v| v.to_string()),
        "TIMESTAMP" => row
            .get::<Option<NaiveDateTime>, _>(i)
            .map(|v| v.format("%Y-%m-%dT%H:%M:%S%.f").to_string()),
        // Seconds since the epoch in a float's notation, as BigQuery sends TIMESTAMP.
        "TIMESTAMPTZ" => row
            .get::<Option<DateTime<Utc>>, _>(i)
            .map(|v| format!("{:E}", v.timestamp_micros() as f64 / 1e6)),
        _ => row.try_get_unchecked::<Option<String>, _>(i).ok().flatten(),
    };
    text.map_or(Json::Null, Json::String)
}

/// The Postgres statement, and the tables it reads (for dry runs' byte counts).
#[derive(Debug, Clone)]
pub struct Translated {
    pub sql: String,
    pub tables: Vec<String>,
}

/// BigQuery SQL to Postgres: see the module's documentation for what is covered.
pub fn translate(sql: &str, dataset: &str) -> Result<Translated, String> {
    // Backtick identifiers become double-quoted ones; string literals are re-written with
    // doubled quotes.
    let tokens = Tokenizer::new(&BigQueryDialect {}, sql)
        .tokenize()
        .map_err(|e| format!("Syntax error: {e}"))?;
    let text: String = tokens
        .into_iter()
        .map(|token| match token {
            Token::Word(mut word) if word.quote_style == Some('`') => {
                word.quote_style = Some('"');
                Token::Word(word).to_string()
            }
            // The tokenizer has read BigQuery's escapes; Postgres doubles quotes (and reads a
            // double-quoted string as an identifier).
            Token::SingleQuotedString(text) | Token::DoubleQuotedString(text) => {
                format!("'{}'", text.replace('\'', "''"))
            }
            other => other.to_string(),
        })
        .collect();
    // Parsed as BigQuery first: what BigQuery would refuse is refused here too.
    Parser::parse_sql(&BigQueryDialect {}, sql).map_err(|e| format!("Syntax error: {e}"))?;
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, &text).map_err(|e| format!("Syntax error: {e}"))?;
    let mut tables = Vec::new();
    let _ = visit_relations_mut(&mut statements, |name: &mut ObjectName| {
        let parts: Vec<String> = name
            .0
            .iter()
            .map(|part| match part {
                ObjectNamePart::Identifier(ident) => ident.value.clone(),
                ObjectNamePart::Function(f) => f.name.value.clone(),
            })
            .collect();
        let renamed: Vec<String> = match parts.as_slice() {
            [_, schema, view] if schema.eq_ignore_ascii_case("information_schema") => {
                vec!["bq_information_schema".into(), view.to_lowercase()]
            }
            [project, data_set, table] if data_set == dataset && project == PROJECT => vec![table.clone()],
            [data_set, table] if data_set == dataset => vec![table.clone()],
            _ => parts.clone(),
        };
        if renamed.len() == 1 {
            tables.extend(renamed.first().cloned());
        }
        *name = ObjectName(
            renamed
                .into_iter()
                .map(|part| ObjectNamePart::Identifier(Ident::with_quote('"', part)))
                .collect(),
        );
        std::ops::ControlFlow::<()>::Continue(())
    });
    let mut failure = None;
    let _ = visit_expressions_mut(&mut statements, |expr: &mut Expr| {
        match rewrite_function(expr) {
            Ok(Some(rewritten)) => *expr = rewritten,
            Ok(None) => {}
            Err(message) => failure = Some(message),
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    if let Some(message) = failure {
        return Err(message);
    }
    let _ = statements.visit(&mut BigQueryNullOrder);
    let sql = statements
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    Ok(Translated { sql, tables })
}

/// `DATE(x)`, `DATE_TRUNC(d, PART)`, `CURRENT_DATE()` and `DATE_SUB`/`DATE_ADD` in Postgres'
/// words.
fn rewrite_function(expr: &Expr) -> Result<Option<Expr>, String> {
    let Expr::Function(function) = expr else {
        return Ok(None);
    };
    let name = function.name.to_string().to_ascii_uppercase();
    let args: Vec<String> = match &function.args {
        sqlparser::ast::FunctionArguments::List(list) => list.args.iter().map(ToString::to_string).collect(),
        _ => Vec::new(),
    };
    let text = match (name.as_str(), args.as_slice()) {
        ("DATE", [value]) => format!("CAST({value} AS DATE)"),
        ("CURRENT_DATE", []) => "CURRENT_DATE".to_string(),
        ("DATE_TRUNC", [value, part]) => {
            let part = match part.to_ascii_uppercase().as_str() {
                "DAY" => "day",
                "WEEK(MONDAY)" | "ISOWEEK" => "week",
                "MONTH" => "month",
                "QUARTER" => "quarter",
                "YEAR" | "ISOYEAR" => "year",
                other => return Err(format!("A valid date part name is required but found {other}")),
            };
            format!("CAST(date_trunc('{part}', {value}) AS DATE)")
        }
        // DATE_SUB(d, INTERVAL n DAY): whole units of a calendar date.
        ("DATE_SUB" | "DATE_ADD", [value, interval]) => {
            let (amount, unit) = interval
                .strip_prefix("INTERVAL ")
                .and_then(|rest| rest.rsplit_once(' '))
                .ok_or_else(|| format!("{name} needs an INTERVAL, not {interval}"))?;
            let unit = match unit.to_ascii_uppercase().as_str() {
                "DAY" => "day",
                "WEEK" => "week",
                "MONTH" => "month",
                "QUARTER" => "3 month",
                "YEAR" => "year",
                other => return Err(format!("{name} does not support the {other} date part")),
            };
            let unit = if unit.starts_with('3') {
                unit.to_string()
            } else {
                format!("1 {unit}")
            };
            let op = if name == "DATE_SUB" { "-" } else { "+" };
            format!("CAST({value} {op} ({amount}) * INTERVAL '{unit}' AS DATE)")
        }
        _ => return Ok(None),
    };
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&text)
        .and_then(|mut parser| parser.parse_expr())
        .map(Some)
        .map_err(|e| e.to_string())
}

/// BigQuery puts NULLs first in ascending order and last in descending order; Postgres does the
/// opposite unless told.
struct BigQueryNullOrder;

impl VisitorMut for BigQueryNullOrder {
    type Break = ();

    fn post_visit_query(&mut self, query: &mut Query) -> std::ops::ControlFlow<()> {
        if let Some(order_by) = &mut query.order_by {
            if let OrderByKind::Expressions(expressions) = &mut order_by.kind {
                for expression in expressions {
                    if expression.options.nulls_first.is_none() {
                        expression.options.nulls_first = Some(expression.options.asc != Some(false));
                    }
                }
            }
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// BigQuery's `INFORMATION_SCHEMA` views of a data set, over Postgres' catalog of `public`:
/// BigQuery's column names and type names.
const INFORMATION_SCHEMA_VIEWS: &str = "
CREATE SCHEMA bq_information_schema;
CREATE VIEW bq_information_schema.tables AS
SELECT table_catalog::text, table_schema::text, table_name::text,
       CASE table_type WHEN 'BASE TABLE' THEN 'BASE TABLE' ELSE 'VIEW' END AS table_type
FROM information_schema.tables WHERE table_schema = 'public';
CREATE VIEW bq_information_schema.columns AS
SELECT table_catalog::text, table_schema::text, table_name::text, column_name::text,
       ordinal_position::bigint AS ordinal_position, is_nullable::text,
       CASE data_type
         WHEN 'smallint' THEN 'INT64' WHEN 'integer' THEN 'INT64' WHEN 'bigint' THEN 'INT64'
         WHEN 'numeric' THEN COALESCE('NUMERIC(' || numeric_precision || ', ' || numeric_scale || ')', 'NUMERIC')
         WHEN 'real' THEN 'FLOAT64' WHEN 'double precision' THEN 'FLOAT64'
         WHEN 'text' THEN 'STRING'
         WHEN 'character varying' THEN COALESCE('STRING(' || character_maximum_length || ')', 'STRING')
         WHEN 'boolean' THEN 'BOOL' WHEN 'date' THEN 'DATE'
         WHEN 'timestamp without time zone' THEN 'DATETIME' WHEN 'timestamp with time zone' THEN 'TIMESTAMP'
         ELSE upper(data_type) END AS data_type
FROM information_schema.columns WHERE table_schema = 'public';
CREATE VIEW bq_information_schema.column_field_paths AS
SELECT c.relname::text AS table_name, a.attname::text AS column_name, a.attname::text AS field_path,
       col_description(c.oid, a.attnum) AS description
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'm', 'p') AND a.attnum > 0 AND NOT a.attisdropped;
CREATE VIEW bq_information_schema.table_constraints AS
SELECT constraint_name::text, table_name::text, constraint_type::text
FROM information_schema.table_constraints
WHERE table_schema = 'public' AND constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY');
CREATE VIEW bq_information_schema.key_column_usage AS
SELECT constraint_name::text, table_name::text, column_name::text, ordinal_position::bigint AS ordinal_position,
       position_in_unique_constraint::bigint AS position_in_unique_constraint
FROM information_schema.key_column_usage WHERE table_schema = 'public';
CREATE VIEW bq_information_schema.constraint_column_usage AS
SELECT constraint_name::text, table_name::text, column_name::text
FROM information_schema.constraint_column_usage WHERE table_schema = 'public';
";
