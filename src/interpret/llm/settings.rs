//! What the LLM interpreter is configured with: the server, the limits of one completion, the
//! output mode and how much context a prompt carries.
use std::time::Duration;

use secrecy::SecretString;

use crate::config::OpenAiConfig;
use crate::interpret::catalog::ContextLimits;

/// How the model is asked to shape its answer. Servers that reject structured outputs get JSON
/// mode, and servers that reject that get the plain instruction; the interpreter moves down the
/// list by itself when a server answers 400 to a `response_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// `response_format: json_schema` with `strict: true` (OpenAI, vLLM, recent Ollama).
    JsonSchema,
    /// `response_format: json_object`.
    JsonObject,
    /// No `response_format`: the system prompt asks for JSON and the answer is parsed leniently.
    Plain,
}

impl OutputMode {
    pub(super) fn to_u8(self) -> u8 {
        match self {
            Self::JsonSchema => 0,
            Self::JsonObject => 1,
            Self::Plain => 2,
        }
    }

    pub(super) fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::JsonSchema,
            1 => Self::JsonObject,
            _ => Self::Plain,
        }
    }

    pub(super) fn fallback(self) -> Option<Self> {
        match self {
            Self::JsonSchema => Some(Self::JsonObject),
            Self::JsonObject => Some(Self::Plain),
            Self::Plain => None,
        }
    }
}

/// Everything the LLM interpreter is configured with.
#[derive(Debug, Clone)]
pub struct LlmSettings {
    /// Base URL including `/v1`, without a trailing slash.
    pub base_url: String,
    pub api_key: SecretString,
    pub model: String,
    /// Limit for one HTTP request (connect, send, read the whole answer).
    pub request_timeout: Duration,
    /// Limit for one chat completion, retries included: the thread never waits longer.
    pub completion_timeout: Duration,
    /// Retries of one HTTP request on 429, 5xx, timeouts and connection errors.
    pub max_retries: u32,
    /// First retry delay; doubled each retry, jittered, capped at `max_retry_delay`.
    pub retry_base_delay: Duration,
    pub max_retry_delay: Duration,
    pub output: OutputMode,
    pub max_completion_tokens: Option<u32>,
    pub context: ContextLimits,
    /// Answered questions given as examples.
    pub max_examples: usize,
    /// How many recent answered questions are considered for examples.
    pub examples_scanned: usize,
    /// Earlier messages of a thread given as context.
    pub max_history_turns: usize,
}

impl LlmSettings {
    pub fn from_config(config: &OpenAiConfig) -> Self {
        Self {
            base_url: config.base_url.as_str().trim_end_matches('/').to_string(),
            api_key: config.api_key.clone(),
            model: config.model.clone(),
            request_timeout: Duration::from_secs(30),
            completion_timeout: Duration::from_secs(75),
            max_retries: 3,
            retry_base_delay: Duration::from_millis(250),
            max_retry_delay: Duration::from_secs(8),
            output: OutputMode::JsonSchema,
            max_completion_tokens: None,
            context: ContextLimits::default(),
            max_examples: 4,
            examples_scanned: 500,
            max_history_turns: 8,
        }
    }
}
