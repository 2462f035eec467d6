//! One turn from start to end: load the state if needed, record the message, mark the
//! question in flight, handle the command, persist, and only then post the replies.
use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use super::cancel::CancelSignal;
use super::progress::Progress;
use super::services::ThreadServices;
use crate::domain::{Command, ErrorCode, InFlight, MessageTs, Origin, Reply, ThreadKey, ThreadState, Turn, UserId};
use crate::store::{Fence, SnapshotWrite, StoreError};

/// Slack's own limit on a message's text: anything longer is refused with a sentence.
pub const MAX_QUESTION_CHARS: usize = 40_000;

/// A user's message, as the turn reads it.
#[derive(Debug, Clone)]
pub struct TurnRequest {
    pub user: UserId,
    pub text: String,
    /// Parsed once, where the message came in.
    pub command: Command,
    pub message_ts: MessageTs,
    pub origin: Origin,
    /// The version a button click is about; `None` means the thread's current version.
    pub version: Option<usize>,
    /// Slack's event id (empty for a click or the terminal): audit rows carry it.
    pub event_id: String,
}

/// How a turn ended, as its handler says (never guessed from what it posted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// A result, its SQL or a file.
    Answered,
    /// Help, an explanation or a clarifying question.
    Replied,
    /// The message got no answer, for this reason.
    Failed(ErrorCode),
    /// Not for us: a reply in a thread the bot was never asked in.
    Ignored,
}

impl Ending {
    /// The `outcome` label of `threadql_turns_total`.
    pub fn outcome(self) -> &'static str {
        match self {
            Self::Answered => "answered",
            Self::Replied => "replied",
            Self::Failed(code) => code.outcome(),
            Self::Ignored => "ignored",
        }
    }
}

/// What a finished turn hands back to its actor.
#[derive(Debug)]
pub struct TurnOutcome {
    /// The new state, when the turn changed it.
    pub state: Option<ThreadState>,
    pub snapshot_version: Option<i64>,
    pub needs_reload: bool,
    pub ending: Ending,
    /// The thread's snapshot write was refused because another replica owns it now: the
    /// actor hands the message over and stops (see [`crate::store::StoreError::Fenced`]).
    pub fenced: bool,
}

impl TurnOutcome {
    fn unchanged(ending: Ending) -> Self {
        Self {
            state: None,
            snapshot_version: None,
            needs_reload: false,
            ending,
            fenced: false,
        }
    }

    fn reload(ending: Ending) -> Self {
        Self {
            state: None,
            snapshot_version: None,
            needs_reload: true,
            ending,
            fenced: false,
        }
    }

    /// Another replica owns the thread now: nothing was said, the message goes to it.
    fn fenced() -> Self {
        Self {
            fenced: true,
            ..Self::reload(Ending::Failed(ErrorCode::ThreadChangedElsewhere))
        }
    }
}

/// What a command's handler produced: the replies and how the turn ended.
pub(super) struct Handled {
    pub replies: Vec<Reply>,
    pub ending: Ending,
}

impl Handled {
    pub fn answered(reply: Reply) -> Self {
        Self {
            replies: vec![reply],
            ending: Ending::Answered,
        }
    }

    pub fn replied(reply: Reply) -> Self {
        Self {
            replies: vec![reply],
            ending: Ending::Replied,
        }
    }

    pub fn failed(code: ErrorCode) -> Self {
        Self {
            replies: vec![Reply::error(code)],
            ending: Ending::Failed(code),
        }
    }

    /// A failure reply made elsewhere (with its own detail).
    pub fn failure(reply: Reply) -> Self {
        let ending = match &reply {
            Reply::Error(error) => Ending::Failed(error.code),
            _ => Ending::Replied,
        };
        Self {
            replies: vec![reply],
            ending,
        }
    }
}

/// A turn's inputs, owned, so the turn runs as a `'static` future while the actor keeps
/// receiving messages.
pub struct TurnContext {
    pub(super) key: ThreadKey,
    pub(super) services: Arc<ThreadServices>,
    pub(super) state: ThreadState,
    snapshot_version: i64,
    needs_reload: bool,
    /// Fired when the user cancels or a newer question supersedes this turn.
    pub(super) signal: CancelSignal,
    /// What the turn's queries read, for the audience check before anything is posted.
    pub(super) disclosed: std::sync::Mutex<Option<crate::sql::Disclosure>>,
    /// The lease this replica holds the thread under, when several replicas share threads:
    /// every snapshot write carries it.
    fence: Option<Fence>,
}

