//! The LLM interpreter: any OpenAI-compatible server (OpenAI, Azure OpenAI, vLLM, Ollama,
//! LiteLLM…) turns questions and refinements into SQL through Chat Completions.
//!
//! One chat completion per attempt. The prompt carries the warehouse dialect, only the tables
//! relevant to the question (see [`super::catalog`]), the semantic model's definitions, the
//! team's own answered questions as examples and, for a reply in a thread, the thread's context.
//! The model answers in a JSON schema: a query (`sql`, `summary`, `explanation`) or a
//! clarifying question. Whatever it writes is only a proposal: the thread actor runs it through
//! the SQL guard and the read-only path, so neither a question nor a data value can make the
//! server run anything else.
//!
//! Retries are owned in one place, `transport`: async-openai's built-in retry layer is replaced
//! by [`RetryingTransport`], which retries 429 (not `insufficient_quota`), 5xx, timeouts and
//! connection errors with exponential backoff (or `Retry-After`) within a time budget.
//!
//! The parts: `settings` (configuration), `prompt` (what the model is asked), `parsing`
//! (reading its answer) and `transport` (HTTP, retries, the async-openai client); this file
//! runs one question through them.
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage, ChatCompletionRequestUserMessage,
};
use async_openai::Client;
use async_trait::async_trait;
use serde_json::Value;

use super::catalog::Catalog;
use super::load::LoadedModel;
use super::model::{output_alias, SemanticModel};
use super::{InterpretError, InterpretRequest, Interpretation, Interpreter, LlmUsage, ProposedQuery};
use crate::domain::ColumnFormat;
use crate::metrics::Metrics;
use crate::sql::Dialect;
use crate::store::{AnsweredQuestion, StateStore};

mod parsing;
mod prompt;
mod settings;
mod transport;

use parsing::{interpretation_of, parse_completion, CallUsage, ModelAnswer};
pub use prompt::{answer_schema, result_columns};
use prompt::{
    chat_request, correction_messages, rank_examples, ranking_text, set_answer_format, system_prompt, user_prompt,
    PromptContext,
};
pub use settings::{LlmSettings, OutputMode};
use transport::{classify, openai_client, CallError};
pub use transport::{http_client, RetryingTransport};

/// What prompts are built from: the described warehouse and the semantic model.
struct Knowledge {
    catalog: Catalog,
    model: SemanticModel,
}

/// Interprets questions with a language model.
pub struct LlmInterpreter {
    client: Client<OpenAIConfig>,
    settings: LlmSettings,
    /// The catalog and model prompts are built from, replaced when the model is reloaded.
    knowledge: RwLock<Arc<Knowledge>>,
    dialect: Dialect,
    store: Option<Arc<dyn StateStore>>,
    metrics: Option<Metrics>,
    /// The current [`OutputMode`], lowered when a server rejects a `response_format`.
    output: AtomicU8,
}

impl LlmInterpreter {
    /// Builds the client (no request is made until the first question).
    pub fn new(
        settings: LlmSettings,
        catalog: Catalog,
        model: SemanticModel,
        dialect: Dialect,
        store: Option<Arc<dyn StateStore>>,
        metrics: Option<Metrics>,
    ) -> anyhow::Result<Self> {
        let client = openai_client(&settings, metrics.clone())?;
        Ok(Self {
            client,
            output: AtomicU8::new(settings.output.to_u8()),
            settings,
            knowledge: RwLock::new(Arc::new(Knowledge { catalog, model })),
            dialect,
            store,
            metrics,
        })
    }

    /// Builds the interpreter for a configured server over the loaded model and the described
    /// warehouse.
    pub fn connect(
        settings: LlmSettings,
        loaded: &LoadedModel,
        dialect: Dialect,
        store: Option<Arc<dyn StateStore>>,
        metrics: Option<Metrics>,
    ) -> anyhow::Result<Self> {
        let catalog = Catalog::from_schema(&loaded.schema);
        tracing::info!(tables = catalog.tables.len(), "Warehouse catalog loaded");
        Self::new(settings, catalog, loaded.model.clone(), dialect, store, metrics)
    }

