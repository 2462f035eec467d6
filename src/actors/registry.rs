//! Finds the live actor of a thread, starting it (from its snapshot) on a miss. Live actors are
//! looked up in a `DashMap`, so routing never queues behind another thread's work.
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use actix::prelude::*;
use dashmap::DashMap;

use super::backlog::{Backlog, BacklogTicket};
use super::burst::{self, Arrivals, Yielding};
use super::thread::{ThreadActor, UserMessage};
use super::{LiveThread, ThreadMap};
use crate::activity::Activity;
use crate::domain::{Origin, ThreadKey};
use crate::turn::{ThreadServices, TurnPermit, KEEP_SLOTS_AFTER_A_BURST};

/// Routes messages to thread actors, which run on a pool of arbiters (one per core).
pub struct ThreadRegistry {
    threads: Arc<ThreadMap>,
    /// Messages dispatched whose turn is not over (see [`BacklogTicket`]).
    backlog: Arc<Backlog>,
    /// Messages dispatched so far (the arbiters' share of the cores depends on their rate).
    arrivals: Arc<Arrivals>,
    arbiters: Vec<ArbiterHandle>,
    services: Arc<ThreadServices>,
    /// Keeps the arbiters' threads alive as long as the registry.
    _owned_arbiters: Vec<Arbiter>,
    /// Messages of threads with no live actor, waiting for a turn permit (see
    /// [`ThreadRegistry::dispatch`]); the thread's place in line is in the [`crate::turn::TurnQueue`].
    waiting_room: Mutex<WaitingRoom>,
    /// This registry, for the admissions the [`crate::turn::TurnQueue`] calls back.
    me: Weak<ThreadRegistry>,
    /// Several replicas: where messages are kept in the inbox before their ack. An arbiter of
    /// its own at normal priority: the actors' arbiters yield to the acks (`nice`), and an ack
    /// must not wait behind turns for its one Postgres write.
    inbox: Option<Arbiter>,
}

/// Messages of threads with no live actor, by thread.
type WaitingRoom = HashMap<ThreadKey, Vec<UserMessage>, foldhash::fast::RandomState>;

impl ThreadRegistry {
    /// Starts `arbiter_count` arbiters for thread actors, their threads at scheduling priority
    /// `nice` (0 = like the rest; see [`lower_this_threads_priority`]). Must run inside an
    /// actix `System`.
    pub fn start(services: Arc<ThreadServices>, arbiter_count: usize, nice: i32) -> Arc<Self> {
        let yielding = Yielding { nice, ..Yielding::NONE };
        Self::start_counting_in(services, arbiter_count, yielding, Activity::new())
    }

    /// [`ThreadRegistry::start`], counting each dispatched message in `activity` until its turn
    /// is over (the server shares it with its Slack outbox; see [`Activity`]); the arbiters
    /// yield the cores to the acks as `yielding` says (see [`burst`]).
    pub fn start_counting_in(
        services: Arc<ThreadServices>,
        arbiter_count: usize,
        yielding: Yielding,
        activity: Arc<Activity>,
    ) -> Arc<Self> {
        let owned: Vec<Arbiter> = (0..arbiter_count.max(1)).map(|_| Arbiter::new()).collect();
        let arrivals = Arc::new(Arrivals::default());
        for arbiter in &owned {
            let nice = yielding.nice;
            if nice > 0 {
                arbiter.spawn_fn(move || lower_this_threads_priority(nice));
            }
            if let Some(share) = yielding.burst_share {
                arbiter.spawn(burst::govern(arrivals.clone(), share));
            }
        }
        let arbiters = owned.iter().map(Arbiter::handle).collect();
        let threads: Arc<ThreadMap> = Arc::new(DashMap::default());
        sample_mailboxes_on_scrape(&services, Arc::downgrade(&threads));
        let shared = services.cluster.is_some();
        let registry = Arc::new_cyclic(|me| Self {
            threads,
            backlog: Arc::new(Backlog::new(services.metrics.backlog.clone(), activity)),
            arrivals,
            arbiters,
            services,
            _owned_arbiters: owned,
            waiting_room: Mutex::default(),
            me: me.clone(),
            inbox: shared.then(Arbiter::new),
        });
        if shared {
            actix::spawn(renew_leases(Arc::downgrade(&registry)));
        }
        registry
    }

    /// Delivers a message to its thread's actor, activating it if needed. Never waits.
    ///
    /// A thread with no live actor starts one only when a turn permit is free (see
    /// [`crate::turn::TurnQueue`]); until then its messages wait in the registry's waiting room, in line with
    /// every other turn. A burst of new threads thus costs a queued message each, not an actor
    /// and a turn's future each, and the turns running are those that came first.
    pub fn dispatch(&self, thread: ThreadKey, mut message: UserMessage) {
        self.arrivals.count();
        message.ticket = Some(BacklogTicket::new(self.backlog.clone()));
        // Two tries: an actor found stopping (passivated between lookup and send) is replaced once.
        for _ in 0..2 {
            match self.route(&thread, message) {
                Ok(()) => return,
                Err(returned) => message = returned,
            }
        }
        tracing::error!(%thread, "Failed to deliver a message: the thread actor stopped twice in a row");
    }

