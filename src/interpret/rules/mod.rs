//! The deterministic interpreter: maps words onto the semantic model and refines the thread's
//! current query. It never guesses: a word it cannot place is named back to the user.
//!
//! The parts: `lexicon` (splitting a text into words, the fixed word lists), `vocabulary` (the
//! phrases of the model's metrics, dimensions and values), `reading` (words to parts) and
//! `refinement` (parts applied to the thread's query or to a new one).
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use chrono::NaiveDate;
use rustc_hash::FxHashMap;

use super::derive::names::{plural, singular, split_identifier};
use super::load::LoadedModel;
use super::model::SemanticModel;
use crate::domain::Cardinality;

/// Metrics and breakdowns `help` lists before pointing at `help metrics`.
const HELP_ITEMS: usize = 12;
use super::query::{self, join_words, CompileError, StructuredQuery};
use super::time::KNOWN_TIME_PHRASES;
use super::visible;
use super::{InterpretError, InterpretRequest, Interpretation, Interpreter, ProposedQuery};
use crate::sql::{AccessPolicy, Dialect};

#[cfg(test)]
mod fixtures;
mod lexicon;
mod reading;
mod refinement;
mod vocabulary;

use lexicon::split_words;
use reading::read;
use refinement::{apply, NotApplied};
use vocabulary::Vocabulary;

/// The deterministic interpreter over a semantic model and the dimensions' distinct values.
/// The model can be replaced while questions are answered (see [`Interpreter::reload`]): each
/// question reads the one current when it started.
#[derive(Debug)]
pub struct RulesInterpreter {
    current: RwLock<Arc<Knowledge>>,
    /// The knowledge of what each access policy may read (one per distinct set of tables and
    /// denied columns, built on first use and dropped on reload): an asker's words only ever
    /// match what their roles read, so no reply names or confirms a denied column or its values.
    views: std::sync::Mutex<HashMap<String, Arc<Knowledge>>>,
}

/// A model with the words derived from it.
#[derive(Debug)]
struct Knowledge {
    model: Arc<SemanticModel>,
    dialect: Dialect,
    vocabulary: Vocabulary,
    values: Vec<(String, Vec<String>)>,
    /// [`Knowledge::vocabulary_help`], written once: it is the same for every question.
    summary: String,
}

impl RulesInterpreter {
    /// `values` are each dimension's distinct values as read from the warehouse (see
    /// [`SemanticModel::distinct_values_sql`]); only those are accepted as filter values.
    pub fn new(model: SemanticModel, values: Vec<(String, Vec<String>)>, dialect: Dialect) -> Self {
        Self {
            current: RwLock::new(Arc::new(Knowledge::new(model, values, dialect))),
            views: std::sync::Mutex::default(),
        }
    }

    /// The knowledge an asker with `access` works with: the whole model without roles.
    fn knowledge_for(&self, access: Option<&AccessPolicy>) -> Arc<Knowledge> {
        let base = self.knowledge();
        let Some(policy) = access else {
            return base;
        };
        let key = view_key(policy);
        let mut views = match self.views.lock() {
            Ok(views) => views,
            Err(poisoned) => poisoned.into_inner(),
        };
        views
            .entry(key)
            .or_insert_with(|| {
                let model = visible::model(&base.model, policy);
                let values = base
                    .values
                    .iter()
                    .filter(|(dimension, _)| model.dimensions.iter().any(|d| &d.name == dimension))
                    .cloned()
                    .collect();
                Arc::new(Knowledge::new(model, values, base.dialect))
            })
            .clone()
    }

    /// The model questions are answered with now.
    pub fn model(&self) -> Arc<SemanticModel> {
        self.knowledge().model.clone()
    }

    /// The synchronous core of [`Interpreter::interpret`].
    pub fn interpret_text(&self, text: &str, current: Option<&ProposedQuery>, today: NaiveDate) -> Interpretation {
        self.knowledge().interpret_text(text, current, today)
    }

