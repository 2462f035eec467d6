//! Reading a text: its words, left to right, become parts (a metric, a grouping, values, a time
//! range, a top N, a removal), taking the longest phrase at each step. A new question and a
//! follow-up are read the same way; what the parts do to a query is `refinement`'s concern.
use chrono::NaiveDate;

use super::lexicon::{Word, PREPOSITIONS, REFINEMENT_WORDS, STOPWORDS};
use super::vocabulary::{Term, Vocabulary};
use crate::interpret::query::{Grain, SortKey, TimeRange, TopN};
use crate::interpret::time::{match_time_phrase, parse_count};

/// Largest accepted N in `top N`; larger is a typo or a wish for everything.
const MAX_TOP: u32 = 1000;

/// Rows shown by a bare `top`/`bottom`.
const DEFAULT_TOP: u32 = 10;

/// A value the user named, with every dimension it may belong to.
#[derive(Debug, Clone)]
pub(super) struct ValueMention {
    pub(super) text: String,
    pub(super) candidates: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub(super) enum GroupItem {
    Dimension(String),
    Grain(Grain),
    /// "by status" when many tables have a status: the dimensions the words may mean, resolved
    /// by the metrics (the one their tables reach), else asked.
    OneOf {
        text: String,
        dimensions: Vec<String>,
    },
}

/// One meaningful piece of the text. `joined` means it followed "and"/"also"/"plus", which in
/// a refinement adds to the current query instead of replacing.
#[derive(Debug, Clone)]
pub(super) enum Part {
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
    /// "top 5", "the highest"; `judged` when the word says good or bad ("best", "worst"):
    /// which end that is depends on the metric (the worst week for crashes has the most).
    Top {
        top: TopN,
        judged: bool,
    },
    RemoveTop,
    /// "account balance" when customers and suppliers both have one: the metrics or dimensions
    /// the words may mean, resolved by what else the question names, else asked.
    Ambiguous {
        text: String,
        metrics: Vec<String>,
        dimensions: Vec<String>,
    },
    /// "issued", "paid", "signed up": which date column the time range applies to, with every
    /// `table.column` the words may mean.
    Event {
        text: String,
        columns: Vec<String>,
    },
    /// `None` removes every filter.
    RemoveFilter(Option<String>),
    RemoveTime,
    /// Drops a dimension from the grouping (and from the filters when `filters_too`).
    RemoveDimension {
        dimension: String,
        filters_too: bool,
    },
    ClearGrouping,
    /// "vs", "compared to": the time ranges around it are compared.
    Compare,
    /// "growth", "change in": a comparison with the period before when no second one is named.
    Growth,
    /// "the year before", "the previous quarter": the current time range moved back by that
    /// step, or by a period of its own kind when `None` ("the period before"). `fallback` is
    /// the same words read as a time phrase, for a question with no range to move.
    Previous {
        step: Option<Grain>,
        fallback: Option<TimeRange>,
    },
    /// "sort by name", "sort descending": `by` is `None` when only the direction is named.
    Sort {
        by: Option<SortKey>,
        descending: bool,
    },
    /// "share of revenue": each row's part of the total.
    Share,
    /// "signed up", "joined": the event the time range is about, in the user's words. It only
    /// fits metrics whose time column is that event's date.
    SignedUp {
        words: String,
        stem: &'static str,
    },
}

/// What the words of a text amount to before they are applied.
#[derive(Debug, Default)]
pub(super) struct Reading {
    pub(super) parts: Vec<Part>,
    pub(super) unknown: Vec<String>,
    pub(super) refinement_wording: bool,
}

/// Reads `words` against the model's vocabulary; relative time phrases resolve against `today`.
pub(super) fn read(vocabulary: &Vocabulary, words: &[Word], today: NaiveDate) -> Reading {
    Reader { vocabulary, today }.read(words)
}

/// The reader of one text: the vocabulary phrases are matched against, and the day relative
/// time phrases resolve against.
struct Reader<'a> {
    vocabulary: &'a Vocabulary,
    today: NaiveDate,
}

