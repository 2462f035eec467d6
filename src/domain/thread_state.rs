//! Everything a thread remembers: its history of query versions, its turns and what is in
//! flight. Thread actors drive it; snapshots persist it.
use serde::{Deserialize, Serialize};

use super::ids::QueryId;
use super::proposed_query::{PendingClarification, ProposedQuery};
use super::turn::Turn;

/// How many versions a thread keeps; older ones cannot be undone to.
pub const MAX_VERSIONS: usize = 50;
/// How many turns a thread remembers for context.
pub const MAX_TURNS: usize = 50;

/// One question or refinement that produced a query, kept so it can be shown, undone and re-run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryVersion {
    /// 1-based number within the thread, shown to users ("version 3").
    pub number: usize,
    /// Stable id shown in answers and recorded in the query history.
    pub query_id: QueryId,
    pub question: String,
    pub query: ProposedQuery,
    /// The version this one refined, if any; `undo` goes back to it.
    pub parent: Option<usize>,
    /// The asker pressed "Run anyway" for it: the cost guard's confirmation no longer holds
    /// it back (its refusal threshold still does).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub confirmed: bool,
}

/// Everything a thread remembers. Snapshotted after every turn.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ThreadState {
    versions: Vec<QueryVersion>,
    /// Number of the current version, `None` before the first answer.
    current: Option<usize>,
    turns: Vec<Turn>,
    /// Set when the thread was started by a mention, a DM or a command: the bot is in it.
    #[serde(default)]
    pub engaged: bool,
    /// A clarifying question waiting for the user's answer.
    #[serde(default)]
    pub pending_clarification: Option<PendingClarification>,
    /// Set while a question is being worked on, persisted before its query runs: a snapshot
    /// that still has it after a restart belongs to a question that was never answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<InFlight>,
}

/// A question being worked on, or answered and not yet posted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    pub question: String,
    /// The answer is saved, and its post to Slack had not gone through when this was written.
    #[serde(default)]
    pub answered: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UndoError {
    #[error("there is nothing to undo yet: ask a question first")]
    NoQuery,
    #[error("this is the first version of the query; there is nothing before it")]
    AtFirstVersion,
    #[error("the previous version is too old to restore")]
    Forgotten,
}

impl ThreadState {
    pub fn current(&self) -> Option<&QueryVersion> {
        let number = self.current?;
        self.versions.iter().find(|v| v.number == number)
    }

    pub fn version(&self, number: usize) -> Option<&QueryVersion> {
        self.versions.iter().find(|v| v.number == number)
    }

    pub fn versions(&self) -> &[QueryVersion] {
        &self.versions
    }

    pub fn turns(&self) -> &[Turn] {
        &self.turns
    }

    pub fn record_turn(&mut self, turn: Turn) {
        self.turns.push(turn);
        if self.turns.len() > MAX_TURNS {
            self.turns.remove(0);
        }
    }

    /// Adds a version refining the current one and makes it current.
    /// The number the next version pushed will get.
    pub fn next_number(&self) -> usize {
        self.versions.last().map_or(1, |v| v.number + 1)
    }

    pub fn push_version(&mut self, question: &str, query: ProposedQuery, query_id: QueryId) -> &QueryVersion {
        let number = self.next_number();
        self.versions.push(QueryVersion {
            number,
            query_id,
            question: question.to_string(),
            query,
            parent: self.current,
            confirmed: false,
        });
        if self.versions.len() > MAX_VERSIONS {
            self.versions.remove(0);
        }
        self.current = Some(number);
        let index = self.versions.len() - 1;
        &self.versions[index]
    }

    /// Marks version `number` as run anyway by its asker (see [`QueryVersion::confirmed`]) and
    /// makes it current; `None` when the thread no longer has it.
    pub fn confirm(&mut self, number: usize) -> Option<&QueryVersion> {
        let version = self.versions.iter_mut().find(|v| v.number == number)?;
        version.confirmed = true;
        self.current = Some(number);
        Some(&*version)
    }

    /// Makes the current version's parent current again.
    pub fn undo(&mut self) -> Result<&QueryVersion, UndoError> {
        let current = self.current.ok_or(UndoError::NoQuery)?;
        self.undo_from(current)
    }

    /// Makes the parent of version `number` current (undo pressed on an older answer).
    pub fn undo_from(&mut self, number: usize) -> Result<&QueryVersion, UndoError> {
        let current = self.version(number).ok_or(UndoError::NoQuery)?;
        let parent = current.parent.ok_or(UndoError::AtFirstVersion)?;
        if self.version(parent).is_none() {
            return Err(UndoError::Forgotten);
        }
        self.current = Some(parent);
        self.current().ok_or(UndoError::Forgotten)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(sql: &str) -> ProposedQuery {
        ProposedQuery {
            sql: sql.into(),
            structured: None,
            summary: sql.into(),
            formats: vec![],
            explanation: String::new(),
            usage: None,
        }
    }

    #[test]
    fn undo_walks_back_through_parents_and_a_new_version_branches_from_the_current_one() {
        let mut state = ThreadState::default();
        assert_eq!(state.undo().unwrap_err(), UndoError::NoQuery);
        state.push_version("revenue by region", query("q1"), QueryId::new("a"));
        assert_eq!(state.undo().unwrap_err(), UndoError::AtFirstVersion);
        state.push_version("only EMEA", query("q2"), QueryId::new("b"));
        state.push_version("by week", query("q3"), QueryId::new("c"));
        assert_eq!(state.undo().unwrap().query.sql, "q2");
        assert_eq!(state.undo().unwrap().query.sql, "q1");
        let v4 = state.push_version("top 5", query("q4"), QueryId::new("d"));
        assert_eq!((v4.number, v4.parent), (4, Some(1)));
        assert_eq!(state.undo().unwrap().query.sql, "q1");
        // Undo on the answer of version 3 (an older message) goes to version 3's parent.
        assert_eq!(state.undo_from(3).unwrap().query.sql, "q2");
    }

    #[test]
    fn versions_and_turns_are_bounded() {
        let mut state = ThreadState::default();
        for i in 0..(MAX_VERSIONS + 5) {
            state.push_version("q", query(&format!("q{i}")), QueryId::new(i.to_string()));
            state.record_turn(Turn {
                user: "U".into(),
                text: "t".into(),
                message_ts: i.to_string().into(),
            });
        }
        assert_eq!(state.versions().len(), MAX_VERSIONS);
        assert_eq!(state.turns().len(), MAX_TURNS);
        assert_eq!(state.current().unwrap().number, MAX_VERSIONS + 5);
    }

    #[test]
    fn thread_state_round_trips_through_json() {
        let mut state = ThreadState {
            engaged: true,
            ..Default::default()
        };
        state.push_version("revenue", query("SELECT 1"), QueryId::new("q-1"));
        let json = serde_json::to_value(&state).unwrap();
        assert_eq!(serde_json::from_value::<ThreadState>(json).unwrap(), state);
    }
}
