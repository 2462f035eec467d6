//! Applying what was read to a query: the thread's current query when the text refines it
//! ("only EMEA", "by week instead", "top 5", "remove the region filter"), or an empty query for
//! a new question, which the same rules then fill from nothing.
use super::lexicon::UNWANTED_MEASURES;
use super::reading::{GroupItem, Part, Reading, ValueMention};
use crate::interpret::derive::names::stem;
use crate::interpret::model::SemanticModel;
use crate::interpret::query::{self, join_words, Filter, Grain, Sort, SortKey, StructuredQuery, TimeRange};
use crate::interpret::time::previous_period;
use crate::interpret::{Interpretation, ProposedQuery};

/// Why the parts did not make a query.
#[derive(Debug)]
pub(super) enum NotApplied {
    /// The text only changes a query, and there is no query of ours to change; the message says
    /// what to do instead (the interpreter adds what it knows).
    NothingToRefine(&'static str),
    /// A clarifying question or a refusal, as it is told to the user.
    Answer(Interpretation),
}

/// Applies the parts to a new query or to the thread's current one.
pub(super) fn apply(
    reading: &Reading,
    current: Option<&ProposedQuery>,
    model: &SemanticModel,
) -> Result<StructuredQuery, NotApplied> {
    let parts = &resolve_ambiguous(&reading.parts, current, model)?;
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
        return Err(NotApplied::NothingToRefine(message));
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
        for (name, _) in &metric_parts {
            if !query.metrics.contains(name) {
                query.metrics.push((*name).clone());
            }
        }
        // "orders from SMB customers": the customers only say whose orders.
        let tables: Vec<String> = query
            .metrics
            .iter()
            .filter_map(|m| model.metric(m))
            .map(|m| m.table.clone())
            .collect();
        query.metrics.retain(|name| {
            let Some(metric) = model.metric(name) else { return true };
            let named_entity = model.is_entity_count(metric)
                && tables
                    .iter()
                    .any(|t| *t != metric.table && model.reachable_from(t).contains(&metric.table));
            !named_entity
        });
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
                // Resolved before (`resolve_ambiguous`).
                GroupItem::Dimension(_) | GroupItem::OneOf { .. } => {}
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
        return Err(NotApplied::Answer(Interpretation::Clarify(format!(
            "Which time grain do you want: {}? I can break down by one at a time.",
            join_words(&names).replace(" and ", " or ")
        ))));
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
            let (dimension, value) = resolve_value(mention, &query.metrics, model).map_err(NotApplied::Answer)?;
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

    check_events(parts, &query, model)?;
    apply_time(parts, refining, &mut query)?;
    for part in parts {
        match part {
            Part::Top { top, judged } => {
                let mut top = *top;
                // "the worst week for crashes" is the week with the most of them.
                if *judged && query.metrics.first().is_some_and(|m| higher_is_worse(m, model)) {
                    top.largest_first = !top.largest_first;
                }
                query.top = Some(top);
            }
            Part::Share => query.share = true,
            Part::Sort { by, descending } => {
                let by = by
                    .clone()
                    .or_else(|| query.sort.as_ref().map(|s| s.by.clone()))
                    .unwrap_or(SortKey::Metric);
                query.sort = Some(Sort {
                    by,
                    descending: *descending,
                });
            }
            _ => {}
        }
        if let Part::Event { text, columns } = part {
            query.time_column = Some(event_column(text, columns, &query.metrics, model)?);
        }
    }
    if query.top.is_some() && query.dimensions.is_empty() && query.grain.is_none() {
        return Err(NotApplied::Answer(Interpretation::Clarify(format!(
            "Top of what? Add a breakdown, e.g. \"top 5 by {}\".",
            model.dimensions.first().map_or("region", |d| d.name.as_str())
        ))));
    }
    Ok(query)
}

/// A metric counting something nobody wants more of (refunds, crashes, costs), by the words of
/// its name and synonyms: for it, "best" is the lowest value and "worst" the highest.
fn higher_is_worse(metric: &str, model: &SemanticModel) -> bool {
    let Some(metric) = model.metric(metric) else {
        return false;
    };
    std::iter::once(&metric.name)
        .chain(&metric.synonyms)
        .flat_map(|phrase| phrase.split_whitespace())
        .any(|word| {
            let word = stem(word);
            UNWANTED_MEASURES.iter().any(|unwanted| stem(unwanted) == word)
        })
}

/// The time range and the period compared with it: one range replaces the current one; two
/// around "vs" are compared; "growth" compares with the period before; "the year before" moves
/// the current range (and the compared one) back.
fn apply_time(parts: &[Part], refining: bool, query: &mut StructuredQuery) -> Result<(), NotApplied> {
    let times: Vec<&TimeRange> = parts
        .iter()
        .filter_map(|p| match p {
            Part::Time(range) => Some(range),
            _ => None,
        })
        .collect();
    let compares = parts.iter().any(|p| matches!(p, Part::Compare));
    let growth = parts.iter().any(|p| matches!(p, Part::Growth));
    let clarify = |message: String| Err(NotApplied::Answer(Interpretation::Clarify(message)));
    if parts.iter().any(|p| matches!(p, Part::RemoveTime)) {
        query.compare_to = None;
    }
    match times.as_slice() {
        [] => {}
        [range] if compares => match (&query.time_range, refining) {
            // "vs last year" on the thread's query compares its range with this one.
            (Some(_), true) => query.compare_to = Some((*range).clone()),
            _ => {
                return clarify(format!(
                    "Compared with {} — and which period first? E.g. \"this year vs last year\".",
                    range.label
                ))
            }
        },
        [range] => {
            query.time_range = Some((*range).clone());
            // A compared query stays compared: the new range against the one before it.
            if growth || query.compare_to.is_some() {
                query.compare_to = previous_period(range, None);
            }
        }
        [current, previous] if compares || growth => {
            query.time_range = Some((*current).clone());
            query.compare_to = Some((*previous).clone());
        }
        several => {
            let labels: Vec<String> = several.iter().map(|r| format!("\"{}\"", r.label)).collect();
            return clarify(format!(
                "I found several time ranges ({}); which one do you mean? To compare two, put \"vs\" between them.",
                labels.join(", ")
            ));
        }
    }
    if times.is_empty() && (growth || compares) {
        match &query.time_range {
            Some(range) if query.compare_to.is_none() => query.compare_to = previous_period(range, None),
            Some(_) => {}
            None => {
                return clarify(
                    "Over which period? E.g. \"revenue growth this month\" or \"orders this quarter vs last quarter\"."
                        .to_string(),
                )
            }
        }
    }
    for part in parts {
        let Part::Previous { step, fallback } = part else {
            continue;
        };
        let (Some(range), true) = (query.time_range.clone(), refining) else {
            // In a new question "the previous quarter" is the one before today's.
            if let Some(fallback) = fallback {
                query.time_range = Some(fallback.clone());
                continue;
            }
            return clarify(
                "The period before which one? This question has no time range; name one, e.g. \"last quarter\"."
                    .to_string(),
            );
        };
        // "vs the year before" compares with the moved range instead of replacing.
        if compares {
            query.compare_to = previous_period(&range, *step);
            continue;
        }
        query.compare_to = query.compare_to.as_ref().and_then(|c| previous_period(c, *step));
        query.time_range = previous_period(&range, *step);
    }
    Ok(())
}

/// "customers who signed up in 2025": the event must be what the metrics' time column
/// records, else the time range would silently apply to another date.
fn check_events(parts: &[Part], query: &StructuredQuery, model: &SemanticModel) -> Result<(), NotApplied> {
    for part in parts {
        let Part::SignedUp { words, stem } = part else { continue };
        let fits = !query.metrics.is_empty()
            && query.metrics.iter().all(|name| {
                model
                    .metric(name)
                    .and_then(|m| model.time_column_for(&m.table))
                    .is_some_and(|time| time.column.to_lowercase().contains(stem))
            });
        if !fits {
            return Err(NotApplied::Answer(Interpretation::NotUnderstood(format!(
                "I can't tell which date \"{words}\" refers to for {}; ask about the time range of the metric itself, e.g. \"new customers this year\".",
                join_words(&query.metrics)
            ))));
        }
    }
    Ok(())
}

/// Replaces each ambiguous phrase ("account balance") with the one metric or dimension that
/// fits the rest of the question (the one named elsewhere in it, else the only one the other
/// metrics and breakdowns can be combined with); asks which one when several still fit.
fn resolve_ambiguous(
    parts: &[Part],
    current: Option<&ProposedQuery>,
    model: &SemanticModel,
) -> Result<Vec<Part>, NotApplied> {
    let current = current.and_then(|c| c.structured.as_ref());
    let named_metrics: Vec<String> = parts
        .iter()
        .filter_map(|p| match p {
            Part::Metric { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    let mut named_dimensions: Vec<String> = parts
        .iter()
        .flat_map(|p| match p {
            Part::Group { items, .. } => items
                .iter()
                .filter_map(|i| match i {
                    GroupItem::Dimension(d) => Some(d.clone()),
                    GroupItem::Grain(_) | GroupItem::OneOf { .. } => None,
                })
                .collect(),
            _ => vec![],
        })
        .collect();
    let context_metrics = if named_metrics.is_empty() {
        current.map(|c| c.metrics.clone()).unwrap_or_default()
    } else {
        named_metrics.clone()
    };
    if named_dimensions.is_empty() {
        named_dimensions = current.map(|c| c.dimensions.clone()).unwrap_or_default();
    }
    let fits = |metrics: &[String], dimensions: &[String]| {
        let probe = StructuredQuery {
            metrics: metrics.to_vec(),
            dimensions: dimensions.to_vec(),
            ..StructuredQuery::default()
        };
        query::plan(&probe, model).is_ok()
    };
    // The one option the words fit, `None` when the question names one in full already.
    let choose = |text: &str, metrics: &[String], dimensions: &[String]| -> Result<Option<String>, NotApplied> {
        let options: &[String] = if metrics.is_empty() { dimensions } else { metrics };
        // The answer to our own question names the option in full next to the phrase.
        if options
            .iter()
            .any(|o| named_metrics.contains(o) || named_dimensions.contains(o))
        {
            return Ok(None);
        }
        // Planning is the real test; reachability first keeps a word that names one column
        // per table ("status") from planning every table's.
        let near =
            (metrics.is_empty() && !context_metrics.is_empty()).then(|| tables_reached_by(&context_metrics, model));
        let fitting: Vec<&String> = options
            .iter()
            .filter(|option| near.as_ref().is_none_or(|near| near_enough(near, option, model)))
            .filter(|option| {
                if metrics.is_empty() {
                    context_metrics.is_empty() || fits(&context_metrics, &[(*option).clone()])
                } else {
                    let mut with = named_metrics.clone();
                    with.push((*option).clone());
                    named_dimensions.is_empty() || fits(&with, &named_dimensions)
                }
            })
            .collect();
        // "billing accounts by status": the accounts' own status, not that of a table they
        // join; "top 5 customers by quantity": the customers' own quantity.
        let own: Vec<&String> = fitting
            .iter()
            .copied()
            .filter(|option| {
                if metrics.is_empty() {
                    on_tables_of(&context_metrics, option, model)
                } else {
                    let table = model.metric(option).map(|m| m.table.as_str());
                    named_dimensions
                        .iter()
                        .filter_map(|d| model.dimension(d))
                        .any(|d| Some(d.table.as_str()) == table)
                }
            })
            .collect();
        let fitting = if own.len() == 1 { own } else { fitting };
        match fitting.as_slice() {
            [one] => Ok(Some((*one).clone())),
            _ => {
                let quoted: Vec<String> = options.iter().map(|o| format!("\"{o}\"")).collect();
                Err(NotApplied::Answer(Interpretation::Clarify(format!(
                    "\"{text}\" could mean {}. Which one do you mean?",
                    join_words(&quoted).replace(" and ", " or ")
                ))))
            }
        }
    };
    let mut resolved = Vec::with_capacity(parts.len());
    for part in parts {
        match part {
            Part::Ambiguous {
                text,
                metrics,
                dimensions,
            } => match choose(text, metrics, dimensions)? {
                None => {}
                Some(one) if metrics.is_empty() => resolved.push(Part::Group {
                    items: vec![GroupItem::Dimension(one)],
                    joined: false,
                }),
                Some(one) => resolved.push(Part::Metric {
                    name: one,
                    joined: false,
                }),
            },
            Part::Group { items, joined } => {
                let mut chosen = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        GroupItem::OneOf { text, dimensions } => {
                            // Named in full elsewhere: that item stands for it.
                            if let Some(one) = choose(text, &[], dimensions)? {
                                chosen.push(GroupItem::Dimension(one));
                            }
                        }
                        other => chosen.push(other.clone()),
                    }
                }
                resolved.push(Part::Group {
                    items: chosen,
                    joined: *joined,
                });
            }
            other => resolved.push(other.clone()),
        }
    }
    Ok(resolved)
}

/// The date column an event ("paid") means for the metrics: one of their own table's, else
/// the nearest table's they join to; a question when two tables at that distance have one.
fn event_column(
    text: &str,
    columns: &[String],
    metrics: &[String],
    model: &SemanticModel,
) -> Result<String, NotApplied> {
    let fact = metrics.first().and_then(|m| model.metric(m)).map(|m| m.table.as_str());
    let tree = fact.map(|fact| model.join_tree(fact)).unwrap_or_default();
    let distance = |column: &String| {
        let table = column.split_once('.').map_or(column.as_str(), |(table, _)| table);
        tree.iter().position(|(name, _)| name == table)
    };
    let nearest = columns
        .iter()
        .filter_map(|c| Some((distance(c)?, c)))
        .min_by_key(|(d, _)| *d);
    let Some((best, chosen)) = nearest else {
        return Err(NotApplied::Answer(Interpretation::NotUnderstood(format!(
            "{} {} no date for \"{text}\" ({} {} about {}).",
            join_words(metrics),
            if metrics.len() == 1 { "has" } else { "have" },
            join_words(columns),
            if columns.len() == 1 { "is" } else { "are" },
            "other rows"
        ))));
    };
    let tied: Vec<String> = columns.iter().filter(|c| distance(c) == Some(best)).cloned().collect();
    if tied.len() > 1 {
        return Err(NotApplied::Answer(Interpretation::Clarify(format!(
            "\"{text}\" could mean {}. Which date do you mean?",
            join_words(&tied).replace(" and ", " or ")
        ))));
    }
    Ok(chosen.clone())
}

/// Picks the dimension of a value like "web" (a channel and a platform) from the metrics:
/// the one their tables reach. Asks when that is still ambiguous.
fn resolve_value(
    mention: &ValueMention,
    metrics: &[String],
    model: &SemanticModel,
) -> Result<(String, String), Interpretation> {
    let near = tables_reached_by(metrics, model);
    let reachable: Vec<&(String, String)> = mention
        .candidates
        .iter()
        .filter(|(dimension, _)| near_enough(&near, dimension, model))
        .filter(|(dimension, _)| {
            let probe = StructuredQuery {
                metrics: metrics.to_vec(),
                dimensions: vec![dimension.clone()],
                ..StructuredQuery::default()
            };
            query::plan(&probe, model).is_ok()
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

/// Every table reachable from a table any definition of `metrics` counts over: a dimension
/// elsewhere cannot be combined with them.
fn tables_reached_by(metrics: &[String], model: &SemanticModel) -> Option<std::collections::HashSet<String>> {
    if metrics.is_empty() {
        return None;
    }
    let mut tables = std::collections::HashSet::new();
    for metric in metrics.iter().filter_map(|name| model.metric(name)) {
        for definition in metric.definitions() {
            tables.extend(model.reachable_from(&definition.table));
        }
    }
    Some(tables)
}

/// Whether `dimension` is a column of a table one of `metrics` counts over.
fn on_tables_of(metrics: &[String], dimension: &str, model: &SemanticModel) -> bool {
    let Some(dimension) = model.dimension(dimension) else {
        return false;
    };
    metrics
        .iter()
        .filter_map(|name| model.metric(name))
        .flat_map(|metric| metric.definitions())
        .any(|definition| definition.table == dimension.table)
}

/// Whether `dimension` may combine with metrics reaching `near` (`None`: no metrics to ask).
fn near_enough(near: &Option<std::collections::HashSet<String>>, dimension: &str, model: &SemanticModel) -> bool {
    match (near, model.dimension(dimension)) {
        (Some(near), Some(dimension)) => near.contains(&dimension.table),
        _ => true,
    }
}

fn push_unique(values: &mut Vec<String>, value: String) {
    if !values.contains(&value) {
        values.push(value);
    }
}

#[cfg(test)]
mod tests {
    use crate::interpret::query::{Grain, Sort, SortKey, TopN};
    use crate::interpret::rules::fixtures::*;
    use crate::interpret::{Interpretation, ProposedQuery, RulesInterpreter, SemanticModel};
    use crate::sql::Dialect;

    #[test]
    fn a_value_shared_by_two_dimensions_is_resolved_by_the_metric() {
        let q = thread(&["revenue on web"]);
        assert_eq!(q.filters, vec![filter("channel", &["web"], false)]);
        let q = thread(&["active users on web"]);
        assert_eq!(q.filters, vec![filter("platform", &["web"], false)]);
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
    fn a_refinement_without_a_question_asks_for_one_first() {
        let message = not_understood("only EMEA", None);
        assert!(message.contains("Ask one first"), "{message}");
        let message = not_understood("by week", None);
        assert!(message.contains("Ask one first"), "{message}");
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
    fn a_superlative_is_the_one_row_at_that_end() {
        let q = thread(&["which segment had the highest average order value?"]);
        assert_eq!(q.dimensions, vec!["segment"]);
        assert_eq!(
            q.top,
            Some(TopN {
                n: 1,
                largest_first: true
            })
        );
        let q = thread(&["what was the worst week for sessions?"]);
        assert_eq!(q.grain, Some(Grain::Week));
        assert_eq!(q.metrics, vec!["sessions"]);
        assert_eq!(
            q.top,
            Some(TopN {
                n: 1,
                largest_first: false
            })
        );
        let q = thread(&["which platform had the least crashes"]);
        assert_eq!(
            q.top,
            Some(TopN {
                n: 1,
                largest_first: false
            })
        );
    }

    #[test]
    fn two_periods_around_vs_are_compared() {
        let q = thread(&["orders this quarter vs last quarter"]);
        assert_eq!(q.time_range.map(|r| r.start), Some(date(2026, 10, 1)));
        assert_eq!(
            q.compare_to.map(|r| (r.start, r.end)),
            Some((date(2026, 7, 1), date(2026, 10, 1)))
        );
        let q = thread(&["crashes by platform this week", "compared to last week"]);
        assert_eq!(q.compare_to.map(|r| r.start), Some(date(2026, 11, 9)));
        assert_eq!(q.dimensions, vec!["platform"]);
    }

    #[test]
    fn growth_compares_with_the_period_before() {
        let q = thread(&["revenue growth last month"]);
        assert_eq!(
            q.compare_to.map(|r| (r.start, r.end)),
            Some((date(2026, 9, 1), date(2026, 10, 1)))
        );
        let q = thread(&["change in orders this year"]);
        assert_eq!(
            q.compare_to.map(|r| (r.start, r.end)),
            Some((date(2025, 1, 1), date(2025, 11, 23)))
        );
        assert!(matches!(ask("revenue growth", None), Interpretation::Clarify(_)));
    }

    #[test]
    fn the_period_before_moves_the_current_range_back() {
        let q = thread(&["orders by region this year", "and the year before?"]);
        assert_eq!(
            q.time_range.map(|r| (r.start, r.end)),
            Some((date(2025, 1, 1), date(2026, 1, 1)))
        );
        assert_eq!(q.dimensions, vec!["region"]);
        let q = thread(&["revenue in Q1 2025", "what about the previous quarter?"]);
        assert_eq!(
            q.time_range.map(|r| (r.start, r.end)),
            Some((date(2024, 10, 1), date(2025, 1, 1)))
        );
        // In a new question it is the one before today's.
        let q = thread(&["revenue in the previous quarter"]);
        assert_eq!(q.time_range.map(|r| r.start), Some(date(2026, 7, 1)));
    }

    #[test]
    fn an_event_verb_must_name_the_metrics_date() {
        let q = thread(&["customers who signed up in 2025"]);
        assert_eq!(q.metrics, vec!["customers"]);
        assert_eq!(q.time_range.map(|r| r.start), Some(date(2025, 1, 1)));
        // Orders of customers who signed up in 2025: the range applies to the signup date, not
        // silently to the order date.
        let q = thread(&["orders from customers who signed up in 2025"]);
        assert_eq!(q.metrics, vec!["orders"]);
        assert_eq!(q.time_column.as_deref(), Some("customers.signup_date"));
        assert_eq!(q.time_range.map(|r| r.start), Some(date(2025, 1, 1)));
    }

    #[test]
    fn sorts_shares_and_all_rows_are_understood() {
        let q = thread(&["revenue by country", "sort by name"]);
        assert_eq!(
            q.sort,
            Some(Sort {
                by: SortKey::Label,
                descending: false
            })
        );
        let q = thread(&["revenue by country", "sort by name", "sort descending"]);
        assert_eq!(
            q.sort,
            Some(Sort {
                by: SortKey::Label,
                descending: true
            })
        );
        let q = thread(&["revenue by country", "sort ascending"]);
        assert_eq!(
            q.sort,
            Some(Sort {
                by: SortKey::Metric,
                descending: false
            })
        );
        let q = thread(&["share of revenue by channel"]);
        assert!(q.share);
        assert_eq!(q.metrics, vec!["revenue"]);
        let q = thread(&["units by product top 10", "show all rows"]);
        assert_eq!(q.top, None);
        // "share of refunds" is the model's own phrase for the refund rate.
        let q = thread(&["share of refunds by region"]);
        assert_eq!(q.metrics, vec!["refund rate"]);
        assert!(!q.share);
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
}
