//! The turn service without actix: a real SQLite state store and warehouse in a temporary
//! folder, a scripted interpreter, and a replier that keeps what it is given.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;

use super::*;
use crate::domain::{
    Command, CostLimit, ErrorCode, MessageTs, Origin, ProposedQuery, Reply, ThreadKey, ThreadState, UserId,
};
use crate::interpret::{InterpretError, InterpretRequest, Interpretation, Interpreter};
use crate::limits::QuerySlots;
use crate::metrics::Metrics;
use crate::sql::{Dialect, SqlGuard};
use crate::store::SqliteStore;
use crate::warehouse::sqlite::SqliteWarehouse;

/// Answers from a script: question -> interpretation; a revision is answered with `corrected`.
#[derive(Default)]
struct ScriptedInterpreter {
    script: HashMap<&'static str, Result<Interpretation, &'static str>>,
    corrected: Option<&'static str>,
    /// The errors `revise` was shown.
    revisions: Mutex<Vec<String>>,
}

fn query(sql: &str) -> Interpretation {
    Interpretation::Query(Box::new(ProposedQuery {
        sql: sql.to_string(),
        structured: None,
        summary: format!("Summary of {sql}"),
        formats: vec![],
        explanation: String::new(),
        usage: None,
    }))
}

#[async_trait]
impl Interpreter for ScriptedInterpreter {
    async fn interpret(&self, request: InterpretRequest<'_>) -> Result<Interpretation, InterpretError> {
        match self.script.get(request.text) {
            Some(Ok(interpretation)) => Ok(interpretation.clone()),
            Some(Err(cause)) => Err(InterpretError::Unavailable(cause.to_string())),
            None => Ok(Interpretation::NotUnderstood(format!(
                "I didn't understand \"{}\".",
                request.text
            ))),
        }
    }

    fn help(&self) -> String {
        "Scripted questions only.".into()
    }

    async fn revise(
        &self,
        _request: InterpretRequest<'_>,
        _failed: &ProposedQuery,
        error: &str,
    ) -> Result<Option<Interpretation>, InterpretError> {
        self.revisions.lock().unwrap().push(error.to_string());
        Ok(self.corrected.map(query))
    }
}

#[derive(Default)]
struct RecordingReplier {
    replies: Mutex<Vec<Reply>>,
}

#[async_trait]
impl Replier for RecordingReplier {
    async fn reply(&self, _thread: &ThreadKey, reply: Reply) -> anyhow::Result<()> {
        self.replies.lock().unwrap().push(reply);
        Ok(())
    }
}

struct Harness {
    services: Arc<ThreadServices>,
    replier: Arc<RecordingReplier>,
    interpreter: Arc<ScriptedInterpreter>,
    state_url: String,
    key: ThreadKey,
    state: ThreadState,
    version: i64,
    _folder: tempfile::TempDir,
}

impl Harness {
    async fn new(interpreter: ScriptedInterpreter) -> Self {
        Self::configured(interpreter, |_| {}).await
    }

