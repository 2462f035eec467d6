//! One actor per Slack thread. It owns the thread's state, handles its messages one at a time
//! in arrival order, persists a snapshot after every turn and only then posts the answer.
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::FutureExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::backlog::BacklogTicket;
use super::{ThreadMap, ThreadServices};
use crate::domain::Origin;
use crate::domain::QueryResult;
use crate::domain::{Answer, MessageTs, QueryId, Reply, UserId};
use crate::domain::{Command, InFlight, QueryVersion, ThreadKey, ThreadState, Turn};
use crate::domain::{PendingClarification, ProposedQuery};
use crate::interpret::{InterpretError, InterpretRequest, Interpretation};
use crate::render::chart::render_chart;
use crate::store::{AuditRecord, QueryRecord, QueryStatus, StoreError};
use crate::warehouse::WarehouseError;

/// A user's message in this thread.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct UserMessage {
    pub user: UserId,
    pub text: String,
    pub message_ts: MessageTs,
    pub origin: Origin,
    /// Fired once the turn is over (its replies posted or failed): the terminal demo and
    /// benchmarks wait on it; Slack ingress does not.
    pub done: Option<tokio::sync::oneshot::Sender<()>>,
    /// The version a button click is about (the answer it was attached to); `None` means the
    /// thread's current version.
    pub version: Option<usize>,
    /// Set by [`super::ThreadRegistry::dispatch`]: counts this message in the backlog until dropped.
    pub(crate) ticket: Option<BacklogTicket>,
}

impl UserMessage {
    pub fn new(user: &str, text: &str, message_ts: &str, origin: Origin) -> Self {
        Self {
            user: UserId::new(user),
            text: text.to_string(),
            message_ts: MessageTs::new(message_ts),
            origin,
            done: None,
            version: None,
            ticket: None,
        }
    }

    /// Fires `done` when the turn is over.
    pub fn with_done(mut self, done: tokio::sync::oneshot::Sender<()>) -> Self {
        self.done = Some(done);
        self
    }
}

/// How often an actor checks whether it has been idle long enough to passivate.
/// Slack's own limit on a message's text: anything longer is refused with a sentence.
pub const MAX_QUESTION_CHARS: usize = 40_000;

const IDLE_CHECK_EVERY: Duration = Duration::from_secs(5);

pub struct ThreadActor {
    key: ThreadKey,
    services: Arc<ThreadServices>,
    threads: Weak<ThreadMap>,
    state: ThreadState,
    /// Version of the snapshot `state` was read from or written as (0 = none yet).
    snapshot_version: i64,
    /// The snapshot could not be read at start; the next turn tries again before acting.
    needs_reload: bool,
    queue: VecDeque<UserMessage>,
    /// The turn being handled, if any.
    running: Option<RunningTurn>,
    last_activity: Instant,
}

/// Why a running query was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CancelReason {
    /// The user said `cancel`.
    ByUser,
    /// A newer question or refinement arrived while it ran.
    Superseded,
}

/// Stops a turn's query in the warehouse and remembers why.
#[derive(Clone, Default)]
struct CancelSignal {
    token: CancellationToken,
    reason: Arc<std::sync::OnceLock<CancelReason>>,
}

impl CancelSignal {
    fn cancel(&self, reason: CancelReason) {
        // The first reason wins: a supersede after a cancel is still a cancel.
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    fn reason(&self) -> Option<CancelReason> {
        self.reason.get().copied()
    }
}

struct RunningTurn {
    signal: CancelSignal,
    /// Whether the turn runs a warehouse query (so `cancel` and newer questions stop it).
    runs_query: bool,
}

impl ThreadActor {
    /// `new_thread`: the thread starts with the first message, so there is no snapshot to load.
    pub fn new(key: ThreadKey, services: Arc<ThreadServices>, threads: Weak<ThreadMap>, new_thread: bool) -> Self {
        Self {
            key,
            services,
            threads,
            state: ThreadState::default(),
            snapshot_version: 0,
            needs_reload: !new_thread,
            queue: VecDeque::new(),
            running: None,
            last_activity: Instant::now(),
        }
    }

