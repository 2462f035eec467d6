//! One actor per Slack thread. It owns the thread's state, handles its messages one at a time
//! in arrival order, persists a snapshot after every turn and only then posts the answer.
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::FutureExt;
use tracing::Instrument;

use super::backlog::{close_mailbox, Backlog, BacklogTicket};
use super::ThreadMap;
use crate::cluster::ForwardedMessage;
use crate::domain::{Command, ErrorCode, MessageTs, Origin, Reply, ThreadKey, ThreadState, UserId};
use crate::store::{Claim, Fence, SnapshotWrite};
use crate::telemetry::TraceParent;
use crate::turn::{
    intent_of, CancelReason, CancelSignal, Ending, ThreadServices, TurnContext, TurnOutcome, TurnPermit, TurnRequest,
};

/// A user's message in this thread.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct UserMessage {
    pub user: UserId,
    pub text: String,
    /// Parsed once, on arrival: the actor (for `cancel` and supersedes) and the turn read it.
    pub command: Command,
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
    /// Slack's event id, when the message came as an event (trace attribute).
    pub event_id: String,
    /// The trace of the ingress span the message was taken in: the turn's span is its child, so
    /// one trace runs from ingress to the posted answer across the actor hop. The default starts
    /// a trace of its own.
    pub trace: TraceParent,
    /// The turn's permit, when the message waited for it before its thread's actor was started
    /// (see [`super::ThreadRegistry`]); other messages take theirs when their turn comes.
    pub(crate) permit: Option<TurnPermit>,
}

impl UserMessage {
    /// The turn's view of the message (the actor keeps `done` and the backlog ticket).
    fn into_request(self) -> TurnRequest {
        TurnRequest {
            user: self.user,
            text: self.text,
            command: self.command,
            message_ts: self.message_ts,
            origin: self.origin,
            version: self.version,
            event_id: self.event_id,
        }
    }

    pub fn new(user: &str, text: &str, message_ts: &str, origin: Origin) -> Self {
        Self {
            user: UserId::new(user),
            text: text.to_string(),
            command: Command::parse(text),
            message_ts: MessageTs::new(message_ts),
            origin,
            done: None,
            version: None,
            ticket: None,
            event_id: String::new(),
            trace: TraceParent::default(),
            permit: None,
        }
    }

    /// Fires `done` when the turn is over.
    pub fn with_done(mut self, done: tokio::sync::oneshot::Sender<()>) -> Self {
        self.done = Some(done);
        self
    }

    /// A message another replica forwarded to this one, the thread's owner.
    pub fn forwarded(message: ForwardedMessage) -> (ThreadKey, Self) {
        let mut user_message = Self::new(&message.user, &message.text, &message.message_ts, message.origin.into());
        user_message.version = message.version;
        user_message.event_id = message.event_id;
        (message.thread, user_message)
    }

    /// The message as it travels to the thread's owner.
    pub(crate) fn to_wire(&self, thread: &ThreadKey) -> ForwardedMessage {
        ForwardedMessage {
            thread: thread.clone(),
            user: self.user.to_string(),
            text: self.text.clone(),
            message_ts: self.message_ts.to_string(),
            origin: self.origin.into(),
            version: self.version,
            event_id: self.event_id.clone(),
        }
    }
}

/// Whose the thread is, when several replicas share the threads (`THREADQL_ADVERTISE_URL`).
#[derive(Debug, Clone, PartialEq)]
enum Ownership {
    /// The only replica: every thread is its own, no lease.
    Alone,
    /// The lease is being claimed (at start, or after it was lost); messages wait.
    Claiming,
    /// This replica holds the lease: turns run here, their writes fenced with it.
    Owned(Fence),
    /// Another replica holds it: messages go there, in order.
    Forwarding { url: String },
}

/// Sent by the registry when a renewal no longer lists the thread as this replica's (its lease
/// passed: the process was paused, or Postgres unreachable) or when the thread's owner looks
/// dead: the actor claims the thread again, keeping it or learning its new owner.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CheckLease;

/// Waits before claiming again after a failed claim or forward (the owner may be gone; its
/// lease passes within `THREADQL_LEASE_SECS`).
const RECLAIM_AFTER: Duration = Duration::from_millis(500);