    /// A harness whose services `configure` adjusts first (limits, a wrapped warehouse).
    async fn configured(interpreter: ScriptedInterpreter, configure: impl FnOnce(&mut ThreadServices)) -> Self {
        let folder = tempfile::tempdir().unwrap();
        let warehouse_path = folder.path().join("warehouse.db");
        let warehouse_url = format!("sqlite://{}?mode=rwc", warehouse_path.display());
        let pool = sqlx::SqlitePool::connect(&warehouse_url).await.unwrap();
        sqlx::query("CREATE TABLE sales (region TEXT NOT NULL, amount INTEGER NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO sales VALUES ('EMEA', 10), ('EMEA', 5), ('APAC', 7)")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let warehouse = Arc::new(SqliteWarehouse::connect(&warehouse_url).await.unwrap());
        let state_url = format!("sqlite://{}", folder.path().join("state.db").display());
        let store = SqliteStore::connect(&state_url).await.unwrap();
        store.migrate().await.unwrap();
        let replier = Arc::new(RecordingReplier::default());
        let interpreter = Arc::new(interpreter);
        let mut services = ThreadServices {
            cluster: None,
            interpreter: interpreter.clone(),
            guard: SqlGuard::new(Dialect::Sqlite, Some(HashSet::from(["sales".to_string()]))),
            warehouse,
            store: Arc::new(store),
            replier: replier.clone(),
            metrics: Metrics::new().unwrap(),
            slots: QuerySlots::new(2, 8),
            limits: TurnLimits {
                max_rows: 20,
                answer_fetch_cap: 1_000,
                export_max_rows: 1_000,
                query_timeout: Duration::from_secs(10),
                idle_after: Duration::from_secs(60),
                progress_after: Duration::from_secs(60),
                confirm_above: None,
                refuse_above: None,
                daily_budgets: Default::default(),
            },
            timezone: chrono_tz::UTC,
            reactions: false,
            turn_permits: crate::turn::TurnQueue::new(4),
            admins: Vec::new(),
            access: Arc::new(crate::access::AccessControl::unrestricted(Dialect::Sqlite)),
        };
        configure(&mut services);
        let services = Arc::new(services);
        Self {
            services,
            replier,
            interpreter,
            state_url,
            key: ThreadKey::parse("T1", "C1", "1700000000.000100").unwrap(),
            state: ThreadState::default(),
            version: 0,
            _folder: folder,
        }
    }

    /// One turn in a thread the bot was asked in; the state carries over to the next.
    async fn say(&mut self, text: &str) -> (Ending, Vec<Reply>) {
        self.turn(text, Origin::Mention).await
    }

    async fn turn(&mut self, text: &str, origin: Origin) -> (Ending, Vec<Reply>) {
        let request = TurnRequest {
            user: UserId::new("U1"),
            text: text.to_string(),
            command: Command::parse(text),
            message_ts: MessageTs::new(format!("1700000000.{:06}", 200 + self.state.turns().len())),
            origin,
            version: None,
            event_id: format!("Ev{}", self.state.turns().len()),
        };
        let turn = TurnContext::new(
            self.key.clone(),
            self.services.clone(),
            self.state.clone(),
            self.version,
            false,
            CancelSignal::default(),
        );
        let outcome = turn.run(request).await;
        if let Some(state) = outcome.state {
            self.state = state;
        }
        if let Some(version) = outcome.snapshot_version {
            self.version = version;
        }
        let replies = std::mem::take(&mut *self.replier.replies.lock().unwrap());
        (outcome.ending, replies)
    }

    async fn state_rows(&self, sql: &str) -> Vec<sqlx::sqlite::SqliteRow> {
        let pool = sqlx::SqlitePool::connect(&self.state_url).await.unwrap();
        sqlx::query(sql).fetch_all(&pool).await.unwrap()
    }
}

fn error_of(replies: &[Reply]) -> &crate::domain::UserError {
    match replies {
        [Reply::Error(error)] => error,
        other => panic!("expected one error reply, got {other:?}"),
    }
}