    fn knowledge(&self) -> Arc<Knowledge> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// Policies that read the same tables and columns see the same vocabulary (row filters do not
/// change what words mean).
fn view_key(policy: &AccessPolicy) -> String {
    let mut tables: Vec<&String> = policy.tables.iter().flatten().collect();
    tables.sort();
    let mut denied: Vec<&(String, String)> = policy.denied_columns.iter().collect();
    denied.sort();
    format!("{:?}|{tables:?}|{denied:?}", policy.tables.is_some())
}

impl Knowledge {
    fn new(model: SemanticModel, values: Vec<(String, Vec<String>)>, dialect: Dialect) -> Self {
        let model = model.with_entity_counts();
        let vocabulary = Vocabulary::new(&model, &values);
        let mut knowledge = Self {
            model: Arc::new(model),
            dialect,
            vocabulary,
            values,
            summary: String::new(),
        };
        knowledge.summary = knowledge.summarize();
        knowledge
    }

    /// What this interpreter knows, for replies and `help`.
    fn vocabulary_help(&self) -> String {
        self.summary.clone()
    }

    fn interpret_text(&self, text: &str, current: Option<&ProposedQuery>, today: NaiveDate) -> Interpretation {
        let words = split_words(text);
        if words.len() > 1 && words.first().is_some_and(|w| w.lower == "help") {
            let topic: Vec<&str> = words.iter().skip(1).map(|w| w.lower.as_str()).collect();
            return Interpretation::NotUnderstood(self.detailed_help(&topic.join(" ")));
        }
        let reading = read(&self.vocabulary, &words, today);
        if !reading.unknown.is_empty() {
            return Interpretation::NotUnderstood(self.not_understood(&reading.unknown));
        }
        if reading.parts.is_empty() {
            return Interpretation::NotUnderstood(format!(
                "I could not find a question in that.\n{}",
                self.vocabulary_help()
            ));
        }
        let query = match apply(&reading, current, &self.model) {
            Ok(query) => query,
            Err(NotApplied::NothingToRefine(message)) => {
                return Interpretation::NotUnderstood(format!("{message}\n{}", self.vocabulary_help()))
            }
            Err(NotApplied::Answer(answer)) => return answer,
        };
        if let Some(asked) = self.too_many_rows(&query) {
            return Interpretation::Clarify(asked);
        }
        match query::compile(&query, &self.model, self.dialect) {
            Ok(sql) => Interpretation::Query(Box::new(ProposedQuery {
                sql,
                summary: query::summarize(&query),
                formats: query::output_formats(&query, &self.model),
                structured: Some(query),
                explanation: String::new(),
                usage: None,
            })),
            Err(CompileError::WhichDate { options, .. }) => {
                let quoted: Vec<String> = options.iter().map(|o| format!("\"{o}\"")).collect();
                Interpretation::Clarify(format!(
                    "Which date is that about: {}?",
                    join_words(&quoted).replace(" and ", " or ")
                ))
            }
            Err(error) => Interpretation::NotUnderstood(format!("I can't answer that: {error}.")),
        }
    }

    /// A breakdown by a column with one value per row (names, comments) lists every row: it is
    /// asked for as a top N, so the question is which top.
    fn too_many_rows(&self, query: &StructuredQuery) -> Option<String> {
        if query.top.is_some() {
            return None;
        }
        let dimension = query
            .dimensions
            .iter()
            .filter_map(|name| self.model.dimension(name))
            .find(|dimension| dimension.cardinality == Cardinality::High)?;
        let metric = query.metrics.first().map_or("revenue", String::as_str);
        Some(format!(
            "{} has about one value per row, too many to list. How many of the top ones: \"top 10\", \
             \"top 5\"? (e.g. \"top 10 {} by {metric}\")",
            capitalized(&dimension.name),
            plural(&dimension.name)
        ))
    }

