//! The deterministic interpreter: maps words onto the semantic model and refines the thread's
//! current query. It never guesses: a word it cannot place is named back to the user.
use std::collections::HashMap;

use async_trait::async_trait;
use chrono::NaiveDate;

use super::model::SemanticModel;
use super::query::{self, join_words, Filter, Grain, StructuredQuery, TimeRange, TopN};
use super::time::{match_time_phrase, parse_count, KNOWN_TIME_PHRASES};
use super::{InterpretError, InterpretRequest, Interpretation, Interpreter, ProposedQuery};
use crate::sql::Dialect;

/// Words that carry no meaning for a query. Anything else that cannot be placed is reported.
#[rustfmt::skip]
const STOPWORDS: &[&str] = &[
    "a", "about", "across", "actually", "again", "am", "an", "are", "as", "at", "be", "been", "breakdown",
    "broken", "but", "by", "calculate", "can", "compute", "could", "count", "data", "did", "display", "do",
    "does", "during", "each", "figure", "figures", "find", "for", "from", "get", "give", "got", "had", "has",
    "have", "hello", "hey", "hi", "how", "how's", "i", "in", "instead", "is", "it", "its", "it's", "just",
    "kindly", "let", "let's", "lets", "like", "list", "many", "me", "much", "my", "need", "now", "number", "of",
    "ok", "okay", "on", "only", "our", "over", "overall", "per", "please", "rather", "same", "see", "show",
    "so", "tell", "thank", "thanks", "that", "the", "then", "there", "these", "this", "those", "to", "total",
    "totals", "us", "view", "want", "was", "we", "were", "what", "what's", "whats", "what're", "when", "which",
    "with", "within", "would", "you", "all", "any", "every",
];

/// Words that mark a text as a change to the current query rather than a new question.
#[rustfmt::skip]
const REFINEMENT_WORDS: &[&str] = &[
    "instead", "rather", "only", "just", "now", "also", "but", "same", "again", "switch", "change",
];

/// Words a time phrase may start with ("in May", "for the last 7 days").
const PREPOSITIONS: &[&str] = &["in", "during", "for", "over", "within", "from", "on", "the"];

/// Largest accepted N in `top N`; larger is a typo or a wish for everything.
const MAX_TOP: u32 = 1000;

/// Rows shown by a bare `top`/`bottom`.
const DEFAULT_TOP: u32 = 10;

/// One word of the user's text: lowercase for matching, original for replies.
#[derive(Debug, Clone)]
struct Word {
    lower: String,
    original: String,
}

/// What a phrase names in the model.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
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
struct Lexicon {
    by_first_word: HashMap<String, Vec<Entry>>,
}

impl Lexicon {
    fn add(&mut self, phrase: &str, term: Term) {
        let words: Vec<String> = split_words(phrase).into_iter().map(|w| w.lower).collect();
        let Some(first) = words.first().cloned() else { return };
        let entries = self.by_first_word.entry(first).or_default();
        if !entries.iter().any(|e| e.words == words && e.term == term) {
            entries.push(Entry { words, term });
        }
    }