#[tokio::test]
async fn the_audit_trail_follows_a_question_from_its_words_to_its_rows() {
    let mut script = ScriptedInterpreter::default();
    let sql = "SELECT region, SUM(amount) AS sales FROM sales GROUP BY region ORDER BY region";
    script.script.insert("sales by region", Ok(query(sql)));
    let mut harness = Harness::new(script).await;

    let (ending, _) = harness.say("sales by region").await;
    assert_eq!(ending, Ending::Answered);
    let (ending, _) = harness.say("nonsense words").await;
    assert_eq!(ending, Ending::Failed(ErrorCode::NotUnderstood));

    let rows = harness
        .state_rows("SELECT action, detail, event_id, user_id FROM audit_logs ORDER BY id")
        .await;
    let trail: Vec<(String, String, String)> = rows
        .iter()
        .map(|row| (row.get("action"), row.get("detail"), row.get("event_id")))
        .collect();
    let actions: Vec<&str> = trail.iter().map(|(action, _, _)| action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "question_asked",
            "interpreted",
            "query_executed",
            "question_asked",
            "interpreted"
        ],
        "{trail:#?}"
    );
    assert_eq!(trail[0].1, "sales by region");
    assert_eq!(trail[1].1, format!("query: {sql}"));
    assert!(
        trail[2].1.starts_with("version 1: 2 rows in ") && trail[2].1.contains("sha256:"),
        "{}",
        trail[2].1
    );
    assert_eq!(trail[4].1, "not understood");
    // Each row names the Slack event of its message, and who sent it.
    assert_eq!(trail[0].2, "Ev0");
    assert_eq!(trail[3].2, "Ev1");
    assert!(rows.iter().all(|row| row.get::<String, _>("user_id") == "U1"));
}