    /// Names the words not understood and, when some metric or dimension is spelled close to
    /// one of them, suggests those instead of listing everything.
    fn not_understood(&self, unknown: &[String]) -> String {
        let quoted: Vec<String> = unknown.iter().map(|w| format!("\"{w}\"")).collect();
        let metrics = self.model.metrics.iter().map(|m| (&m.name, &m.synonyms, "metric"));
        let dimensions = self
            .model
            .dimensions
            .iter()
            .map(|d| (&d.name, &d.synonyms, "breakdown"));
        let unknown: Vec<String> = unknown.iter().map(|u| u.to_lowercase()).collect();
        // A model of 500 tables says "status" 500 times: each word's distance is taken once.
        let mut distances: FxHashMap<&str, Option<usize>> = FxHashMap::default();
        // (distance, the word it is close to, what is suggested)
        let mut suggestions: Vec<(usize, &str, String)> = Vec::new();
        for (name, synonyms, kind) in metrics.chain(dimensions) {
            let mut closest: Option<(usize, &str)> = None;
            for word in std::iter::once(name)
                .chain(synonyms)
                .flat_map(|phrase| phrase.split_whitespace())
            {
                let distance = *distances
                    .entry(word)
                    .or_insert_with(|| unknown.iter().filter_map(|u| closeness(u, word)).min());
                if let Some(distance) = distance {
                    let candidate = (distance, word);
                    closest = Some(closest.map_or(candidate, |best| best.min(candidate)));
                }
            }
            if let Some((distance, word)) = closest {
                let text = format!("{name} ({kind})");
                if !suggestions.iter().any(|(_, _, s)| *s == text) {
                    suggestions.push((distance, word, text));
                }
            }
        }
        suggestions.sort();
        let Some((best_distance, best_word, _)) = suggestions.first().cloned() else {
            return format!(
                "I didn't understand {}.\n{}",
                join_words(&quoted),
                self.vocabulary_help()
            );
        };
        // "stauts" is close to the status of every table: the word itself is the suggestion,
        // when it is understood alone (the metrics then say whose status it is).
        let sharing = suggestions
            .iter()
            .filter(|(distance, word, _)| *distance == best_distance && *word == best_word)
            .count();
        let understood_alone = self
            .vocabulary
            .longest(&lexicon::split_words(best_word))
            .is_some_and(|(used, _)| used == 1);
        let nearest: Vec<String> = if sharing > 1 && understood_alone {
            vec![format!("\"{best_word}\"")]
        } else {
            suggestions
                .into_iter()
                .take(MAX_SUGGESTIONS)
                .map(|(_, _, text)| text)
                .collect()
        };
        format!(
            "I didn't understand {}. Did you mean {}? Say \"help\" for everything I know.",
            join_words(&quoted),
            join_words(&nearest).replace(" and ", " or ")
        )
    }

    /// Tables ranked by how central they are: the number of joins touching them, so the facts
    /// and hubs of a derived model come before its lookup and audit tables.
    fn centrality(&self) -> HashMap<&str, usize> {
        let mut joins = HashMap::new();
        for join in &self.model.joins {
            *joins.entry(join.from.table.as_str()).or_default() += 1;
            *joins.entry(join.to.table.as_str()).or_default() += 1;
        }
        joins
    }

