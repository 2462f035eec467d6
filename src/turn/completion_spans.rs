//! Chat completions as spans of their own in a trace. The LLM interpreter asks the model once per
//! `interpret` and once per `revise` (its HTTP retries inside that one call), so wrapping those
//! two calls gives one `llm.completion` span per completion, beside the `interpret` span the
//! turn opens for every interpreter.
use std::sync::Arc;

use async_trait::async_trait;
use tracing::Instrument;

use crate::domain::ProposedQuery;
use crate::interpret::{InterpretError, InterpretRequest, Interpretation, Interpreter};

/// An LLM interpreter whose every completion is a span (`llm.completion`, with the OpenTelemetry
/// GenAI attributes `gen_ai.operation.name` and `gen_ai.request.model`).
pub struct CompletionSpans {
    inner: Arc<dyn Interpreter>,
    model: String,
}

impl CompletionSpans {
    pub fn new(inner: Arc<dyn Interpreter>, model: impl Into<String>) -> Self {
        Self {
            inner,
            model: model.into(),
        }
    }

    fn span(&self, kind: &'static str) -> tracing::Span {
        tracing::info_span!(
            "llm.completion",
            kind,
            gen_ai.operation.name = "chat",
            gen_ai.request.model = %self.model,
        )
    }
}

#[async_trait]
impl Interpreter for CompletionSpans {
    async fn interpret(&self, request: InterpretRequest<'_>) -> Result<Interpretation, InterpretError> {
        self.inner.interpret(request).instrument(self.span("interpret")).await
    }

    fn help(&self) -> String {
        self.inner.help()
    }

    fn help_for(&self, access: Option<&crate::sql::AccessPolicy>) -> String {
        self.inner.help_for(access)
    }

    fn reload(&self, loaded: &crate::interpret::load::LoadedModel) {
        self.inner.reload(loaded);
    }

    fn as_of(&self, query: &crate::domain::ProposedQuery, today: chrono::NaiveDate) -> crate::domain::ProposedQuery {
        self.inner.as_of(query, today)
    }

    async fn revise(
        &self,
        request: InterpretRequest<'_>,
        failed: &ProposedQuery,
        error: &str,
    ) -> Result<Option<Interpretation>, InterpretError> {
        self.inner
            .revise(request, failed, error)
            .instrument(self.span("revise"))
            .await
    }
}
