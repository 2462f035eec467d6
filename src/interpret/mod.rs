//! Interpreters turn a question or a refinement into SQL. The rules interpreter is deterministic
//! and works on the semantic model; the LLM interpreter goes through the same seam.
use async_trait::async_trait;
use chrono::NaiveDate;

use crate::domain::Turn;
pub use crate::domain::{LlmUsage, PendingClarification, ProposedQuery, StructuredQuery};

pub mod catalog;
pub mod dbt;
pub mod derive;
pub mod llm;
pub mod load;
pub mod model;
pub mod query;
pub mod rules;
pub mod time;
pub mod visible;

pub use llm::{LlmInterpreter, LlmSettings};
pub use model::{ModelError, SemanticModel};
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
    /// What the asker's roles let them read: the interpreter shows nothing else of the
    /// warehouse (`None`: no roles are configured).
    pub access: Option<&'a crate::sql::AccessPolicy>,
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

    /// [`Interpreter::help`] for an asker with `access`: only what their roles read.
    fn help_for(&self, access: Option<&crate::sql::AccessPolicy>) -> String {
        let _ = access;
        self.help()
    }

    /// The query as it reads on `today`: its relative time ranges ("last week") resolved again,
    /// for a scheduled run. Interpreters whose SQL cannot be rebuilt return it as it is.
    fn as_of(&self, query: &ProposedQuery, today: chrono::NaiveDate) -> ProposedQuery {
        let _ = today;
        query.clone()
    }

    /// Takes the model read again from the warehouse (see [`load::ModelRefresh`]); questions
    /// asked from now on use it. Interpreters without a model of their own ignore it.
    fn reload(&self, _loaded: &load::LoadedModel) {}

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