    /// Starts the next queued message, if any and if none is running.
    fn start_next(&mut self, ctx: &mut Context<Self>) {
        if self.running.is_some() {
            return;
        }
        let Some(mut message) = self.queue.pop_front() else {
            return;
        };
        let signal = CancelSignal::default();
        let runs_query = Command::parse(&message.text).runs_query();
        self.running = Some(RunningTurn {
            signal: signal.clone(),
            runs_query,
        });
        let turn = TurnContext {
            key: self.key.clone(),
            services: self.services.clone(),
            state: self.state.clone(),
            snapshot_version: self.snapshot_version,
            needs_reload: self.needs_reload,
            signal,
        };
        let key = self.key.clone();
        let services = self.services.clone();
        // Every log line of the turn (interpreter, warehouse, Slack) carries the thread key.
        let span = tracing::info_span!("turn", thread = %key, user = %message.user);
        // Fired after everything the turn says, the apology for a panic included.
        let done = message.done.take();
        let permits = self.services.turn_permits.clone();
        let turn = async move {
            // Never closed, so the permit always comes; held until the turn is over.
            let _permit = permits.acquire_owned().await.ok();
            turn.run_turn(message).instrument(span).await
        };
        let work = AssertUnwindSafe(turn).catch_unwind().then(move |outcome| async move {
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(_) => {
                    // A bug in one turn must not take the thread down: report it and carry on
                    // from the last durable snapshot.
                    tracing::error!(thread = %key, "A turn panicked; reloading the thread from its snapshot");
                    services.metrics.turns.with_label_values(&["unknown", "panicked"]).inc();
                    let _ = services
                        .replier
                        .reply(&key, Reply::Text("Sorry, something went wrong while handling that message. The thread is intact; please try again.".into()))
                        .await;
                    TurnOutcome { state: None, snapshot_version: None, needs_reload: true }
                }
            };
            if let Some(done) = done {
                let _ = done.send(());
            }
            outcome
        });
        ctx.spawn(work.into_actor(self).map(|outcome, actor, ctx| {
            if let Some(state) = outcome.state {
                actor.state = state;
            }
            if let Some(version) = outcome.snapshot_version {
                actor.snapshot_version = version;
            }
            actor.needs_reload = outcome.needs_reload;
            actor.running = None;
            actor.last_activity = Instant::now();
            actor.start_next(ctx);
        }));
    }

    /// The snapshot says a question was being worked on when the process stopped: tell the
    /// thread it was not answered, and forget it. Holds the mailbox until done.
    fn report_interrupted(&mut self, ctx: &mut Context<Self>) {
        let Some(in_flight) = self.state.in_flight.take() else {
            return;
        };
        let (key, services, state, expected) = (
            self.key.clone(),
            self.services.clone(),
            self.state.clone(),
            self.snapshot_version,
        );
        let work = async move {
            let saved = services.store.save_snapshot(&key, expected, &state).await;
            let text = if in_flight.answered {
                format!(
                    "I was restarted while posting my answer to “{}”; if it isn't above, please ask again.",
                    in_flight.question
                )
            } else {
                format!(
                    "I was restarted while working on “{}”, so it was not answered. Please ask again.",
                    in_flight.question
                )
            };
            if let Err(error) = services.replier.reply(&key, Reply::Text(text)).await {
                tracing::error!(thread = %key, ?error, "Failed to report an interrupted question");
            }
            saved
        };
        ctx.wait(work.into_actor(self).map(|saved, actor, _| match saved {
            Ok(version) => actor.snapshot_version = version,
            Err(error) => {
                tracing::error!(thread = %actor.key, ?error, "Failed to clear an interrupted question");
                actor.needs_reload = true;
            }
        }));
    }

    /// Persisted state makes an idle actor cheap to drop: it passivates after `idle_after`.
    fn start_idle_timer(&self, ctx: &mut Context<Self>) {
        let idle_after = self.services.limits.idle_after;
        ctx.run_interval(IDLE_CHECK_EVERY.min(idle_after), move |actor, ctx| {
            if actor.running.is_none() && actor.queue.is_empty() && actor.last_activity.elapsed() >= idle_after {
                tracing::debug!(thread = %actor.key, "Passivating an idle thread");
                actor.deregister(ctx);
                ctx.stop();
            }
        });
    }

    fn deregister(&self, ctx: &Context<Self>) {
        if let Some(threads) = self.threads.upgrade() {
            let me = ctx.address();
            if threads.remove_if(&self.key, |_, live| *live == me).is_some() {
                self.services.metrics.live_threads.dec();
            }
        }
    }
}

impl Actor for ThreadActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.start_idle_timer(ctx);
        if !self.needs_reload {
            return;
        }
        // Load the snapshot before any message is handled: `wait` holds the mailbox meanwhile.
        let store = self.services.store.clone();
        let key = self.key.clone();
        ctx.wait(async move { store.load_snapshot(&key).await }.into_actor(self).map(
            |loaded, actor, ctx| match loaded {
                Ok(snapshot) => {
                    if let Some(snapshot) = snapshot {
                        actor.state = snapshot.state;
                        actor.snapshot_version = snapshot.version;
                    }
                    actor.needs_reload = false;
                    if actor.state.in_flight.is_some() {
                        actor.report_interrupted(ctx);
                    }
                }
                Err(error) => {
                    tracing::error!(thread = %actor.key, ?error, "Failed to load a thread snapshot; will retry")
                }
            },
        ));
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        self.deregister(ctx);
    }
}

