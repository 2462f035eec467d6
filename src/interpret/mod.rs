//! Interpreters turn a question or a refinement into SQL. The rules interpreter is deterministic
//! and works on the semantic model; the LLM interpreter (later) goes through the same seam.
use async_trait::async_trait;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::warehouse::ColumnFormat;

pub mod model;
pub mod query;
pub mod rules;
pub mod time;

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
}