    /// Sends to the live actor, or queues in the waiting room, or starts the actor with a permit
    /// free now ([`crate::turn::TurnQueue`]). Gives the message back when the actor it found was stopping.
    // The message comes back only to be routed again, once: no copy worth boxing it for.
    #[allow(clippy::result_large_err)]
    fn route(&self, thread: &ThreadKey, message: UserMessage) -> Result<(), UserMessage> {
        if let Some(live) = self.live(thread) {
            return self.deliver(thread, &live, message);
        }
        let mut room = self.room();
        if let Some(waiting) = room.get_mut(thread) {
            waiting.push(message);
            return Ok(());
        }
        // Admitted (moved from the room to a live actor) since the first look.
        if let Some(live) = self.live(thread) {
            drop(room);
            return self.deliver(thread, &live, message);
        }
        let me = self.me.clone();
        let key = thread.clone();
        let admit = move |permit| match me.upgrade() {
            Some(registry) => registry.admit(key, permit),
            None => Some(permit),
        };
        match self.services.turn_permits.take_or_queue(admit) {
            Some(permit) => {
                let mut message = message;
                message.permit = Some(permit);
                self.start_with(thread, vec![message]);
            }
            None => {
                room.insert(thread.clone(), vec![message]);
            }
        }
        Ok(())
    }

    /// A thread's turn has come in the [`crate::turn::TurnQueue`]: starts its actor with the messages that
    /// waited for it, the first holding the permit. Gives the permit back when nothing waits
    /// (never expected: a waiting thread leaves the room only here).
    fn admit(&self, thread: ThreadKey, permit: TurnPermit) -> Option<TurnPermit> {
        let mut room = self.room();
        let Some(mut messages) = room.remove(&thread) else {
            return Some(permit);
        };
        if room.is_empty() && room.capacity() > KEEP_SLOTS_AFTER_A_BURST {
            *room = WaitingRoom::default();
        }
        if let Some(first) = messages.first_mut() {
            first.permit = Some(permit);
        }
        // Under the room's lock: a message that comes meanwhile waits for these to be sent, so
        // it cannot overtake them.
        self.start_with(&thread, messages);
        None
    }

    /// Starts `thread`'s actor, hands it `messages` in order, then makes it findable. Called
    /// with the room locked, so nothing reaches the new actor before these.
    fn start_with(&self, thread: &ThreadKey, messages: Vec<UserMessage>) {
        let new_thread = messages.first().is_some_and(|first| is_thread_root(thread, first));
        let live = self.spawn(thread.clone(), new_thread);
        for message in messages {
            if let Err(message) = self.deliver(thread, &live, message) {
                // A new actor's mailbox is open: not expected, but never silently lost.
                tracing::error!(%thread, message_ts = %message.message_ts, "Failed to hand a waiting message to its new thread actor");
            }
        }
        self.threads.insert(thread.clone(), live);
    }

    fn live(&self, thread: &ThreadKey) -> Option<LiveThread> {
        self.threads.get(thread).map(|entry| entry.value().clone())
    }

    /// Counts `message` in `live`'s mailbox and sends it. A stopping actor (its mailbox closed)
    /// leaves the registry and the message comes back, for a new actor.
    #[allow(clippy::result_large_err)]
    fn deliver(&self, thread: &ThreadKey, live: &LiveThread, mut message: UserMessage) -> Result<(), UserMessage> {
        let entered = match message
            .ticket
            .take()
            .map(|ticket| ticket.in_mailbox(live.depth.clone()))
        {
            Some(Ok(ticket)) => {
                message.ticket = Some(ticket);
                true
            }
            Some(Err(ticket)) => {
                message.ticket = Some(ticket);
                false
            }
            None => true,
        };
        if entered && live.address.connected() {
            live.address.do_send(message);
            return Ok(());
        }
        message.ticket = message.ticket.map(BacklogTicket::out_of_mailbox);
        self.threads.remove_if(thread, |_, entry| entry.address == live.address);
        Err(message)
    }