impl Handler<UserMessage> for ThreadActor {
    type Result = ();

    fn handle(&mut self, message: UserMessage, ctx: &mut Self::Context) {
        self.last_activity = Instant::now();
        // Decided on arrival, not when the message's turn comes: the running turn's query is
        // what `cancel` and a newer question are about.
        if let Some(running) = self.running.as_ref().filter(|r| r.runs_query) {
            match Command::parse(&message.text) {
                Command::Cancel => {
                    running.signal.cancel(CancelReason::ByUser);
                    // The cancelled turn says so; this message needs no turn of its own.
                    return;
                }
                Command::Ask(_) => running.signal.cancel(CancelReason::Superseded),
                _ => {}
            }
        }
        self.queue.push_back(message);
        self.start_next(ctx);
    }
}

/// What a finished turn hands back to its actor.
struct TurnOutcome {
    /// The new state, when the turn changed it.
    state: Option<ThreadState>,
    snapshot_version: Option<i64>,
    needs_reload: bool,
}

/// A turn's inputs, owned, so the turn runs as a `'static` future while the actor keeps
/// receiving messages.
struct TurnContext {
    key: ThreadKey,
    services: Arc<ThreadServices>,
    state: ThreadState,
    snapshot_version: i64,
    needs_reload: bool,
    /// Fired when the user cancels or a newer question supersedes this turn.
    signal: CancelSignal,
}

/// A progress message shown when a turn takes longer than `progress_after`.
struct Progress {
    state: Arc<tokio::sync::Mutex<ProgressState>>,
    timer: tokio::task::JoinHandle<()>,
}

enum ProgressState {
    Waiting,
    Shown(String),
    Finished,
}

impl Progress {
    fn start(services: &Arc<ThreadServices>, key: &ThreadKey) -> Self {
        let state = Arc::new(tokio::sync::Mutex::new(ProgressState::Waiting));
        let (shared, services, key) = (state.clone(), services.clone(), key.clone());
        let timer = tokio::spawn(async move {
            tokio::time::sleep(services.limits.progress_after).await;
            // Holding the lock while posting: `finish` waits for the post, so the answer
            // can replace it.
            let mut state = shared.lock().await;
            if matches!(*state, ProgressState::Waiting) {
                *state = match services
                    .replier
                    .progress(&key, "Working on it… this query is taking a while.")
                    .await
                {
                    Ok(Some(handle)) => ProgressState::Shown(handle),
                    Ok(None) => ProgressState::Finished,
                    Err(error) => {
                        tracing::warn!(thread = %key, ?error, "Failed to post a progress message");
                        ProgressState::Finished
                    }
                };
            }
        });
        Self { state, timer }
    }

    /// Stops the timer; returns the progress message to replace, if one was shown.
    async fn finish(self) -> Option<String> {
        let mut state = self.state.lock().await;
        self.timer.abort();
        match std::mem::replace(&mut *state, ProgressState::Finished) {
            ProgressState::Shown(handle) => Some(handle),
            _ => None,
        }
    }
}

/// How many times one question may be interpreted (the first try plus corrections).
const MAX_ATTEMPTS: u32 = 3;

/// Why a query did not produce a result.
struct Failure {
    /// What the user is told.
    reply: Reply,
    /// The guard's or the warehouse's error, for an interpreter that can correct itself.
    error: String,
    /// Whether a corrected query could succeed (not after a timeout or an outage).
    revisable: bool,
    /// A newer question stopped this one.
    superseded: bool,
}

fn interpreter_failure(thread: &ThreadKey, error: InterpretError) -> Reply {
    tracing::error!(%thread, ?error, "The interpreter failed");
    Reply::Text(match error {
        InterpretError::Unavailable(cause) => {
            format!("I can't reach the language model right now ({cause}). Please try again in a minute; this thread is unchanged.")
        }
        InterpretError::Unexpected(_) => "Something went wrong while interpreting that. Please try again.".to_string(),
    })
}

/// The outcome of a warehouse run for a version.
struct Execution {
    result: QueryResult,
    sql: String,
    duration: Duration,
}

