//! A turn: one message of a thread handled from start to end, without actix. The thread actor
//! (in `actors`) owns the mailbox, ordering, cancellation, idle timer and panic boundary; it
//! hands each message to [`TurnContext::run`] with the thread's state and gets the new state
//! back with how the turn ended.
//!
//! - `run`: the frame of every turn (state, in-flight marker, persist before posting)
//! - `ask`: questions and refinements, with the interpreter's corrections
//! - `commands`: help, show sql, explain, undo
//! - `files`: chart and CSV export
//! - `execute`: guard, warehouse, history and audit rows
//! - `audience`: who will read an answer (kept from a channel some member may not see it in)
//!   and "Why this result?"
//! - `schedules`: schedules and alerts made, listed and changed from the thread, and each
//!   scheduled run (as its owner)
//! - `progress`: the "working on it" message of a slow turn
//! - `completion_spans`: a span per chat completion of the LLM interpreter
//! - `queue`: the line of turns waiting for one of a fixed number of permits, first come first
//!   served across threads
mod ask;
mod audience;
mod cancel;
mod commands;
mod completion_spans;
mod execute;
mod files;
mod progress;
mod queue;
mod run;
mod schedules;
mod services;

pub use cancel::{CancelReason, CancelSignal};
pub use completion_spans::CompletionSpans;
pub use queue::{TurnPermit, TurnQueue, KEEP_SLOTS_AFTER_A_BURST};
pub use run::{intent_of, Ending, TurnContext, TurnOutcome, TurnRequest, MAX_QUESTION_CHARS};
pub use schedules::{local_time, schedule_phrase, ScheduledAnswer, ScheduledFailure};
pub use services::{Replier, ThreadServices, TurnLimits};

#[cfg(test)]
mod tests;