    /// `help metrics`, `help dimensions`, `help <table>`: everything, not only the first few.
    fn detailed_help(&self, topic: &str) -> String {
        let metric_line = |m: &crate::interpret::model::Metric| match &m.description {
            Some(description) => format!("- {} ({description})", m.name),
            None => format!("- {}", m.name),
        };
        let dimension_line = |d: &crate::interpret::model::Dimension| {
            let high = d.cardinality == Cardinality::High;
            format!(
                "- {}{}",
                d.name,
                if high {
                    " (one per row: use it with top N or a value)"
                } else {
                    ""
                }
            )
        };
        let topic = topic.trim();
        if matches!(topic, "metrics" | "metric" | "measures") {
            let lines: Vec<String> = self.model.metrics.iter().map(metric_line).collect();
            return format!("Metrics:\n{}", lines.join("\n"));
        }
        if matches!(topic, "dimensions" | "dimension" | "breakdowns") {
            let lines: Vec<String> = self.model.dimensions.iter().map(dimension_line).collect();
            return format!("Break down or filter by:\n{}", lines.join("\n"));
        }
        let table = self.model.tables.iter().find(|t| {
            let spoken = split_identifier(&t.name).join(" ");
            [
                t.name.to_lowercase(),
                spoken.clone(),
                singular(&spoken),
                plural(&singular(&spoken)),
            ]
            .contains(&topic.to_string())
        });
        let Some(table) = table else {
            let tables: Vec<String> = self.model.tables.iter().map(|t| t.name.clone()).collect();
            return format!(
                "Say \"help metrics\", \"help dimensions\" or \"help <table>\" with one of: {}.",
                tables.join(", ")
            );
        };
        let metrics: Vec<String> = self
            .model
            .metrics
            .iter()
            .filter(|m| m.table == table.name)
            .map(metric_line)
            .collect();
        let dimensions: Vec<String> = self
            .model
            .dimensions
            .iter()
            .filter(|d| d.table == table.name)
            .map(dimension_line)
            .collect();
        let dates = table.date_columns().join(", ");
        format!(
            "{}:\nMetrics:\n{}\nDimensions:\n{}{}",
            table.name,
            metrics.join("\n"),
            dimensions.join("\n"),
            if dates.is_empty() {
                String::new()
            } else {
                format!("\nDates: {dates}")
            }
        )
    }