/// How long a retired actor stays to forward what was already on its way to it.
const RETIRE_GRACE: Duration = Duration::from_secs(1);

/// Live thread actors beyond which one passivates as soon as its turn is over and nothing is
/// queued for it. An idle actor holds its thread's state (a few KB); after a burst of new threads
/// they would otherwise all stay until `THREADQL_IDLE_SECS` (BENCHMARKS.md, memory). Reactivating
/// one costs a snapshot read (about a millisecond).
pub const LIVE_THREADS_SOFT_CAP: usize = 10_000;

/// How often an actor checks whether it has been idle long enough to passivate.
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
    /// When the registry started this actor (for `threadql_thread_activation_seconds`).
    spawned: Instant,
    ownership: Ownership,
    /// A message is on its way to the owner (`Ownership::Forwarding`); the next waits for it.
    forwarding: bool,
    /// The lease was this replica's and is being claimed again: should another replica hold
    /// it now, this actor stops rather than stay as a second live actor of the thread.
    lost: bool,
    /// The owner could not be reached: until then (its lease and a second) the actor claims
    /// again every [`RECLAIM_AFTER`], so the thread moves here as soon as the lease passes,
    /// rather than at the next sweep for orphans.
    reclaim_until: Option<Instant>,
    /// Mirrors whether `ownership` lets this actor answer (read by the registry's `owned_keys`).
    owns: Arc<AtomicBool>,
    /// The registry's backlog and this actor's mailbox depth (see [`ThreadActor::registered`]).
    counted: Option<(Arc<Backlog>, Arc<AtomicUsize>)>,
}

struct RunningTurn {
    signal: CancelSignal,
    /// Whether the turn runs a warehouse query (so `cancel` and newer questions stop it).
    runs_query: bool,
    /// The message, to hand to the thread's new owner should this replica lose the thread.
    message: ForwardedMessage,
}