    fn knowledge(&self) -> Arc<Knowledge> {
        match self.knowledge.read() {
            Ok(knowledge) => knowledge.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn settings(&self) -> &LlmSettings {
        &self.settings
    }

    /// The messages for a first interpretation of `request`.
    async fn messages(&self, request: &InterpretRequest<'_>) -> Vec<ChatCompletionRequestMessage> {
        let output = OutputMode::from_u8(self.output.load(Ordering::Relaxed));
        let system = self.system_prompt(request, output).await;
        vec![
            ChatCompletionRequestSystemMessage::from(system.as_str()).into(),
            ChatCompletionRequestUserMessage::from(user_prompt(request, self.dialect, self.settings.max_history_turns))
                .into(),
        ]
    }

    async fn system_prompt(&self, request: &InterpretRequest<'_>, output: OutputMode) -> String {
        let ranking_text = ranking_text(request);
        let mut knowledge = self.knowledge();
        let mut examples = self.examples(&ranking_text).await;
        // The asker's roles: the model is never shown a table they may not read or a denied
        // column, not even in a past answer's SQL.
        if let Some(policy) = request.access {
            knowledge = Arc::new(Knowledge {
                catalog: super::visible::catalog(&knowledge.catalog, policy),
                model: super::visible::model(&knowledge.model, policy),
            });
            examples.retain(|example| {
                !super::visible::mentions_denied(&example.sql, policy)
                    && knowledge
                        .catalog
                        .tables_in_sql(&example.sql)
                        .iter()
                        .all(|table| policy.allows_table(table))
            });
        }
        let catalog = &knowledge.catalog;
        // The tables the current query already uses stay in the prompt.
        let pinned = request
            .current
            .map(|current| catalog.tables_in_sql(&current.sql))
            .unwrap_or_default();
        let tables = catalog.relevant_tables(&ranking_text, &knowledge.model, &pinned, self.settings.context);
        system_prompt(&PromptContext {
            dialect: self.dialect,
            today: request.today,
            output,
            model: &knowledge.model,
            tables: &tables,
            ranking_text: &ranking_text,
            examples: &examples,
        })
    }

    /// The team's answered questions most like `question`.
    async fn examples(&self, question: &str) -> Vec<AnsweredQuestion> {
        let Some(store) = &self.store else { return Vec::new() };
        if self.settings.max_examples == 0 {
            return Vec::new();
        }
        let answered = match store.answered_questions(self.settings.examples_scanned).await {
            Ok(answered) => answered,
            Err(error) => {
                tracing::warn!(?error, "Failed to read answered questions for examples");
                return Vec::new();
            }
        };
        rank_examples(question, answered, self.settings.max_examples)
    }

    /// One chat completion (plus the immediate retry with a simpler output mode when the server
    /// rejects the `response_format`).
    async fn complete(
        &self,
        messages: Vec<ChatCompletionRequestMessage>,
        kind: &'static str,
    ) -> Result<(ModelAnswer, CallUsage), InterpretError> {
        let mut output = OutputMode::from_u8(self.output.load(Ordering::Relaxed));
        loop {
            let started = Instant::now();
            let outcome = self.call(messages.clone(), output).await;
            let latency = started.elapsed();
            self.observe(if outcome.is_ok() { "ok" } else { "error" }, latency);
            match outcome {
                Ok((content, mut usage)) => {
                    usage.latency = latency;
                    if let Some(metrics) = &self.metrics {
                        metrics
                            .llm_tokens
                            .with_label_values(&["prompt"])
                            .inc_by(usage.prompt_tokens);
                        metrics
                            .llm_tokens
                            .with_label_values(&["completion"])
                            .inc_by(usage.completion_tokens);
                    }
                    tracing::info!(
                        model = %self.settings.model,
                        kind,
                        prompt_tokens = usage.prompt_tokens,
                        completion_tokens = usage.completion_tokens,
                        latency_ms = latency.as_millis() as u64,
                        "Chat completion"
                    );
                    return Ok((content, usage));
                }
                Err(CallError::FormatRejected(message)) => match output.fallback() {
                    Some(simpler) => {
                        tracing::warn!(
                            %message,
                            from = ?output,
                            to = ?simpler,
                            "The language model server rejected the response format; using a simpler one"
                        );
                        self.output.store(simpler.to_u8(), Ordering::Relaxed);
                        output = simpler;
                    }
                    None => {
                        self.count(kind, "error");
                        return Err(InterpretError::Unexpected(anyhow::anyhow!(
                            "The language model server rejected the request: {message}"
                        )));
                    }
                },
                Err(CallError::Unavailable(cause)) => {
                    self.count(kind, "unavailable");
                    return Err(InterpretError::Unavailable(cause));
                }
                Err(CallError::Unexpected(error)) => {
                    self.count(kind, "error");
                    return Err(InterpretError::Unexpected(error));
                }
            }
        }
    }

    async fn call(
        &self,
        mut messages: Vec<ChatCompletionRequestMessage>,
        output: OutputMode,
    ) -> Result<(ModelAnswer, CallUsage), CallError> {
        // The answer instructions in the system prompt follow the output mode.
        set_answer_format(&mut messages, output);
        let request = chat_request(&self.settings, messages, output).map_err(CallError::Unexpected)?;
        let response = tokio::time::timeout(
            self.settings.completion_timeout,
            self.client.chat().create_byot::<_, Value>(request),
        )
        .await
        .map_err(|_| {
            CallError::Unavailable(format!(
                "no answer within {} s",
                self.settings.completion_timeout.as_secs_f32().round()
            ))
        })?
        .map_err(|error| classify(error, &self.settings.model))?;
        parse_completion(&response).map_err(CallError::Unexpected)
    }

    fn observe(&self, outcome: &str, latency: Duration) {
        if let Some(metrics) = &self.metrics {
            metrics
                .llm_seconds
                .with_label_values(&[outcome])
                .observe(latency.as_secs_f64());
        }
    }

    fn count(&self, kind: &str, outcome: &str) {
        if let Some(metrics) = &self.metrics {
            metrics.llm_completions.with_label_values(&[kind, outcome]).inc();
        }
    }

    /// Turns the model's answer into an interpretation, adding this attempt's cost to `before`.
    fn interpretation(
        &self,
        kind: &'static str,
        request: &InterpretRequest<'_>,
        answer: ModelAnswer,
        usage: CallUsage,
        before: Option<&LlmUsage>,
    ) -> Interpretation {
        let mut total = before.cloned().unwrap_or_default();
        total.model = self.settings.model.clone();
        total.prompt_tokens += usage.prompt_tokens;
        total.completion_tokens += usage.completion_tokens;
        total.attempts += 1;
        total.latency_ms += u64::try_from(usage.latency.as_millis()).unwrap_or(u64::MAX);

        let (interpretation, outcome) = interpretation_of(answer, request, total, self.metric_formats());
        self.count(kind, outcome);
        interpretation
    }

    /// Display formats of the model's metrics, by the output column the prompt asks for.
    fn metric_formats(&self) -> Vec<(String, ColumnFormat)> {
        self.knowledge()
            .model
            .metrics
            .iter()
            .map(|metric| (output_alias(&metric.name), metric.format))
            .collect()
    }
}

#[async_trait]
impl Interpreter for LlmInterpreter {
    async fn interpret(&self, request: InterpretRequest<'_>) -> Result<Interpretation, InterpretError> {
        if request.text.trim().is_empty() && request.clarifying.is_none() {
            return Ok(Interpretation::NotUnderstood(
                "Ask me a question about your data, e.g. `revenue by region last month`.".into(),
            ));
        }
        let messages = self.messages(&request).await;
        let (answer, usage) = self.complete(messages, "interpret").await?;
        Ok(self.interpretation("interpret", &request, answer, usage, None))
    }

    fn reload(&self, loaded: &LoadedModel) {
        let knowledge = Arc::new(Knowledge {
            catalog: Catalog::from_schema(&loaded.schema),
            model: loaded.model.clone(),
        });
        match self.knowledge.write() {
            Ok(mut current) => *current = knowledge,
            Err(poisoned) => *poisoned.into_inner() = knowledge,
        }
    }

    fn help(&self) -> String {
        self.help_for(None)
    }

    fn help_for(&self, access: Option<&crate::sql::AccessPolicy>) -> String {
        let mut text = String::from(
            "Ask a question about your data in plain words and I'll write the SQL, run it read-only and answer here.",
        );
        let knowledge = self.knowledge();
        let (model, tables) = match access {
            Some(policy) => (
                std::borrow::Cow::Owned(super::visible::model(&knowledge.model, policy)),
                super::visible::catalog(&knowledge.catalog, policy).tables.len(),
            ),
            None => (
                std::borrow::Cow::Borrowed(&knowledge.model),
                knowledge.catalog.tables.len(),
            ),
        };
        let metrics: Vec<String> = model
            .metrics
            .iter()
            .map(|metric| match metric.synonyms.first() {
                Some(synonym) => format!("`{}` ({synonym})", metric.name),
                None => format!("`{}`", metric.name),
            })
            .collect();
        if !metrics.is_empty() {
            text.push_str(&format!("\n*Defined metrics:* {}", metrics.join(", ")));
        }
        let dimensions: Vec<String> = model.dimensions.iter().map(|d| format!("`{}`", d.name)).collect();
        if !dimensions.is_empty() {
            text.push_str(&format!("\n*Break down by:* {}", dimensions.join(", ")));
        }
        text.push_str(&format!(
            "\nI know {tables} tables of the warehouse. Example: `revenue by region last month`."
        ));
        text
    }

    async fn revise(
        &self,
        request: InterpretRequest<'_>,
        failed: &ProposedQuery,
        error: &str,
    ) -> Result<Option<Interpretation>, InterpretError> {
        let mut messages = self.messages(&request).await;
        messages.extend(correction_messages(failed, error)?);
        let (answer, usage) = self.complete(messages, "revise").await?;
        Ok(Some(self.interpretation(
            "revise",
            &request,
            answer,
            usage,
            failed.usage.as_ref(),
        )))
    }
}