    /// The longest phrase at the start of `words` and every term it names.
    fn longest(&self, words: &[Word]) -> Option<(usize, Vec<Term>)> {
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

/// A value the user named, with every dimension it may belong to.
#[derive(Debug, Clone)]
struct ValueMention {
    text: String,
    candidates: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
enum GroupItem {
    Dimension(String),
    Grain(Grain),
}

/// One meaningful piece of the text. `joined` means it followed "and"/"also"/"plus", which in
/// a refinement adds to the current query instead of replacing.
#[derive(Debug, Clone)]
enum Part {
    Metric {
        name: String,
        joined: bool,
    },
    Group {
        items: Vec<GroupItem>,
        joined: bool,
    },
    Values {
        mentions: Vec<ValueMention>,
        negated: bool,
        joined: bool,
    },
    Time(TimeRange),
    Top(TopN),
    RemoveTop,
    /// `None` removes every filter.
    RemoveFilter(Option<String>),
    RemoveTime,
    /// Drops a dimension from the grouping (and from the filters when `filters_too`).
    RemoveDimension {
        dimension: String,
        filters_too: bool,
    },
    ClearGrouping,
}

/// What the words of a text amount to before they are applied.
#[derive(Debug, Default)]
struct Reading {
    parts: Vec<Part>,
    unknown: Vec<String>,
    refinement_wording: bool,
}

/// The deterministic interpreter over a semantic model and the dimensions' distinct values.
#[derive(Debug, Clone)]
pub struct RulesInterpreter {
    model: SemanticModel,
    dialect: Dialect,
    lexicon: Lexicon,
    values: Vec<(String, Vec<String>)>,
}

impl RulesInterpreter {
    /// `values` are each dimension's distinct values as read from the warehouse (see
    /// [`SemanticModel::distinct_values_sql`]); only those are accepted as filter values.
    pub fn new(model: SemanticModel, values: Vec<(String, Vec<String>)>, dialect: Dialect) -> Self {
        let mut lexicon = Lexicon::default();
        for metric in &model.metrics {
            for phrase in std::iter::once(&metric.name).chain(&metric.synonyms) {
                lexicon.add(phrase, Term::Metric(metric.name.clone()));
                if !phrase.ends_with('s') {
                    lexicon.add(&format!("{phrase}s"), Term::Metric(metric.name.clone()));
                }
            }
        }
        for dimension in &model.dimensions {
            for phrase in std::iter::once(&dimension.name).chain(&dimension.synonyms) {
                for form in plural_forms(phrase) {
                    lexicon.add(&form, Term::Dimension(dimension.name.clone()));
                }
            }
        }
        for (dimension, list) in &values {
            if model.dimension(dimension).is_none() {
                continue;
            }
            for value in list {
                lexicon.add(
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
                    lexicon.add(
                        short,
                        Term::Value {
                            dimension: dimension.clone(),
                            value: (*value).clone(),
                        },
                    );
                }
            }
        }
        Self {
            model,
            dialect,
            lexicon,
            values,
        }
    }

    pub fn model(&self) -> &SemanticModel {
        &self.model
    }

    /// The synchronous core of [`Interpreter::interpret`].
    pub fn interpret_text(&self, text: &str, current: Option<&ProposedQuery>, today: NaiveDate) -> Interpretation {
        let words = split_words(text);
        let reading = self.read(&words, today);
        if !reading.unknown.is_empty() {
            return Interpretation::NotUnderstood(self.not_understood(&reading.unknown));
        }
        if reading.parts.is_empty() {
            return Interpretation::NotUnderstood(format!(
                "I could not find a question in that.\n{}",
                self.vocabulary()
            ));
        }
        let query = match self.build(&reading, current) {
            Ok(query) => query,
            Err(answer) => return answer,
        };
        match query::compile(&query, &self.model, self.dialect) {
            Ok(sql) => Interpretation::Query(Box::new(ProposedQuery {
                sql,
                summary: query::summarize(&query),
                formats: query::output_formats(&query, &self.model),
                structured: Some(query),
                explanation: String::new(),
                usage: None,
            })),
            Err(error) => Interpretation::NotUnderstood(format!("I can't answer that: {error}.")),
        }
    }

    /// Splits the text into parts, left to right, taking the longest phrase at each step.
    fn read(&self, words: &[Word], today: NaiveDate) -> Reading {
        let mut reading = Reading::default();
        let mut joined = false;
        let mut at = 0;
        while at < words.len() {
            let rest = words.get(at..).unwrap_or_default();
            let lower = rest.first().map(|w| w.lower.as_str()).unwrap_or_default();
            if let Some((used, part)) = self.match_removal(rest) {
                reading.parts.push(part);
                reading.refinement_wording = true;
                at += used;
                joined = false;
                continue;
            }
            if let Some(skip) = negation_length(rest) {
                if let Some((used, mentions)) = self.match_value_list(rest.get(skip..).unwrap_or_default()) {
                    reading.parts.push(Part::Values {
                        mentions,
                        negated: true,
                        joined,
                    });
                    reading.refinement_wording = true;
                    at += skip + used;
                    joined = false;
                    continue;
                }
            }
            if let Some((used, items, adds)) = self.match_group(rest) {
                reading.parts.push(Part::Group {
                    items,
                    joined: joined || adds,
                });
                if adds {
                    reading.refinement_wording = true;
                }
                at += used;
                joined = false;
                continue;
            }
            if let Some((used, top)) = match_top(rest) {
                reading.parts.push(Part::Top(top));
                at += used;
                joined = false;
                continue;
            }
            if let Some((used, items)) = match_grain_adjective(rest) {
                reading.parts.push(Part::Group { items, joined });
                at += used;
                joined = false;
                continue;
            }
            let mut time = match_time_phrase(&lowercase(rest), today);
            // "for may planner": the preposition is not part of a time phrase when the words
            // after it are a longer model phrase (here a product).
            if let (Some((time_len, _)), true) = (&time, PREPOSITIONS.contains(&lower)) {
                let after = self.lexicon.longest(rest.get(1..).unwrap_or_default());
                if after.is_some_and(|(len, _)| len + 1 > *time_len) {
                    time = None;
                }
            }
            let term = self.lexicon.longest(rest);
            let time_len = time.as_ref().map_or(0, |(used, _)| *used);
            let term_len = term.as_ref().map_or(0, |(used, _)| *used);
            let names_model = term
                .as_ref()
                .is_some_and(|(_, terms)| terms.iter().any(|t| !matches!(t, Term::Value { .. })));
            // Longest wins; on a tie a metric or dimension name beats a time phrase, which beats
            // a dimension value ("may" the product loses to "in may").
            if let Some((used, range)) = time.filter(|_| time_len > term_len || (time_len == term_len && !names_model))
            {
                reading.parts.push(Part::Time(range));
                at += used;
                joined = false;
                continue;
            }
            if let Some((used, terms)) = term {
                let (used, part) = self.term_part(rest, used, &terms, joined);
                reading.parts.push(part);
                at += used;
                joined = false;
                continue;
            }
            match lower {
                "and" | "plus" | "&" | "," | "also" | "+" => {
                    joined = true;
                    if at == 0 || lower == "also" {
                        reading.refinement_wording = true;
                    }
                    at += 1;
                    continue;
                }
                _ => {}
            }
            if matches!(lower, "what" | "how") && rest.get(1).is_some_and(|w| w.lower == "about") {
                reading.refinement_wording = true;
                at += 2;
                continue;
            }
            if REFINEMENT_WORDS.contains(&lower) {
                reading.refinement_wording = true;
                at += 1;
                continue;
            }
            if STOPWORDS.contains(&lower) {
                at += 1;
                continue;
            }
            if let Some(word) = rest.first() {
                reading.unknown.push(word.original.clone());
            }
            at += 1;
        }
        reading
    }

    /// Turns a matched model phrase into a part: a metric, a value list, or a bare dimension
    /// ("top 5 countries"), which groups. A dimension followed by one of its values
    /// ("region EMEA") is a filter on it.
    fn term_part(&self, rest: &[Word], used: usize, terms: &[Term], joined: bool) -> (usize, Part) {
        if let Some(Term::Metric(name)) = terms.iter().find(|t| matches!(t, Term::Metric(_))) {
            return (
                used,
                Part::Metric {
                    name: name.clone(),
                    joined,
                },
            );
        }
        if let Some(Term::Dimension(dimension)) = terms.iter().find(|t| matches!(t, Term::Dimension(_))) {
            if let Some((value_len, mut mentions)) = self.match_value_list(rest.get(used..).unwrap_or_default()) {
                let all_fit = mentions
                    .iter()
                    .all(|m| m.candidates.iter().any(|(d, _)| d == dimension));
                if all_fit {
                    for mention in &mut mentions {
                        mention.candidates.retain(|(d, _)| d == dimension);
                    }
                    return (
                        used + value_len,
                        Part::Values {
                            mentions,
                            negated: false,
                            joined,
                        },
                    );
                }
            }
            return (
                used,
                Part::Group {
                    items: vec![GroupItem::Dimension(dimension.clone())],
                    joined,
                },
            );
        }
        match self.match_value_list(rest) {
            Some((value_len, mentions)) => (
                value_len,
                Part::Values {
                    mentions,
                    negated: false,
                    joined,
                },
            ),
            // Unreachable in practice: the lexicon only holds metrics, dimensions and values.
            None => (
                used,
                Part::Values {
                    mentions: vec![],
                    negated: false,
                    joined,
                },
            ),
        }
    }

    /// One value, optionally followed by its dimension's name ("EMEA region").
    fn match_value(&self, words: &[Word]) -> Option<(usize, ValueMention)> {
        let (used, terms) = self.lexicon.longest(words)?;
        let mut candidates: Vec<(String, String)> = terms
            .iter()
            .filter_map(|term| match term {
                Term::Value { dimension, value } => Some((dimension.clone(), value.clone())),
                _ => None,
            })
            .collect();
        if candidates.is_empty() || terms.iter().any(|t| !matches!(t, Term::Value { .. })) {
            return None;
        }
        let text = words
            .get(..used)?
            .iter()
            .map(|w| w.original.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let mut total = used;
        if let Some((qualifier_len, qualifier)) = self.lexicon.longest(words.get(used..).unwrap_or_default()) {
            let named = qualifier.iter().find_map(|t| match t {
                Term::Dimension(d) if candidates.iter().any(|(c, _)| c == d) => Some(d.clone()),
                _ => None,
            });
            if let Some(dimension) = named {
                candidates.retain(|(d, _)| *d == dimension);
                total += qualifier_len;
            }
        }
        Some((total, ValueMention { text, candidates }))
    }

    /// Values separated by "and", "or" and commas: "EMEA and APAC", "web, mobile".
    fn match_value_list(&self, words: &[Word]) -> Option<(usize, Vec<ValueMention>)> {
        let mut at = 0;
        while words
            .get(at)
            .is_some_and(|w| matches!(w.lower.as_str(), "the" | "in" | "for" | "of" | "from"))
        {
            at += 1;
        }
        let (used, first) = self.match_value(words.get(at..)?)?;
        at += used;
        let mut mentions = vec![first];
        loop {
            let mut next = at;
            while words
                .get(next)
                .is_some_and(|w| matches!(w.lower.as_str(), "and" | "or" | "," | "nor" | "&"))
            {
                next += 1;
            }
            if next == at {
                break;
            }
            match words.get(next..).and_then(|rest| self.match_value(rest)) {
                Some((used, mention)) => {
                    mentions.push(mention);
                    at = next + used;
                }
                None => break,
            }
        }
        Some((at, mentions))
    }

    /// "by region and week", "and by product", "per day", "for each country", "broken down by".
    /// Returns the words used, the items, and whether the phrase adds ("and by").
    fn match_group(&self, words: &[Word]) -> Option<(usize, Vec<GroupItem>, bool)> {
        let lower = lowercase(words);
        let get = |i: usize| lower.get(i).map(String::as_str);
        let (intro, adds) = match (get(0), get(1), get(2)) {
            (Some("and" | "also" | "plus"), Some("by" | "per"), _) => (2, true),
            (Some("and" | "also" | "plus"), Some("for"), Some("each")) => (3, true),
            (Some("broken"), Some("down"), Some("by")) => (3, false),
            (Some("split" | "grouped" | "group" | "break" | "breakdown"), Some("by"), _) => (2, false),
            (Some("break"), Some("down"), Some("by")) => (3, false),
            (Some("for"), Some("each" | "every"), _) => (2, false),
            (Some("by" | "per" | "each" | "every"), _, _) => (1, false),
            _ => return None,
        };
        let mut at = intro;
        let mut items = Vec::new();
        loop {
            let rest = words.get(at..).unwrap_or_default();
            let item = if let Some((used, grain)) = match_grain_word(rest) {
                Some((used, GroupItem::Grain(grain)))
            } else {
                match self.lexicon.longest(rest) {
                    Some((used, terms)) => terms.iter().find_map(|t| match t {
                        Term::Dimension(d) => Some((used, GroupItem::Dimension(d.clone()))),
                        _ => None,
                    }),
                    None => None,
                }
            };
            let Some((used, item)) = item else { break };
            items.push(item);
            at += used;
            // "by region and channel": keep going only when another group item follows.
            let after = words.get(at).map(|w| w.lower.as_str());
            if matches!(after, Some("and" | "," | "then" | "&")) {
                let next = words.get(at + 1..).unwrap_or_default();
                let follows = match_grain_word(next).is_some()
                    || self
                        .lexicon
                        .longest(next)
                        .is_some_and(|(_, terms)| terms.iter().any(|t| matches!(t, Term::Dimension(_))));
                if follows {
                    at += 1;
                    continue;
                }
            }
            break;
        }
        if items.is_empty() {
            return None;
        }
        Some((at, items, adds))
    }

    /// "remove the region filter", "without the region filter", "all regions", "all time",
    /// "remove the time range", "no limit", "remove the breakdown", "drop region".
    fn match_removal(&self, words: &[Word]) -> Option<(usize, Part)> {
        let lower = lowercase(words);
        let get = |i: usize| lower.get(i).map(String::as_str);
        let dimension_at = |i: usize| -> Option<(usize, String)> {
            let (used, terms) = self.lexicon.longest(words.get(i..)?)?;
            terms.iter().find_map(|t| match t {
                Term::Dimension(d) => Some((used, d.clone())),
                _ => None,
            })
        };
        // "all regions", "any region", "every country": no filter on that dimension.
        if matches!(get(0), Some("all" | "any" | "every")) {
            if matches!(get(1), Some("time" | "dates" | "history")) {
                return Some((2, Part::RemoveTime));
            }
            if let Some((used, dimension)) = dimension_at(1) {
                return Some((1 + used, Part::RemoveFilter(Some(dimension))));
            }
            return None;
        }
        if !matches!(
            get(0),
            Some("remove" | "drop" | "clear" | "delete" | "without" | "no" | "ignore" | "reset")
        ) {
            return None;
        }
        let mut at = 1;
        while matches!(get(at), Some("the" | "any" | "all" | "a")) {
            at += 1;
        }
        let is_filter_word = |w: Option<&str>| matches!(w, Some("filter" | "filters" | "restriction" | "condition"));
        if matches!(get(at), Some("time" | "date"))
            && matches!(
                get(at + 1),
                Some("range" | "filter" | "period" | "window" | "restriction" | "frame")
            )
        {
            return Some((at + 2, Part::RemoveTime));
        }
        if matches!(get(at), Some("period" | "timeframe" | "dates")) {
            return Some((at + 1, Part::RemoveTime));
        }
        if matches!(get(at), Some("limit" | "top" | "bottom")) {
            let mut used = at + 1;
            if get(used) == Some("n") {
                used += 1;
            }
            return Some((used, Part::RemoveTop));
        }
        if matches!(get(at), Some("breakdown" | "breakdowns" | "grouping" | "groupings")) {
            return Some((at + 1, Part::ClearGrouping));
        }
        if is_filter_word(get(at)) {
            if matches!(get(at + 1), Some("on" | "for" | "by")) {
                if let Some((used, dimension)) = dimension_at(at + 2) {
                    return Some((at + 2 + used, Part::RemoveFilter(Some(dimension))));
                }
            }
            return Some((at + 1, Part::RemoveFilter(None)));
        }
        if let Some((used, dimension)) = dimension_at(at) {
            let next = get(at + used);
            if is_filter_word(next) {
                return Some((at + used + 1, Part::RemoveFilter(Some(dimension))));
            }
            if matches!(next, Some("breakdown" | "grouping" | "column")) {
                return Some((
                    at + used + 1,
                    Part::RemoveDimension {
                        dimension,
                        filters_too: false,
                    },
                ));
            }
            // "without region" is ambiguous with "without <value>" only for values, and values
            // are matched as negations; a dimension name means the whole dimension goes.
            return Some((
                at + used,
                Part::RemoveDimension {
                    dimension,
                    filters_too: true,
                },
            ));
        }
        None
    }

    /// Applies the parts to a new query or to the thread's current one.
    fn build(&self, reading: &Reading, current: Option<&ProposedQuery>) -> Result<StructuredQuery, Interpretation> {
        let parts = &reading.parts;
        let has_metric = parts.iter().any(|p| matches!(p, Part::Metric { .. }));
        let has_other = parts.iter().any(|p| !matches!(p, Part::Metric { .. }));
        let current_structured = current.and_then(|c| c.structured.as_ref());
        let wants_refinement = !has_metric || !has_other || reading.refinement_wording;
        let base = match (current_structured, wants_refinement) {
            (Some(structured), true) => Some(structured.clone()),
            _ => None,
        };
        if base.is_none() && !has_metric {
            let message = if current.is_some() {
                "I can only change questions I interpreted myself; please ask the whole question, e.g. \
                 \"revenue by region last month\"."
            } else {
                "There is no question to change yet. Ask one first, e.g. \"revenue by region last month\", \
                 then refine it with \"only EMEA\", \"by week instead\" or \"top 5\"."
            };
            return Err(Interpretation::NotUnderstood(format!(
                "{message}\n{}",
                self.vocabulary()
            )));
        }
        let refining = base.is_some();
        let mut query = base.unwrap_or_default();

        // Metrics first: which dimension a value like "web" belongs to depends on them.
        let metric_parts: Vec<(&String, bool)> = parts
            .iter()
            .filter_map(|p| match p {
                Part::Metric { name, joined } => Some((name, *joined)),
                _ => None,
            })
            .collect();
        if !metric_parts.is_empty() {
            let adds = refining && metric_parts.first().is_some_and(|(_, joined)| *joined);
            if !adds {
                query.metrics.clear();
            }
            for (name, _) in metric_parts {
                if !query.metrics.contains(name) {
                    query.metrics.push(name.clone());
                }
            }
        }

        // Removals before additions, so "remove the region filter, only APAC" ends with APAC.
        for part in parts {
            match part {
                Part::RemoveFilter(Some(dimension)) => query.filters.retain(|f| f.dimension != *dimension),
                Part::RemoveFilter(None) => query.filters.clear(),
                Part::RemoveTime => query.time_range = None,
                Part::RemoveTop => query.top = None,
                Part::ClearGrouping => {
                    query.dimensions.clear();
                    query.grain = None;
                }
                Part::RemoveDimension { dimension, filters_too } => {
                    query.dimensions.retain(|d| d != dimension);
                    if *filters_too {
                        query.filters.retain(|f| f.dimension != *dimension);
                    }
                }
                _ => {}
            }
        }

        // Grouping: a plain "by X" replaces dimensions and grain; "and by X" adds.
        let groups: Vec<(&Vec<GroupItem>, bool)> = parts
            .iter()
            .filter_map(|p| match p {
                Part::Group { items, joined } => Some((items, *joined)),
                _ => None,
            })
            .collect();
        if refining && groups.iter().any(|(_, joined)| !joined) {
            query.dimensions.clear();
            query.grain = None;
        }
        let mut grains_named: Vec<Grain> = Vec::new();
        for (items, _) in &groups {
            for item in items.iter() {
                match item {
                    GroupItem::Dimension(d) if !query.dimensions.contains(d) => query.dimensions.push(d.clone()),
                    GroupItem::Dimension(_) => {}
                    GroupItem::Grain(g) => {
                        if !grains_named.contains(g) {
                            grains_named.push(*g);
                        }
                        query.grain = Some(*g);
                    }
                }
            }
        }
        if grains_named.len() > 1 {
            let names: Vec<String> = grains_named.iter().map(|g| g.name().to_string()).collect();
            return Err(Interpretation::Clarify(format!(
                "Which time grain do you want: {}? I can break down by one at a time.",
                join_words(&names).replace(" and ", " or ")
            )));
        }

        // Values: resolve each to one dimension, then merge into filters.
        let mut positive: Vec<(String, Vec<String>, bool)> = Vec::new();
        let mut negative: Vec<(String, Vec<String>)> = Vec::new();
        for part in parts {
            let Part::Values {
                mentions,
                negated,
                joined,
            } = part
            else {
                continue;
            };
            for mention in mentions {
                let (dimension, value) = self.resolve_value(mention, &query.metrics)?;
                if *negated {
                    match negative.iter_mut().find(|(d, _)| *d == dimension) {
                        Some((_, values)) => push_unique(values, value),
                        None => negative.push((dimension, vec![value])),
                    }
                } else {
                    match positive.iter_mut().find(|(d, _, _)| *d == dimension) {
                        Some((_, values, replaces)) => {
                            push_unique(values, value);
                            *replaces |= !joined;
                        }
                        None => positive.push((dimension, vec![value], !joined)),
                    }
                }
            }
        }
        for (dimension, values, replaces) in positive {
            let existing = query
                .filters
                .iter_mut()
                .find(|f| f.dimension == dimension && !f.negated);
            match existing {
                Some(filter) if refining && !replaces => {
                    for value in values {
                        push_unique(&mut filter.values, value);
                    }
                }
                _ => {
                    // "only X" replaces any filter on X's dimension, negated ones too.
                    query.filters.retain(|f| f.dimension != dimension);
                    query.filters.push(Filter {
                        dimension,
                        values,
                        negated: false,
                    });
                }
            }
        }
        for (dimension, values) in negative {
            if let Some(filter) = query
                .filters
                .iter_mut()
                .find(|f| f.dimension == dimension && !f.negated)
            {
                // Excluding from an "only" list narrows the list.
                filter.values.retain(|v| !values.contains(v));
                if !filter.values.is_empty() {
                    continue;
                }
                query.filters.retain(|f| f.dimension != dimension || f.negated);
            }
            match query.filters.iter_mut().find(|f| f.dimension == dimension && f.negated) {
                Some(filter) => {
                    for value in values {
                        push_unique(&mut filter.values, value);
                    }
                }
                None => query.filters.push(Filter {
                    dimension,
                    values,
                    negated: true,
                }),
            }
        }

        let times: Vec<&TimeRange> = parts
            .iter()
            .filter_map(|p| match p {
                Part::Time(range) => Some(range),
                _ => None,
            })
            .collect();
        match times.as_slice() {
            [] => {}
            [range] => query.time_range = Some((*range).clone()),
            several => {
                let labels: Vec<String> = several.iter().map(|r| format!("\"{}\"", r.label)).collect();
                return Err(Interpretation::Clarify(format!(
                    "I found several time ranges ({}); which one do you mean? Comparisons are not supported yet.",
                    labels.join(", ")
                )));
            }
        }
        for part in parts {
            if let Part::Top(top) = part {
                query.top = Some(*top);
            }
        }
        if query.top.is_some() && query.dimensions.is_empty() && query.grain.is_none() {
            return Err(Interpretation::Clarify(format!(
                "Top of what? Add a breakdown, e.g. \"top 5 by {}\".",
                self.model.dimensions.first().map_or("region", |d| d.name.as_str())
            )));
        }
        Ok(query)
    }

    /// Picks the dimension of a value like "web" (a channel and a platform) from the metrics:
    /// the one their tables reach. Asks when that is still ambiguous.
    fn resolve_value(&self, mention: &ValueMention, metrics: &[String]) -> Result<(String, String), Interpretation> {
        let reachable: Vec<&(String, String)> = mention
            .candidates
            .iter()
            .filter(|(dimension, _)| {
                let probe = StructuredQuery {
                    metrics: metrics.to_vec(),
                    dimensions: vec![dimension.clone()],
                    ..StructuredQuery::default()
                };
                query::plan(&probe, &self.model).is_ok()
            })
            .collect();
        let chosen = match reachable.as_slice() {
            [one] => (*one).clone(),
            [] => match mention.candidates.first() {
                // Unreachable everywhere: compile explains why it cannot be filtered.
                Some(first) if mention.candidates.len() == 1 => first.clone(),
                _ => {
                    return Err(Interpretation::NotUnderstood(format!(
                        "\"{}\" is a value of {}, and none of them applies to {}.",
                        mention.text,
                        join_words(&mention.candidates.iter().map(|(d, _)| d.clone()).collect::<Vec<_>>()),
                        join_words(metrics)
                    )))
                }
            },
            several => {
                let options: Vec<String> = several
                    .iter()
                    .map(|(d, _)| format!("\"{} {d}\"", mention.text))
                    .collect();
                return Err(Interpretation::Clarify(format!(
                    "\"{}\" could be a {}. Which one: {}?",
                    mention.text,
                    join_words(&several.iter().map(|(d, _)| d.clone()).collect::<Vec<_>>()).replace(" and ", " or a "),
                    options.join(" or ")
                )));
            }
        };
        Ok(chosen)
    }

    fn not_understood(&self, unknown: &[String]) -> String {
        let quoted: Vec<String> = unknown.iter().map(|w| format!("\"{w}\"")).collect();
        format!("I didn't understand {}.\n{}", join_words(&quoted), self.vocabulary())
    }

    /// What this interpreter knows, for replies and `help`.
    fn vocabulary(&self) -> String {
        let metrics: Vec<String> = self
            .model
            .metrics
            .iter()
            .map(|m| {
                if m.synonyms.is_empty() {
                    m.name.clone()
                } else {
                    format!("{} ({})", m.name, m.synonyms.join(", "))
                }
            })
            .collect();
        let dimensions: Vec<String> = self.model.dimensions.iter().map(|d| d.name.clone()).collect();
        let examples: Vec<String> = self
            .values
            .iter()
            .filter_map(|(dimension, values)| values.first().map(|v| format!("{v} ({dimension})")))
            .take(4)
            .collect();
        let mut lines = vec![
            format!("Metrics: {}.", metrics.join(", ")),
            format!(
                "Break down by: {}; or by day, week, month, quarter, year.",
                dimensions.join(", ")
            ),
            format!("Time: {}.", KNOWN_TIME_PHRASES.join(", ")),
        ];
        if !examples.is_empty() {
            lines.push(format!("Filter by values such as {}.", examples.join(", ")));
        }
        lines.join("\n")
    }
}

#[async_trait]
impl Interpreter for RulesInterpreter {
    async fn interpret(&self, request: InterpretRequest<'_>) -> Result<Interpretation, InterpretError> {
        // The answer to a clarifying question completes the question that raised it.
        if let Some(pending) = request.clarifying {
            let combined = format!("{} {}", pending.question, request.text);
            if let Interpretation::Query(query) = self.interpret_text(&combined, request.current, request.today) {
                return Ok(Interpretation::Query(query));
            }
        }
        Ok(self.interpret_text(request.text, request.current, request.today))
    }

    fn help(&self) -> String {
        [
            "Ask a question with a metric, optional breakdowns, filters and a time range, e.g. \
             \"revenue by region last month\", \"orders by channel this year\", \"units by product top 10\"."
                .to_string(),
            self.vocabulary(),
            "Then refine it in the thread: \"only EMEA\", \"exclude partner\", \"by week instead\", \
             \"and by channel\", \"top 5\", \"what about last year?\", \"orders instead\", \"and units\", \
             \"remove the region filter\", \"all time\"."
                .to_string(),
        ]
        .join("\n")
    }
}

fn push_unique(values: &mut Vec<String>, value: String) {
    if !values.contains(&value) {
        values.push(value);
    }
}

fn lowercase(words: &[Word]) -> Vec<String> {
    words.iter().map(|w| w.lower.clone()).collect()
}

/// Splits text into words the same way for questions and for model phrases and values, so
/// "United Kingdom" or "Home & Garden" match word for word. Commas stay as words: they
/// separate lists.
fn split_words(text: &str) -> Vec<Word> {
    let mut spaced = String::new();
    for c in text.chars() {
        match c {
            ',' => spaced.push_str(" , "),
            '’' | '‘' => spaced.push('\''),
            c if c.is_alphanumeric() || matches!(c, '-' | '&' | '\'' | '.' | '/' | '+' | '_') => spaced.push(c),
            _ => spaced.push(' '),
        }
    }
    spaced
        .split_whitespace()
        .map(|raw| raw.trim_matches(|c| matches!(c, '.' | '\'' | '/')))
        .filter(|w| !w.is_empty())
        .map(|w| Word {
            lower: w.to_lowercase(),
            original: w.to_string(),
        })
        .collect()
}

/// A phrase and its plural ("category" -> "categories", "country" -> "countries").
fn plural_forms(phrase: &str) -> Vec<String> {
    let mut forms = vec![phrase.to_string()];
    let plural = if phrase.ends_with('y') && !phrase.ends_with("ay") && !phrase.ends_with("ey") {
        format!("{}ies", phrase.trim_end_matches('y'))
    } else if phrase.ends_with('s') || phrase.ends_with('x') || phrase.ends_with("ch") || phrase.ends_with("sh") {
        format!("{phrase}es")
    } else {
        format!("{phrase}s")
    };
    forms.push(plural);
    forms
}

/// "exclude", "excluding", "except", "without", "not", "other than", "but not", "outside".
fn negation_length(words: &[Word]) -> Option<usize> {
    let first = words.first().map(|w| w.lower.as_str());
    let second = words.get(1).map(|w| w.lower.as_str());
    match (first, second) {
        (Some("but" | "and"), Some("not")) => Some(2),
        (Some("other"), Some("than")) => Some(2),
        (Some("except"), Some("for")) => Some(2),
        (Some("outside"), Some("of")) => Some(2),
        (
            Some("exclude" | "excluding" | "excludes" | "except" | "without" | "not" | "minus" | "outside" | "omit"),
            _,
        ) => Some(1),
        _ => None,
    }
}

/// "top 5", "top five", "bottom 3", "top" (ten), "highest 3", "lowest 5".
fn match_top(words: &[Word]) -> Option<(usize, TopN)> {
    let first = words.first()?.lower.as_str();
    let largest_first = match first {
        "top" | "highest" | "best" | "largest" | "biggest" => true,
        "bottom" | "lowest" | "worst" | "smallest" => false,
        _ => return None,
    };
    match words.get(1).and_then(|w| parse_count(&w.lower)) {
        Some(n) if (1..=MAX_TOP).contains(&n) => Some((2, TopN { n, largest_first })),
        Some(_) => None,
        // Only the plain words default to ten; "highest" alone is more likely part of a phrase.
        None if matches!(first, "top" | "bottom") => Some((
            1,
            TopN {
                n: DEFAULT_TOP,
                largest_first,
            },
        )),
        None => None,
    }
}

/// A grain named after "by": "day", "week", "weeks", "date".
fn match_grain_word(words: &[Word]) -> Option<(usize, Grain)> {
    let grain = match words.first()?.lower.as_str() {
        "day" | "days" | "date" | "dates" => Grain::Day,
        "week" | "weeks" => Grain::Week,
        "month" | "months" => Grain::Month,
        "quarter" | "quarters" => Grain::Quarter,
        "year" | "years" => Grain::Year,
        _ => return None,
    };
    Some((1, grain))
}

/// "daily", "weekly", "monthly", "quarterly", "yearly": a grain without "by".
fn match_grain_adjective(words: &[Word]) -> Option<(usize, Vec<GroupItem>)> {
    let grain = match words.first()?.lower.as_str() {
        "daily" => Grain::Day,
        "weekly" => Grain::Week,
        "monthly" => Grain::Month,
        "quarterly" => Grain::Quarter,
        "yearly" | "annually" | "annual" => Grain::Year,
        _ => return None,
    };
    Some((1, vec![GroupItem::Grain(grain)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 22).unwrap_or_default()
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
    }

    fn values() -> Vec<(String, Vec<String>)> {
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

    fn interpreter() -> RulesInterpreter {
        RulesInterpreter::new(SemanticModel::demo().unwrap_or_default(), values(), Dialect::Sqlite)
    }

    fn ask(text: &str, current: Option<&ProposedQuery>) -> Interpretation {
        interpreter().interpret_text(text, current, today())
    }

    fn query(text: &str, current: Option<&ProposedQuery>) -> ProposedQuery {
        match ask(text, current) {
            Interpretation::Query(query) => *query,
            other => panic!("'{text}' should give a query, got {other:?}"),
        }
    }

    fn structured(proposed: &ProposedQuery) -> StructuredQuery {
        proposed.structured.clone().unwrap_or_default()
    }

    /// Runs a sequence of texts in one thread and returns the final query.
    fn thread(texts: &[&str]) -> StructuredQuery {
        let mut current: Option<ProposedQuery> = None;
        for text in texts {
            current = Some(query(text, current.as_ref()));
        }
        current.as_ref().map(structured).unwrap_or_default()
    }

    fn filter(dimension: &str, values: &[&str], negated: bool) -> Filter {
        Filter {
            dimension: dimension.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
            negated,
        }
    }

    fn not_understood(text: &str, current: Option<&ProposedQuery>) -> String {
        match ask(text, current) {
            Interpretation::NotUnderstood(message) => message,
            other => panic!("'{text}' should not be understood, got {other:?}"),
        }
    }

    #[test]
    fn a_question_names_metric_dimension_and_time() {
        let q = thread(&["revenue by region last month"]);
        assert_eq!(q.metrics, vec!["revenue"]);
        assert_eq!(q.dimensions, vec!["region"]);
        assert_eq!(
            q.time_range.map(|r| (r.start, r.end)),
            Some((date(2026, 10, 1), date(2026, 11, 1)))
        );
    }

    #[test]
    fn the_proposed_query_carries_sql_summary_and_formats() {
        let proposed = query("revenue by region last month", None);
        assert!(proposed.sql.contains("GROUP BY c.region"), "{}", proposed.sql);
        assert_eq!(proposed.summary, "Revenue by region · last month (Oct 2026)");
        assert_eq!(proposed.formats.len(), 2);
        assert!(proposed.explanation.is_empty());
    }

    #[test]
    fn synonyms_and_several_metrics_are_understood() {
        let q = thread(&["sales and orders by region"]);
        assert_eq!(q.metrics, vec!["revenue", "orders"]);
        let q = thread(&["what was the aov by segment in Q3 2025?"]);
        assert_eq!(q.metrics, vec!["average order value"]);
        assert_eq!(q.dimensions, vec!["segment"]);
        assert_eq!(q.time_range.map(|r| r.label), Some("Q3 2025".into()));
    }

    #[test]
    fn several_dimensions_can_follow_by() {
        let q = thread(&["revenue by region and channel"]);
        assert_eq!(q.dimensions, vec!["region", "channel"]);
    }

    #[test]
    fn values_become_filters_with_the_canonical_spelling() {
        let q = thread(&["emea revenue"]);
        assert_eq!(q.filters, vec![filter("region", &["EMEA"], false)]);
        let q = thread(&["orders for MOBILE in united kingdom"]);
        assert_eq!(
            q.filters,
            vec![
                filter("channel", &["mobile"], false),
                filter("country", &["United Kingdom"], false)
            ]
        );
    }

    #[test]
    fn several_values_of_one_dimension_make_one_filter() {
        let q = thread(&["revenue in EMEA and APAC by country"]);
        assert_eq!(q.filters, vec![filter("region", &["EMEA", "APAC"], false)]);
        assert_eq!(q.dimensions, vec!["country"]);
    }

    #[test]
    fn a_value_with_punctuation_is_matched_and_escaped_in_sql() {
        let proposed = query("units for o'brien mug", None);
        assert_eq!(
            structured(&proposed).filters,
            vec![filter("product", &["O'Brien Mug"], false)]
        );
        assert!(proposed.sql.contains("p.name IN ('O''Brien Mug')"), "{}", proposed.sql);
        let q = thread(&["revenue for home & garden"]);
        assert_eq!(q.filters, vec![filter("category", &["Home & Garden"], false)]);
    }

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

    #[test]
    fn a_value_shared_by_two_dimensions_is_resolved_by_the_metric() {
        let q = thread(&["revenue on web"]);
        assert_eq!(q.filters, vec![filter("channel", &["web"], false)]);
        let q = thread(&["active users on web"]);
        assert_eq!(q.filters, vec![filter("platform", &["web"], false)]);
    }

    #[test]
    fn a_dimension_name_next_to_a_value_qualifies_it() {
        let q = thread(&["revenue in the EMEA region"]);
        assert_eq!(q.filters, vec![filter("region", &["EMEA"], false)]);
        assert!(q.dimensions.is_empty());
        let q = thread(&["orders with channel web"]);
        assert_eq!(q.filters, vec![filter("channel", &["web"], false)]);
    }

    #[test]
    fn grains_are_understood_with_and_without_by() {
        for (text, grain) in [
            ("revenue by day", Grain::Day),
            ("daily revenue", Grain::Day),
            ("weekly orders", Grain::Week),
            ("orders by week", Grain::Week),
            ("revenue by month", Grain::Month),
            ("monthly revenue", Grain::Month),
            ("revenue by quarter", Grain::Quarter),
            ("revenue by year", Grain::Year),
        ] {
            assert_eq!(thread(&[text]).grain, Some(grain), "{text}");
        }
    }

    #[test]
    fn top_and_bottom_n_are_understood() {
        let q = thread(&["units by product top 10"]);
        assert_eq!(
            q.top,
            Some(TopN {
                n: 10,
                largest_first: true
            })
        );
        let q = thread(&["bottom 3 countries by revenue"]);
        assert_eq!(
            q.top,
            Some(TopN {
                n: 3,
                largest_first: false
            })
        );
        assert_eq!(q.dimensions, vec!["country"]);
        assert_eq!(q.metrics, vec!["revenue"]);
    }

    #[test]
    fn the_canonical_refinement_sequence_edits_one_query() {
        let mut current = query("revenue by region last month", None);
        current = query("only EMEA", Some(&current));
        let q = structured(&current);
        assert_eq!(q.filters, vec![filter("region", &["EMEA"], false)]);
        assert_eq!(q.dimensions, vec!["region"]);
        current = query("by week instead", Some(&current));
        let q = structured(&current);
        assert!(q.dimensions.is_empty(), "by X replaces the grouping");
        assert_eq!(q.grain, Some(Grain::Week));
        assert_eq!(q.filters, vec![filter("region", &["EMEA"], false)], "filters are kept");
        assert_eq!(
            q.time_range.as_ref().map(|r| r.start),
            Some(date(2026, 10, 1)),
            "time is kept"
        );
        current = query("top 5", Some(&current));
        let q = structured(&current);
        assert_eq!(
            q.top,
            Some(TopN {
                n: 5,
                largest_first: true
            })
        );
        assert_eq!(q.grain, Some(Grain::Week));
        assert_eq!(
            current.summary,
            "Revenue by week · last month (Oct 2026) · region: EMEA · top 5"
        );
    }

    #[test]
    fn and_by_adds_a_dimension() {
        let q = thread(&["revenue by region", "and by channel"]);
        assert_eq!(q.dimensions, vec!["region", "channel"]);
    }

    #[test]
    fn only_replaces_the_filter_on_the_same_dimension() {
        let q = thread(&["revenue in EMEA by country", "only APAC"]);
        assert_eq!(q.filters, vec![filter("region", &["APAC"], false)]);
        let q = thread(&["revenue in EMEA", "for mobile"]);
        assert_eq!(
            q.filters,
            vec![
                filter("region", &["EMEA"], false),
                filter("channel", &["mobile"], false)
            ]
        );
        let q = thread(&["revenue only EMEA", "and APAC"]);
        assert_eq!(q.filters, vec![filter("region", &["EMEA", "APAC"], false)]);
    }

    #[test]
    fn exclude_adds_a_negated_filter() {
        let q = thread(&["orders by channel this year", "exclude partner"]);
        assert_eq!(q.filters, vec![filter("channel", &["partner"], true)]);
        assert_eq!(q.dimensions, vec!["channel"]);
        let q = thread(&["orders by channel this year", "exclude partner", "without mobile"]);
        assert_eq!(q.filters, vec![filter("channel", &["partner", "mobile"], true)]);
        let q = thread(&["orders in EMEA and APAC", "excluding APAC"]);
        assert_eq!(q.filters, vec![filter("region", &["EMEA"], false)]);
    }

    #[test]
    fn a_time_phrase_alone_replaces_the_time_range() {
        for follow_up in ["what about last year?", "last year instead", "in 2025"] {
            let q = thread(&["revenue by region last month", follow_up]);
            assert_eq!(
                q.time_range.map(|r| r.start.format("%Y").to_string()),
                Some("2025".into()),
                "{follow_up}"
            );
            assert_eq!(q.dimensions, vec!["region"], "{follow_up}");
        }
    }

    #[test]
    fn filters_and_time_can_be_removed() {
        let q = thread(&["revenue by country in EMEA", "remove the region filter"]);
        assert!(q.filters.is_empty());
        assert_eq!(q.dimensions, vec!["country"]);
        let q = thread(&["revenue by country in EMEA", "without the region filter"]);
        assert!(q.filters.is_empty());
        let q = thread(&["revenue by country in EMEA for mobile", "all regions"]);
        assert_eq!(q.filters, vec![filter("channel", &["mobile"], false)]);
        let q = thread(&["revenue last month", "remove the time range"]);
        assert_eq!(q.time_range, None);
        let q = thread(&["revenue last month", "all time"]);
        assert_eq!(q.time_range, None);
    }

    #[test]
    fn a_metric_alone_replaces_the_metrics_and_and_adds_one() {
        let q = thread(&["revenue by region last month", "orders instead"]);
        assert_eq!(q.metrics, vec!["orders"]);
        assert_eq!(q.dimensions, vec!["region"]);
        let q = thread(&["revenue by category", "and units"]);
        assert_eq!(q.metrics, vec!["revenue", "units"]);
    }

    #[test]
    fn a_full_question_in_a_thread_starts_over() {
        let q = thread(&[
            "revenue by region last month",
            "only EMEA",
            "orders by channel this year",
        ]);
        assert_eq!(q.metrics, vec!["orders"]);
        assert_eq!(q.dimensions, vec!["channel"]);
        assert!(q.filters.is_empty(), "no carry-over: {q:?}");
        assert_eq!(q.time_range.map(|r| r.start), Some(date(2026, 1, 1)));
    }

    #[test]
    fn a_metric_with_refinement_wording_refines() {
        let q = thread(&[
            "revenue by region last month",
            "only EMEA",
            "what about orders by channel?",
        ]);
        assert_eq!(q.metrics, vec!["orders"]);
        assert_eq!(q.dimensions, vec!["channel"]);
        assert_eq!(q.filters, vec![filter("region", &["EMEA"], false)]);
    }

    #[test]
    fn unknown_words_are_named_with_what_is_known() {
        let message = not_understood("revenue by planet for Zorg", None);
        assert!(message.contains("\"planet\" and \"Zorg\""), "{message}");
        assert!(
            message.contains("Metrics: revenue (sales, income, turnover)"),
            "{message}"
        );
        assert!(message.contains("Break down by: region, country"), "{message}");
        assert!(message.contains("last month"), "{message}");
    }

    #[test]
    fn a_refinement_without_a_question_asks_for_one_first() {
        let message = not_understood("only EMEA", None);
        assert!(message.contains("Ask one first"), "{message}");
        let message = not_understood("by week", None);
        assert!(message.contains("Ask one first"), "{message}");
    }

    #[test]
    fn metrics_over_different_tables_are_refused() {
        let message = not_understood("revenue and active users", None);
        assert!(message.contains("cannot be combined"), "{message}");
    }

    #[test]
    fn an_unreachable_dimension_is_refused() {
        let message = not_understood("active users by region", None);
        assert!(
            message.contains("active users cannot be broken down or filtered by region"),
            "{message}"
        );
        let message = not_understood("active users in EMEA", None);
        assert!(message.contains("by region"), "{message}");
    }

    #[test]
    fn a_value_of_a_dimension_the_metric_cannot_reach_is_refused() {
        let current = query("revenue by region", None);
        let message = not_understood("ios", Some(&current));
        assert!(
            message.contains("revenue cannot be broken down or filtered by platform"),
            "{message}"
        );
    }

    #[test]
    fn a_value_of_two_reachable_dimensions_is_asked_about() {
        let mut values = values();
        values.push(("status".into(), vec!["web".into()]));
        let interpreter = RulesInterpreter::new(SemanticModel::demo().unwrap_or_default(), values, Dialect::Sqlite);
        match interpreter.interpret_text("revenue on web", None, today()) {
            Interpretation::Clarify(message) => {
                assert!(message.contains("\"web channel\" or \"web status\""), "{message}")
            }
            other => panic!("{other:?}"),
        }
        // Naming the dimension settles it.
        let answer = interpreter.interpret_text("revenue on web channel", None, today());
        assert!(matches!(answer, Interpretation::Query(_)), "{answer:?}");
    }

    #[test]
    fn top_without_a_breakdown_asks_for_one() {
        assert!(matches!(ask("revenue top 5", None), Interpretation::Clarify(_)));
    }

    #[test]
    fn two_time_ranges_are_asked_about() {
        assert!(matches!(
            ask("revenue last month last year", None),
            Interpretation::Clarify(_)
        ));
    }

    #[test]
    fn a_bare_may_is_not_silently_a_month() {
        let message = not_understood("revenue may be high", None);
        assert!(message.contains("\"may\""), "{message}");
        let q = thread(&["revenue in may"]);
        assert_eq!(q.time_range.map(|r| r.start), Some(date(2026, 5, 1)));
        // The product "May Planner" is still a product.
        let q = thread(&["units for may planner"]);
        assert_eq!(q.filters, vec![filter("product", &["May Planner"], false)]);
    }

    #[test]
    fn a_thread_whose_query_came_from_elsewhere_cannot_be_refined() {
        let current = ProposedQuery {
            sql: "SELECT 1".into(),
            structured: None,
            summary: "x".into(),
            formats: vec![],
            explanation: String::new(),
            usage: None,
        };
        let message = not_understood("only EMEA", Some(&current));
        assert!(message.contains("please ask the whole question"), "{message}");
        assert!(matches!(
            ask("revenue by region", Some(&current)),
            Interpretation::Query(_)
        ));
    }

    #[test]
    fn the_limit_and_breakdowns_can_be_removed() {
        let q = thread(&["units by product top 10", "no limit"]);
        assert_eq!(q.top, None);
        let q = thread(&["revenue by region and channel", "remove the channel breakdown"]);
        assert_eq!(q.dimensions, vec!["region"]);
        let q = thread(&["revenue by region monthly", "remove the breakdown"]);
        assert!(q.dimensions.is_empty() && q.grain.is_none());
    }

    #[test]
    fn help_lists_metrics_dimensions_and_refinements() {
        let help = interpreter().help();
        assert!(help.contains("revenue"), "{help}");
        assert!(help.contains("platform"), "{help}");
        assert!(help.contains("only EMEA"), "{help}");
    }

    #[test]
    fn words_split_keeps_multiword_values_and_drops_punctuation() {
        let words: Vec<String> = split_words("What about EMEA, APAC?")
            .into_iter()
            .map(|w| w.lower)
            .collect();
        assert_eq!(words, vec!["what", "about", "emea", ",", "apac"]);
    }
}
