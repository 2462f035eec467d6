//! A question or a refinement: interpret it, run it, and let an interpreter that can correct
//! itself see what went wrong.
use tracing::Instrument;

use super::execute::{Consent, Failure, Run};
use super::run::{Handled, TurnContext, TurnRequest};
use crate::domain::{ErrorCode, PendingClarification, ProposedQuery, QueryId, Reply};
use crate::interpret::{InterpretError, InterpretRequest, Interpretation};

/// How many times one question may be interpreted (the first try plus corrections).
const MAX_ATTEMPTS: u32 = 3;

/// How much of a question or an interpretation an audit row keeps.
const AUDITED_CHARS: usize = 2_000;

fn clipped(text: &str) -> String {
    match text.char_indices().nth(AUDITED_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// An interpretation as the audit trail keeps it: the SQL proposed, or what was asked back.
fn described(interpretation: &Interpretation) -> String {
    clipped(&match interpretation {
        Interpretation::Query(query) => format!("query: {}", query.sql),
        Interpretation::Clarify(asked) => format!("clarification: {asked}"),
        Interpretation::NotUnderstood(_) => "not understood".to_string(),
    })
}

impl TurnContext {
    pub(super) async fn ask(&mut self, message: &TurnRequest, text: &str) -> Handled {
        let today = self.services.today();
        let clarifying = self.state.pending_clarification.take();
        let current = self.state.current().map(|v| v.query.clone());
        // The turn being handled was just recorded; the interpreter gets the ones before it.
        let turns = self.state.turns();
        let history = turns[..turns.len().saturating_sub(1)].to_vec();
        self.audit(message, "question_asked", None, clipped(text)).await;
        // The asker's roles decide what the interpreter may show of the warehouse; someone who
        // may read nothing is told so before any interpreter sees the question.
        let grant = match self.grant(message).await {
            Ok(grant) => grant,
            Err(refusal) => return Handled::failure(refusal),
        };
        let request = InterpretRequest {
            text,
            current: current.as_ref(),
            today,
            history: &history,
            clarifying: clarifying.as_ref(),
            access: grant.policy.as_ref(),
        };
        let interpreter = self.services.interpreter.clone();
        let interpreted = interpreter
            .interpret(request.clone())
            .instrument(tracing::info_span!("interpret", kind = "interpret"))
            .await;
        if let Ok(interpretation) = &interpreted {
            self.audit(message, "interpreted", None, described(interpretation))
                .await;
        }
        let mut proposed = match interpreted {
            Ok(interpretation) => match self.accept_interpretation(interpretation, text, clarifying.as_ref()) {
                Ok(proposed) => proposed,
                Err(handled) => return handled,
            },
            Err(error) => return self.interpreter_failure(error),
        };
        let query_id = QueryId::random();
        let mut attempt = 1;
        loop {
            let cap = self.services.limits.answer_fetch_cap;
            let run = Run {
                question: text,
                query_id: &query_id,
                query: &proposed,
                version: self.state.next_number(),
                row_cap: cap,
                consent: Consent::Ask,
                pages: None,
            };
            match self.execute(message, run).await {
                Ok(execution) => {
                    self.record_llm_usage(&query_id, &proposed).await;
                    let version = self.state.push_version(text, proposed, query_id.clone()).number;
                    let summary = self
                        .state
                        .current()
                        .map(|v| v.query.summary.clone())
                        .unwrap_or_default();
                    return Handled::answered(self.answer(summary, execution, query_id, version));
                }
                Err(Failure {
                    confirm: Some(confirm), ..
                }) => {
                    // Kept as a version, so "Run anyway" (or a narrower refinement) has it.
                    self.record_llm_usage(&query_id, &proposed).await;
                    let version = self.state.push_version(text, proposed, query_id).number;
                    return Handled::replied(Reply::Confirm { text: confirm, version });
                }
                Err(failure) if failure.superseded => {
                    // The newer message is most likely a refinement of this question: keep the
                    // version (unanswered) so that it has something to refine.
                    self.state.push_version(text, proposed, query_id);
                    return Handled::failure(failure.reply);
                }
                Err(Failure {
                    reply,
                    error,
                    revisable: true,
                    ..
                }) if attempt < MAX_ATTEMPTS => {
                    // Interpreters that can correct themselves (the LLM) see the guard's or the
                    // warehouse's error; the user sees only the final answer or failure.
                    let revised = interpreter
                        .revise(request.clone(), &proposed, &error)
                        .instrument(tracing::info_span!("interpret", kind = "revise", attempt))
                        .await;
                    match revised {
                        Ok(Some(interpretation)) => {
                            self.services.metrics.llm_corrections.inc();
                            self.audit(
                                message,
                                "interpreted",
                                None,
                                format!("corrected: {}", described(&interpretation)),
                            )
                            .await;
                            match self.accept_interpretation(interpretation, text, clarifying.as_ref()) {
                                Ok(revised) => {
                                    proposed = revised;
                                    attempt += 1;
                                }
                                Err(handled) => return handled,
                            }
                        }
                        Ok(None) => return Handled::failure(reply),
                        Err(error) => return self.interpreter_failure(error),
                    }
                }
                Err(failure) => {
                    self.record_llm_usage(&query_id, &proposed).await;
                    return Handled::failure(failure.reply);
                }
            }
        }
    }

    /// The model's own error text goes to the log only.
    fn interpreter_failure(&self, error: InterpretError) -> Handled {
        tracing::error!(thread = %self.key, ?error, "The interpreter failed");
        Handled::failed(match error {
            InterpretError::Unavailable(_) => ErrorCode::LlmUnavailable,
            InterpretError::Unexpected(_) => ErrorCode::InterpreterFailed,
        })
    }

    /// What the language model spent on this question, summed over its attempts.
    async fn record_llm_usage(&self, query_id: &QueryId, proposed: &ProposedQuery) {
        let Some(usage) = &proposed.usage else { return };
        if let Err(error) = self
            .services
            .store
            .record_llm_usage(query_id, usage, &proposed.explanation)
            .await
        {
            tracing::error!(thread = %self.key, ?error, "Failed to record LLM usage");
        }
        self.services.metrics.llm_attempts.observe(f64::from(usage.attempts));
    }

    /// A query to run, or how the turn ends (a clarifying question is remembered so the user's
    /// answer continues this question).
    fn accept_interpretation(
        &mut self,
        interpretation: Interpretation,
        text: &str,
        clarifying: Option<&PendingClarification>,
    ) -> Result<ProposedQuery, Handled> {
        match interpretation {
            Interpretation::Query(proposed) => Ok(*proposed),
            Interpretation::Clarify(asked) => {
                let question = match clarifying {
                    Some(pending) => format!("{} ({text})", pending.question),
                    None => text.to_string(),
                };
                self.state.pending_clarification = Some(PendingClarification {
                    question,
                    asked: asked.clone(),
                });
                Err(Handled::replied(Reply::Text(asked)))
            }
            // The interpreter's explanation names the words it did not understand and what it
            // knows instead: our own words, shown as the detail.
            Interpretation::NotUnderstood(explanation) => Err(Handled::failure(Reply::error_with(
                ErrorCode::NotUnderstood,
                explanation,
            ))),
        }
    }
}