impl TurnContext {
    /// `snapshot_version`: the version `state` was read from or written as (0 = none yet);
    /// `needs_reload`: `state` could not be read, so the turn reads it before acting.
    pub fn new(
        key: ThreadKey,
        services: Arc<ThreadServices>,
        state: ThreadState,
        snapshot_version: i64,
        needs_reload: bool,
        signal: CancelSignal,
    ) -> Self {
        Self {
            key,
            services,
            state,
            snapshot_version,
            needs_reload,
            signal,
            disclosed: std::sync::Mutex::default(),
            fence: None,
        }
    }

    /// Writes made under `fence` (this replica's lease of the thread).
    pub fn fenced(mut self, fence: Option<Fence>) -> Self {
        self.fence = fence;
        self
    }

    /// Saves the state as the version after `expected`, under the turn's fence.
    async fn save_state(&self, expected: i64) -> Result<i64, StoreError> {
        self.services
            .store
            .save_write(SnapshotWrite {
                thread: self.key.clone(),
                expected,
                state: self.state.clone(),
                fence: self.fence.clone(),
            })
            .await
    }

    pub async fn run(mut self, message: TurnRequest) -> TurnOutcome {
        let started = Instant::now();
        let intent = intent_of(&message.command);
        let outcome = self.run_inner(message, intent).await;
        self.count(intent, outcome.ending);
        self.services
            .metrics
            .turn_seconds
            .with_label_values(&[intent])
            .observe(started.elapsed().as_secs_f64());
        // The thread and the intent are the `turn` span's fields: a line carries them once.
        tracing::info!(
            outcome = outcome.ending.outcome(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Turn handled"
        );
        outcome
    }

    async fn run_inner(&mut self, message: TurnRequest, intent: &'static str) -> TurnOutcome {
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
                    self.say(Reply::error(ErrorCode::StateUnavailable)).await;
                    return TurnOutcome::reload(Ending::Failed(ErrorCode::StateUnavailable));
                }
            }
        }
        // A schedule's button works wherever the schedule's echo is.
        let schedule_button = matches!(message.command, Command::Schedules(_));
        if message.origin == Origin::ThreadReply && !self.state.engaged && !schedule_button {
            // A reply in a thread the bot was never asked in: not for us.
            return TurnOutcome::unchanged(Ending::Ignored);
        }
        // Delivered again (a retry that reached another replica while Redis was down, or the
        // same message forwarded twice): it has its answer already.
        let seen = !message.message_ts.is_empty()
            && self
                .state
                .turns()
                .iter()
                .any(|turn| turn.message_ts == message.message_ts);
        if seen {
            tracing::info!(thread = %self.key, message_ts = %message.message_ts, "A message seen before; not answered again");
            return TurnOutcome::unchanged(Ending::Ignored);
        }
        let length = message.text.chars().count();
        if length > MAX_QUESTION_CHARS {
            // Refused before the interpreter or the snapshot sees it: nothing that long is a
            // question, and reading it would keep this thread busy for no answer.
            self.say(Reply::error_with(
                ErrorCode::QuestionTooLong,
                format!("That one is {} characters long.", format_count(length)),
            ))
            .await;
            return TurnOutcome::unchanged(Ending::Failed(ErrorCode::QuestionTooLong));
        }
        self.state.engaged = true;
        self.state.record_turn(Turn {
            user: message.user.clone(),
            text: message.text.clone(),
            message_ts: message.message_ts.clone(),
        });

        let works = message.command.runs_query();
        // A button click has no message of its own to mark.
        let reacts = works && self.services.reactions && message.version.is_none() && !message.message_ts.is_empty();
        // Sent alongside the work rather than before it (a Slack round trip the answer need not
        // wait for); awaited before the final reaction so the two keep their order.
        let eyes = reacts.then(|| {
            let (services, key, ts) = (self.services.clone(), self.key.clone(), message.message_ts.clone());
            tokio::spawn(
                async move {
                    if let Err(error) = services.replier.react(&key, &ts, "eyes").await {
                        tracing::warn!(thread = %key, ?error, "Failed to add a reaction");
                    }
                }
                // Part of the turn's trace, though it runs beside it.
                .in_current_span(),
            )
        });
        if works {
            // Durable before the work starts: if the process dies now, the restarted server
            // finds the question in the snapshot and says it was not answered.
            self.state.in_flight = Some(InFlight {
                question: message.text.clone(),
                answered: false,
            });
            match self.save_state(self.snapshot_version).await {
                Ok(version) => self.snapshot_version = version,
                Err(StoreError::Fenced { .. }) => return TurnOutcome::fenced(),
                Err(error) => {
                    tracing::error!(thread = %self.key, ?error, "Failed to persist a thread snapshot");
                    if !self.already_handled(&message, &error).await {
                        self.say(Reply::error(ErrorCode::StateNotSaved)).await;
                    }
                    return TurnOutcome::reload(Ending::Failed(ErrorCode::StateNotSaved));
                }
            }
        }
        // A slow turn shows "running…" with a Cancel button, later replaced by the answer.
        let progress = works.then(|| Progress::start(&self.services, &self.key));
        let handled = match &message.command {
            Command::Help => self.help(&message).await,
            Command::ShowSql => self.show_sql(message.version),
            Command::ExportCsv => self.export_csv(&message).await,
            Command::Chart => self.chart(&message).await,
            Command::Explain => self.explain(message.version),
            Command::WhyThisResult => self.why_this_result(&message).await,
            Command::Undo => self.undo(&message).await,
            Command::Cancel => Handled::failed(ErrorCode::NothingToCancel),
            Command::RunAnyway => self.run_anyway(&message).await,
            Command::Schedule(text) => self.schedule(&message, text).await,
            Command::Schedules(command) => self.manage_schedules(&message, command).await,
            Command::Ask(text) => self.ask(&message, text).await,
        };
        let progress = match progress {
            Some(progress) => progress.finish().await,
            None => None,
        };

        // The answer goes out only once the state it shows is durable. A question that ran a
        // query stays marked until its answer is posted, so a process that dies in between (the
        // outbox may be waiting out a Slack outage) is told on restart instead of going quiet.
        if let Some(in_flight) = self.state.in_flight.as_mut() {
            in_flight.answered = true;
        }
        let version = match self.save_state(self.snapshot_version).await {
            Ok(version) => version,
            // Posts no answer: the thread's new owner answers. (A "running…" notice a slow
            // turn showed stays; the new owner's answer follows it.)
            Err(StoreError::Fenced { .. }) => return TurnOutcome::fenced(),
            Err(error) => {
                let code = match error {
                    StoreError::StaleSnapshot { .. } | StoreError::Fenced { .. } => ErrorCode::ThreadChangedElsewhere,
                    StoreError::Unexpected(_) => ErrorCode::StateNotSaved,
                };
                tracing::error!(thread = %self.key, ?error, intent, "Failed to persist a thread snapshot");
                if !self.already_handled(&message, &error).await {
                    self.say(Reply::error(code)).await;
                }
                return TurnOutcome::reload(Ending::Failed(code));
            }
        };
        let Handled { replies, ending } = handled;
        let replies = self.for_audience(&message, replies).await;
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
            let mark = if ending == Ending::Answered {
                "white_check_mark"
            } else {
                "warning"
            };
            self.react(&message.message_ts, mark).await;
        }
        TurnOutcome {
            state: Some(std::mem::take(&mut self.state)),
            snapshot_version: Some(version),
            needs_reload: false,
            ending,
            fenced: false,
        }
    }

    fn count(&self, intent: &str, ending: Ending) {
        self.services
            .metrics
            .turns
            .with_label_values(&[intent, ending.outcome()])
            .inc();
    }

    /// Saves the state without its in-flight marker once the answer is posted; returns the new
    /// snapshot version (or `version` when the save failed: the restart notice it leaves behind
    /// is the lesser harm).
    async fn clear_in_flight(&self, version: i64) -> i64 {
        match self.save_state(version).await {
            Ok(version) => version,
            Err(error) => {
                tracing::warn!(thread = %self.key, ?error, "Failed to clear a posted question's in-flight marker");
                version
            }
        }
    }

    /// After a stale save: whether the newer snapshot already holds this message (Slack
    /// delivered it again, e.g. across a restart without Redis), in which case the turn was
    /// answered before and stays silent.
    async fn already_handled(&self, message: &TurnRequest, error: &StoreError) -> bool {
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

    pub(super) async fn say(&self, reply: Reply) {
        if let Err(error) = self.services.replier.reply(&self.key, reply).await {
            tracing::error!(thread = %self.key, ?error, "Failed to post a reply");
        }
    }
}

/// The `intent` label of `threadql_turns_total`.
pub fn intent_of(command: &Command) -> &'static str {
    match command {
        Command::Help => "help",
        Command::ShowSql => "show_sql",
        Command::ExportCsv => "export_csv",
        Command::Undo => "undo",
        Command::Cancel => "cancel",
        Command::Chart => "chart",
        Command::Explain => "explain",
        Command::WhyThisResult => "why_this_result",
        Command::RunAnyway => "run_anyway",
        Command::Schedule(_) => "schedule",
        Command::Schedules(_) => "schedules",
        Command::Ask(_) => "ask",
    }
}

pub(super) fn format_count(n: usize) -> String {
    crate::render::number::format_value(
        &crate::domain::Value::Int(n as i64),
        crate::domain::ColumnFormat::Integer,
    )
}

/// `text` with a capital first letter and a full stop: error messages of our own, shown as a
/// reply's detail.
pub(super) fn as_sentence(text: &str) -> String {
    let mut chars = text.trim().chars();
    let mut sentence: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !sentence.ends_with(['.', '!', '?']) {
        sentence.push('.');
    }
    sentence
}