impl ThreadActor {
    /// `new_thread`: the thread starts with the first message, so there is no snapshot to load.
    pub fn new(key: ThreadKey, services: Arc<ThreadServices>, threads: Weak<ThreadMap>, new_thread: bool) -> Self {
        let shared = services.cluster.is_some();
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
            spawned: Instant::now(),
            ownership: if shared { Ownership::Claiming } else { Ownership::Alone },
            forwarding: false,
            lost: false,
            reclaim_until: None,
            owns: Arc::new(AtomicBool::new(!shared)),
            counted: None,
        }
    }

    /// Keeps the registry's entry up to date: `owns`, whether this actor answers the thread's
    /// messages; and counts the messages it queues itself (read from the inbox, or handed back
    /// by a fenced turn) in `backlog` and `depth`, as dispatched ones are, so a stopping
    /// replica waits for their turns too.
    pub(crate) fn registered(mut self, owns: Arc<AtomicBool>, backlog: Arc<Backlog>, depth: Arc<AtomicUsize>) -> Self {
        owns.store(self.owns.load(Ordering::Relaxed), Ordering::Relaxed);
        self.owns = owns;
        self.counted = Some((backlog, depth));
        self
    }

    /// A backlog ticket for a message this actor queues itself.
    fn ticket(&self) -> Option<BacklogTicket> {
        let (backlog, depth) = self.counted.as_ref()?;
        // Its own mailbox is open while it runs.
        Some(
            BacklogTicket::new(backlog.clone())
                .in_mailbox(depth.clone())
                .unwrap_or_else(|ticket| ticket),
        )
    }

    fn set_ownership(&mut self, ownership: Ownership) {
        let owns = matches!(ownership, Ownership::Alone | Ownership::Owned(_));
        self.owns.store(owns, Ordering::Relaxed);
        self.ownership = ownership;
    }

    /// When the registry decided to start this actor (its activation is timed from then).
    pub fn spawned_at(mut self, spawned: Instant) -> Self {
        self.spawned = spawned;
        self
    }

    /// The thread's state is ready: its snapshot was read (or there is none to read).
    fn activated(&self) {
        self.services
            .metrics
            .activation_seconds
            .observe(self.spawned.elapsed().as_secs_f64());
    }

    /// Starts the next queued message, if any and if none is running.
    fn start_next(&mut self, ctx: &mut Context<Self>) {
        if self.running.is_some() {
            return;
        }
        let fence = match &self.ownership {
            Ownership::Alone => None,
            Ownership::Owned(fence) => Some(fence.clone()),
            Ownership::Forwarding { .. } => return self.forward_next(ctx),
            Ownership::Claiming => return,
        };
        let Some(mut message) = self.queue.pop_front() else {
            return;
        };
        let signal = CancelSignal::default();
        self.running = Some(RunningTurn {
            signal: signal.clone(),
            runs_query: message.command.runs_query(),
            message: message.to_wire(&self.key),
        });
        let turn = TurnContext::new(
            self.key.clone(),
            self.services.clone(),
            self.state.clone(),
            self.snapshot_version,
            self.needs_reload,
            signal,
        )
        .fenced(fence);
        let key = self.key.clone();
        let services = self.services.clone();
        // Every log line of the turn (interpreter, warehouse, Slack) carries the thread key; the
        // span continues the ingress span's trace (the actor hop loses the implicit context).
        let intent = intent_of(&message.command);
        let span = tracing::info_span!(
            parent: None,
            "turn",
            thread_key = %key,
            event_id = %message.event_id,
            user = %message.user,
            intent,
        );
        message.trace.adopt(&span);
        // Fired after everything the turn says, the apology for a panic included.
        let done = message.done.take();
        // Counted in the backlog until the turn is over, not only until it starts.
        let ticket = message.ticket.take();
        let (permits, permit) = (self.services.turn_permits.clone(), message.permit.take());
        let request = message.into_request();
        let message_ts = request.message_ts.to_string();
        let (inbox_services, inbox_key) = (services.clone(), key.clone());
        let turn = async move {
            // Held until the turn is over.
            let _permit = match permit {
                Some(permit) => permit,
                None => permits.take().await,
            };
            let outcome = turn.run(request).instrument(span).await;
            if !outcome.fenced {
                settle(&inbox_services, &inbox_key, &message_ts).await;
            }
            drop(ticket);
            outcome
        };
        let work = AssertUnwindSafe(turn).catch_unwind().then(move |outcome| async move {
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(_) => {
                    // A bug in one turn must not take the thread down: report it and carry on
                    // from the last durable snapshot.
                    tracing::error!(thread = %key, "A turn panicked; reloading the thread from its snapshot");
                    services.metrics.restarts.inc();
                    let ending = Ending::Failed(ErrorCode::Internal);
                    services
                        .metrics
                        .turns
                        .with_label_values(&[intent, ending.outcome()])
                        .inc();
                    let _ = services.replier.reply(&key, Reply::error(ErrorCode::Internal)).await;
                    TurnOutcome {
                        state: None,
                        snapshot_version: None,
                        needs_reload: true,
                        ending,
                        fenced: false,
                    }
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
            let finished = actor.running.take();
            actor.last_activity = Instant::now();
            if outcome.fenced {
                // Another replica owns the thread now: this message is its to answer.
                tracing::warn!(thread = %actor.key, "Lost the thread to another replica mid-turn; handing the message over");
                if let Some(finished) = finished {
                    let mut message = UserMessage::forwarded(finished.message).1;
                    message.ticket = actor.ticket();
                    actor.queue.push_front(message);
                }
                actor.lost_lease(ctx);
                return;
            }
            if actor.ownership == Ownership::Claiming {
                // The lease was lost while the turn ran (and its writes went through).
                actor.claim(ctx);
                return;
            }
            if actor.queue.is_empty() && actor.crowded() {
                // Its state is saved: the thread's next message reads it back in a millisecond.
                return actor.passivate(ctx);
            }
            actor.start_next(ctx);
        }));
    }

    /// The lease may be another replica's now: forget the state read under it and claim again
    /// (this replica keeps the thread if nobody took it; otherwise its messages go there).
    fn lost_lease(&mut self, ctx: &mut Context<Self>) {
        self.set_ownership(Ownership::Claiming);
        self.lost = true;
        self.needs_reload = true;
        if self.running.is_none() {
            self.claim(ctx);
        }
    }

    /// Claims the thread's lease (holding the mailbox meanwhile), then runs or forwards what
    /// is queued.
    fn claim(&mut self, ctx: &mut Context<Self>) {
        let Some(cluster) = self.services.cluster.clone() else {
            self.set_ownership(Ownership::Alone);
            return;
        };
        let (store, key) = (self.services.store.clone(), self.key.clone());
        let claim = async move {
            match store.ownership() {
                Some(ownership) => ownership.claim(&key, &cluster.me, &cluster.url, cluster.lease).await,
                None => Err(crate::store::StoreError::Unexpected(anyhow::anyhow!(
                    "several replicas need a state store that keeps thread ownership (Postgres)"
                ))),
            }
            .map(|claim| (claim, cluster.me.clone()))
        };
        ctx.wait(claim.into_actor(self).map(|claimed, actor, ctx| match claimed {
            Ok((Claim::Owned { epoch }, me)) => {
                // Someone else held it before: what this actor knows may be out of date.
                if epoch > 1 {
                    actor.needs_reload = true;
                }
                actor.set_ownership(Ownership::Owned(Fence { owner: me, epoch }));
                actor.lost = false;
                actor.reclaim_until = None;
                actor.read_inbox(ctx);
            }
            Ok((Claim::OwnedBy { url, .. }, _)) => {
                actor.set_ownership(Ownership::Forwarding { url });
                if std::mem::take(&mut actor.lost) {
                    // Taken over while this replica was away: the thread lives there now.
                    tracing::info!(thread = %actor.key, "The thread moved to another replica; retiring its actor here");
                    actor.retire(ctx);
                }
                match actor.reclaim_until {
                    // The owner was out of reach and its lease holds yet: claim again shortly
                    // (what it was sent waits in the inbox for whoever takes the thread).
                    Some(until) if Instant::now() < until && actor.queue.is_empty() => {
                        ctx.run_later(RECLAIM_AFTER, |actor, ctx| {
                            if matches!(actor.ownership, Ownership::Forwarding { .. }) && !actor.forwarding {
                                actor.set_ownership(Ownership::Claiming);
                                actor.claim(ctx);
                            }
                        });
                    }
                    Some(_) => actor.reclaim_until = None,
                    None => {}
                }
                actor.forward_next(ctx);
            }
            Err(error) => {
                tracing::warn!(thread = %actor.key, ?error, "Failed to claim a thread; trying again");
                ctx.run_later(RECLAIM_AFTER, |actor, ctx| actor.claim(ctx));
            }
        }));
    }

    /// The owner cannot be reached: what is queued goes to the thread's inbox in Postgres (where
    /// messages are kept from their ack already, unless Postgres could not take them then), so
    /// that whoever owns the thread next answers it even should this replica die meanwhile.
    /// Kept in memory when Postgres cannot take it either.
    fn keep_queue_for_owner(&mut self, ctx: &mut Context<Self>) {
        if self.services.ownership_store().is_none() {
            return;
        }
        let queued: Vec<UserMessage> = self.queue.drain(..).collect();
        let kept: Vec<(String, serde_json::Value)> = queued
            .iter()
            .filter_map(|message| {
                let wire = serde_json::to_value(message.to_wire(&self.key)).ok()?;
                Some((message.message_ts.to_string(), wire))
            })
            .collect();
        let (services, key) = (self.services.clone(), self.key.clone());
        let keep = async move {
            match services.ownership_store() {
                Some(ownership) => ownership.keep(&key, &kept).await.map(|_| ()),
                None => Ok(()),
            }
        };
        ctx.wait(keep.into_actor(self).map(move |kept, actor, _| match kept {
            Ok(()) => {
                for mut message in queued {
                    // Answered by the thread's next owner now.
                    if let Some(done) = message.done.take() {
                        let _ = done.send(());
                    }
                    drop(message.ticket.take());
                }
            }
            Err(error) => {
                tracing::warn!(thread = %actor.key, ?error, "Failed to keep messages for the thread's next owner; holding them here");
                for message in queued.into_iter().rev() {
                    actor.queue.push_front(message);
                }
            }
        }));
    }

    /// Messages kept for this thread and not answered yet (taken by a replica that died, or
    /// whose owner could not be reached) come first, before anything queued here that is not
    /// among them (holds the mailbox while they are read). Then the thread is ready: its
    /// snapshot is read if needed, and what is queued starts.
    fn read_inbox(&mut self, ctx: &mut Context<Self>) {
        let (services, key) = (self.services.clone(), self.key.clone());
        let take = async move {
            match services.ownership_store() {
                Some(ownership) => ownership.pending(&key).await,
                None => Ok(Vec::new()),
            }
        };
        ctx.wait(take.into_actor(self).map(|taken, actor, ctx| {
            actor.queue_kept(taken);
            // The snapshot is read before any of them runs: a question the last owner left in
            // flight is reported first.
            if actor.needs_reload {
                actor.load_snapshot(ctx, 0);
            } else {
                actor.activated();
                actor.start_next(ctx);
            }
        }));
    }

    /// Whether the message with this ts is queued or being answered here already (the inbox and
    /// a forward can both bring it).
    fn holds(&self, message_ts: &MessageTs) -> bool {
        !message_ts.is_empty()
            && (self.queue.iter().any(|queued| queued.message_ts == *message_ts)
                || self
                    .running
                    .as_ref()
                    .is_some_and(|running| running.message.message_ts == message_ts.as_str()))
    }

    /// Puts the kept messages ahead of the queue, oldest first.
    fn queue_kept(&mut self, taken: Result<Vec<serde_json::Value>, crate::store::StoreError>) {
        let kept = match taken {
            Ok(kept) => kept,
            Err(error) => {
                return tracing::warn!(thread = %self.key, ?error, "Failed to read the messages kept for this thread")
            }
        };
        let messages: Vec<UserMessage> = kept
            .into_iter()
            .filter_map(|value| serde_json::from_value::<ForwardedMessage>(value).ok())
            .map(|message| UserMessage::forwarded(message).1)
            .filter(|message| !self.holds(&message.message_ts))
            .collect();
        if !messages.is_empty() {
            tracing::info!(thread = %self.key, kept = messages.len(), "Answering messages taken for this thread elsewhere and not answered yet");
        }
        for mut message in messages.into_iter().rev() {
            message.ticket = self.ticket();
            self.queue.push_front(message);
        }
    }

    /// Sends the next queued message to the thread's owner; on failure claims again (the owner
    /// may have died, and its lease passes) and keeps the message first in line.
    fn forward_next(&mut self, ctx: &mut Context<Self>) {
        let Ownership::Forwarding { url } = &self.ownership else {
            return;
        };
        let Some(cluster) = self.services.cluster.clone() else {
            return;
        };
        if self.forwarding {
            return;
        }
        let Some(message) = self.queue.pop_front() else {
            return;
        };
        self.forwarding = true;
        let (url, wire) = (url.clone(), message.to_wire(&self.key));
        let sent = async move { (cluster.forward(&url, &wire).await, message) };
        ctx.spawn(sent.into_actor(self).map(|(sent, mut message), actor, ctx| {
            actor.forwarding = false;
            actor.last_activity = Instant::now();
            match sent {
                Ok(()) => {
                    actor.reclaim_until = None;
                    // Counted and answered over there now.
                    if let Some(done) = message.done.take() {
                        let _ = done.send(());
                    }
                    drop(message.ticket.take());
                    actor.forward_next(ctx);
                }
                Err(error) => {
                    tracing::warn!(thread = %actor.key, %error, "Failed to forward a message to the thread's owner; keeping it for the next owner");
                    actor.queue.push_front(message);
                    actor.set_ownership(Ownership::Claiming);
                    if actor.reclaim_until.is_none() {
                        let lease = actor.services.cluster.as_ref().map_or(Duration::ZERO, |c| c.lease);
                        actor.reclaim_until = Some(Instant::now() + lease + Duration::from_secs(1));
                    }
                    actor.keep_queue_for_owner(ctx);
                    ctx.run_later(RECLAIM_AFTER, |actor, ctx| {
                        if actor.ownership == Ownership::Claiming {
                            actor.claim(ctx);
                        }
                    });
                }
            }
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
        let fence = match &self.ownership {
            Ownership::Owned(fence) => Some(fence.clone()),
            _ => None,
        };
        let work = async move {
            let saved = services
                .store
                .save_write(SnapshotWrite {
                    thread: key.clone(),
                    expected,
                    state,
                    fence,
                })
                .await;
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
            // Another replica took the thread meanwhile: it tells the thread.
            let fenced = matches!(saved, Err(crate::store::StoreError::Fenced { .. }));
            if !fenced {
                if let Err(error) = services.replier.reply(&key, Reply::Text(text)).await {
                    tracing::error!(thread = %key, ?error, "Failed to report an interrupted question");
                }
            }
            saved
        };
        ctx.wait(work.into_actor(self).map(|saved, actor, ctx| match saved {
            Ok(version) => actor.snapshot_version = version,
            Err(crate::store::StoreError::Fenced { .. }) => actor.lost_lease(ctx),
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
                actor.passivate(ctx);
            }
        });
    }

    /// Stops this idle actor: its state is in the snapshot, and the thread's next message
    /// starts a new one from it. Not while a message is on its way in.
    fn passivate(&mut self, ctx: &mut Context<Self>) {
        if self
            .counted
            .as_ref()
            .is_some_and(|(_, depth)| depth.load(Ordering::Acquire) > 0)
        {
            return;
        }
        tracing::debug!(thread = %self.key, "Passivating an idle thread");
        self.services.metrics.passivations.inc();
        self.deregister(ctx);
        self.release_lease();
        ctx.stop();
    }

    /// More actors are live than [`LIVE_THREADS_SOFT_CAP`]: an actor whose turn is over and
    /// who has nothing queued stops at once rather than after `THREADQL_IDLE_SECS`.
    fn crowded(&self) -> bool {
        self.threads
            .upgrade()
            .is_some_and(|threads| threads.len() > LIVE_THREADS_SOFT_CAP)
    }

    /// Gives the lease up (passivated): the next event's replica claims the thread at once.
    fn release_lease(&self) {
        let (Ownership::Owned(fence), Some(_)) = (&self.ownership, self.services.ownership_store()) else {
            return;
        };
        let (services, key, owner) = (self.services.clone(), self.key.clone(), fence.owner.clone());
        actix::spawn(async move {
            if let Some(ownership) = services.ownership_store() {
                if let Err(error) = ownership.release(&owner, Some(std::slice::from_ref(&key))).await {
                    tracing::warn!(thread = %key, ?error, "Failed to release a thread's lease; it passes on its own");
                }
            }
        });
    }

    /// Leaves the registry (the thread's next message starts a new actor), then stops once
    /// what reached this one meanwhile (a dispatch that found it just before) is forwarded.
    fn retire(&mut self, ctx: &mut Context<Self>) {
        self.deregister(ctx);
        ctx.run_later(RETIRE_GRACE, |actor, ctx| {
            if actor.queue.is_empty() && actor.running.is_none() && !actor.forwarding {
                ctx.stop();
            } else {
                actor.retire(ctx);
            }
        });
    }

    fn deregister(&self, ctx: &Context<Self>) {
        if let Some(threads) = self.threads.upgrade() {
            let me = ctx.address();
            if threads.remove_if(&self.key, |_, live| live.address == me).is_some() {
                self.services.metrics.live_threads.dec();
                super::shrink_after_a_burst(&threads);
            }
        }
    }
}

/// Tries of a snapshot load at activation before it is left to the next message's turn, and the
/// wait before the first retry (doubled each time: about 6 s in all).
const LOAD_TRIES: u32 = 6;
const FIRST_LOAD_RETRY: Duration = Duration::from_millis(200);

impl ThreadActor {
    /// Loads the snapshot before any message is handled (`wait` holds the mailbox meanwhile).
    /// A failed load is tried again shortly: a thread woken by a restart has no message of its
    /// own to retry it, and its "I was restarted while…" notice would otherwise never come.
    fn load_snapshot(&mut self, ctx: &mut Context<Self>, attempt: u32) {
        let store = self.services.store.clone();
        let key = self.key.clone();
        ctx
            .wait(async move { store.load_snapshot(&key).await }.into_actor(self).map(
            move |loaded, actor, ctx| match loaded {
                Ok(snapshot) => {
                    if let Some(snapshot) = snapshot {
                        actor.state = snapshot.state;
                        actor.snapshot_version = snapshot.version;
                    }
                    actor.needs_reload = false;
                    actor.activated();
                    if actor.state.in_flight.is_some() {
                        actor.report_interrupted(ctx);
                    }
                    // Messages that came while the lease was claimed.
                    actor.start_next(ctx);
                }
                Err(error) if attempt + 1 < LOAD_TRIES => {
                    let wait = FIRST_LOAD_RETRY * 2u32.pow(attempt);
                    tracing::warn!(thread = %actor.key, ?error, ?wait, "Failed to load a thread snapshot; retrying");
                    ctx.run_later(wait, move |actor, ctx| {
                        // A message's turn that came meanwhile loads the snapshot itself.
                        if actor.needs_reload && actor.running.is_none() {
                            actor.load_snapshot(ctx, attempt + 1);
                        }
                    });
                }
                Err(error) => {
                    // The next message's turn loads it again (`needs_reload`).
                    tracing::error!(thread = %actor.key, ?error, "Failed to load a thread snapshot");
                    actor.start_next(ctx);
                }
            },
        ));
    }
}

impl Actor for ThreadActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.start_idle_timer(ctx);
        if self.ownership == Ownership::Claiming {
            return self.claim(ctx);
        }
        if !self.needs_reload {
            self.activated();
            return;
        }
        self.load_snapshot(ctx, 0);
    }

    /// Stops only with no message counted in its mailbox, closing it in the same step: a
    /// message dispatched to it meanwhile (found in the registry just before it left) is
    /// handled first, and one that finds it closed goes to a new actor.
    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        match &self.counted {
            Some((_, depth)) if !close_mailbox(depth) => Running::Continue,
            _ => Running::Stop,
        }
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        self.deregister(ctx);
    }
}