impl TurnContext {
    async fn run_turn(mut self, message: UserMessage) -> TurnOutcome {
        let started = Instant::now();
        if self.needs_reload {
            match self.services.store.load_snapshot(&self.key).await {
                Ok(snapshot) => {
                    if let Some(snapshot) = snapshot {
                        self.state = snapshot.state;
                        self.snapshot_version = snapshot.version;
                    }
                    self.needs_reload = false;
                }
                Err(error) => {
                    tracing::error!(thread = %self.key, ?error, "Failed to load a thread snapshot");
                    self.say(Reply::Text("I can't reach my state store right now, so I can't continue this thread. Please try again in a minute.".into())).await;
                    return TurnOutcome {
                        state: None,
                        snapshot_version: None,
                        needs_reload: true,
                    };
                }
            }
        }
        if message.origin == Origin::ThreadReply && !self.state.engaged {
            // A reply in a thread the bot was never asked in: not for us.
            return TurnOutcome {
                state: None,
                snapshot_version: None,
                needs_reload: false,
            };
        }
        let length = message.text.chars().count();
        if length > MAX_QUESTION_CHARS {
            // Refused before the interpreter or the snapshot sees it: nothing that long is a
            // question, and reading it would keep this thread busy for no answer.
            self.say(Reply::Text(format!(
                "That message is {} characters long; I read questions of up to {} characters \
                 (Slack's own message limit). Please ask a shorter question.",
                format_count(length),
                format_count(MAX_QUESTION_CHARS)
            )))
            .await;
            return TurnOutcome {
                state: None,
                snapshot_version: None,
                needs_reload: false,
            };
        }
        self.state.engaged = true;
        self.state.record_turn(Turn {
            user: message.user.clone(),
            text: message.text.clone(),
            message_ts: message.message_ts.clone(),
        });

        let command = Command::parse(&message.text);
        let intent = match &command {
            Command::Help => "help",
            Command::ShowSql => "show_sql",
            Command::ExportCsv => "export_csv",
            Command::Undo => "undo",
            Command::Cancel => "cancel",
            Command::Chart => "chart",
            Command::Explain => "explain",
            Command::Ask(_) => "ask",
        };
        let works = command.runs_query();
        // A button click has no message of its own to mark.
        let reacts = works && self.services.reactions && message.version.is_none() && !message.message_ts.is_empty();
        // Sent alongside the work rather than before it (a Slack round trip the answer need not
        // wait for); awaited before the final reaction so the two keep their order.
        let eyes = reacts.then(|| {
            let (services, key, ts) = (self.services.clone(), self.key.clone(), message.message_ts.clone());
            tokio::spawn(async move {
                if let Err(error) = services.replier.react(&key, &ts, "eyes").await {
                    tracing::warn!(thread = %key, ?error, "Failed to add a reaction");
                }
            })
        });
        if works {
            // Durable before the work starts: if the process dies now, the restarted server
            // finds the question in the snapshot and says it was not answered.
            self.state.in_flight = Some(InFlight {
                question: message.text.clone(),
                answered: false,
            });
            match self
                .services
                .store
                .save_snapshot(&self.key, self.snapshot_version, &self.state)
                .await
            {
                Ok(version) => self.snapshot_version = version,
                Err(error) => {
                    tracing::error!(thread = %self.key, ?error, "Failed to persist a thread snapshot");
                    if !self.already_handled(&message, &error).await {
                        self.say(Reply::Text(
                            "I couldn't save this thread's state, so I didn't start on that. Please try again in a minute."
                                .into(),
                        ))
                        .await;
                    }
                    return TurnOutcome {
                        state: None,
                        snapshot_version: None,
                        needs_reload: true,
                    };
                }
            }
        }
        // A slow turn shows "running…" with a Cancel button, later replaced by the answer.
        let progress = works.then(|| Progress::start(&self.services, &self.key));
        let replies = match command {
            Command::Help => vec![Reply::Text(self.help())],
            Command::ShowSql => self.show_sql(message.version),
            Command::ExportCsv => self.export_csv(&message).await,
            Command::Chart => self.chart(&message).await,
            Command::Explain => vec![self.explain(message.version)],
            Command::Undo => self.undo(&message).await,
            Command::Cancel => vec![Reply::Text(
                "Nothing is running in this thread, so there is nothing to cancel.".into(),
            )],
            Command::Ask(text) => self.ask(&message, &text).await,
        };
        let progress = match progress {
            Some(progress) => progress.finish().await,
            None => None,
        };
        tracing::info!(thread = %self.key, intent, elapsed_ms = started.elapsed().as_millis() as u64, "Turn handled");

        // The answer goes out only once the state it shows is durable. A question that ran a
        // query stays marked until its answer is posted, so a process that dies in between (the
        // outbox may be waiting out a Slack outage) is told on restart instead of going quiet.
        if let Some(in_flight) = self.state.in_flight.as_mut() {
            in_flight.answered = true;
        }
        let version = match self
            .services
            .store
            .save_snapshot(&self.key, self.snapshot_version, &self.state)
            .await
        {
            Ok(version) => version,
            Err(error) => {
                self.services
                    .metrics
                    .turns
                    .with_label_values(&[intent, "not_persisted"])
                    .inc();
                let text = match error {
                    StoreError::StaleSnapshot { .. } => "This thread was changed elsewhere at the same time; I reloaded it. Please send that again.",
                    StoreError::Unexpected(_) => "I couldn't save this thread's state, so I didn't post the answer. Please try again in a minute.",
                };
                tracing::error!(thread = %self.key, ?error, "Failed to persist a thread snapshot");
                if !self.already_handled(&message, &error).await {
                    self.say(Reply::Text(text.into())).await;
                }
                return TurnOutcome {
                    state: None,
                    snapshot_version: None,
                    needs_reload: true,
                };
            }
        };
        // Only text means the question was not answered (not understood, refused, failed).
        let answered = replies.iter().any(|reply| !matches!(reply, Reply::Text(_)));
        let mut replies = replies.into_iter();
        if let Some(progress) = progress {
            if let Some(first) = replies.next() {
                if let Err(error) = self.services.replier.replace(&self.key, &progress, first).await {
                    tracing::error!(thread = %self.key, ?error, "Failed to replace the progress message");
                }
            }
        }
        for reply in replies {
            self.say(reply).await;
        }
        let version = match self.state.in_flight.take() {
            Some(_) => self.clear_in_flight(version).await,
            None => version,
        };
        if let Some(eyes) = eyes {
            let _ = eyes.await;
            self.react(
                &message.message_ts,
                if answered { "white_check_mark" } else { "warning" },
            )
            .await;
        }
        self.services.metrics.turns.with_label_values(&[intent, "ok"]).inc();
        TurnOutcome {
            state: Some(self.state),
            snapshot_version: Some(version),
            needs_reload: false,
        }
    }

