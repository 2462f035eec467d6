//! How a structured query maps onto the semantic model's tables, and its compilation to SQL.
use std::collections::HashMap;

use chrono::NaiveDate;

use super::model::{
    output_alias, tokenize, ColumnRef, Join, Metric, MetricDefinition, SemanticModel, SqlToken, TimeChoice,
};
use crate::domain::ColumnFormat;
pub use crate::domain::{Filter, Grain, Sort, SortKey, StructuredQuery, TimeRange, TopN};
use crate::sql::dialect::{is_reserved, quote_ident, string_literal};
use crate::sql::Dialect;

/// Why a structured query cannot be answered. The messages are shown to users as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error("the question has no metric to measure")]
    NoMetrics,
    #[error("there is no metric called '{0}'")]
    UnknownMetric(String),
    #[error("there is no dimension called '{0}'")]
    UnknownDimension(String),
    #[error(
        "{metrics} are counted over different tables ({tables}), so they cannot be combined in one \
         answer; ask for them separately"
    )]
    DifferentFacts { metrics: String, tables: String },
    #[error(
        "{metrics} cannot be broken down or filtered by {dimension}: {dimension} lives in table \
         '{table}', which is not linked to the rows {metrics} {verb} counted over"
    )]
    Unreachable {
        dimension: String,
        table: String,
        metrics: String,
        verb: &'static str,
    },
    #[error("{metrics} {verb} no date, so it cannot be limited to a time range or broken down by day, week or month")]
    NoTimeColumn { metrics: String, verb: &'static str },
    #[error(
        "{metrics} {verb} linked to table '{table}' in {count} ways of the same length ({paths}), and I \
         won't guess which one you mean; keep the one you mean in threadql.toml's joins (`threadql model` \
         prints a start)"
    )]
    AmbiguousJoin {
        metrics: String,
        verb: &'static str,
        table: String,
        count: usize,
        paths: String,
    },
    #[error("{metrics} {verb} several dates ({}), so I need to know which one the time range is about", options.join(", "))]
    WhichDate {
        metrics: String,
        verb: &'static str,
        options: Vec<String>,
    },
    #[error("the model's expression for {0} cannot be combined with metrics that count other rows")]
    NotCombinable(String),
    #[error("the semantic model has a broken snippet: {0}")]
    Model(String),
}

/// How a structured query maps onto tables: the chosen fact table, the definition used for each
/// metric and the joins needed.
#[derive(Debug, Clone)]
pub struct QueryPlan<'m> {
    pub fact: String,
    pub metrics: Vec<(&'m Metric, MetricDefinition)>,
    pub joins: Vec<&'m Join>,
    pub time_column: Option<ColumnRef>,
}