impl Reader<'_> {
    /// Splits the text into parts, left to right, taking the longest phrase at each step.
    ///
    /// Each step looks only at the words it uses and a few after them, and never copies the
    /// rest of the text, so reading is linear in the text's length (questions may run to
    /// 40,000 characters).
    fn read(&self, words: &[Word]) -> Reading {
        let lowered: Vec<&str> = words.iter().map(|w| w.lower.as_str()).collect();
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
            if let Some((used, part)) = self.match_relative(rest) {
                if matches!(part, Part::Previous { .. } | Part::Sort { .. }) {
                    reading.refinement_wording = true;
                }
                reading.parts.push(part);
                at += used;
                joined = false;
                continue;
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
            // A model's own phrase wins over a superlative word it starts with ("largest order"
            // as a metric's name is that metric, not a top 1).
            let names_a_metric = self
                .vocabulary
                .longest(rest)
                .is_some_and(|(used, terms)| used > 1 && terms.iter().any(|t| matches!(t, Term::Metric(_))));
            if let Some((used, top)) = match_top(rest).filter(|_| !names_a_metric) {
                let judged = matches!(lower, "best" | "worst");
                reading.parts.push(Part::Top { top, judged });
                at += used;
                // "the worst week for sessions": a superlative names the grain it ranks.
                if let Some((grain_len, grain)) = match_grain_word(words.get(at..).unwrap_or_default()) {
                    reading.parts.push(Part::Group {
                        items: vec![GroupItem::Grain(grain)],
                        joined: false,
                    });
                    at += grain_len;
                }
                joined = false;
                continue;
            }
            if let Some((used, items)) = match_grain_adjective(rest) {
                reading.parts.push(Part::Group { items, joined });
                at += used;
                joined = false;
                continue;
            }
            if let Some((used, part)) = self.match_event(rest, lowered.get(at..).unwrap_or_default()) {
                reading.parts.push(part);
                at += used;
                joined = false;
                continue;
            }
            let mut time = match_time_phrase(lowered.get(at..).unwrap_or_default(), self.today);
            // "for may planner": the preposition is not part of a time phrase when the words
            // after it are a longer model phrase (here a product).
            if let (Some((time_len, _)), true) = (&time, PREPOSITIONS.contains(&lower)) {
                let after = self.vocabulary.longest(rest.get(1..).unwrap_or_default());
                if after.is_some_and(|(len, _)| len + 1 > *time_len) {
                    time = None;
                }
            }
            let term = self.vocabulary.longest(rest);
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
            if let Some((used, mut terms)) = term {
                // "top 3 accounts by amount": after top N, a table's name is the breakdown
                // (its name dimension), not the count of its rows.
                let after_top = matches!(reading.parts.last(), Some(Part::Top { .. }));
                if after_top && terms.iter().any(|t| matches!(t, Term::Dimension(_))) {
                    terms.retain(|t| !matches!(t, Term::Metric(_)));
                }
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
            // Only words the model does not use itself: "share of refunds" is a metric.
            if matches!(lower, "share" | "proportion" | "percentage") {
                reading.parts.push(Part::Share);
                at += if rest.get(1).is_some_and(|w| w.lower == "of") {
                    2
                } else {
                    1
                };
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
            if let Some((used, stem)) = match_event(rest) {
                let words = rest
                    .get(..used)
                    .unwrap_or_default()
                    .iter()
                    .map(|w| w.original.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                reading.parts.push(Part::SignedUp { words, stem });
                at += used;
                continue;
            }
            let has_metric = reading.parts.iter().any(|p| matches!(p, Part::Metric { .. }));
            // "how many products do we sell": a verb about what the metric already counts.
            if has_metric && matches!(lower, "sell" | "sold" | "offer" | "carry" | "stock" | "have") {
                at += 1;
                continue;
            }
            // "which platform crashed the most": a verb form of a metric's name.
            if let Some(name) = self.vocabulary.metric_by_stem(lower) {
                reading.parts.push(Part::Metric { name, joined });
                at += 1;
                joined = false;
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
        let metrics: Vec<String> = terms
            .iter()
            .filter_map(|t| match t {
                Term::Metric(m) => Some(m.clone()),
                _ => None,
            })
            .collect();
        let dimensions: Vec<String> = terms
            .iter()
            .filter_map(|t| match t {
                Term::Dimension(d) => Some(d.clone()),
                _ => None,
            })
            .collect();
        if metrics.len() > 1 || (metrics.is_empty() && dimensions.len() > 1) {
            let text = rest
                .iter()
                .take(used)
                .map(|w| w.original.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            let dimensions = if metrics.is_empty() { dimensions } else { vec![] };
            return (
                used,
                Part::Ambiguous {
                    text,
                    metrics,
                    dimensions,
                },
            );
        }
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

    /// A date column's event ("invoices paid last month", "accounts signed up in 2024"). A
    /// word that is also a model phrase is an event only when a time phrase follows it, so
    /// "paid invoices" stays a status and "orders" stays a metric.
    fn match_event(&self, rest: &[Word], lowered: &[&str]) -> Option<(usize, Part)> {
        let (used, columns) = self.vocabulary.event(rest)?;
        let term = self.vocabulary.longest(rest);
        if let Some((term_len, terms)) = &term {
            let names_model = terms.iter().any(|t| !matches!(t, Term::Value { .. }));
            if *term_len > used || names_model {
                return None;
            }
            let after = lowered.get(used..).unwrap_or_default();
            let time_follows = match_time_phrase(after, self.today).is_some()
                || after
                    .first()
                    .is_some_and(|w| matches!(*w, "since" | "between" | "before" | "after"));
            if !time_follows {
                return None;
            }
        }
        // "ship date", the answer to "which date": the event with the word for a date.
        let used = used
            + usize::from(
                rest.get(used)
                    .is_some_and(|w| matches!(w.lower.as_str(), "date" | "dates" | "day" | "time")),
            );
        let text = rest
            .get(..used)?
            .iter()
            .map(|w| w.original.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        Some((
            used,
            Part::Event {
                text,
                columns: columns.to_vec(),
            },
        ))
    }

    /// One value, optionally followed by its dimension's name ("EMEA region").
    fn match_value(&self, words: &[Word]) -> Option<(usize, ValueMention)> {
        let (used, terms) = self.vocabulary.longest(words)?;
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
        if let Some((qualifier_len, qualifier)) = self.vocabulary.longest(words.get(used..).unwrap_or_default()) {
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
        let get = |i: usize| words.get(i).map(|w| w.lower.as_str());
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
                match self.vocabulary.longest(rest) {
                    Some((used, terms)) => {
                        let mut dimensions: Vec<String> = terms
                            .iter()
                            .filter_map(|t| match t {
                                Term::Dimension(d) => Some(d.clone()),
                                _ => None,
                            })
                            .collect();
                        match dimensions.len() {
                            0 => None,
                            1 => dimensions.pop().map(|d| (used, GroupItem::Dimension(d))),
                            _ => {
                                let text = rest
                                    .iter()
                                    .take(used)
                                    .map(|w| w.original.as_str())
                                    .collect::<Vec<_>>()
                                    .join(" ");
                                Some((used, GroupItem::OneOf { text, dimensions }))
                            }
                        }
                    }
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
                        .vocabulary
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

    /// Words relative to the rest of the question or to the thread's query: "vs", "compared
    /// to", "growth", "change in", "the year before", "the previous quarter", "sort by name",
    /// "sort descending", "alphabetically".
    fn match_relative(&self, words: &[Word]) -> Option<(usize, Part)> {
        let get = |i: usize| words.get(i).map(|w| w.lower.as_str());
        match (get(0), get(1)) {
            (Some("vs" | "versus" | "against"), _) => return Some((1, Part::Compare)),
            (Some("compared" | "comparing" | "compare"), Some("to" | "with" | "against")) => {
                return Some((2, Part::Compare))
            }
            (Some("compared" | "comparing" | "compare"), _) => return Some((1, Part::Compare)),
            (Some("growth" | "grew" | "trend"), _) => return Some((1, Part::Growth)),
            (Some("change" | "changes" | "increase" | "decrease" | "difference"), Some("in" | "of")) => {
                return Some((2, Part::Growth))
            }
            (Some("alphabetically" | "alphabetical"), _) => {
                return Some((
                    1,
                    Part::Sort {
                        by: Some(SortKey::Label),
                        descending: false,
                    },
                ))
            }
            _ => {}
        }
        // "the year before", "the previous quarter", "the prior period", "a year earlier".
        if matches!(get(0), Some("the" | "a")) {
            let step = |word: Option<&str>| match word {
                Some("period" | "one") => Some(None),
                Some(other) => grain_of(other).map(Some),
                None => None,
            };
            let found = match (get(1), get(2)) {
                (word, Some("before" | "earlier" | "prior")) => step(word),
                (Some("previous" | "prior" | "preceding"), word) => step(word),
                _ => None,
            };
            if let Some(step) = found {
                let lowered: Vec<&str> = words.iter().take(3).map(|w| w.lower.as_str()).collect();
                let fallback = match_time_phrase(&lowered, self.today)
                    .filter(|(used, _)| *used == 3)
                    .map(|(_, range)| range);
                return Some((3, Part::Previous { step, fallback }));
            }
        }
        if matches!(
            get(0),
            Some("sort" | "sorted" | "order" | "ordered" | "rank" | "ranked")
        ) {
            let mut at = 1;
            let mut by = None;
            if matches!(get(at), Some("by" | "on")) {
                at += 1;
                while matches!(get(at), Some("the")) {
                    at += 1;
                }
                match get(at) {
                    Some("name" | "names" | "label" | "labels" | "alphabet" | "date" | "time") => {
                        by = Some(SortKey::Label);
                        at += 1;
                    }
                    Some("value" | "values" | "size" | "amount") => {
                        by = Some(SortKey::Metric);
                        at += 1;
                    }
                    _ => match self.vocabulary.longest(words.get(at..).unwrap_or_default()) {
                        Some((used, terms)) if terms.iter().any(|t| matches!(t, Term::Metric(_))) => {
                            by = Some(SortKey::Metric);
                            at += used;
                        }
                        Some((used, terms)) if terms.iter().any(|t| matches!(t, Term::Dimension(_))) => {
                            by = Some(SortKey::Label);
                            at += used;
                        }
                        _ => {}
                    },
                }
            }
            let descending = match get(at) {
                Some("descending" | "desc" | "decreasing" | "downwards") => {
                    at += 1;
                    Some(true)
                }
                Some("ascending" | "asc" | "increasing" | "upwards") => {
                    at += 1;
                    Some(false)
                }
                _ => None,
            };
            if by.is_none() && descending.is_none() {
                return None;
            }
            // Names read A to Z and values largest first unless a direction is named.
            let descending = descending.unwrap_or(by != Some(SortKey::Label));
            return Some((at, Part::Sort { by, descending }));
        }
        None
    }

    /// "remove the region filter", "without the region filter", "all regions", "all time",
    /// "remove the time range", "no limit", "remove the breakdown", "drop region".
    fn match_removal(&self, words: &[Word]) -> Option<(usize, Part)> {
        let get = |i: usize| words.get(i).map(|w| w.lower.as_str());
        let dimension_at = |i: usize| -> Option<(usize, String)> {
            let (used, terms) = self.vocabulary.longest(words.get(i..)?)?;
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
            if matches!(get(1), Some("rows" | "results" | "lines" | "entries")) {
                return Some((2, Part::RemoveTop));
            }
            if get(1) == Some("of") && get(2) == Some("them") {
                return Some((3, Part::RemoveTop));
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

/// "top 5", "top five", "bottom 3", "top" (ten), "highest 3", "lowest 5"; a superlative
/// without a number ("the highest", "the most", "worst") is the one row at that end.
fn match_top(words: &[Word]) -> Option<(usize, TopN)> {
    let first = words.first()?.lower.as_str();
    let largest_first = match first {
        "top" | "highest" | "best" | "largest" | "biggest" | "most" | "greatest" | "maximum" | "max" => true,
        "bottom" | "lowest" | "worst" | "smallest" | "least" | "fewest" | "minimum" | "min" => false,
        _ => return None,
    };
    match words.get(1).and_then(|w| parse_count(&w.lower)) {
        Some(n) if (1..=MAX_TOP).contains(&n) => Some((2, TopN { n, largest_first })),
        Some(_) => None,
        // Only the plain words default to ten; a bare superlative names the one row at its end.
        None if matches!(first, "top" | "bottom") => Some((
            1,
            TopN {
                n: DEFAULT_TOP,
                largest_first,
            },
        )),
        None => Some((1, TopN { n: 1, largest_first })),
    }
}

/// "signed up", "joined", "registered": an event named by a verb, and the stem its date
/// column's name carries (`signup_date`).
fn match_event(words: &[Word]) -> Option<(usize, &'static str)> {
    let get = |i: usize| words.get(i).map(|w| w.lower.as_str());
    match (get(0), get(1)) {
        (Some("signed" | "sign"), Some("up")) => Some((2, "sign")),
        (Some("signed" | "signup" | "signups"), _) => Some((1, "sign")),
        (Some("joined"), _) => Some((1, "join")),
        (Some("registered"), _) => Some((1, "regist")),
        _ => None,
    }
}

/// A grain's word, singular or plural.
fn grain_of(word: &str) -> Option<Grain> {
    match word {
        "day" | "days" => Some(Grain::Day),
        "week" | "weeks" => Some(Grain::Week),
        "month" | "months" => Some(Grain::Month),
        "quarter" | "quarters" => Some(Grain::Quarter),
        "year" | "years" => Some(Grain::Year),
        _ => None,
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
    use crate::interpret::query::{Grain, TopN};
    use crate::interpret::rules::fixtures::*;

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
    fn a_verb_form_of_a_metric_names_it() {
        let q = thread(&["which platform crashed the most?"]);
        assert_eq!(q.metrics, vec!["crashes"]);
        assert_eq!(q.dimensions, vec!["platform"]);
        assert_eq!(
            q.top,
            Some(TopN {
                n: 1,
                largest_first: true
            })
        );
    }

    #[test]
    fn a_table_only_joined_is_countable() {
        let q = thread(&["how many products do we sell?"]);
        assert_eq!(q.metrics, vec!["number of products"]);
        let q = thread(&["new customers by region this year"]);
        assert_eq!(q.metrics, vec!["customers"]);
        assert_eq!(q.dimensions, vec!["region"]);
        // Next to another metric, the entity only says whose rows are counted.
        let q = thread(&["orders for SMB customers"]);
        assert_eq!(q.metrics, vec!["orders"]);
        assert_eq!(q.filters, vec![filter("segment", &["SMB"], false)]);
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
}
