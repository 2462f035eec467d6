//! The interpreter the rules tests ask (the demo model and a fixed set of dimension values),
//! and helpers to ask it.
use chrono::NaiveDate;

use super::RulesInterpreter;
use crate::interpret::query::{Filter, StructuredQuery};
use crate::interpret::{Interpretation, ProposedQuery, SemanticModel};
use crate::sql::Dialect;

pub(super) fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 22).unwrap_or_default()
}

pub(super) fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

pub(super) fn values() -> Vec<(String, Vec<String>)> {
    let list = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        ("region".into(), list(&["AMER", "APAC", "EMEA"])),
        (
            "country".into(),
            list(&["France", "Germany", "United Kingdom", "United States", "Japan"]),
        ),
        ("segment".into(), list(&["Consumer", "Enterprise", "SMB"])),
        ("category".into(), list(&["Books", "Home & Garden", "Electronics"])),
        (
            "product".into(),
            list(&[
                "Desk Lamp",
                "O'Brien Mug",
                "May Planner",
                "Analytics Suite (annual seat)",
            ]),
        ),
        ("channel".into(), list(&["mobile", "partner", "web"])),
        ("status".into(), list(&["cancelled", "completed", "refunded"])),
        ("platform".into(), list(&["android", "ios", "web"])),
    ]
}

pub(super) fn interpreter() -> RulesInterpreter {
    RulesInterpreter::new(SemanticModel::demo().unwrap_or_default(), values(), Dialect::Sqlite)
}

pub(super) fn ask(text: &str, current: Option<&ProposedQuery>) -> Interpretation {
    interpreter().interpret_text(text, current, today())
}

pub(super) fn query(text: &str, current: Option<&ProposedQuery>) -> ProposedQuery {
    match ask(text, current) {
        Interpretation::Query(query) => *query,
        other => panic!("'{text}' should give a query, got {other:?}"),
    }
}

pub(super) fn structured(proposed: &ProposedQuery) -> StructuredQuery {
    proposed.structured.clone().unwrap_or_default()
}

/// Runs a sequence of texts in one thread and returns the final query.
pub(super) fn thread(texts: &[&str]) -> StructuredQuery {
    let mut current: Option<ProposedQuery> = None;
    for text in texts {
        current = Some(query(text, current.as_ref()));
    }
    current.as_ref().map(structured).unwrap_or_default()
}

pub(super) fn filter(dimension: &str, values: &[&str], negated: bool) -> Filter {
    Filter {
        dimension: dimension.into(),
        values: values.iter().map(|v| v.to_string()).collect(),
        negated,
    }
}

pub(super) fn not_understood(text: &str, current: Option<&ProposedQuery>) -> String {
    match ask(text, current) {
        Interpretation::NotUnderstood(message) => message,
        other => panic!("'{text}' should not be understood, got {other:?}"),
    }
}
