//! The model's vocabulary: every phrase that names a metric, a dimension or a dimension value
//! (names, synonyms, plurals, values without their parenthetical), and the longest phrase that
//! starts at a given word.
use std::collections::HashMap;

use super::lexicon::{plural_forms, split_words, Word};
use crate::interpret::derive::names::{
    date_column_event, event_phrase, shared_prefix, singular, split_identifier, stem, strip_prefix_ignoring_case,
};
use crate::interpret::model::SemanticModel;

/// Longest phrase naming a date column's event ("signed up", "first ordered").
const MAX_EVENT_WORDS: usize = 3;

/// What a phrase names in the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Term {
    Metric(String),
    Dimension(String),
    Value { dimension: String, value: String },
}

/// Phrases of metrics, dimensions and dimension values by their words (and by their words'
/// stems), and the events the tables' date columns date. A phrase is found by hashing the
/// words at a position, longest first: the cost of a lookup does not grow with the model.
#[derive(Debug, Clone, Default)]
pub(super) struct Vocabulary {
    phrases: HashMap<Vec<String>, Vec<Term>>,
    /// The same phrases by the stems of their words, so "deliveries" finds "delivery" when no
    /// phrase matches as written (values excepted: a stem of "Paid" must not mean "payment").
    stemmed: HashMap<Vec<String>, Vec<Term>>,
    /// Words in the longest phrase.
    longest_phrase: usize,
    /// Metrics named by one word, by its [`word_stem`] ("crash" -> crashes).
    one_word_metrics: HashMap<String, String>,
    /// Event stems ("issu", "pay") to the date columns (`table.column`) they date.
    events: HashMap<String, Vec<String>>,
}

impl Vocabulary {
    /// The phrases of `model` and of the dimensions' distinct `values` (values of dimensions the
    /// model does not define are left out).
    pub(super) fn new(model: &SemanticModel, values: &[(String, Vec<String>)]) -> Self {
        let mut vocabulary = Vocabulary::default();
        // "account balance" for "customer account balance": the name without its table's
        // noun, which may name several metrics or dimensions (the reader then asks which).
        let bare = |name: &str, table: &str| -> Option<String> {
            let noun = singular(&split_identifier(table).join(" "));
            let rest = name.strip_prefix(&noun)?.strip_prefix(' ')?;
            let taken = model.metric(rest).is_some() || model.dimension(rest).is_some();
            (!rest.is_empty() && !taken).then(|| rest.to_string())
        };
        for metric in &model.metrics {
            if let Some(rest) = bare(&metric.name, &metric.table) {
                vocabulary.add(&rest, Term::Metric(metric.name.clone()));
            }
        }
        for dimension in &model.dimensions {
            if let Some(rest) = bare(&dimension.name, &dimension.table) {
                for form in plural_forms(&rest) {
                    vocabulary.add(&form, Term::Dimension(dimension.name.clone()));
                }
            }
        }
        for metric in &model.metrics {
            for phrase in std::iter::once(&metric.name).chain(&metric.synonyms) {
                vocabulary.add(phrase, Term::Metric(metric.name.clone()));
                if !phrase.ends_with('s') {
                    vocabulary.add(&format!("{phrase}s"), Term::Metric(metric.name.clone()));
                }
            }
        }
        for dimension in &model.dimensions {
            for phrase in std::iter::once(&dimension.name).chain(&dimension.synonyms) {
                for form in plural_forms(phrase) {
                    vocabulary.add(&form, Term::Dimension(dimension.name.clone()));
                }
            }
        }
        for table in &model.tables {
            // `sacct_created_dt` dates "created": the prefix the table's columns share is no event.
            let columns: Vec<&str> = table.columns.iter().map(String::as_str).collect();
            let prefix = shared_prefix(&columns);
            for column in table.date_columns() {
                let said = prefix
                    .as_deref()
                    .and_then(|prefix| strip_prefix_ignoring_case(column, prefix))
                    .unwrap_or(column);
                if let Some(event) = date_column_event(said) {
                    let columns = vocabulary.events.entry(event).or_default();
                    columns.push(format!("{}.{column}", table.name));
                }
            }
        }
        for (dimension, list) in values {
            if model.dimension(dimension).is_none() {
                continue;
            }
            for value in list {
                vocabulary.add(
                    value,
                    Term::Value {
                        dimension: dimension.clone(),
                        value: value.clone(),
                    },
                );
            }
            // "Analytics Suite (annual seat)" is also "Analytics Suite", when that names only it.
            let short_forms: Vec<(&str, &String)> = list
                .iter()
                .filter_map(|value| Some((value.split_once(" (")?.0.trim(), value)))
                .filter(|(short, _)| !short.is_empty())
                .collect();
            for (short, value) in &short_forms {
                let unique = short_forms
                    .iter()
                    .filter(|(other, _)| other.eq_ignore_ascii_case(short))
                    .count()
                    == 1
                    && !list.iter().any(|v| v.eq_ignore_ascii_case(short));
                if unique {
                    vocabulary.add(
                        short,
                        Term::Value {
                            dimension: dimension.clone(),
                            value: (*value).clone(),
                        },
                    );
                }
            }
        }
        vocabulary
    }