    fn room(&self) -> std::sync::MutexGuard<'_, WaitingRoom> {
        self.waiting_room
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// [`ThreadRegistry::dispatch`] for a message Slack is about to be told was received. With
    /// several replicas the message is first kept in the thread's inbox in Postgres, so that it
    /// is answered even should this replica, or the owner it is forwarded to, die before its
    /// turn; a message kept already (Slack's retry that reached another replica while Redis was
    /// down) is not dispatched again. Single replica, or Postgres out of reach: dispatched from
    /// memory, as always.
    pub async fn dispatch_kept(&self, thread: ThreadKey, message: UserMessage) -> Dispatched {
        let keep = self.services.cluster.is_some() && !message.message_ts.is_empty();
        if keep && self.services.ownership_store().is_some() {
            let (wire, ts) = (message.to_wire(&thread), message.message_ts.to_string());
            let (services, key) = (self.services.clone(), thread.clone());
            let (sent, kept) = tokio::sync::oneshot::channel();
            // On an arbiter of the registry's, not the caller's HTTP worker: a Postgres
            // connection belongs to the runtime that opened it, and the workers stop before the
            // drain's turns (which share the pool) are over.
            let arbiter = self
                .inbox
                .as_ref()
                .map_or_else(|| self.arbiter_of(&thread).clone(), Arbiter::handle);
            arbiter.spawn(async move {
                let kept = match (services.ownership_store(), serde_json::to_value(&wire)) {
                    (Some(ownership), Ok(wire)) => ownership.keep(&key, &[(ts, wire)]).await,
                    (_, Err(error)) => Err(crate::store::StoreError::Unexpected(error.into())),
                    (None, _) => Ok(1),
                };
                let _ = sent.send(kept);
            });
            let kept = kept.await.unwrap_or_else(|_| {
                Err(crate::store::StoreError::Unexpected(anyhow::anyhow!(
                    "the thread arbiter stopped"
                )))
            });
            match kept {
                Ok(0) => return Dispatched::Duplicate,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%thread, ?error, "Failed to keep a message in the thread's inbox; it waits in memory")
                }
            }
        }
        self.dispatch(thread, message);
        Dispatched::Queued
    }

    /// Starts a thread's actor (from its snapshot) without a message, e.g. to report a
    /// question a restart interrupted. A thread waiting in the room starts with its messages.
    pub fn activate(&self, thread: ThreadKey) {
        let room = self.room();
        if room.contains_key(&thread) {
            return;
        }
        self.threads
            .entry(thread.clone())
            .or_insert_with(|| self.spawn(thread, false));
        drop(room);
    }

    /// Messages dispatched whose turn is not over yet (queued, waiting for a turn permit or running).
    pub fn backlog(&self) -> usize {
        self.backlog.get()
    }

    /// Number of live thread actors.
    pub fn live_threads(&self) -> usize {
        self.threads.len()
    }

    /// Whether a thread has a live actor or messages waiting for one.
    pub fn is_live(&self, thread: &ThreadKey) -> bool {
        self.threads.contains_key(thread) || self.room().contains_key(thread)
    }

    /// Threads whose messages wait for a turn permit before their actor starts.
    pub fn waiting_threads(&self) -> usize {
        self.room().len()
    }

    /// The threads whose live actor here owns them (answers their messages): across replicas,
    /// a thread is in at most one replica's list. Actors that forward to the owner are not.
    pub fn owned_keys(&self) -> Vec<ThreadKey> {
        self.threads
            .iter()
            .filter(|entry| entry.value().owns.load(Ordering::Relaxed))
            .map(|entry| entry.key().clone())
            .collect()
    }

    /// Gives up every lease this replica holds (it is stopping, its turns are over), so the
    /// other replicas take its threads at once instead of after `THREADQL_LEASE_SECS`.
    pub async fn release_leases(&self) {
        let (Some(cluster), Some(ownership)) = (&self.services.cluster, self.services.ownership_store()) else {
            return;
        };
        match ownership.release(&cluster.me, None).await {
            Ok(released) => tracing::info!(released, "Released this replica's thread leases"),
            Err(error) => tracing::warn!(?error, "Failed to release thread leases; they pass on their own"),
        }
    }

    /// The arbiter a thread's actor runs on (always the same one for a thread).
    fn arbiter_of(&self, thread: &ThreadKey) -> &ArbiterHandle {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        thread.hash(&mut hasher);
        let index = (hasher.finish() % self.arbiters.len() as u64) as usize;
        &self.arbiters[index]
    }

    /// `new_thread`: the first message is the thread's root, so there is no snapshot to read.
    fn spawn(&self, thread: ThreadKey, new_thread: bool) -> LiveThread {
        let arbiter = self.arbiter_of(&thread);
        let services = self.services.clone();
        let threads = Arc::downgrade(&self.threads);
        let metrics = &self.services.metrics;
        metrics.live_threads.inc();
        let source = if new_thread { "new" } else { "snapshot" };
        metrics.activations.with_label_values(&[source]).inc();
        let spawned = std::time::Instant::now();
        let (owns, depth) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let registered = (owns.clone(), self.backlog.clone(), depth.clone());
        let address = ThreadActor::start_in_arbiter(arbiter, move |_| {
            let (owns, backlog, depth) = registered;
            ThreadActor::new(thread, services, threads, new_thread)
                .spawned_at(spawned)
                .registered(owns, backlog, depth)
        });
        LiveThread { address, depth, owns }
    }
}