    /// After a stale save: whether the newer snapshot already holds this message (Slack
    /// delivered it again, e.g. across a restart without Redis), in which case the turn was
    /// answered before and stays silent.
    /// Saves the state without its in-flight marker once the answer is posted; returns the new
    /// snapshot version (or `version` when the save failed: the restart notice it leaves behind
    /// is the lesser harm).
    async fn clear_in_flight(&self, version: i64) -> i64 {
        match self.services.store.save_snapshot(&self.key, version, &self.state).await {
            Ok(version) => version,
            Err(error) => {
                tracing::warn!(thread = %self.key, ?error, "Failed to clear a posted question's in-flight marker");
                version
            }
        }
    }

    async fn already_handled(&self, message: &UserMessage, error: &StoreError) -> bool {
        if !matches!(error, StoreError::StaleSnapshot { .. }) || message.message_ts.is_empty() {
            return false;
        }
        match self.services.store.load_snapshot(&self.key).await {
            Ok(Some(snapshot)) => snapshot
                .state
                .turns()
                .iter()
                .any(|turn| turn.message_ts == message.message_ts),
            _ => false,
        }
    }

    async fn react(&self, message_ts: &str, emoji: &str) {
        if let Err(error) = self.services.replier.react(&self.key, message_ts, emoji).await {
            tracing::warn!(thread = %self.key, ?error, emoji, "Failed to add a reaction");
        }
    }

    /// The version a command acts on: the one a button was attached to, else the current one.
    fn target(&self, requested: Option<usize>) -> Option<QueryVersion> {
        requested
            .and_then(|number| self.state.version(number))
            .or_else(|| self.state.current())
            .cloned()
    }

    async fn say(&self, reply: Reply) {
        if let Err(error) = self.services.replier.reply(&self.key, reply).await {
            tracing::error!(thread = %self.key, ?error, "Failed to post a reply");
        }
    }

    fn help(&self) -> String {
        format!(
            "{}\n\n*In a thread* you can refine the last answer (`only EMEA`, `by week`, `top 5`, `exclude refunded`, \
             `and by channel`, `remove the region filter`, `last year instead`) and use:\n\
             • `show sql`: the exact SQL of the current answer\n\
             • `export csv`: the full result as a CSV file\n\
             • `undo`: back to the previous version\n\
             • `chart`: the result as a chart\n\
             • `explain`: why the query is what it is\n\
             • `cancel`: stop the query that is running\n\
             • `help`: this message",
            self.services.interpreter.help()
        )
    }