#[tokio::test]
async fn a_question_is_answered_recorded_as_a_version_and_persisted() {
    let mut script = ScriptedInterpreter::default();
    script.script.insert(
        "sales by region",
        Ok(query(
            "SELECT region, SUM(amount) AS sales FROM sales GROUP BY region ORDER BY region",
        )),
    );
    let mut harness = Harness::new(script).await;
    let (ending, replies) = harness.say("sales by region").await;
    assert_eq!(ending, Ending::Answered);
    let [Reply::Answer(answer)] = replies.as_slice() else {
        panic!("expected an answer, got {replies:?}");
    };
    assert_eq!(answer.total_rows, 2);
    assert_eq!(answer.version, 1);
    assert_eq!(harness.state.current().map(|v| v.number), Some(1));
    let saved = harness
        .services
        .store
        .load_snapshot(&harness.key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(saved.version, harness.version);
    assert_eq!(
        saved.state.current().map(|v| v.question.as_str()),
        Some("sales by region")
    );
    assert!(
        saved.state.in_flight.is_none(),
        "the in-flight marker is cleared once answered"
    );
}

#[tokio::test]
async fn a_failed_query_shows_its_code_and_sentence_never_the_engines_words() {
    let mut script = ScriptedInterpreter::default();
    script
        .script
        .insert("broken", Ok(query("SELECT no_such_column FROM sales")));
    let mut harness = Harness::new(script).await;
    let (ending, replies) = harness.say("broken").await;
    assert_eq!(ending, Ending::Failed(ErrorCode::QueryFailed));
    let error = error_of(&replies);
    assert_eq!(error.code, ErrorCode::QueryFailed);
    assert!(!error.text().contains("no_such_column"), "{}", error.text());
    // The engine's words are kept for operators, beside the code the user saw.
    let rows = harness
        .state_rows("SELECT status, error, error_code FROM query_history")
        .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<String, _>("status"), "failed");
    assert_eq!(
        rows[0].get::<Option<String>, _>("error_code").as_deref(),
        Some("query_failed")
    );
    assert!(rows[0].get::<String, _>("error").contains("no_such_column"));
    // Nothing to revise for an interpreter that cannot: it was asked once, and said no.
    assert_eq!(harness.interpreter.revisions.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_interpreter_that_corrects_itself_sees_the_engines_words_and_the_user_the_answer() {
    let mut script = ScriptedInterpreter {
        corrected: Some("SELECT SUM(amount) AS total FROM sales"),
        ..Default::default()
    };
    script
        .script
        .insert("total", Ok(query("SELECT SUM(amont) AS total FROM sales")));
    let mut harness = Harness::new(script).await;
    let (ending, replies) = harness.say("total").await;
    assert_eq!(ending, Ending::Answered, "{replies:?}");
    let revisions = harness.interpreter.revisions.lock().unwrap().clone();
    assert_eq!(revisions.len(), 1);
    assert!(revisions[0].contains("amont"), "{revisions:?}");
}

#[tokio::test]
async fn a_refused_statement_is_audited_with_its_code() {
    let mut script = ScriptedInterpreter::default();
    script.script.insert("wipe", Ok(query("DELETE FROM sales")));
    let mut harness = Harness::new(script).await;
    let (ending, replies) = harness.say("wipe").await;
    assert_eq!(ending, Ending::Failed(ErrorCode::QueryRefused));
    assert_eq!(error_of(&replies).code, ErrorCode::QueryRefused);
    let rows = harness
        .state_rows("SELECT action, code, detail FROM audit_logs WHERE code IS NOT NULL")
        .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<String, _>("action"), "sql_refused");
    assert_eq!(
        rows[0].get::<Option<String>, _>("code").as_deref(),
        Some("query_refused")
    );
    assert!(rows[0].get::<String, _>("detail").contains("DELETE FROM sales"));
}

#[tokio::test]
async fn an_unreachable_model_is_named_without_its_error_text() {
    let mut script = ScriptedInterpreter::default();
    script.script.insert(
        "revenue",
        Err("error sending request for url (http://10.0.0.7:8080/v1/chat/completions)"),
    );
    let mut harness = Harness::new(script).await;
    let (ending, replies) = harness.say("revenue").await;
    assert_eq!(ending, Ending::Failed(ErrorCode::LlmUnavailable));
    let text = error_of(&replies).text();
    assert!(text.contains("can't reach the language model"), "{text}");
    assert!(!text.contains("10.0.0.7"), "{text}");
}

#[tokio::test]
async fn a_question_not_understood_keeps_the_interpreters_explanation_under_its_code() {
    let mut harness = Harness::new(ScriptedInterpreter::default()).await;
    let (ending, replies) = harness.say("weather tomorrow").await;
    assert_eq!(ending, Ending::Failed(ErrorCode::NotUnderstood));
    let error = error_of(&replies);
    assert_eq!(
        error.detail.as_deref(),
        Some("I didn't understand \"weather tomorrow\".")
    );
    assert!(harness.state.current().is_none());
}

#[tokio::test]
async fn commands_on_a_thread_without_a_query_say_so_with_a_code() {
    let mut harness = Harness::new(ScriptedInterpreter::default()).await;
    for (text, code) in [
        ("show sql", ErrorCode::NoQueryYet),
        ("chart", ErrorCode::NoQueryYet),
        ("export csv", ErrorCode::NoQueryYet),
        ("explain", ErrorCode::NoQueryYet),
        ("undo", ErrorCode::NothingToUndo),
        ("cancel", ErrorCode::NothingToCancel),
    ] {
        let (ending, replies) = harness.say(text).await;
        assert_eq!(ending, Ending::Failed(code), "{text}");
        assert_eq!(error_of(&replies).code, code, "{text}");
    }
    let (ending, replies) = harness.say("help").await;
    assert_eq!(ending, Ending::Replied);
    assert!(matches!(replies.as_slice(), [Reply::Text(text)] if text.contains("Scripted questions only.")));
}

#[tokio::test]
async fn a_reply_in_a_thread_never_asked_in_is_ignored_and_changes_nothing() {
    let mut harness = Harness::new(ScriptedInterpreter::default()).await;
    let (ending, replies) = harness.turn("lunch anyone?", Origin::ThreadReply).await;
    assert_eq!(ending, Ending::Ignored);
    assert!(replies.is_empty());
    assert!(harness
        .services
        .store
        .load_snapshot(&harness.key)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_clarifying_question_is_a_reply_and_waits_for_its_answer() {
    let mut script = ScriptedInterpreter::default();
    script.script.insert(
        "sales by date",
        Ok(Interpretation::Clarify("Which date: ordered or shipped?".into())),
    );
    let mut harness = Harness::new(script).await;
    let (ending, replies) = harness.say("sales by date").await;
    assert_eq!(ending, Ending::Replied);
    assert_eq!(replies, vec![Reply::Text("Which date: ordered or shipped?".into())]);
    assert_eq!(
        harness
            .state
            .pending_clarification
            .as_ref()
            .map(|p| p.question.as_str()),
        Some("sales by date")
    );
}

#[tokio::test]
async fn a_question_over_slacks_limit_is_refused_before_it_is_recorded() {
    let mut harness = Harness::new(ScriptedInterpreter::default()).await;
    let (ending, replies) = harness.say(&"revenue ".repeat(6_000)).await;
    assert_eq!(ending, Ending::Failed(ErrorCode::QuestionTooLong));
    assert_eq!(
        error_of(&replies).detail.as_deref(),
        Some("That one is 48,000 characters long.")
    );
    assert!(harness.state.turns().is_empty());
}

/// The SQLite warehouse with the estimate a large warehouse would give: its statements run for
/// real, the cost guard sees `estimate`, the tag of each statement is kept, and pages are of one
/// row (as a Snowflake result of many partitions).
struct Estimating {
    inner: Arc<dyn crate::warehouse::Warehouse>,
    estimate: crate::domain::CostEstimate,
    tags: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Estimating {
    fn new(inner: Arc<dyn crate::warehouse::Warehouse>, estimate: crate::domain::CostEstimate) -> Self {
        Self {
            inner,
            estimate,
            tags: Arc::default(),
        }
    }
}

#[async_trait]
impl crate::warehouse::Warehouse for Estimating {
    fn dialect(&self) -> Dialect {
        self.inner.dialect()
    }
    async fn execute(
        &self,
        sql: &crate::sql::GuardedSql,
        timeout: Duration,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<crate::domain::QueryResult, crate::warehouse::WarehouseError> {
        self.tags.lock().unwrap().extend(sql.tag().map(ToString::to_string));
        self.inner.execute(sql, timeout, cancel).await
    }
    async fn execute_pages(
        &self,
        sql: &crate::sql::GuardedSql,
        timeout: Duration,
        cancel: &tokio_util::sync::CancellationToken,
        pages: crate::warehouse::PageSender,
    ) -> Result<usize, crate::warehouse::WarehouseError> {
        let result = self.execute(sql, timeout, cancel).await?;
        for row in &result.rows {
            let page = crate::domain::QueryResult {
                columns: result.columns.clone(),
                rows: vec![row.clone()],
            };
            pages.send(page).await.unwrap();
        }
        Ok(result.rows.len())
    }
    async fn schema(&self) -> Result<Vec<crate::domain::TableSchema>, crate::warehouse::WarehouseError> {
        self.inner.schema().await
    }
    async fn describe(
        &self,
        settings: &crate::warehouse::DescribeSettings,
    ) -> Result<Vec<crate::domain::TableSchema>, crate::warehouse::WarehouseError> {
        self.inner.describe(settings).await
    }
    async fn ping(&self) -> Result<(), crate::warehouse::WarehouseError> {
        self.inner.ping().await
    }
    async fn estimate(
        &self,
        _sql: &crate::sql::GuardedSql,
    ) -> Result<crate::domain::CostEstimate, crate::warehouse::WarehouseError> {
        Ok(self.estimate)
    }
}

/// A thread over a warehouse that estimates 12 GB for every statement, with the cost guard's
/// thresholds at `confirm` and `refuse`.
async fn costly(confirm: Option<CostLimit>, refuse: Option<CostLimit>) -> Harness {
    costly_with(|limits| {
        limits.confirm_above = confirm;
        limits.refuse_above = refuse;
    })
    .await
}

/// A thread over a warehouse that estimates 12 GB for every statement, with `limits` set.
async fn costly_with(limits: impl FnOnce(&mut super::services::TurnLimits)) -> Harness {
    let mut script = ScriptedInterpreter::default();
    script.script.insert(
        "sales by region",
        Ok(query(
            "SELECT region, SUM(amount) AS sales FROM sales GROUP BY region ORDER BY region",
        )),
    );
    Harness::configured(script, |services| {
        services.warehouse = Arc::new(Estimating::new(
            services.warehouse.clone(),
            crate::domain::CostEstimate {
                rows: Some(90_000_000),
                bytes: Some(12 * GB),
            },
        ));
        limits(&mut services.limits);
    })
    .await
}

const GB: u64 = 1024 * 1024 * 1024;

#[tokio::test]
async fn a_costly_query_waits_for_run_anyway_and_then_runs_that_version() {
    let mut harness = costly(Some(CostLimit::Bytes(10 * GB)), None).await;

    let (_, replies) = harness.say("sales by region").await;
    let [Reply::Confirm { text, version }] = replies.as_slice() else {
        panic!("expected the cost guard's question, got {replies:?}");
    };
    assert!(text.contains("12.0 GB") && text.contains("10.0 GB"), "{text}");
    assert_eq!(*version, 1);
    let ran = harness.state_rows("SELECT COUNT(*) AS n FROM query_history").await;
    assert_eq!(ran[0].get::<i64, _>("n"), 0, "nothing ran before the click");
    let held: i64 = harness
        .services
        .metrics
        .cost_guard_decisions
        .with_label_values(&["sqlite", "confirm"])
        .get() as i64;
    assert_eq!(held, 1);

    let (ending, replies) = harness.say("run anyway").await;
    assert_eq!(ending, Ending::Answered);
    let [Reply::Answer(answer)] = replies.as_slice() else {
        panic!("expected the answer after run anyway, got {replies:?}");
    };
    assert_eq!((answer.version, answer.total_rows), (1, 2));
    assert!(harness.state.current().is_some_and(|v| v.confirmed));

    // Consent stays with that version: its export is not held back again.
    let (_, replies) = harness.say("export csv").await;
    assert!(matches!(replies.as_slice(), [Reply::File { .. }]), "{replies:?}");
    assert_eq!(
        harness
            .services
            .metrics
            .warehouse_bytes_estimated
            .with_label_values(&["sqlite"])
            .get(),
        3 * 12 * GB,
        "each statement was estimated first"
    );
}

#[tokio::test]
async fn a_query_above_the_refusal_limit_is_refused_even_when_run_anyway() {
    let mut harness = costly(Some(CostLimit::Bytes(GB)), Some(CostLimit::Rows(50_000_000))).await;

    let (_, replies) = harness.say("sales by region").await;
    let error = error_of(&replies);
    assert_eq!(error.code, ErrorCode::QueryTooExpensive);
    let detail = error.detail.clone().unwrap_or_default();
    assert!(
        detail.contains("90.0M rows") && detail.contains("50.0M rows"),
        "{detail}"
    );

    let (_, replies) = harness.say("run anyway").await;
    assert!(matches!(replies.as_slice(), [Reply::Error(_)]), "{replies:?}");
    let ran = harness
        .state_rows("SELECT COUNT(*) AS n FROM query_history WHERE status = 'succeeded'")
        .await;
    assert_eq!(ran[0].get::<i64, _>("n"), 0);
}

#[tokio::test]
async fn without_thresholds_nothing_is_estimated() {
    let mut harness = costly(None, None).await;
    let (ending, _) = harness.say("sales by region").await;
    assert_eq!(ending, Ending::Answered);
    assert_eq!(
        harness
            .services
            .metrics
            .warehouse_bytes_estimated
            .with_label_values(&["sqlite"])
            .get(),
        0
    );
}

#[tokio::test]
async fn a_users_daily_budget_refuses_the_query_that_would_pass_it() {
    let mut harness = costly_with(|limits| limits.daily_budgets.per_user = Some(30 * GB)).await;

    for _ in 0..2 {
        let (ending, _) = harness.say("sales by region").await;
        assert_eq!(ending, Ending::Answered);
    }
    let (ending, replies) = harness.say("sales by region").await;

    assert_eq!(ending, Ending::Failed(ErrorCode::DailyBudgetExceeded));
    let detail = error_of(&replies).detail.clone().unwrap_or_default();
    assert!(
        detail.contains("12.0 GB") && detail.contains("your reads today come to 24.0 GB") && detail.contains("30.0 GB"),
        "{detail}"
    );
    let charged = harness
        .state_rows("SELECT subject, bytes FROM warehouse_usage ORDER BY subject")
        .await;
    let charged: Vec<(String, i64)> = charged.iter().map(|r| (r.get("subject"), r.get("bytes"))).collect();
    assert_eq!(
        charged,
        [("user:T1:U1".to_string(), (24 * GB) as i64)],
        "the refused query is not charged"
    );
    let audited = harness
        .state_rows(
            "SELECT COUNT(*) AS n FROM audit_logs WHERE action = 'budget_exceeded' AND code = 'daily_budget_exceeded'",
        )
        .await;
    assert_eq!(audited[0].get::<i64, _>("n"), 1);
}

#[tokio::test]
async fn a_channels_daily_budget_counts_every_asker_in_it() {
    let mut harness = costly_with(|limits| limits.daily_budgets.per_channel = Some(20 * GB)).await;

    let (ending, _) = harness.say("sales by region").await;
    assert_eq!(ending, Ending::Answered);
    let (ending, replies) = harness.say("sales by region").await;

    assert_eq!(ending, Ending::Failed(ErrorCode::DailyBudgetExceeded));
    let detail = error_of(&replies).detail.clone().unwrap_or_default();
    assert!(
        detail.contains("this channel's reads today come to 12.0 GB"),
        "{detail}"
    );
}

#[tokio::test]
async fn every_statement_is_tagged_with_its_thread_and_version() {
    let mut script = ScriptedInterpreter::default();
    script
        .script
        .insert("total sales", Ok(query("SELECT SUM(amount) AS sales FROM sales")));
    script.script.insert(
        "by region",
        Ok(query("SELECT region, SUM(amount) AS sales FROM sales GROUP BY region")),
    );
    let tags = Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorded = tags.clone();
    let mut harness = Harness::configured(script, |services| {
        let mut estimating = Estimating::new(services.warehouse.clone(), Default::default());
        estimating.tags = recorded;
        services.warehouse = Arc::new(estimating);
    })
    .await;

    harness.say("total sales").await;
    harness.say("by region").await;
    harness.say("export csv").await;

    let key = "T1/C1/1700000000.000100";
    assert_eq!(
        *tags.lock().unwrap(),
        [
            format!("threadql:{key}:1"),
            format!("threadql:{key}:2"),
            format!("threadql:{key}:2")
        ]
    );
}

#[tokio::test]
async fn an_export_is_written_page_by_page_into_one_file() {
    let mut harness = costly_with(|_| {}).await;
    harness.say("sales by region").await;

    let (ending, replies) = harness.say("export csv").await;

    assert_eq!(ending, Ending::Answered);
    let [Reply::File { bytes, title, .. }] = replies.as_slice() else {
        panic!("expected the CSV file, got {replies:?}");
    };
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert_eq!(text.lines().count(), 3, "the header and one line per page: {text}");
    assert!(text.starts_with("region,sales\n"), "{text}");
    assert!(title.contains("(2 rows)"), "{title}");
}

/// A thread whose asker (U1) has the roles of `roles` (threadql.toml text) over the sales table.
async fn governed(roles: &str) -> Harness {
    let mut script = ScriptedInterpreter::default();
    script.script.insert(
        "sales by region",
        Ok(query(
            "SELECT region, SUM(amount) AS sales FROM sales GROUP BY region ORDER BY region",
        )),
    );
    script.script.insert(
        "regions",
        Ok(query("SELECT DISTINCT region FROM sales ORDER BY region")),
    );
    let roles = crate::access::Roles::from_toml_str(roles, Dialect::Sqlite).unwrap();
    Harness::configured(script, |services| {
        let access = crate::access::AccessControl::new(roles, Arc::new(crate::access::NoGroups), Dialect::Sqlite);
        access.set_schema(&[crate::domain::TableSchema {
            name: "sales".into(),
            columns: ["region", "amount"]
                .into_iter()
                .map(|name| crate::domain::ColumnSchema {
                    name: name.into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }]);
        services.access = Arc::new(access);
    })
    .await
}

#[tokio::test]
async fn a_row_filter_of_the_askers_role_shapes_the_answer() {
    let mut harness = governed(
        r#"
        [[roles]]
        name = "emea"
        members = ["U1"]
        tables = ["sales"]
        row_filters = { sales = "region = 'EMEA'" }
        "#,
    )
    .await;

    let (ending, replies) = harness.say("sales by region").await;

    assert_eq!(ending, Ending::Answered);
    let [Reply::Answer(answer)] = replies.as_slice() else {
        panic!("expected an answer, got {replies:?}");
    };
    assert_eq!(answer.result.rows.len(), 1, "only EMEA: {:?}", answer.result.rows);
    assert_eq!(answer.result.rows[0][0], crate::domain::Value::Text("EMEA".into()));
    let audited = harness
        .state_rows("SELECT detail FROM audit_logs WHERE action = 'policy_applied'")
        .await;
    let detail: String = audited[0].get("detail");
    assert!(
        detail.contains("roles emea") && detail.contains("sales: region = 'EMEA'"),
        "{detail}"
    );
}

#[tokio::test]
async fn a_denied_column_is_refused_and_audited() {
    let mut harness = governed(
        r#"
        [[roles]]
        name = "regions-only"
        members = ["U1"]
        deny_columns = ["sales.amount"]
        "#,
    )
    .await;

    let (ending, replies) = harness.say("sales by region").await;
    assert_eq!(ending, Ending::Failed(ErrorCode::NotPermitted));
    assert!(error_of(&replies)
        .detail
        .as_deref()
        .unwrap_or_default()
        .contains("sales.amount"));
    let refused = harness
        .state_rows("SELECT code FROM audit_logs WHERE action = 'permission_refused'")
        .await;
    assert_eq!(refused[0].get::<String, _>("code"), "not_permitted");

    let (ending, _) = harness.say("regions").await;
    assert_eq!(ending, Ending::Answered, "what the role may read is still answered");
}

#[tokio::test]
async fn someone_in_no_role_is_refused_without_a_default_role() {
    let mut harness = governed(
        r#"
        [[roles]]
        name = "finance"
        members = ["U999"]
        "#,
    )
    .await;

    let (ending, replies) = harness.say("sales by region").await;

    assert_eq!(ending, Ending::Failed(ErrorCode::NotPermitted));
    assert!(error_of(&replies)
        .detail
        .as_deref()
        .unwrap_or_default()
        .contains("no threadql role"));
    let ran = harness.state_rows("SELECT COUNT(*) AS n FROM query_history").await;
    assert_eq!(ran[0].get::<i64, _>("n"), 0, "nothing reached the warehouse");
}

#[tokio::test]
async fn a_role_change_applies_to_the_next_question_without_a_restart() {
    let mut harness = governed(
        r#"
        [[roles]]
        name = "regions-only"
        members = ["U1"]
        deny_columns = ["sales.amount"]
        "#,
    )
    .await;
    let (ending, _) = harness.say("sales by region").await;
    assert_eq!(ending, Ending::Failed(ErrorCode::NotPermitted));

    let widened = "[[roles]]\nname = \"all\"\nmembers = [\"U1\"]\n";
    harness
        .services
        .access
        .set_roles(crate::access::Roles::from_toml_str(widened, Dialect::Sqlite).unwrap());
    let (ending, _) = harness.say("sales by region").await;

    assert_eq!(ending, Ending::Answered);
}
