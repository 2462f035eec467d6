//! The model's vocabulary: every phrase that names a metric, a dimension or a dimension value
//! (names, synonyms, plurals, values without their parenthetical), and the longest phrase that
//! starts at a given word.
use std::collections::HashMap;

use super::lexicon::{plural_forms, split_words, Word};
use crate::interpret::derive::names::{date_column_event, event_phrase, singular, split_identifier, stem};
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

#[derive(Debug, Clone)]
struct Entry {
    words: Vec<String>,
    /// The words' stems, so "deliveries" finds "delivery" when no phrase matches as written.
    stems: Vec<String>,
    term: Term,
}

/// Phrases of metrics, dimensions and dimension values, indexed by their first word (and by
/// its stem), and the events the tables' date columns date.
#[derive(Debug, Clone, Default)]
pub(super) struct Vocabulary {
    by_first_word: HashMap<String, Vec<Entry>>,
    by_first_stem: HashMap<String, Vec<Entry>>,
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
            for column in table.date_columns() {
                if let Some(event) = date_column_event(column) {
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
        let Some(first) = words.first().cloned() else { return };
        let stems: Vec<String> = words.iter().map(|w| stem(w)).collect();
        let entry = Entry {
            words: words.clone(),
            stems: stems.clone(),
            term: term.clone(),
        };
        // Values are matched as written only: a stem of "Paid" must not filter on "payment".
        if !matches!(term, Term::Value { .. }) {
            if let Some(first_stem) = stems.first() {
                let by_stem = self.by_first_stem.entry(first_stem.clone()).or_default();
                if !by_stem.iter().any(|e| e.stems == stems && e.term == term) {
                    by_stem.push(entry.clone());
                }
            }
        }
        let entries = self.by_first_word.entry(first).or_default();
        if !entries.iter().any(|e| e.words == words && e.term == term) {
            entries.push(entry);
        }
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
        self.by_first_word
            .values()
            .flatten()
            .find_map(|entry| match (&entry.term, entry.words.as_slice()) {
                (Term::Metric(name), [only]) if word_stem(only) == stem => Some(name.clone()),
                _ => None,
            })
    }

    /// The longest phrase at the start of `words` and every term it names: as written, else
    /// word stem by word stem ("deliveries", "channels").
    pub(super) fn longest(&self, words: &[Word]) -> Option<(usize, Vec<Term>)> {
        let first = words.first()?;
        if let Some(found) = self
            .by_first_word
            .get(&first.lower)
            .and_then(|entries| longest_of(entries, words, |entry, i, word| entry.words.get(i) == Some(&word.lower)))
        {
            return Some(found);
        }
        let entries = self.by_first_stem.get(&stem(&first.lower))?;
        // Each word is stemmed once, when an entry first reaches it (`all` goes in order).
        let mut stems: Vec<String> = Vec::new();
        longest_of(entries, words, |entry, i, word| {
            if stems.len() == i {
                stems.push(stem(&word.lower));
            }
            entry.stems.get(i) == stems.get(i)
        })
    }
}

/// The longest of `entries` whose words all match the start of `words` by `same`.
fn longest_of(
    entries: &[Entry],
    words: &[Word],
    mut same: impl FnMut(&Entry, usize, &Word) -> bool,
) -> Option<(usize, Vec<Term>)> {
    let mut best: Option<(usize, Vec<Term>)> = None;
    for entry in entries {
        let len = entry.words.len();
        let matches = words.len() >= len && words.iter().take(len).enumerate().all(|(i, word)| same(entry, i, word));
        if !matches {
            continue;
        }
        match &mut best {
            Some((best_len, terms)) if *best_len == len => terms.push(entry.term.clone()),
            Some((best_len, _)) if *best_len > len => {}
            _ => best = Some((len, vec![entry.term.clone()])),
        }
    }
    best
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