impl Handler<CheckLease> for ThreadActor {
    type Result = ();

    fn handle(&mut self, _: CheckLease, ctx: &mut Self::Context) {
        match self.ownership {
            Ownership::Owned(_) => {
                tracing::warn!(thread = %self.key, "This replica's lease of the thread was not renewed; claiming it again");
                self.lost_lease(ctx);
            }
            Ownership::Forwarding { .. } if !self.forwarding => {
                self.set_ownership(Ownership::Claiming);
                self.claim(ctx);
            }
            Ownership::Alone | Ownership::Claiming | Ownership::Forwarding { .. } => {}
        }
    }
}

impl Handler<UserMessage> for ThreadActor {
    type Result = ();

    fn handle(&mut self, mut message: UserMessage, ctx: &mut Self::Context) {
        self.last_activity = Instant::now();
        if self.holds(&message.message_ts) {
            // Forwarded while this replica read it from the inbox (or forwarded twice): the
            // copy held here is answered; this one is done.
            if let Some(done) = message.done.take() {
                let _ = done.send(());
            }
            return;
        }
        // Decided on arrival, not when the message's turn comes: the running turn's query is
        // what `cancel` and a newer question are about.
        if let Some(running) = self.running.as_ref().filter(|r| r.runs_query) {
            match message.command {
                Command::Cancel => {
                    running.signal.cancel(CancelReason::ByUser);
                    // The cancelled turn says so; this message needs no turn of its own.
                    let (services, key, message_ts) =
                        (self.services.clone(), self.key.clone(), message.message_ts.to_string());
                    ctx.spawn(async move { settle(&services, &key, &message_ts).await }.into_actor(self));
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

/// Forgets a message kept in the thread's inbox (several replicas): its turn is over. A failure
/// costs only a second look: whoever reads the inbox again finds the message answered already.
async fn settle(services: &ThreadServices, key: &ThreadKey, message_ts: &str) {
    let Some(ownership) = services.ownership_store() else {
        return;
    };
    if message_ts.is_empty() {
        return;
    }
    if let Err(error) = ownership.settle(key, message_ts).await {
        tracing::warn!(thread = %key, ?error, "Failed to forget an answered message; it is found answered later");
    }
}