/// What became of a message handed to [`ThreadRegistry::dispatch_kept`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispatched {
    Queued,
    /// Another replica took it already and it is not answered yet.
    Duplicate,
}

/// Renews every lease this replica holds, in one statement every third of the lease, and tells
/// each live actor whose thread is no longer listed (its lease passed: the process was paused,
/// or Postgres was out of reach) to claim it again. Then takes over the threads of replicas
/// that died mid-question, so each is told. Ends with the registry.
async fn renew_leases(registry: std::sync::Weak<ThreadRegistry>) {
    let Some(lease) = registry
        .upgrade()
        .and_then(|r| r.services.cluster.as_ref().map(|c| c.lease))
    else {
        return;
    };
    let mut every = tokio::time::interval(lease / 3);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(registry) = registry.upgrade() else { return };
        let (Some(cluster), Some(ownership)) = (&registry.services.cluster, registry.services.ownership_store()) else {
            return;
        };
        match ownership.renew(&cluster.me, cluster.lease).await {
            Ok(renewed) => {
                let renewed: std::collections::HashSet<ThreadKey> = renewed.into_iter().collect();
                for entry in registry.threads.iter() {
                    if !renewed.contains(entry.key()) {
                        // Actors that do not own their thread (forwarding, claiming) ignore it.
                        entry.value().address.do_send(super::thread::CheckLease);
                    }
                }
            }
            Err(error) => tracing::warn!(?error, "Failed to renew thread leases; trying again"),
        }
        match ownership.orphaned_in_flight(crate::store::ORPHANS_PER_SWEEP).await {
            Ok(orphans) => {
                for thread in orphans {
                    tracing::info!(%thread, "Taking over a thread whose replica stopped mid-question");
                    match registry.threads.get(&thread) {
                        // A forwarder to the dead owner: claim now rather than at its next message.
                        Some(live) => live.address.do_send(super::thread::CheckLease),
                        None => registry.activate(thread),
                    }
                }
            }
            Err(error) => tracing::warn!(?error, "Failed to look for threads whose replica died mid-question"),
        }
    }
}

/// Samples the live actors' mailbox depths into `threadql_mailbox_messages` (sum) and
/// `threadql_mailbox_messages_max` at each scrape: one pass over the map, no actor disturbed.
fn sample_mailboxes_on_scrape(services: &ThreadServices, threads: std::sync::Weak<ThreadMap>) {
    let (sum, max) = (
        services.metrics.mailbox_messages.clone(),
        services.metrics.mailbox_messages_max.clone(),
    );
    services.metrics.on_scrape(move || {
        let Some(threads) = threads.upgrade() else { return };
        let (mut total, mut deepest) = (0usize, 0usize);
        for entry in threads.iter() {
            let depth = entry.value().depth.load(Ordering::Relaxed);
            if depth == super::backlog::CLOSED {
                continue;
            }
            total += depth;
            deepest = deepest.max(depth);
        }
        sum.set(i64::try_from(total).unwrap_or(i64::MAX));
        max.set(i64::try_from(deepest).unwrap_or(i64::MAX));
    });
}

/// Gives the calling thread a lower scheduling priority (a higher nice value). Acks have a hard
/// deadline (Slack retries after 3 s and shows the user an error) and answers do not, so when
/// the cores are saturated the HTTP workers, which ack, should win over the thread actors, which
/// answer: the backlog then waits in the actors' mailboxes and drains when the burst ends.
/// With spare cores a nice value changes nothing. Linux applies it to the one thread; elsewhere
/// this does nothing.
fn lower_this_threads_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority take plain integers and touch no memory of ours.
        let result = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)
        };
        if result != 0 {
            tracing::warn!(nice, error = %std::io::Error::last_os_error(), "Failed to lower the priority of a thread-actor arbiter");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// A mention or DM that is itself the thread's root starts a thread nobody has seen: its actor
/// skips the snapshot read (half the state-store work of a new thread). Were a snapshot there
/// after all, the first save (based on version 0) is refused as stale, and nothing is lost.
fn is_thread_root(thread: &ThreadKey, message: &UserMessage) -> bool {
    matches!(message.origin, Origin::Mention | Origin::DirectMessage) && message.message_ts == *thread.thread_ts()
}

impl Drop for ThreadRegistry {
    /// Arbiters run until stopped; without this their threads (and every actor, pool and
    /// connection those hold) would outlive the server that owned them.
    fn drop(&mut self) {
        for arbiter in self._owned_arbiters.iter().chain(&self.inbox) {
            arbiter.stop();
        }
    }
}
