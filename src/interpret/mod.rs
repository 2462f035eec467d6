//! Interpreters turn a question or a refinement into SQL. The rules interpreter is deterministic
//! and works on the semantic model; the LLM interpreter (later) goes through the same seam.
use async_trait::async_trait;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::conversation::Turn;
use crate::warehouse::ColumnFormat;

pub mod catalog;
pub mod llm;
pub mod model;
pub mod query;
pub mod rules;
pub mod time;

pub use llm::{LlmInterpreter, LlmSettings};
pub use model::{ModelError, SemanticModel};
pub use query::StructuredQuery;
pub use query::{compile, CompileError};
pub use rules::RulesInterpreter;

/// What an interpreter is asked.
#[derive(Debug, Clone)]
pub struct InterpretRequest<'a> {
    /// The user's words, with any bot mention already removed.
    pub text: &'a str,
    /// The thread's current query, when the text may refine it.
    pub current: Option<&'a ProposedQuery>,
    /// "Today" in the configured time zone: relative ranges resolve against it.
    pub today: NaiveDate,
    /// The thread's earlier turns, oldest first (context for refinements).
    pub history: &'a [Turn],
    /// Set when the interpreter asked the user a clarifying question last turn: `text` is the
    /// user's answer to it, and together they make one question.
    pub clarifying: Option<&'a PendingClarification>,
}

/// A clarifying question the interpreter asked, waiting for the user's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingClarification {
    /// What the user asked originally.
    pub question: String,
    /// What the interpreter asked back.
    pub asked: String,
}

/// A query an interpreter proposes. Not yet guarded: it is SQL text plus what is needed to
/// refine and present it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProposedQuery {
    /// SQL in the warehouse's dialect, before the guard caps its LIMIT.
    pub sql: String,
    /// The structured form, when the rules interpreter built it (refinements edit it).
    pub structured: Option<StructuredQuery>,
    /// One line saying what is answered, e.g. "Revenue by region, October 2026".
    pub summary: String,
    /// Display formats for result columns, by column name.
    pub formats: Vec<(String, ColumnFormat)>,
    /// Why the interpreter wrote this SQL (LLM explanation); empty for rules.
    #[serde(default)]
    pub explanation: String,
    /// What the language model spent on this query (all attempts so far); `None` for rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<LlmUsage>,
}

/// Cost and speed of the chat completions behind one query, summed over its attempts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmUsage {
    pub model: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Chat completions made (the first interpretation plus corrections).
    pub attempts: u32,
    /// Time spent waiting for the model, summed over attempts.
    pub latency_ms: u64,
}

/// An interpreter's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Interpretation {
    Query(Box<ProposedQuery>),
    /// The interpreter needs the user to say more; the text is asked in the thread.
    Clarify(String),
    /// The text could not be mapped; the message says what was not understood and what is known.
    NotUnderstood(String),
}

#[derive(Debug, thiserror::Error)]
pub enum InterpretError {
    #[error("the language model is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

#[async_trait]
pub trait Interpreter: Send + Sync {
    async fn interpret(&self, request: InterpretRequest<'_>) -> Result<Interpretation, InterpretError>;
    /// Lines for `help`: what this interpreter understands (metrics, dimensions, examples).
    fn help(&self) -> String;

    /// Asks for a corrected query after `failed` was refused by the guard or failed in the
    /// warehouse with `error`. `None`: this interpreter cannot correct itself (the rules).
    async fn revise(
        &self,
        _request: InterpretRequest<'_>,
        _failed: &ProposedQuery,
        _error: &str,
    ) -> Result<Option<Interpretation>, InterpretError> {
        Ok(None)
    }
}
