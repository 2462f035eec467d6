//! Reading the model's answer: the chat completion as compatible servers actually send it, the
//! JSON answer inside it (leniently), and what the thread is told as a result.
use std::time::Duration;

use serde_json::Value;

use super::prompt::one_line;
use crate::domain::ColumnFormat;
use crate::interpret::{InterpretRequest, Interpretation, LlmUsage, ProposedQuery};

/// A model's answer, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct ModelAnswer {
    pub(super) sql: String,
    pub(super) summary: String,
    pub(super) explanation: String,
    pub(super) clarification: String,
}

/// One completion's cost.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct CallUsage {
    pub(super) prompt_tokens: u64,
    pub(super) completion_tokens: u64,
    pub(super) latency: Duration,
}

/// Reads a chat completion leniently: compatible servers omit fields (`usage`, `created`), add
/// their own (`reasoning_content`) or use unusual `finish_reason` values.
pub(super) fn parse_completion(response: &Value) -> anyhow::Result<(ModelAnswer, CallUsage)> {
    let usage = CallUsage {
        prompt_tokens: response["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
        completion_tokens: response["usage"]["completion_tokens"].as_u64().unwrap_or(0),
        latency: Duration::ZERO,
    };
    let message = &response["choices"][0]["message"];
    if message.is_null() {
        anyhow::bail!(
            "The chat completion has no message: {}",
            one_line(&response.to_string(), 500)
        );
    }
    if let Some(refusal) = message["refusal"].as_str().filter(|r| !r.trim().is_empty()) {
        return Ok((
            ModelAnswer {
                clarification: format!("I can't answer that: {refusal}"),
                ..ModelAnswer::default()
            },
            usage,
        ));
    }
    let content = match &message["content"] {
        Value::String(text) => text.clone(),
        // Content parts: [{"type": "text", "text": "…"}].
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| part["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    };
    // A server that answers with a tool call instead of content.
    let content = if content.trim().is_empty() {
        message["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    } else {
        content
    };
    Ok((parse_answer(&content), usage))
}

/// Reads the model's JSON answer; tolerates code fences, `<think>` blocks, prose around the
/// JSON, missing or extra fields, and a bare SQL statement.
fn parse_answer(content: &str) -> ModelAnswer {
    let mut text = content.to_string();
    while let (Some(start), Some(end)) = (text.find("<think>"), text.find("</think>")) {
        if end < start {
            break;
        }
        text.replace_range(start..end + "</think>".len(), "");
    }
    let text = strip_fences(text.trim());
    let value = serde_json::from_str::<Value>(text).ok().or_else(|| {
        let start = text.find('{')?;
        let end = text.rfind('}')?;
        serde_json::from_str::<Value>(text.get(start..=end)?).ok()
    });
    let field = |value: &Value, name: &str| value[name].as_str().unwrap_or_default().trim().to_string();
    match value {
        Some(value) if value.is_object() => {
            let kind = field(&value, "kind").to_lowercase();
            let sql = clean_sql(&field(&value, "sql"));
            let clarification = field(&value, "clarification");
            let is_clarification = kind.starts_with("clarif") && !clarification.is_empty();
            ModelAnswer {
                sql: if is_clarification { String::new() } else { sql },
                summary: field(&value, "summary"),
                explanation: field(&value, "explanation"),
                clarification,
            }
        }
        _ => {
            let lower = text.trim_start().to_lowercase();
            if lower.starts_with("select") || lower.starts_with("with") {
                ModelAnswer {
                    sql: clean_sql(text),
                    ..ModelAnswer::default()
                }
            } else {
                ModelAnswer::default()
            }
        }
    }
}

fn strip_fences(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("```") else {
        return text;
    };
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    rest.trim().strip_suffix("```").unwrap_or(rest).trim()
}

fn clean_sql(sql: &str) -> String {
    strip_fences(sql.trim()).trim().trim_end_matches(';').trim().to_string()
}

/// What the thread is told for the model's answer, and the outcome's name for the metrics
/// (`query`, `clarify`, `not_understood`). `usage` is the cost so far, this attempt included;
/// `formats` are the display formats of the model's metrics by output column.
pub(super) fn interpretation_of(
    answer: ModelAnswer,
    request: &InterpretRequest<'_>,
    usage: LlmUsage,
    formats: Vec<(String, ColumnFormat)>,
) -> (Interpretation, &'static str) {
    if !answer.sql.is_empty() {
        let summary = if answer.summary.is_empty() {
            fallback_summary(request)
        } else {
            one_line(&answer.summary, 200)
        };
        let query = ProposedQuery {
            sql: answer.sql,
            structured: None,
            summary,
            formats,
            explanation: answer.explanation,
            usage: Some(usage),
        };
        return (Interpretation::Query(Box::new(query)), "query");
    }
    if !answer.clarification.is_empty() {
        return (Interpretation::Clarify(answer.clarification), "clarify");
    }
    (
        Interpretation::NotUnderstood(
            "I couldn't turn that into a query. Try naming what to measure and how to break it down, e.g. \
             `revenue by region last month`."
                .into(),
        ),
        "not_understood",
    )
}

/// A summary for a query the model left without one: the question, on one line.
fn fallback_summary(request: &InterpretRequest<'_>) -> String {
    let text = match request.clarifying {
        Some(pending) => format!("{} ({})", pending.question, request.text),
        None => request.text.to_string(),
    };
    let text = one_line(&text, 120);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn answers_are_read_from_fenced_json_with_extra_fields() {
        let answer = parse_answer(
            "<think>hmm</think>```json\n{\"kind\":\"query\",\"sql\":\"SELECT 1;\",\"summary\":\"One\",\"extra\":3}\n```",
        );
        assert_eq!(answer.sql, "SELECT 1");
        assert_eq!(answer.summary, "One");
        assert!(answer.clarification.is_empty());
    }

    #[test]
    fn a_clarification_wins_over_an_empty_query() {
        let answer = parse_answer(r#"{"kind":"clarification","sql":"","clarification":"Which region?"}"#);
        assert!(answer.sql.is_empty());
        assert_eq!(answer.clarification, "Which region?");
    }

    #[test]
    fn a_bare_select_is_accepted_and_prose_is_not() {
        assert_eq!(parse_answer("SELECT 2").sql, "SELECT 2");
        assert_eq!(parse_answer("I cannot help with that"), ModelAnswer::default());
    }

    #[test]
    fn completions_without_usage_or_with_odd_finish_reasons_still_parse() {
        let response = json!({
            "choices": [{"message": {"role": "assistant", "content": "{\"sql\":\"SELECT 3\"}"}, "finish_reason": ""}]
        });
        let (answer, usage) = parse_completion(&response).unwrap();
        assert_eq!(answer.sql, "SELECT 3");
        assert_eq!(usage.prompt_tokens, 0);
    }
}