    fn show_sql(&self, requested: Option<usize>) -> Vec<Reply> {
        match self.target(requested).as_ref() {
            Some(version) => match self
                .services
                .guard
                .check(&version.query.sql, self.services.limits.answer_fetch_cap as u64)
            {
                Ok(guarded) => vec![Reply::Sql(guarded.as_str().to_string())],
                Err(_) => vec![Reply::Sql(version.query.sql.clone())],
            },
            None => vec![Reply::Text(
                "There is no query in this thread yet. Ask a question first, e.g. `revenue by region last month`."
                    .into(),
            )],
        }
    }

    async fn ask(&mut self, message: &UserMessage, text: &str) -> Vec<Reply> {
        let today = self.services.today();
        let clarifying = self.state.pending_clarification.take();
        let current = self.state.current().map(|v| v.query.clone());
        // The turn being handled was just recorded; the interpreter gets the ones before it.
        let turns = self.state.turns();
        let history = turns[..turns.len().saturating_sub(1)].to_vec();
        let request = InterpretRequest {
            text,
            current: current.as_ref(),
            today,
            history: &history,
            clarifying: clarifying.as_ref(),
        };
        let interpreter = self.services.interpreter.clone();
        let mut proposed = match interpreter.interpret(request.clone()).await {
            Ok(interpretation) => match self.accept_interpretation(interpretation, text, clarifying.as_ref()) {
                Ok(proposed) => proposed,
                Err(reply) => return vec![reply],
            },
            Err(error) => return vec![interpreter_failure(&self.key, error)],
        };
        let query_id = QueryId::random();
        let mut attempt = 1;
        loop {
            match self
                .execute(
                    message,
                    text,
                    &query_id,
                    &proposed,
                    self.services.limits.answer_fetch_cap,
                )
                .await
            {
                Ok(execution) => {
                    self.record_llm_usage(&query_id, &proposed).await;
                    let version = self.state.push_version(text, proposed, query_id.clone()).number;
                    let summary = self
                        .state
                        .current()
                        .map(|v| v.query.summary.clone())
                        .unwrap_or_default();
                    return vec![self.answer(summary, execution, query_id, version)];
                }
                Err(failure) if failure.superseded => {
                    // The newer message is most likely a refinement of this question: keep the
                    // version (unanswered) so that it has something to refine.
                    self.state.push_version(text, proposed, query_id);
                    return vec![failure.reply];
                }
                Err(failure) if failure.revisable && attempt < MAX_ATTEMPTS => {
                    // Interpreters that can correct themselves (the LLM) see the guard's or the
                    // warehouse's error; the user sees only the final answer or failure.
                    match interpreter.revise(request.clone(), &proposed, &failure.error).await {
                        Ok(Some(interpretation)) => {
                            match self.accept_interpretation(interpretation, text, clarifying.as_ref()) {
                                Ok(revised) => {
                                    proposed = revised;
                                    attempt += 1;
                                }
                                Err(reply) => return vec![reply],
                            }
                        }
                        Ok(None) => return vec![failure.reply],
                        Err(error) => return vec![interpreter_failure(&self.key, error)],
                    }
                }
                Err(failure) => {
                    self.record_llm_usage(&query_id, &proposed).await;
                    return vec![failure.reply];
                }
            }
        }
    }

    /// What the language model spent on this question, summed over its attempts.
    async fn record_llm_usage(&self, query_id: &QueryId, proposed: &ProposedQuery) {
        let Some(usage) = &proposed.usage else { return };
        if let Err(error) = self
            .services
            .store
            .record_llm_usage(query_id, usage, &proposed.explanation)
            .await
        {
            tracing::error!(thread = %self.key, ?error, "Failed to record LLM usage");
        }
        self.services.metrics.llm_attempts.observe(f64::from(usage.attempts));
    }

    /// A query to run, or the reply that ends the turn (a clarifying question is remembered so
    /// the user's answer continues this question).
    fn accept_interpretation(
        &mut self,
        interpretation: Interpretation,
        text: &str,
        clarifying: Option<&PendingClarification>,
    ) -> Result<ProposedQuery, Reply> {
        match interpretation {
            Interpretation::Query(proposed) => Ok(*proposed),
            Interpretation::Clarify(asked) => {
                let question = match clarifying {
                    Some(pending) => format!("{} ({text})", pending.question),
                    None => text.to_string(),
                };
                self.state.pending_clarification = Some(PendingClarification {
                    question,
                    asked: asked.clone(),
                });
                Err(Reply::Text(asked))
            }
            Interpretation::NotUnderstood(explanation) => Err(Reply::Text(explanation)),
        }
    }