/// Chooses the fact table and joins. The metrics' main table is preferred; a finer table with
/// alternative definitions is used when a dimension is only reachable from there.
pub fn plan<'m>(query: &StructuredQuery, model: &'m SemanticModel) -> Result<QueryPlan<'m>, CompileError> {
    if query.metrics.is_empty() {
        return Err(CompileError::NoMetrics);
    }
    let metrics = query
        .metrics
        .iter()
        .map(|name| {
            model
                .metric(name)
                .ok_or_else(|| CompileError::UnknownMetric(name.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut dimension_names: Vec<&String> = query.dimensions.iter().collect();
    dimension_names.extend(query.filters.iter().map(|filter| &filter.dimension));
    let dimensions = dimension_names
        .iter()
        .map(|name| {
            model
                .dimension(name)
                .ok_or_else(|| CompileError::UnknownDimension((*name).clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let metric_names = join_words(&query.metrics);
    let verb = if query.metrics.len() == 1 { "is" } else { "are" };

    // Candidate fact tables, in the first metric's preference order, where every metric has a
    // definition.
    let mut candidates: Vec<String> = Vec::new();
    for metric in &metrics {
        for definition in metric.definitions() {
            let everywhere = metrics.iter().all(|m| m.definition_at(&definition.table).is_some());
            if everywhere && !candidates.contains(&definition.table) {
                candidates.push(definition.table);
            }
        }
    }
    if candidates.is_empty() {
        let tables: Vec<String> = metrics.iter().map(|m| format!("{}: {}", m.name, m.table)).collect();
        return Err(CompileError::DifferentFacts {
            metrics: metric_names,
            tables: tables.join(", "),
        });
    }
    let needs_time = query.time_range.is_some() || query.grain.is_some();
    let mut unreachable = None;
    let mut timeless = false;
    let mut ambiguous = None;
    let mut which_date = None;
    for fact in &candidates {
        let tree = model.join_paths(fact);
        if let Some(dimension) = dimensions.iter().find(|d| !tree.reaches(&d.table)) {
            unreachable.get_or_insert((dimension.name.clone(), dimension.table.clone()));
            continue;
        }
        let time_column = match chosen_time_column(query, model, fact) {
            TimeChoice::One(column) => Some(column),
            TimeChoice::Ask(options) if needs_time => {
                which_date.get_or_insert(options);
                continue;
            }
            TimeChoice::Ask(_) | TimeChoice::None => None,
        };
        if needs_time && time_column.is_none() {
            timeless = true;
            continue;
        }
        let mut needed: Vec<String> = dimensions.iter().map(|d| d.table.clone()).collect();
        let chosen: Vec<(&Metric, MetricDefinition)> = metrics
            .iter()
            .filter_map(|metric| metric.definition_at(fact).map(|definition| (*metric, definition)))
            .collect();
        for (_, definition) in &chosen {
            for text in std::iter::once(&definition.expression).chain(definition.filter.as_ref()) {
                let tokens = tokenize(text).map_err(CompileError::Model)?;
                needed.extend(super::model::column_references(&tokens).into_iter().map(|c| c.table));
            }
        }
        if let (true, Some(time)) = (needs_time, &time_column) {
            needed.push(time.table.clone());
        }
        // Walk back from every needed table to the fact, then keep the tree's (breadth-first)
        // order so each join's left side is already in the FROM clause.
        let mut keep: Vec<String> = Vec::new();
        for table in needed {
            let mut current = table;
            while let Some(join) = tree.join_to(&current) {
                if !keep.contains(&current) {
                    keep.push(current.clone());
                }
                current = join.from.table.clone();
            }
        }
        if let Some((table, joins)) = keep.iter().find_map(|table| Some((table, tree.alternatives(table)?))) {
            let paths: Vec<String> = joins.iter().map(|j| format!("{} = {}", j.from, j.to)).collect();
            ambiguous.get_or_insert(CompileError::AmbiguousJoin {
                metrics: metric_names.clone(),
                verb,
                table: table.clone(),
                count: joins.len(),
                paths: join_words(&paths).replace(" and ", " or "),
            });
            continue;
        }
        let joins = tree
            .reached()
            .filter(|(name, _)| keep.iter().any(|kept| kept == name))
            .filter_map(|(_, join)| join)
            .collect();
        return Ok(QueryPlan {
            fact: fact.clone(),
            metrics: chosen,
            joins,
            time_column,
        });
    }
    if let Some(error) = ambiguous {
        return Err(error);
    }
    if let Some(options) = which_date {
        return Err(CompileError::WhichDate {
            metrics: metric_names,
            verb: if verb == "is" { "has" } else { "have" },
            options,
        });
    }
    match unreachable {
        Some((dimension, table)) if !timeless => Err(CompileError::Unreachable {
            dimension,
            table,
            metrics: metric_names,
            verb,
        }),
        _ => Err(CompileError::NoTimeColumn {
            metrics: metric_names,
            verb: if verb == "is" { "has" } else { "have" },
        }),
    }
}

/// The date column named in the question ("paid in 2020") when the fact table reaches it, else
/// the fact table's default one, else the dates to ask about.
fn chosen_time_column(query: &StructuredQuery, model: &SemanticModel, fact: &str) -> TimeChoice {
    let named = query.time_column.as_deref().and_then(|named| {
        let (table, column) = named.split_once('.')?;
        let known = model.table(table)?.date_columns().contains(&column);
        (known && model.join_paths(fact).reaches(table)).then(|| ColumnRef {
            table: table.to_string(),
            column: column.to_string(),
        })
    });
    match named {
        Some(column) => TimeChoice::One(column),
        None => model.time_choice_for(fact),
    }
}

/// Compiles a structured query into readable SQL in the warehouse's dialect.
pub fn compile(query: &StructuredQuery, model: &SemanticModel, dialect: Dialect) -> Result<String, CompileError> {
    let plan = plan(query, model)?;
    let aliases = table_aliases(&plan, model);
    let alias_of = |table: &str| aliases.get(table).cloned().unwrap_or_else(|| table.to_string());
    let column_sql = |table: &str, column: &str| format!("{}.{}", alias_of(table), quote_ident(column, dialect));

    let mut select: Vec<String> = Vec::new();
    let mut group_by: Vec<String> = Vec::new();
    let mut order_by: Vec<String> = Vec::new();
    let mut grain_alias = None;
    if let (Some(grain), Some(time)) = (query.grain, &plan.time_column) {
        let bucket = time_bucket(grain, &column_sql(&time.table, &time.column), dialect);
        let alias = quote_ident(grain.name(), dialect);
        select.push(format!("{bucket} AS {alias}"));
        group_by.push(bucket);
        grain_alias = Some(alias);
    }
    let mut dimension_aliases = Vec::new();
    for name in &query.dimensions {
        let dimension = model
            .dimension(name)
            .ok_or_else(|| CompileError::UnknownDimension(name.clone()))?;
        let expression = column_sql(&dimension.table, &dimension.column);
        let alias = quote_ident(&output_alias(name), dialect);
        select.push(format!("{expression} AS {alias}"));
        group_by.push(expression);
        dimension_aliases.push(alias);
    }

    // One shared row filter goes in WHERE; different filters (revenue and refunds) become
    // conditional aggregates so each metric still counts only its own rows.
    let mut row_filters: Vec<Option<&String>> = plan.metrics.iter().map(|(_, d)| d.filter.as_ref()).collect();
    row_filters.dedup();
    let shared_filter = match row_filters.as_slice() {
        [only] => *only,
        _ => None,
    };
    let conditional = row_filters.len() > 1;
    // A comparison measures each metric once per period: the period becomes part of each
    // aggregate's condition, and both periods' rows are read in one pass.
    let periods: Vec<(Option<String>, Option<String>)> = match (&query.compare_to, &query.time_range, &plan.time_column)
    {
        (Some(previous), Some(current), Some(time)) => {
            let column = column_sql(&time.table, &time.column);
            vec![
                (
                    Some(period_alias(current, "current")),
                    Some(range_condition(&column, current)),
                ),
                (
                    Some(period_alias(previous, "previous")),
                    Some(range_condition(&column, previous)),
                ),
            ]
        }
        _ => vec![(None, None)],
    };
    let mut metric_aliases = Vec::new();
    for (metric, definition) in &plan.metrics {
        let base = rewrite_tables(&definition.expression, &aliases, dialect)?;
        let own_filter = match (&definition.filter, conditional) {
            (Some(filter), true) => Some(rewrite_tables(filter, &aliases, dialect)?),
            _ => None,
        };
        let mut per_period = Vec::new();
        for (suffix, period) in &periods {
            let condition = match (&own_filter, period) {
                (Some(filter), Some(period)) => Some(format!("({filter}) AND {period}")),
                (Some(filter), None) => Some(filter.clone()),
                (None, Some(period)) => Some(period.clone()),
                (None, None) => None,
            };
            let expression = match condition {
                Some(condition) => conditional_aggregate(&base, &condition)
                    .ok_or_else(|| CompileError::NotCombinable(metric.name.clone()))?,
                None => base.clone(),
            };
            let name = match suffix {
                Some(suffix) => format!("{}_{suffix}", output_alias(&metric.name)),
                None => output_alias(&metric.name),
            };
            let alias = quote_ident(&name, dialect);
            select.push(format!("{expression} AS {alias}"));
            per_period.push(expression);
            // Orders and `top N` go by the first (the current) period.
            if per_period.len() == 1 {
                metric_aliases.push(alias);
            }
        }
        if let [current, previous] = per_period.as_slice() {
            let name = output_alias(&metric.name);
            select.push(format!(
                "{current} - {previous} AS {}",
                quote_ident(&format!("{name}_change"), dialect)
            ));
            // 100.0 makes the division exact in every engine (no integer division); NULLIF
            // gives NULL instead of an error when the earlier period had none.
            select.push(format!(
                "({current} - {previous}) * 100.0 / NULLIF({previous}, 0) AS {}",
                quote_ident(&format!("{name}_change_pct"), dialect)
            ));
        } else if query.share && metric_aliases.len() == 1 {
            if let Some(expression) = per_period.first() {
                select.push(format!(
                    "{expression} * 100.0 / NULLIF(SUM({expression}) OVER (), 0) AS {}",
                    quote_ident(&format!("{}_share_pct", output_alias(&metric.name)), dialect)
                ));
            }
        }
    }

    let mut conditions = Vec::new();
    if let Some(filter) = shared_filter {
        let condition = rewrite_tables(filter, &aliases, dialect)?;
        let has_or = tokenize(filter)
            .map_err(CompileError::Model)?
            .iter()
            .any(|t| t.is_identifier("or"));
        conditions.push(if has_or { format!("({condition})") } else { condition });
    }
    if let (Some(range), Some(time)) = (&query.time_range, &plan.time_column) {
        let column = column_sql(&time.table, &time.column);
        match &query.compare_to {
            Some(previous) => conditions.push(format!(
                "({} OR {})",
                range_condition(&column, range),
                range_condition(&column, previous)
            )),
            None => {
                conditions.push(format!("{column} >= {}", date_literal(range.start)));
                conditions.push(format!("{column} < {}", date_literal(range.end)));
            }
        }
    }
    for filter in &query.filters {
        let dimension = model
            .dimension(&filter.dimension)
            .ok_or_else(|| CompileError::UnknownDimension(filter.dimension.clone()))?;
        if filter.values.is_empty() {
            continue;
        }
        let values: Vec<String> = filter.values.iter().map(|v| string_literal(v, dialect)).collect();
        let operator = if filter.negated { "NOT IN" } else { "IN" };
        conditions.push(format!(
            "{} {operator} ({})",
            column_sql(&dimension.table, &dimension.column),
            values.join(", ")
        ));
    }

    let first_metric = metric_aliases.first().cloned().unwrap_or_default();
    let nulls_last = if matches!(dialect, Dialect::Postgres | Dialect::Snowflake) {
        " NULLS LAST"
    } else {
        ""
    };
    let label = dimension_aliases.first().or(grain_alias.as_ref()).cloned();
    let explicit = query.sort.as_ref().map(|sort| {
        let direction = if sort.descending { "DESC" } else { "ASC" };
        match (&sort.by, &label) {
            (SortKey::Label, Some(label)) => format!("{label} {direction}"),
            _ => format!("{first_metric} {direction}{nulls_last}"),
        }
    });
    if let (Some(explicit), None) = (&explicit, query.top) {
        // Then the labels, for a stable order among ties (not the one already sorted on).
        let lead = explicit.split(' ').next().unwrap_or_default().to_string();
        order_by.push(explicit.clone());
        order_by.extend(
            grain_alias
                .iter()
                .chain(&dimension_aliases)
                .filter(|alias| **alias != lead)
                .cloned(),
        );
    } else if let Some(top) = query.top {
        let direction = if top.largest_first { "DESC" } else { "ASC" };
        order_by.push(format!("{first_metric} {direction}{nulls_last}"));
        order_by.extend(grain_alias.iter().cloned());
        order_by.extend(dimension_aliases.iter().cloned());
    } else if let Some(alias) = &grain_alias {
        order_by.push(alias.clone());
        if !dimension_aliases.is_empty() {
            order_by.push(format!("{first_metric} DESC{nulls_last}"));
            order_by.extend(dimension_aliases.iter().cloned());
        }
    } else if !dimension_aliases.is_empty() {
        // Largest first, then by name so ties come out the same way every time.
        order_by.push(format!("{first_metric} DESC{nulls_last}"));
        order_by.extend(dimension_aliases.iter().cloned());
    }

    let mut sql = format!(
        "SELECT\n  {}\nFROM {} AS {}",
        select.join(",\n  "),
        quote_ident(&plan.fact, dialect),
        alias_of(&plan.fact)
    );
    for join in &plan.joins {
        sql.push_str(&format!(
            "\nLEFT JOIN {} AS {} ON {} = {}",
            quote_ident(&join.to.table, dialect),
            alias_of(&join.to.table),
            column_sql(&join.to.table, &join.to.column),
            column_sql(&join.from.table, &join.from.column),
        ));
    }
    if !conditions.is_empty() {
        sql.push_str(&format!("\nWHERE {}", conditions.join("\n  AND ")));
    }
    if !group_by.is_empty() {
        sql.push_str(&format!("\nGROUP BY {}", group_by.join(", ")));
    }
    if !order_by.is_empty() {
        sql.push_str(&format!("\nORDER BY {}", order_by.join(", ")));
    }
    if let Some(top) = query.top {
        sql.push_str(&format!("\nLIMIT {}", top.n));
        // "top 5, sorted by name": the five are chosen by the metric, then shown in the order asked.
        if let Some(explicit) = explicit {
            sql = format!("SELECT *\nFROM (\n{sql}\n) AS ranked\nORDER BY {explicit}");
        }
    }
    Ok(sql)
}

/// One line saying what is answered: "Revenue by region · last month (Oct 2026) · region: EMEA".
pub fn summarize(query: &StructuredQuery) -> String {
    let measured = join_words(&query.metrics);
    let mut head = if query.share && query.compare_to.is_none() {
        format!("Share of {measured}")
    } else {
        capitalize(&measured)
    };
    let mut by: Vec<String> = query.dimensions.clone();
    if let Some(grain) = query.grain {
        by.push(grain.name().to_string());
    }
    if !by.is_empty() {
        head.push_str(" by ");
        head.push_str(&join_words(&by));
    }
    let mut parts = vec![head];
    match (&query.time_range, &query.compare_to) {
        (Some(range), Some(previous)) => parts.push(format!("{} vs {}", range.label, previous.label)),
        (Some(range), None) => parts.push(range.label.clone()),
        _ => {}
    }
    for filter in &query.filters {
        let values = filter.values.join(", ");
        if filter.negated {
            parts.push(format!("{}: not {values}", filter.dimension));
        } else {
            parts.push(format!("{}: {values}", filter.dimension));
        }
    }
    if let Some(top) = query.top {
        parts.push(format!(
            "{} {}",
            if top.largest_first { "top" } else { "bottom" },
            top.n
        ));
    }
    if let Some(sort) = &query.sort {
        parts.push(
            match (&sort.by, sort.descending) {
                (SortKey::Label, false) => "sorted by name",
                (SortKey::Label, true) => "sorted by name, Z to A",
                (SortKey::Metric, false) => "smallest first",
                (SortKey::Metric, true) => "largest first",
            }
            .to_string(),
        );
    }
    parts.join(" · ")
}

/// Display formats of the output columns: metric formats, dates for the time bucket, text for
/// dimensions.
pub fn output_formats(query: &StructuredQuery, model: &SemanticModel) -> Vec<(String, ColumnFormat)> {
    let mut formats = Vec::new();
    if let Some(grain) = query.grain {
        formats.push((grain.name().to_string(), ColumnFormat::Date));
    }
    for dimension in &query.dimensions {
        formats.push((output_alias(dimension), ColumnFormat::Text));
    }
    let compared = match (&query.time_range, &query.compare_to) {
        (Some(current), Some(previous)) => Some((period_alias(current, "current"), period_alias(previous, "previous"))),
        _ => None,
    };
    for (index, name) in query.metrics.iter().enumerate() {
        let Some(metric) = model.metric(name) else { continue };
        let alias = output_alias(name);
        match &compared {
            Some((current, previous)) => {
                formats.push((format!("{alias}_{current}"), metric.format));
                formats.push((format!("{alias}_{previous}"), metric.format));
                formats.push((format!("{alias}_change"), metric.format));
                formats.push((format!("{alias}_change_pct"), ColumnFormat::Number));
            }
            None => {
                formats.push((alias.clone(), metric.format));
                if query.share && index == 0 {
                    formats.push((format!("{alias}_share_pct"), ColumnFormat::Number));
                }
            }
        }
    }
    formats
}

/// "a", "a and b", "a, b and c".
pub(crate) fn join_words(words: &[String]) -> String {
    match words {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Short aliases from table name initials (order_items -> oi), made unique and never a keyword
/// or another table's name.
fn table_aliases(plan: &QueryPlan<'_>, model: &SemanticModel) -> HashMap<String, String> {
    let mut tables = vec![plan.fact.clone()];
    tables.extend(plan.joins.iter().map(|join| join.to.table.clone()));
    let mut aliases: HashMap<String, String> = HashMap::new();
    for table in tables {
        let initials: String = table
            .split('_')
            .filter_map(|part| part.chars().next())
            .collect::<String>()
            .to_lowercase();
        let base = if initials.is_empty() || !initials.starts_with(|c: char| c.is_ascii_alphabetic()) {
            "t".to_string()
        } else {
            initials
        };
        let mut alias = base.clone();
        let mut n = 2;
        while aliases.values().any(|a| *a == alias)
            || is_reserved(&alias)
            || (model.table(&alias).is_some() && alias != table)
        {
            alias = format!("{base}{n}");
            n += 1;
        }
        aliases.insert(table, alias);
    }
    aliases
}

/// Replaces `table.` with `alias.` outside string literals and quotes column names that need it.
fn rewrite_tables(text: &str, aliases: &HashMap<String, String>, dialect: Dialect) -> Result<String, CompileError> {
    let tokens = tokenize(text).map_err(CompileError::Model)?;
    let mut out = String::new();
    let mut at = 0;
    while let Some(token) = tokens.get(at) {
        if let (SqlToken::Identifier(table), Some(SqlToken::Other('.')), Some(SqlToken::Identifier(column))) =
            (token, tokens.get(at + 1), tokens.get(at + 2))
        {
            if let Some(alias) = aliases.get(table) {
                out.push_str(&format!("{alias}.{}", quote_ident(column, dialect)));
                at += 3;
                continue;
            }
        }
        out.push_str(&token.text());
        at += 1;
    }
    Ok(out)
}

/// Rewrites each aggregate call `AGG(x)` as `AGG(CASE WHEN condition THEN x END)`;
/// `COUNT(*)` counts `1` for matching rows. `None` when there is no aggregate to rewrite.
fn conditional_aggregate(expression: &str, condition: &str) -> Option<String> {
    let tokens = tokenize(expression).ok()?;
    let mut out = String::new();
    let mut rewritten = false;
    let mut at = 0;
    while let Some(token) = tokens.get(at) {
        out.push_str(&token.text());
        at += 1;
        if token.aggregate_name().is_none() {
            continue;
        }
        let mut open = at;
        while matches!(tokens.get(open), Some(SqlToken::Other(c)) if c.is_whitespace()) {
            open += 1;
        }
        if tokens.get(open) != Some(&SqlToken::Other('(')) {
            continue;
        }
        let mut depth = 0usize;
        let mut close = None;
        for (index, token) in tokens.iter().enumerate().skip(open) {
            match token {
                SqlToken::Other('(') => depth += 1,
                SqlToken::Other(')') => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        close = Some(index);
                        break;
                    }
                }
                _ => {}
            }
        }
        let close = close?;
        let inner: String = tokens.get(open + 1..close)?.iter().map(SqlToken::text).collect();
        let inner = inner.trim();
        let (distinct, argument) = match inner.get(..9) {
            Some(prefix) if prefix.eq_ignore_ascii_case("distinct ") => ("DISTINCT ", inner.get(9..)?.trim()),
            _ => ("", inner),
        };
        let argument = if argument == "*" { "1" } else { argument };
        out.push_str(&format!("({distinct}CASE WHEN {condition} THEN {argument} END)"));
        rewritten = true;
        at = close + 1;
    }
    rewritten.then_some(out)
}

/// The time bucket of a date column, as a date (Postgres, Snowflake, BigQuery) or ISO date text
/// (SQLite, MySQL). Snowflake's weeks start on Monday with the default `WEEK_START`, as
/// Postgres's do; BigQuery's ISOWEEK too.
fn time_bucket(grain: Grain, column: &str, dialect: Dialect) -> String {
    match (dialect, grain) {
        (Dialect::Sqlite, Grain::Day) => format!("date({column})"),
        // 'weekday 0' moves forward to Sunday (or stays), then back six days: the Monday.
        (Dialect::Sqlite, Grain::Week) => format!("date({column}, 'weekday 0', '-6 days')"),
        (Dialect::Sqlite, Grain::Month) => format!("strftime('%Y-%m-01', {column})"),
        (Dialect::Sqlite, Grain::Quarter) => format!(
            "date({column}, 'start of month', '-' || ((CAST(strftime('%m', {column}) AS INTEGER) - 1) % 3) || ' months')"
        ),
        (Dialect::Sqlite, Grain::Year) => format!("strftime('%Y-01-01', {column})"),
        (Dialect::Postgres | Dialect::Snowflake, Grain::Day) => format!("CAST({column} AS date)"),
        (Dialect::Postgres | Dialect::Snowflake, grain) => format!("CAST(date_trunc('{}', {column}) AS date)", grain.name()),
        (Dialect::MySql, Grain::Day) => format!("DATE({column})"),
        (Dialect::MySql, Grain::Week) => format!("DATE_SUB(DATE({column}), INTERVAL WEEKDAY({column}) DAY)"),
        (Dialect::MySql, Grain::Month) => format!("DATE_FORMAT({column}, '%Y-%m-01')"),
        (Dialect::MySql, Grain::Quarter) => {
            format!("CONCAT(YEAR({column}), '-', LPAD((QUARTER({column}) - 1) * 3 + 1, 2, '0'), '-01')")
        }
        (Dialect::MySql, Grain::Year) => format!("DATE_FORMAT({column}, '%Y-01-01')"),
        // DATE() accepts a DATE, DATETIME or TIMESTAMP (in UTC); ISOWEEK weeks start on Monday.
        (Dialect::BigQuery, Grain::Day) => format!("DATE({column})"),
        (Dialect::BigQuery, Grain::Week) => format!("DATE_TRUNC(DATE({column}), ISOWEEK)"),
        (Dialect::BigQuery, Grain::Month) => format!("DATE_TRUNC(DATE({column}), MONTH)"),
        (Dialect::BigQuery, Grain::Quarter) => format!("DATE_TRUNC(DATE({column}), QUARTER)"),
        (Dialect::BigQuery, Grain::Year) => format!("DATE_TRUNC(DATE({column}), YEAR)"),
    }
}

/// `column` within the half-open range.
fn range_condition(column: &str, range: &TimeRange) -> String {
    format!(
        "({column} >= {} AND {column} < {})",
        date_literal(range.start),
        date_literal(range.end)
    )
}

/// The column suffix naming a compared period: the words of its label before any detail in
/// parentheses ("last quarter (Q3 2026)" -> `last_quarter`), else `fallback`.
pub(crate) fn period_alias(range: &TimeRange, fallback: &str) -> String {
    let words = range.label.split(" (").next().unwrap_or_default();
    let alias = output_alias(words);
    if alias.starts_with("c_") || alias.is_empty() {
        fallback.to_string()
    } else {
        alias
    }
}

fn date_literal(date: NaiveDate) -> String {
    format!("'{}'", date.format("%Y-%m-%d"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> SemanticModel {
        SemanticModel::demo().unwrap_or_default()
    }

    fn query(metrics: &[&str], dimensions: &[&str]) -> StructuredQuery {
        StructuredQuery {
            metrics: metrics.iter().map(|m| m.to_string()).collect(),
            dimensions: dimensions.iter().map(|d| d.to_string()).collect(),
            ..StructuredQuery::default()
        }
    }

    fn october() -> TimeRange {
        TimeRange {
            start: NaiveDate::from_ymd_opt(2026, 10, 1).unwrap_or_default(),
            end: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap_or_default(),
            label: "last month (Oct 2026)".into(),
        }
    }

    fn sql(query: &StructuredQuery, dialect: Dialect) -> String {
        match compile(query, &demo(), dialect) {
            Ok(sql) => sql,
            Err(error) => panic!("{query:?} should compile: {error}"),
        }
    }

    fn parses(sql: &str, dialect: Dialect) -> bool {
        use sqlparser::dialect::{BigQueryDialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect, SnowflakeDialect};
        use sqlparser::parser::Parser;
        let result = match dialect {
            Dialect::Sqlite => Parser::parse_sql(&SQLiteDialect {}, sql),
            Dialect::Postgres => Parser::parse_sql(&PostgreSqlDialect {}, sql),
            Dialect::MySql => Parser::parse_sql(&MySqlDialect {}, sql),
            Dialect::Snowflake => Parser::parse_sql(&SnowflakeDialect {}, sql),
            Dialect::BigQuery => Parser::parse_sql(&BigQueryDialect {}, sql),
        };
        result.is_ok()
    }

    #[test]
    fn revenue_by_region_last_month_filtered_to_emea_compiles_to_readable_sql() {
        let mut q = query(&["revenue"], &["region"]);
        q.time_range = Some(october());
        q.filters.push(Filter {
            dimension: "region".into(),
            values: vec!["EMEA".into()],
            negated: false,
        });
        let expected = "SELECT\n  c.region AS region,\n  SUM(o.total) AS revenue\nFROM orders AS o\n\
LEFT JOIN customers AS c ON c.id = o.customer_id\n\
WHERE o.status = 'completed'\n  AND o.order_date >= '2026-10-01'\n  AND o.order_date < '2026-11-01'\n  AND c.region IN ('EMEA')\n\
GROUP BY c.region\nORDER BY revenue DESC, region";
        assert_eq!(sql(&q, Dialect::Sqlite), expected);
    }

    #[test]
    fn a_total_has_no_join_group_or_order() {
        let text = sql(&query(&["orders"], &[]), Dialect::Sqlite);
        assert_eq!(text, "SELECT\n  COUNT(*) AS orders\nFROM orders AS o");
    }

    #[test]
    fn revenue_by_category_uses_the_item_level_definition() {
        let text = sql(&query(&["revenue"], &["category"]), Dialect::Sqlite);
        assert!(
            text.contains("SUM(oi.quantity * oi.unit_price * (1 - oi.discount)) AS revenue"),
            "{text}"
        );
        assert!(text.contains("FROM order_items AS oi"), "{text}");
        assert!(text.contains("LEFT JOIN orders AS o ON o.id = oi.order_id"), "{text}");
        assert!(
            text.contains("LEFT JOIN products AS p ON p.id = oi.product_id"),
            "{text}"
        );
        assert!(text.contains("WHERE o.status = 'completed'"), "{text}");
        assert!(!text.contains("customers"), "{text}");
    }

    #[test]
    fn item_level_time_ranges_use_the_order_date_through_the_join() {
        let mut q = query(&["units"], &["product"]);
        q.time_range = Some(october());
        let text = sql(&q, Dialect::Sqlite);
        assert!(text.contains("LEFT JOIN orders AS o ON o.id = oi.order_id"), "{text}");
        assert!(text.contains("o.order_date >= '2026-10-01'"), "{text}");
        assert!(text.contains("p.name AS product"), "{text}");
    }

    #[test]
    fn metrics_with_different_row_filters_become_conditional_aggregates() {
        let text = sql(&query(&["revenue", "orders", "refunds"], &["channel"]), Dialect::Sqlite);
        assert!(
            text.contains("SUM(CASE WHEN o.status = 'completed' THEN o.total END) AS revenue"),
            "{text}"
        );
        assert!(text.contains("COUNT(*) AS orders"), "{text}");
        assert!(
            text.contains("COUNT(CASE WHEN o.status = 'refunded' THEN 1 END) AS refunds"),
            "{text}"
        );
        assert!(!text.contains("WHERE"), "{text}");
    }

    #[test]
    fn grains_bucket_dates_per_dialect() {
        let mut q = query(&["revenue"], &[]);
        let cases = [
            (
                Grain::Week,
                Dialect::Sqlite,
                "date(o.order_date, 'weekday 0', '-6 days') AS week",
            ),
            (
                Grain::Month,
                Dialect::Sqlite,
                "strftime('%Y-%m-01', o.order_date) AS month",
            ),
            (Grain::Day, Dialect::Sqlite, "date(o.order_date) AS day"),
            (
                Grain::Year,
                Dialect::Sqlite,
                "strftime('%Y-01-01', o.order_date) AS year",
            ),
            (
                Grain::Week,
                Dialect::Postgres,
                "CAST(date_trunc('week', o.order_date) AS date) AS week",
            ),
            (
                Grain::Quarter,
                Dialect::Postgres,
                "CAST(date_trunc('quarter', o.order_date) AS date) AS quarter",
            ),
            (
                Grain::Week,
                Dialect::MySql,
                "DATE_SUB(DATE(o.order_date), INTERVAL WEEKDAY(o.order_date) DAY) AS week",
            ),
            (
                Grain::Month,
                Dialect::MySql,
                "DATE_FORMAT(o.order_date, '%Y-%m-01') AS month",
            ),
            (
                Grain::Month,
                Dialect::Snowflake,
                "CAST(date_trunc('month', o.order_date) AS date) AS month",
            ),
            (Grain::Day, Dialect::BigQuery, "DATE(o.order_date) AS day"),
            (
                Grain::Week,
                Dialect::BigQuery,
                "DATE_TRUNC(DATE(o.order_date), ISOWEEK) AS week",
            ),
            (
                Grain::Month,
                Dialect::BigQuery,
                "DATE_TRUNC(DATE(o.order_date), MONTH) AS month",
            ),
            (
                Grain::Quarter,
                Dialect::BigQuery,
                "DATE_TRUNC(DATE(o.order_date), QUARTER) AS quarter",
            ),
        ];
        for (grain, dialect, expected) in cases {
            q.grain = Some(grain);
            let text = sql(&q, dialect);
            assert!(text.contains(expected), "{grain:?} {dialect:?}: {text}");
            assert!(text.ends_with(&format!("ORDER BY {}", grain.name())), "{text}");
        }
    }

    #[test]
    fn top_n_orders_by_the_first_metric_and_limits() {
        let mut q = query(&["units"], &["product"]);
        q.top = Some(TopN {
            n: 10,
            largest_first: true,
        });
        let text = sql(&q, Dialect::Sqlite);
        assert!(text.ends_with("ORDER BY units DESC, product\nLIMIT 10"), "{text}");
        q.top = Some(TopN {
            n: 3,
            largest_first: false,
        });
        assert!(sql(&q, Dialect::Postgres).ends_with("ORDER BY units ASC NULLS LAST, product\nLIMIT 3"));
    }

    #[test]
    fn negated_filters_use_not_in_and_values_are_escaped() {
        let mut q = query(&["orders"], &["channel"]);
        q.filters.push(Filter {
            dimension: "channel".into(),
            values: vec!["partner".into(), "o'neil\\x".into()],
            negated: true,
        });
        assert!(sql(&q, Dialect::Sqlite).contains("o.channel NOT IN ('partner', 'o''neil\\x')"));
        assert!(sql(&q, Dialect::MySql).contains("o.channel NOT IN ('partner', 'o''neil\\\\x')"));
        assert!(sql(&q, Dialect::BigQuery).contains("o.channel NOT IN ('partner', 'o\\'neil\\\\x')"));
    }

    #[test]
    fn output_aliases_are_snake_case_and_formats_follow_the_model() {
        let mut q = query(&["average order value", "orders"], &["segment"]);
        q.grain = Some(Grain::Quarter);
        let text = sql(&q, Dialect::Sqlite);
        assert!(
            text.contains("AVG(CASE WHEN o.status = 'completed' THEN o.total END) AS average_order_value"),
            "{text}"
        );
        let formats = output_formats(&q, &demo());
        assert_eq!(
            formats,
            vec![
                ("quarter".to_string(), ColumnFormat::Date),
                ("segment".to_string(), ColumnFormat::Text),
                ("average_order_value".to_string(), ColumnFormat::Money),
                ("orders".to_string(), ColumnFormat::Integer),
            ]
        );
    }

    #[test]
    fn compiled_sql_parses_in_every_dialect() {
        let mut q = query(&["revenue", "refunds"], &["category", "region"]);
        q.time_range = Some(october());
        q.filters.push(Filter {
            dimension: "channel".into(),
            values: vec!["web".into()],
            negated: true,
        });
        for grain in [
            None,
            Some(Grain::Day),
            Some(Grain::Week),
            Some(Grain::Month),
            Some(Grain::Quarter),
            Some(Grain::Year),
        ] {
            q.grain = grain;
            q.top = grain.map(|_| TopN {
                n: 5,
                largest_first: true,
            });
            for dialect in [
                Dialect::Sqlite,
                Dialect::Postgres,
                Dialect::MySql,
                Dialect::Snowflake,
                Dialect::BigQuery,
            ] {
                let text = sql(&q, dialect);
                assert!(parses(&text, dialect), "{dialect:?} cannot parse:\n{text}");
            }
        }
    }

    fn september() -> TimeRange {
        TimeRange {
            start: NaiveDate::from_ymd_opt(2026, 9, 1).unwrap_or_default(),
            end: NaiveDate::from_ymd_opt(2026, 10, 1).unwrap_or_default(),
            label: "the month before (Sep 2026)".into(),
        }
    }

    #[test]
    fn a_comparison_measures_each_period_in_one_pass_with_the_change() {
        let mut q = query(&["revenue", "refunds"], &["region"]);
        q.time_range = Some(october());
        q.compare_to = Some(september());
        let text = sql(&q, Dialect::Postgres);
        for expected in [
            "AS revenue_last_month,",
            "AS revenue_the_month_before,",
            "AS revenue_change,",
            "* 100.0 / NULLIF(",
            "AS revenue_change_pct",
            "AS refunds_last_month",
            // Both periods are read, nothing else.
            "WHERE ((o.order_date >= '2026-10-01' AND o.order_date < '2026-11-01') OR (o.order_date >= '2026-09-01' AND o.order_date < '2026-10-01'))",
            "ORDER BY revenue_last_month DESC NULLS LAST, region",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        // Revenue counts completed orders, refunds refunded ones, each in its own period.
        assert!(
            text.contains("SUM(CASE WHEN (o.status = 'completed') AND (o.order_date >= '2026-09-01' AND o.order_date < '2026-10-01') THEN o.total END)"),
            "{text}"
        );
        assert_eq!(
            summarize(&q),
            "Revenue and refunds by region · last month (Oct 2026) vs the month before (Sep 2026)"
        );
        let formats: Vec<String> = output_formats(&q, &demo()).into_iter().map(|(name, _)| name).collect();
        assert_eq!(
            formats,
            [
                "region",
                "revenue_last_month",
                "revenue_the_month_before",
                "revenue_change",
                "revenue_change_pct",
                "refunds_last_month",
                "refunds_the_month_before",
                "refunds_change",
                "refunds_change_pct"
            ]
        );
    }

    #[test]
    fn a_share_is_each_rows_part_of_the_total() {
        let mut q = query(&["revenue"], &["channel"]);
        q.share = true;
        let text = sql(&q, Dialect::Sqlite);
        assert!(
            text.contains("SUM(o.total) * 100.0 / NULLIF(SUM(SUM(o.total)) OVER (), 0) AS revenue_share_pct"),
            "{text}"
        );
        assert_eq!(summarize(&q), "Share of revenue by channel");
    }

    #[test]
    fn an_explicit_sort_replaces_the_default_order_and_sorts_a_top_n_after_choosing_it() {
        let mut q = query(&["revenue"], &["country"]);
        q.sort = Some(Sort {
            by: SortKey::Label,
            descending: false,
        });
        let text = sql(&q, Dialect::Sqlite);
        assert!(text.ends_with("ORDER BY country ASC"), "{text}");
        q.top = Some(TopN {
            n: 3,
            largest_first: true,
        });
        let text = sql(&q, Dialect::Postgres);
        assert!(text.starts_with("SELECT *\nFROM (\nSELECT"), "{text}");
        assert!(
            text.contains("ORDER BY revenue DESC NULLS LAST, country\nLIMIT 3\n) AS ranked\nORDER BY country ASC"),
            "{text}"
        );
        assert_eq!(summarize(&q), "Revenue by country · top 3 · sorted by name");
    }

    #[test]
    fn comparisons_shares_and_sorts_parse_and_pass_the_guard_in_every_dialect() {
        let mut compared = query(&["revenue", "orders"], &["category"]);
        compared.time_range = Some(october());
        compared.compare_to = Some(september());
        let mut shared = query(&["orders"], &["segment"]);
        shared.share = true;
        shared.top = Some(TopN {
            n: 2,
            largest_first: true,
        });
        shared.sort = Some(Sort {
            by: SortKey::Label,
            descending: true,
        });
        for q in [&compared, &shared] {
            for dialect in [
                Dialect::Sqlite,
                Dialect::Postgres,
                Dialect::MySql,
                Dialect::Snowflake,
                Dialect::BigQuery,
            ] {
                let text = sql(q, dialect);
                assert!(parses(&text, dialect), "{dialect:?}:\n{text}");
                let checked = crate::sql::SqlGuard::new(dialect, None).check(&text, 1000);
                assert!(checked.is_ok(), "{dialect:?}: {checked:?}\n{text}");
            }
        }
    }

    #[test]
    fn compiled_sql_passes_the_sql_guard_in_every_dialect() {
        let mut q = query(&["revenue", "orders"], &["product", "country"]);
        q.time_range = Some(october());
        q.grain = Some(Grain::Week);
        q.top = Some(TopN {
            n: 5,
            largest_first: false,
        });
        q.filters.push(Filter {
            dimension: "region".into(),
            values: vec!["EMEA".into()],
            negated: false,
        });
        for dialect in [
            Dialect::Sqlite,
            Dialect::Postgres,
            Dialect::MySql,
            Dialect::Snowflake,
            Dialect::BigQuery,
        ] {
            let text = sql(&q, dialect);
            let checked = crate::sql::SqlGuard::new(dialect, None).check(&text, 1000);
            assert!(checked.is_ok(), "{dialect:?}: {checked:?}\n{text}");
        }
    }

    #[test]
    fn metrics_from_different_fact_tables_are_refused_clearly() {
        let error = compile(&query(&["revenue", "active users"], &[]), &demo(), Dialect::Sqlite);
        let message = error.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("revenue and active users are counted over different tables"),
            "{message}"
        );
        assert!(message.contains("active users: app_metrics"), "{message}");
    }

    #[test]
    fn an_unreachable_dimension_is_refused_clearly() {
        let error = compile(
            &query(&["average order value"], &["category"]),
            &demo(),
            Dialect::Sqlite,
        );
        let message = error.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("average order value cannot be broken down or filtered by category"),
            "{message}"
        );
        let error = compile(&query(&["active users"], &["region"]), &demo(), Dialect::Sqlite);
        assert!(matches!(error, Err(CompileError::Unreachable { .. })), "{error:?}");
    }

    #[test]
    fn revenue_and_units_share_the_item_table() {
        let text = sql(&query(&["revenue", "units"], &[]), Dialect::Sqlite);
        assert!(text.contains("FROM order_items AS oi"), "{text}");
        assert!(text.contains("SUM(CASE WHEN o.status = 'completed' THEN oi.quantity * oi.unit_price * (1 - oi.discount) END) AS revenue"), "{text}");
        assert!(text.contains("SUM(oi.quantity) AS units"), "{text}");
    }

    #[test]
    fn summaries_read_as_one_line() {
        let mut q = query(&["revenue"], &["region"]);
        q.time_range = Some(october());
        q.filters.push(Filter {
            dimension: "region".into(),
            values: vec!["EMEA".into()],
            negated: false,
        });
        assert_eq!(
            summarize(&q),
            "Revenue by region · last month (Oct 2026) · region: EMEA"
        );
        let mut q = query(&["orders", "units"], &[]);
        q.grain = Some(Grain::Week);
        q.filters.push(Filter {
            dimension: "channel".into(),
            values: vec!["partner".into()],
            negated: true,
        });
        q.top = Some(TopN {
            n: 5,
            largest_first: true,
        });
        assert_eq!(summarize(&q), "Orders and units by week · channel: not partner · top 5");
    }

    #[test]
    fn reserved_words_are_quoted() {
        assert_eq!(quote_ident("order", Dialect::Postgres), "\"order\"");
        assert_eq!(quote_ident("order", Dialect::MySql), "`order`");
        assert_eq!(quote_ident("Region", Dialect::Sqlite), "\"Region\"");
        assert_eq!(quote_ident("region", Dialect::Sqlite), "region");
    }
}