    /// What this interpreter knows, for replies and `help`: on a large model only the most
    /// central tables' metrics and breakdowns; names, phones and comments are not breakdowns.
    fn summarize(&self) -> String {
        let centrality = self.centrality();
        let central = |table: &str| std::cmp::Reverse(centrality.get(table).copied().unwrap_or_default());
        let mut metrics: Vec<&crate::interpret::model::Metric> = self.model.metrics.iter().collect();
        let mut dimensions: Vec<&crate::interpret::model::Dimension> = self
            .model
            .dimensions
            .iter()
            .filter(|d| d.cardinality != Cardinality::High)
            .collect();
        let more_metrics = metrics.len().saturating_sub(HELP_ITEMS);
        let more_dimensions = dimensions.len().saturating_sub(HELP_ITEMS);
        if more_metrics > 0 {
            metrics.sort_by_key(|m| central(&m.table));
            metrics.truncate(HELP_ITEMS);
        }
        if more_dimensions > 0 {
            dimensions.sort_by_key(|d| central(&d.table));
            dimensions.truncate(HELP_ITEMS);
        }
        let metrics: Vec<String> = metrics
            .iter()
            .map(|m| {
                if m.synonyms.is_empty() {
                    m.name.clone()
                } else {
                    format!("{} ({})", m.name, m.synonyms.join(", "))
                }
            })
            .collect();
        let dimensions: Vec<String> = dimensions.iter().map(|d| d.name.clone()).collect();
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
        if more_metrics + more_dimensions > 0 {
            lines.push(format!(
                "And {more_metrics} more metrics and {more_dimensions} more breakdowns: say \"help metrics\", \"help dimensions\" or \"help <table>\"."
            ));
        }
        lines.join("\n")
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// How many metrics and dimensions a reply suggests for words it did not understand.
const MAX_SUGGESTIONS: usize = 4;

/// How close a word the user wrote is to a word of a model phrase: the edit distance when it
/// is a likely typo (at most one edit per three letters), or a shared stem of at least five
/// letters ("crashing" and "crashes"); `None` when they are unrelated.
fn closeness(word: &str, model_word: &str) -> Option<usize> {
    if word.len() < 3 || model_word.len() < 3 {
        return None;
    }
    let distance = strsim::levenshtein(word, model_word);
    if distance <= (word.chars().count() / 3).max(1) {
        return Some(distance);
    }
    let shared = word.chars().zip(model_word.chars()).take_while(|(a, b)| a == b).count();
    (shared >= 5).then_some(distance)
}

#[async_trait]
impl Interpreter for RulesInterpreter {
    async fn interpret(&self, request: InterpretRequest<'_>) -> Result<Interpretation, InterpretError> {
        // The answer to a clarifying question completes the question that raised it.
        if let Some(pending) = request.clarifying {
            let combined = format!("{} {}", pending.question, request.text);
            let knowledge = self.knowledge_for(request.access);
            if let Interpretation::Query(query) = knowledge.interpret_text(&combined, request.current, request.today) {
                return Ok(Interpretation::Query(query));
            }
        }
        Ok(self
            .knowledge_for(request.access)
            .interpret_text(request.text, request.current, request.today))
    }

    fn as_of(&self, query: &ProposedQuery, today: NaiveDate) -> ProposedQuery {
        let Some(structured) = &query.structured else {
            return query.clone();
        };
        let mut rebased = structured.clone();
        rebased.time_range = structured
            .time_range
            .as_ref()
            .map(|r| super::time::rebase_range(r, today));
        rebased.compare_to = structured.compare_to.as_ref().map(|compared| {
            let again = super::time::rebase_range(compared, today);
            match (&structured.time_range, &rebased.time_range) {
                // "the week before" does not read as a range of its own: it moves with the
                // range it precedes.
                (Some(before), Some(after)) if again == *compared && before != after => {
                    let shift = after.start - before.start;
                    crate::domain::TimeRange {
                        start: compared.start + shift,
                        end: compared.end + shift,
                        label: compared.label.split(" (").next().unwrap_or_default().to_string(),
                    }
                }
                _ => again,
            }
        });
        if rebased == *structured {
            return query.clone();
        }
        let knowledge = self.knowledge();
        match query::compile(&rebased, &knowledge.model, knowledge.dialect) {
            Ok(sql) => ProposedQuery {
                sql,
                summary: query::summarize(&rebased),
                structured: Some(rebased),
                ..query.clone()
            },
            // The model changed under the schedule: the query as it was made still runs (and
            // fails clearly if it no longer can).
            Err(_) => query.clone(),
        }
    }

    fn reload(&self, loaded: &LoadedModel) {
        let dialect = self.knowledge().dialect;
        let knowledge = Arc::new(Knowledge::new(loaded.model.clone(), loaded.values.clone(), dialect));
        match self.current.write() {
            Ok(mut current) => *current = knowledge,
            Err(poisoned) => *poisoned.into_inner() = knowledge,
        }
        match self.views.lock() {
            Ok(mut views) => views.clear(),
            Err(poisoned) => poisoned.into_inner().clear(),
        }
    }

    fn help(&self) -> String {
        self.help_for(None)
    }

    fn help_for(&self, access: Option<&AccessPolicy>) -> String {
        [
            "Ask a question with a metric, optional breakdowns, filters and a time range, e.g. \
             \"revenue by region last month\", \"orders by channel this year\", \"units by product top 10\"."
                .to_string(),
            self.knowledge_for(access).vocabulary_help(),
            "Then refine it in the thread: \"only EMEA\", \"exclude partner\", \"by week instead\", \
             \"and by channel\", \"top 5\", \"what about last year?\", \"orders instead\", \"and units\", \
             \"remove the region filter\", \"all time\", \"vs last year\", \"and the year before?\", \
             \"sort by name\", \"show all rows\". Also: \"which region had the highest revenue?\", \
             \"revenue growth this month\", \"share of revenue by channel\"."
                .to_string(),
        ]
        .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interpret::rules::fixtures::*;

    /// What the rules interpreter answers an asker whose roles hide `customers.segment` and the
    /// app_metrics table.
    async fn ask_as_restricted(text: &str) -> Interpretation {
        let policy = AccessPolicy::only_tables(["orders", "customers", "products", "order_items"])
            .deny_column("customers", "segment");
        let request = InterpretRequest {
            text,
            current: None,
            today: today(),
            history: &[],
            clarifying: None,
            access: Some(&policy),
        };
        interpreter().interpret(request).await.unwrap()
    }

    #[test]
    fn a_scheduled_run_reads_relative_ranges_on_its_own_day_and_named_ones_as_they_were() {
        let interpreter = interpreter();
        let week_later = today() + chrono::Duration::days(7);
        let last_week = query("revenue by region last week", None);
        let rebased = interpreter.as_of(&last_week, week_later);
        let range = |q: &ProposedQuery| structured(q).time_range.unwrap();
        assert_eq!(
            range(&rebased).start,
            range(&last_week).start + chrono::Duration::days(7)
        );
        assert_ne!(rebased.sql, last_week.sql);
        assert_eq!(
            rebased.summary.contains("last week"),
            last_week.summary.contains("last week")
        );
        // Compared with "the week before", which does not read as a range of its own: it moves
        // with the range it precedes.
        let mut compared = last_week.clone();
        let mut with_before = structured(&last_week);
        let before = super::super::time::previous_period(&range(&last_week), Some(crate::domain::Grain::Week)).unwrap();
        assert!(before.label.starts_with("the week before"), "{}", before.label);
        with_before.compare_to = Some(before.clone());
        compared.structured = Some(with_before);
        let moved = structured(&interpreter.as_of(&compared, week_later))
            .compare_to
            .unwrap();
        assert_eq!(moved.start, before.start + chrono::Duration::days(7));
        assert_eq!(moved.end, before.end + chrono::Duration::days(7));
        let named = query("revenue by region in 2025", None);
        assert_eq!(interpreter.as_of(&named, week_later), named);
        let same_day = interpreter.as_of(&last_week, today());
        assert_eq!(same_day, last_week);
    }

    #[tokio::test]
    async fn an_asker_only_meets_the_tables_and_columns_their_roles_read() {
        // Without roles the same questions are answered.
        assert!(matches!(ask("revenue by segment", None), Interpretation::Query(_)));
        assert!(matches!(ask("revenue for Enterprise", None), Interpretation::Query(_)));
        assert!(matches!(ask("sessions by platform", None), Interpretation::Query(_)));

        for question in ["revenue by segment", "revenue for Enterprise", "sessions by platform"] {
            let Interpretation::NotUnderstood(message) = ask_as_restricted(question).await else {
                panic!("{question:?} was answered for an asker who may not read it");
            };
            // Neither the denied column, nor its values, nor the hidden table is named.
            for hidden in ["segment", "Enterprise", "sessions", "platform"] {
                assert!(
                    !message.to_lowercase().contains(&hidden.to_lowercase()) || question.contains(hidden),
                    "{question:?}: {message}"
                );
            }
            assert!(
                message.contains("revenue"),
                "what they may ask is still offered: {message}"
            );
        }
        let Interpretation::Query(allowed) = ask_as_restricted("revenue by region last month").await else {
            panic!("a question within the roles is answered");
        };
        assert!(allowed.sql.contains("region"));
        let policy = AccessPolicy::unrestricted().deny_column("customers", "segment");
        let help = interpreter().help_for(Some(&policy));
        assert!(!help.contains("segment") && help.contains("region"), "{help}");
        assert!(interpreter().help().contains("segment"));
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
    fn a_misspelt_word_gets_the_nearest_names_not_the_catalog() {
        let message = not_understood("revnue by regoin", None);
        assert!(message.contains("\"revnue\" and \"regoin\""), "{message}");
        assert!(message.contains("revenue (metric)"), "{message}");
        assert!(message.contains("region (breakdown)"), "{message}");
        assert!(!message.contains("Metrics:"), "{message}");
        let message = not_understood("sessionz by platfrm", None);
        assert!(message.contains("sessions (metric)"), "{message}");
        assert!(message.contains("platform (breakdown)"), "{message}");
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
    fn help_lists_metrics_dimensions_and_refinements() {
        let help = interpreter().help();
        assert!(help.contains("revenue"), "{help}");
        assert!(help.contains("platform"), "{help}");
        assert!(help.contains("only EMEA"), "{help}");
    }
}