    async fn undo(&mut self, message: &UserMessage) -> Vec<Reply> {
        let undone = match message.version {
            Some(number) => self.state.undo_from(number),
            None => self.state.undo(),
        };
        let version = match undone {
            Ok(version) => version.clone(),
            Err(error) => return vec![Reply::Text(format!("Nothing to undo: {error}."))],
        };
        match self
            .execute(
                message,
                &version.question,
                &version.query_id,
                &version.query,
                self.services.limits.answer_fetch_cap,
            )
            .await
        {
            Ok(execution) => {
                let summary = format!("Back to version {}: {}", version.number, version.query.summary);
                vec![self.answer(summary, execution, version.query_id, version.number)]
            }
            Err(failure) => vec![failure.reply],
        }
    }

    fn explain(&self, requested: Option<usize>) -> Reply {
        Reply::Text(match self.target(requested) {
            None => "There is no query in this thread yet. Ask a question first, e.g. `revenue by region last month`."
                .into(),
            Some(version) if version.query.explanation.trim().is_empty() => format!(
                "*{}*\nThis answer comes from the built-in rules over the semantic model: each word of your \
                 question maps to a metric, a breakdown, a filter or a time range. `show sql` shows the exact query.",
                version.query.summary
            ),
            Some(version) => format!("*{}*\n{}", version.query.summary, version.query.explanation),
        })
    }

    async fn chart(&mut self, message: &UserMessage) -> Vec<Reply> {
        let Some(version) = self.target(message.version) else {
            return vec![Reply::Text(
                "There is nothing to chart yet. Ask a question first.".into(),
            )];
        };
        let cap = self.services.limits.answer_fetch_cap;
        let execution = match self
            .execute(message, &version.question, &version.query_id, &version.query, cap)
            .await
        {
            Ok(execution) => execution,
            Err(failure) => return vec![failure.reply],
        };
        let title = version.query.summary.clone();
        // Drawing is CPU work of tens of milliseconds: off the actor's thread.
        let drawn = tokio::task::spawn_blocking(move || render_chart(&execution.result, &title)).await;
        match drawn {
            Ok(Ok(chart)) => vec![Reply::File {
                filename: format!("threadql-{}.png", version.query_id),
                content_type: "image/png".into(),
                bytes: chart.png,
                title: version.query.summary.clone(),
            }],
            Ok(Err(error)) => vec![Reply::Text(error.user_message())],
            Err(error) => {
                tracing::error!(thread = %self.key, %error, "Drawing a chart failed");
                vec![Reply::Text("Sorry, I couldn't draw that chart.".into())]
            }
        }
    }

    async fn export_csv(&mut self, message: &UserMessage) -> Vec<Reply> {
        let Some(version) = self.target(message.version) else {
            return vec![Reply::Text(
                "There is nothing to export yet. Ask a question first.".into(),
            )];
        };
        let cap = self.services.limits.export_max_rows;
        match self
            .execute(message, &version.question, &version.query_id, &version.query, cap)
            .await
        {
            Ok(execution) => {
                let rows = execution.result.rows.len();
                self.audit(
                    message,
                    "csv_exported",
                    format!("query {} ({rows} rows)", version.query_id),
                )
                .await;
                let mut title = format!("{} ({} rows)", version.query.summary, format_count(rows));
                if rows >= cap {
                    title.push_str(&format!(", cut at the export limit of {}", format_count(cap)));
                }
                // Up to the export cap (100,000 rows by default) this is CPU work of a noticeable
                // size: off the actor's thread, as charts are.
                let result = execution.result;
                match tokio::task::spawn_blocking(move || crate::render::csv::to_csv(&result)).await {
                    Ok(bytes) => vec![Reply::File {
                        filename: format!("threadql-{}.csv", version.query_id),
                        content_type: "text/csv".into(),
                        bytes,
                        title,
                    }],
                    Err(error) => {
                        tracing::error!(thread = %self.key, %error, "Writing a CSV export failed");
                        vec![Reply::Text("Sorry, I couldn't write that CSV file.".into())]
                    }
                }
            }
            Err(failure) => vec![failure.reply],
        }
    }

    fn answer(&self, summary: String, execution: Execution, query_id: QueryId, version: usize) -> Reply {
        let total_rows = execution.result.rows.len();
        let _ = execution.sql;
        Reply::Answer(Box::new(Answer {
            summary,
            capped: total_rows >= self.services.limits.answer_fetch_cap,
            total_rows,
            result: execution.result,
            duration: execution.duration,
            query_id,
            version,
        }))
    }