    fn add(&mut self, phrase: &str, term: Term) {
        let words: Vec<String> = split_words(phrase).into_iter().map(|w| w.lower).collect();
        if words.is_empty() {
            return;
        }
        self.longest_phrase = self.longest_phrase.max(words.len());
        if let (Term::Metric(name), [only]) = (&term, words.as_slice()) {
            self.one_word_metrics
                .entry(word_stem(only).to_string())
                .or_insert_with(|| name.clone());
        }
        if !matches!(term, Term::Value { .. }) {
            let stems: Vec<String> = words.iter().map(|w| stem(w)).collect();
            push_unique(self.stemmed.entry(stems).or_default(), &term);
        }
        push_unique(self.phrases.entry(words).or_default(), &term);
    }

    /// The date columns (`table.column`) an event phrase at the start of `words` dates
    /// ("issued" -> `invoices.issued_on`), longest phrase first, with the words used.
    pub(super) fn event(&self, words: &[Word]) -> Option<(usize, &[String])> {
        if self.events.is_empty() {
            return None;
        }
        for len in (1..=MAX_EVENT_WORDS.min(words.len())).rev() {
            let phrase: Vec<&str> = words.get(..len)?.iter().map(|w| w.lower.as_str()).collect();
            if phrase.iter().any(|w| !w.chars().all(char::is_alphabetic)) {
                continue;
            }
            if let Some(columns) = self.events.get(&event_phrase(&phrase)) {
                return Some((len, columns.as_slice()));
            }
        }
        None
    }

    /// The metric a verb or other form of one of its one-word names stands for: "crashed" for
    /// crashes, "refunded" for refunds. Only reached for words nothing else matched.
    pub(super) fn metric_by_stem(&self, word: &str) -> Option<String> {
        let stem = word_stem(word);
        if stem.len() < 4 {
            return None;
        }
        self.one_word_metrics.get(stem).cloned()
    }

    /// The longest phrase at the start of `words` and every term it names: as written, else
    /// word stem by word stem ("deliveries", "channels").
    pub(super) fn longest(&self, words: &[Word]) -> Option<(usize, Vec<Term>)> {
        let most = self.longest_phrase.min(words.len());
        let lowered: Vec<String> = words.get(..most)?.iter().map(|w| w.lower.clone()).collect();
        if let Some(found) = longest_in(&self.phrases, &lowered) {
            return Some(found);
        }
        let stems: Vec<String> = lowered.iter().map(|w| stem(w)).collect();
        longest_in(&self.stemmed, &stems)
    }
}

/// The longest prefix of `words` that `phrases` holds, with its terms.
fn longest_in(phrases: &HashMap<Vec<String>, Vec<Term>>, words: &[String]) -> Option<(usize, Vec<Term>)> {
    (1..=words.len())
        .rev()
        .find_map(|len| Some((len, phrases.get(words.get(..len)?)?.clone())))
}

fn push_unique(terms: &mut Vec<Term>, term: &Term) {
    if !terms.contains(term) {
        terms.push(term.clone());
    }
}

/// A word without its inflection ("crashed", "crashes" -> "crash"), enough to tie a verb to a
/// metric named by its noun.
fn word_stem(word: &str) -> &str {
    for suffix in ["ing", "ed", "es", "s"] {
        if let Some(stem) = word.strip_suffix(suffix) {
            if stem.len() >= 3 {
                return stem;
            }
        }
    }
    word
}

#[cfg(test)]
mod tests {
    use crate::interpret::rules::fixtures::*;

    #[test]
    fn a_value_can_be_named_without_its_parenthetical() {
        let q = thread(&["units of analytics suite"]);
        assert_eq!(
            q.filters,
            vec![filter("product", &["Analytics Suite (annual seat)"], false)]
        );
        let q = thread(&["units of Analytics Suite (annual seat)"]);
        assert_eq!(
            q.filters,
            vec![filter("product", &["Analytics Suite (annual seat)"], false)]
        );
    }
}
