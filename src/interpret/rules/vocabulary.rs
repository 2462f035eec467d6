//! The model's vocabulary: every phrase that names a metric, a dimension or a dimension value
//! (names, synonyms, plurals, values without their parenthetical), and the longest phrase that
//! starts at a given word.
use std::collections::HashMap;

use super::lexicon::{plural_forms, split_words, Word};
use crate::interpret::model::SemanticModel;

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
    term: Term,
}

/// Phrases of metrics, dimensions and dimension values, indexed by their first word.
#[derive(Debug, Clone, Default)]
pub(super) struct Vocabulary {
    by_first_word: HashMap<String, Vec<Entry>>,
}

impl Vocabulary {
    /// The phrases of `model` and of the dimensions' distinct `values` (values of dimensions the
    /// model does not define are left out).
    pub(super) fn new(model: &SemanticModel, values: &[(String, Vec<String>)]) -> Self {
        let mut vocabulary = Vocabulary::default();
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
        let entries = self.by_first_word.entry(first).or_default();
        if !entries.iter().any(|e| e.words == words && e.term == term) {
            entries.push(Entry { words, term });
        }
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

    /// The longest phrase at the start of `words` and every term it names.
    pub(super) fn longest(&self, words: &[Word]) -> Option<(usize, Vec<Term>)> {
        let first = words.first()?;
        let entries = self.by_first_word.get(&first.lower)?;
        let mut best: Option<(usize, Vec<Term>)> = None;
        for entry in entries {
            let len = entry.words.len();
            let matches = words.len() >= len && entry.words.iter().zip(words).all(|(a, b)| *a == b.lower);
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