    /// Guards and runs a proposed query, recording it in the query history. A failure comes
    /// back as the reply that explains it.
    async fn execute(
        &self,
        message: &UserMessage,
        question: &str,
        query_id: &QueryId,
        proposed: &ProposedQuery,
        row_cap: usize,
    ) -> Result<Execution, Failure> {
        let services = &self.services;
        let record =
            |status: QueryStatus, sql: &str, duration: Duration, rows: Option<usize>, error: Option<String>| {
                QueryRecord {
                    query_id: query_id.clone(),
                    thread: self.key.clone(),
                    user: message.user.clone(),
                    question: question.to_string(),
                    sql: sql.to_string(),
                    status,
                    duration_ms: duration.as_millis() as i64,
                    row_count: rows.map(|r| r as i64),
                    error,
                }
            };
        let guarded = match services.guard.check(&proposed.sql, row_cap as u64) {
            Ok(guarded) => guarded,
            Err(error) => {
                self.audit(message, "sql_refused", format!("{error}: {}", proposed.sql))
                    .await;
                self.history(record(
                    QueryStatus::Refused,
                    &proposed.sql,
                    Duration::ZERO,
                    None,
                    Some(error.to_string()),
                ))
                .await;
                return Err(Failure {
                    reply: Reply::Text(format!("I won't run that query: {error}.")),
                    error: error.to_string(),
                    revisable: true,
                    superseded: false,
                });
            }
        };
        // Held until the query ends: caps running queries per user and for the warehouse.
        let _slot = match services.slots.acquire(&message.user).await {
            Ok(permit) => permit,
            Err(busy) => {
                let reply = Reply::Text(format!("{busy}, or say `cancel`."));
                return Err(Failure {
                    reply,
                    error: busy.to_string(),
                    revisable: false,
                    superseded: false,
                });
            }
        };
        let started = Instant::now();
        let outcome = services
            .warehouse
            .execute(&guarded, services.limits.query_timeout, &self.signal.token)
            .await;
        let duration = started.elapsed();
        match outcome {
            Ok(mut result) => {
                services
                    .metrics
                    .query_seconds
                    .with_label_values(&["ok"])
                    .observe(duration.as_secs_f64());
                result.apply_formats(&proposed.formats);
                self.history(record(
                    QueryStatus::Succeeded,
                    guarded.as_str(),
                    duration,
                    Some(result.rows.len()),
                    None,
                ))
                .await;
                Ok(Execution {
                    result,
                    sql: guarded.as_str().to_string(),
                    duration,
                })
            }
            Err(error) => {
                let (status, label, revisable) = match &error {
                    WarehouseError::Timeout(_) => (QueryStatus::TimedOut, "timeout", false),
                    WarehouseError::Cancelled => (QueryStatus::Cancelled, "cancelled", false),
                    WarehouseError::Unavailable(_) => (QueryStatus::Failed, "unavailable", false),
                    WarehouseError::Query(_) => (QueryStatus::Failed, "error", true),
                };
                services
                    .metrics
                    .query_seconds
                    .with_label_values(&[label])
                    .observe(duration.as_secs_f64());
                tracing::warn!(thread = %self.key, %error, "A query failed");
                self.history(record(
                    status,
                    guarded.as_str(),
                    duration,
                    None,
                    Some(error.to_string()),
                ))
                .await;
                let superseded = self.signal.reason() == Some(CancelReason::Superseded);
                let reply = match (&error, self.signal.reason()) {
                    (WarehouseError::Cancelled, Some(CancelReason::Superseded)) => {
                        format!("Stopped the query for “{question}”: your newer message replaced it.")
                    }
                    (WarehouseError::Cancelled, _) => format!("Cancelled the query for “{question}”."),
                    _ => format!("The query failed: {error}"),
                };
                Err(Failure {
                    reply: Reply::Text(reply),
                    error: error.to_string(),
                    revisable,
                    superseded,
                })
            }
        }
    }

    async fn history(&self, record: QueryRecord) {
        if let Err(error) = self.services.store.record_query(&record).await {
            tracing::error!(thread = %self.key, ?error, "Failed to record query history");
        }
    }

    async fn audit(&self, message: &UserMessage, action: &str, detail: String) {
        let record = AuditRecord {
            thread: self.key.clone(),
            user: message.user.clone(),
            action: action.to_string(),
            detail,
        };
        if let Err(error) = self.services.store.record_audit(&record).await {
            tracing::error!(thread = %self.key, ?error, "Failed to record an audit row");
        }
    }
}

fn format_count(n: usize) -> String {
    crate::render::number::format_value(
        &crate::domain::Value::Int(n as i64),
        crate::domain::ColumnFormat::Integer,
    )
}
