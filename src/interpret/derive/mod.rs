//! The part of the semantic model a data engineer would write by hand for tables nobody
//! described, derived from the warehouse schema: names people say ([`names`]), what is a metric
//! and what a dimension ([`classify`]), joins from foreign keys ([`joins`]) and time columns.
//!
//! Pure: the caller reads the schema (and checks inferred joins against the data) and turns the
//! result into model entries. The submodules depend on each other in one direction only:
//! `joins` and `classify` read `names`.
use std::collections::{HashMap, HashSet};

use crate::domain::{Cardinality, ColumnFormat, ColumnKind, TableSchema};

pub mod classify;
pub mod joins;
pub mod names;

#[cfg(test)]
pub(crate) mod fixtures;

use classify::{classify_table, Attribute, ClassifiedColumn, ColumnRole, Measure};
pub use joins::{accept_joins, Containment, JoinCandidate, JoinEvidence};
pub use names::Vocabulary;
use names::{comment_phrase, date_column_event, event_stem, stem, ColumnWords, TableNames, TableNouns};

/// Words of a dimension too generic to stand alone: "status" becomes "order status" (with
/// "status" a synonym while no other table has one).
const GENERIC_WORDS: &[&str] = &[
    "address",
    "category",
    "class",
    "code",
    "comment",
    "comments",
    "description",
    "email",
    "flag",
    "kind",
    "level",
    "memo",
    "mode",
    "name",
    "note",
    "notes",
    "phone",
    "priority",
    "state",
    "status",
    "tier",
    "title",
    "type",
];

/// Words of a date column kept for bookkeeping rather than for when things happen.
/// Events that bring a row into being, the date a table's rows are counted at by default: an
/// invoice is issued (then paid), a ticket opened (then closed).
const STARTING_EVENTS: &[&str] = &[
    "created",
    "issued",
    "opened",
    "placed",
    "registered",
    "signup",
    "started",
    "submitted",
    "booked",
    "posted",
    "recorded",
    "logged",
    "occurred",
    "raised",
    "filed",
    "joined",
    "begun",
];

const AUDIT_WORDS: &[&str] = &[
    "updated",
    "modified",
    "deleted",
    "loaded",
    "inserted",
    "ingested",
    "synced",
    "refreshed",
    "etl",
];

/// Tables, joins, metrics and dimensions derived from a schema.
#[derive(Debug, Clone, PartialEq)]
pub struct DerivedModel {
    pub tables: Vec<DerivedTable>,
    /// Declared joins and name-inferred candidates, from every table of the schema (see
    /// [`accept_joins`] to keep those the data does not contradict).
    pub joins: Vec<JoinCandidate>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DerivedTable {
    pub name: String,
    pub nouns: TableNouns,
    pub columns: Vec<String>,
    /// The date column time ranges apply to when a question does not name one.
    pub time_column: Option<String>,
    /// Every date and timestamp column, in the table's order.
    pub time_columns: Vec<String>,
    /// The row count first, then a sum and an average per measure.
    pub metrics: Vec<DerivedMetric>,
    pub dimensions: Vec<DerivedDimension>,
}

/// A name and the names to fall back on when it is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedNames {
    /// What people say: "account balance".
    pub name: String,
    /// With the table's noun, when the name is taken: "customer account balance".
    pub qualified: String,
    pub synonyms: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DerivedMetric {
    pub names: DerivedNames,
    pub description: String,
    /// `COUNT(*)`, `SUM(table.column)` or `AVG(table.column)`.
    pub expression: String,
    pub format: ColumnFormat,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DerivedDimension {
    pub names: DerivedNames,
    pub description: Option<String>,
    pub column: String,
    pub cardinality: Cardinality,
}

/// Derives the model of the tables of `schema` that `wanted` accepts; the others still count
/// as join targets. Tables and columns must be plain SQL identifiers (the caller filters).
pub fn derive_model(schema: &[TableSchema], wanted: impl Fn(&str) -> bool, vocabulary: &Vocabulary) -> DerivedModel {
    let names: Vec<TableNames> = schema
        .iter()
        .map(|table| {
            let columns: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
            vocabulary.table_names(&table.name, &columns)
        })
        .collect();
    // A schema read without sampling says nothing by a column's missing values.
    let sampled = schema
        .iter()
        .any(|table| table.columns.iter().any(|c| !c.values.is_empty()));
    let mut tables: Vec<DerivedTable> = schema
        .iter()
        .zip(&names)
        .filter(|(table, _)| wanted(&table.name))
        .map(|(table, table_names)| derive_table(table, table_names, sampled))
        .collect();
    disambiguate(&mut tables);
    DerivedModel {
        tables,
        joins: joins::join_candidates(schema, &names),
    }
}

fn derive_table(table: &TableSchema, names: &TableNames, sampled: bool) -> DerivedTable {
    let classified = classify_table(table, names, sampled);
    let nouns = names.nouns.clone();
    let time_columns: Vec<&ClassifiedColumn> = classified.iter().filter(|c| c.role == ColumnRole::Time).collect();
    let time_column = choose_time_column(table, &nouns, &time_columns);
    let mut metrics = vec![count_metric(table, &nouns)];
    let mut dimensions = Vec::new();
    for column in &classified {
        match column.role {
            ColumnRole::Measure(measure) => metrics.extend(measure_metrics(table, &nouns, column, measure)),
            ColumnRole::Attribute(attribute) => dimensions.push(dimension(&nouns, column, attribute)),
            ColumnRole::Key | ColumnRole::Ordinal | ColumnRole::Time | ColumnRole::Ignored => {}
        }
    }
    DerivedTable {
        name: table.name.clone(),
        nouns,
        columns: table.columns.iter().map(|c| c.name.clone()).collect(),
        time_column,
        time_columns: time_columns.iter().map(|c| c.column.clone()).collect(),
        metrics,
        dimensions,
    }
}

/// "invoices", "number of invoices", "invoice count": every table is countable.
fn count_metric(table: &TableSchema, nouns: &TableNouns) -> DerivedMetric {
    let mut synonyms = vec![
        format!("number of {}", nouns.plural),
        format!("{} count", nouns.singular),
    ];
    synonyms.extend(table.comment.as_deref().and_then(comment_phrase));
    DerivedMetric {
        names: DerivedNames {
            name: nouns.plural.clone(),
            qualified: format!("{} count", nouns.singular),
            synonyms: unique(synonyms, &nouns.plural),
        },
        description: match &table.comment {
            Some(comment) => format!("Number of {}: {comment}", nouns.plural),
            None => format!("Number of {} (rows of {})", nouns.plural, table.name),
        },
        expression: "COUNT(*)".to_string(),
        format: ColumnFormat::Integer,
    }
}

/// The sum ("account balance", also "total account balance") when it means something, and the
/// average ("average account balance").
fn measure_metrics(
    table: &TableSchema,
    nouns: &TableNouns,
    column: &ClassifiedColumn,
    measure: Measure,
) -> Vec<DerivedMetric> {
    let phrase = column.words.phrase();
    let qualified = qualify(&nouns.singular, &phrase);
    // "total amount" averages as "average amount".
    let base = phrase.strip_prefix("total ").unwrap_or(&phrase).to_string();
    let comment = column.comment.as_deref().and_then(comment_phrase);
    let reference = format!("{}.{}", table.name, column.column);
    let mut metrics = Vec::new();
    if measure.additive {
        let mut synonyms = if base == phrase {
            vec![format!("total {phrase}")]
        } else {
            vec![base.clone()]
        };
        synonyms.push(format!("sum of {phrase}"));
        synonyms.extend(comment.clone());
        metrics.push(DerivedMetric {
            names: DerivedNames {
                name: phrase.clone(),
                qualified: qualified.clone(),
                synonyms: unique(synonyms, &phrase),
            },
            description: column.comment.clone().unwrap_or_else(|| format!("Sum of {reference}")),
            expression: format!("SUM({reference})"),
            format: if measure.money {
                ColumnFormat::Money
            } else if measure.integer {
                ColumnFormat::Integer
            } else {
                ColumnFormat::Number
            },
        });
    }
    let average = format!("average {base}");
    let mut synonyms = vec![format!("avg {base}"), format!("mean {base}")];
    if base != phrase {
        synonyms.push(format!("average {phrase}"));
    }
    // An order's total averages to what people call the average order value.
    if measure.money && column.words.has("total") {
        synonyms.push(format!("average {} value", nouns.singular));
    }
    synonyms.extend(comment.map(|c| format!("average {c}")));
    metrics.push(DerivedMetric {
        names: DerivedNames {
            name: average.clone(),
            qualified: format!("average {}", qualify(&nouns.singular, &base)),
            synonyms: unique(synonyms, &average),
        },
        description: match &column.comment {
            Some(comment) => format!("Average of {reference}: {comment}"),
            None => format!("Average of {reference}"),
        },
        expression: format!("AVG({reference})"),
        format: if measure.money {
            ColumnFormat::Money
        } else {
            ColumnFormat::Number
        },
    });
    metrics
}

/// A breakdown: the row's name is called after the table ("customer"); generic words get the
/// table's noun ("order status"); others keep their words ("market segment").
fn dimension(nouns: &TableNouns, column: &ClassifiedColumn, attribute: Attribute) -> DerivedDimension {
    let phrase = column.words.phrase();
    let qualified = qualify(&nouns.singular, &phrase);
    let comment = column.comment.as_deref().and_then(comment_phrase);
    let (name, mut synonyms) = if attribute.names_the_row {
        (nouns.singular.clone(), vec![format!("{} name", nouns.singular)])
    } else if is_generic(&column.words) {
        (qualified.clone(), vec![phrase.clone()])
    } else {
        // "order status" in `orders` is also just "status".
        let bare = phrase.strip_prefix(&format!("{} ", nouns.singular));
        (phrase.clone(), bare.map(str::to_string).into_iter().collect())
    };
    synonyms.extend(comment);
    DerivedDimension {
        names: DerivedNames {
            synonyms: unique(synonyms, &name),
            qualified: if attribute.names_the_row {
                format!("{} name", nouns.singular)
            } else {
                qualified
            },
            name,
        },
        description: column.comment.clone(),
        column: column.column.clone(),
        cardinality: attribute.cardinality,
    }
}

fn is_generic(words: &ColumnWords) -> bool {
    words.words.len() == 1 && GENERIC_WORDS.contains(&words.last())
}

/// `phrase` with the table's noun in front, unless it already starts with it.
fn qualify(noun: &str, phrase: &str) -> String {
    if phrase == noun || phrase.starts_with(&format!("{noun} ")) {
        phrase.to_string()
    } else {
        format!("{noun} {phrase}")
    }
}

/// The time column questions mean by default: the table's only date column; else the one
/// named like the table's rows (`o_orderdate` in `orders`) or the event that starts a row
/// (`created_at`, `issued_on`, `signup_dt`);
/// else, leaving out those kept for bookkeeping (`updated_at`), the one event they all date
/// (`opened_on` and `opened_at`), dates before timestamps. Dates of different events
/// (shipped, committed, received) have no default: a question is asked which one it means.
fn choose_time_column(table: &TableSchema, nouns: &TableNouns, candidates: &[&ClassifiedColumn]) -> Option<String> {
    if let [only] = candidates {
        return Some(only.column.clone());
    }
    let noun_stems: Vec<String> = nouns.singular.split_whitespace().map(stem).collect();
    let names_the_rows = |c: &ClassifiedColumn| c.words.words.iter().any(|w| noun_stems.contains(&stem(w)));
    let starts_the_row = |c: &ClassifiedColumn| {
        c.words
            .words
            .iter()
            .any(|w| STARTING_EVENTS.iter().any(|event| event_stem(event) == event_stem(w)))
    };
    let bookkeeping = |c: &ClassifiedColumn| c.words.words.iter().any(|w| AUDIT_WORDS.contains(&w.as_str()));
    let is_date = |c: &ClassifiedColumn| table.column(&c.column).is_some_and(|c| c.kind == ColumnKind::Date);
    let kept: Vec<(usize, &ClassifiedColumn)> = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| !bookkeeping(c))
        .map(|(position, c)| (position, *c))
        .collect();
    let pool = if kept.is_empty() {
        candidates.iter().copied().enumerate().collect()
    } else {
        kept
    };
    let best = |pool: &[(usize, &ClassifiedColumn)]| {
        pool.iter()
            .min_by_key(|(position, c)| (!names_the_rows(c), !is_date(c), *position))
            .map(|(_, c)| c.column.clone())
    };
    let of_the_rows: Vec<(usize, &ClassifiedColumn)> = pool
        .iter()
        .copied()
        .filter(|(_, c)| names_the_rows(c) || starts_the_row(c))
        .collect();
    if !of_the_rows.is_empty() {
        return best(&of_the_rows);
    }
    let events: HashSet<Option<String>> = pool.iter().map(|(_, c)| date_column_event(&c.column)).collect();
    if events.len() == 1 {
        return best(&pool);
    }
    None
}

/// Synonyms without duplicates and without the name itself.
fn unique(synonyms: Vec<String>, name: &str) -> Vec<String> {
    let mut kept: Vec<String> = Vec::new();
    for synonym in synonyms {
        if synonym != name && !synonym.is_empty() && !kept.contains(&synonym) {
            kept.push(synonym);
        }
    }
    kept
}

/// A name two derived entries want goes to neither: both take their qualified name. A synonym
/// two entries want, or one that is another entry's name, is dropped.
fn disambiguate(tables: &mut [DerivedTable]) {
    let all_names = |tables: &[DerivedTable]| -> Vec<DerivedNames> {
        tables
            .iter()
            .flat_map(|t| {
                t.metrics
                    .iter()
                    .map(|m| m.names.clone())
                    .chain(t.dimensions.iter().map(|d| d.names.clone()))
            })
            .collect()
    };
    let mut name_counts: HashMap<String, usize> = HashMap::new();
    for names in all_names(tables) {
        *name_counts.entry(names.name).or_default() += 1;
    }
    for names in names_mut(tables) {
        if name_counts.get(&names.name).is_some_and(|count| *count > 1) {
            names.name = names.qualified.clone();
        }
    }
    let mut word_counts: HashMap<String, usize> = HashMap::new();
    for names in all_names(tables) {
        for word in std::iter::once(names.name).chain(names.synonyms) {
            *word_counts.entry(word).or_default() += 1;
        }
    }
    for names in names_mut(tables) {
        names
            .synonyms
            .retain(|synonym| word_counts.get(synonym).is_some_and(|count| *count == 1));
    }
}

fn names_mut(tables: &mut [DerivedTable]) -> impl Iterator<Item = &mut DerivedNames> {
    tables.iter_mut().flat_map(|t| {
        t.metrics
            .iter_mut()
            .map(|m| &mut m.names)
            .chain(t.dimensions.iter_mut().map(|d| &mut d.names))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn derived(schema: &[TableSchema]) -> DerivedModel {
        derive_model(schema, |_| true, &Vocabulary::standard())
    }

    fn table<'a>(model: &'a DerivedModel, name: &str) -> &'a DerivedTable {
        model
            .tables
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no table {name}"))
    }

    fn metric<'a>(model: &'a DerivedModel, name: &str) -> &'a DerivedMetric {
        model
            .tables
            .iter()
            .flat_map(|t| &t.metrics)
            .find(|m| m.names.name == name)
            .unwrap_or_else(|| panic!("no metric {name} in {:#?}", metric_names(model)))
    }

    fn metric_names(model: &DerivedModel) -> Vec<String> {
        model
            .tables
            .iter()
            .flat_map(|t| &t.metrics)
            .map(|m| m.names.name.clone())
            .collect()
    }

    fn dimension<'a>(model: &'a DerivedModel, name: &str) -> &'a DerivedDimension {
        model
            .tables
            .iter()
            .flat_map(|t| &t.dimensions)
            .find(|d| d.names.name == name)
            .unwrap_or_else(|| panic!("no dimension {name}"))
    }

    fn dimension_names(model: &DerivedModel, table_name: &str) -> Vec<String> {
        table(model, table_name)
            .dimensions
            .iter()
            .map(|d| d.names.name.clone())
            .collect()
    }

    #[test]
    fn a_tpch_schema_derives_the_names_people_say() {
        let model = derived(&fixtures::tpch());

        assert_eq!(
            metric_names(&model),
            [
                "regions",
                "nations",
                "customers",
                "account balance",
                "average account balance",
                "orders",
                "total price",
                "average price",
                "line items",
                "quantity",
                "average quantity",
                "extended price",
                "average extended price",
                "discount",
                "average discount",
                "tax",
                "average tax",
            ],
            "keys (custkey, orderkey, linenumber, shippriority) are never summed"
        );
        let customers = metric(&model, "customers");
        assert_eq!(customers.expression, "COUNT(*)");
        assert_eq!(customers.names.synonyms, ["number of customers", "customer count"]);
        let balance = metric(&model, "account balance");
        assert_eq!(balance.expression, "SUM(customer.c_acctbal)");
        assert_eq!(balance.format, ColumnFormat::Money);
        assert_eq!(
            balance.names.synonyms,
            ["total account balance", "sum of account balance"]
        );
        let total_price = metric(&model, "total price");
        assert_eq!(total_price.names.synonyms, ["price", "sum of total price"]);
        assert!(
            metric(&model, "average price")
                .names
                .synonyms
                .contains(&"average order value".to_string()),
            "{:?}",
            metric(&model, "average price").names.synonyms
        );
        assert_eq!(metric(&model, "quantity").format, ColumnFormat::Number);
        assert_eq!(
            metric(&model, "average quantity").expression,
            "AVG(lineitem.l_quantity)"
        );

        assert_eq!(dimension_names(&model, "region"), ["region", "region comment"]);
        assert_eq!(dimension_names(&model, "nation"), ["nation", "nation comment"]);
        assert_eq!(
            dimension_names(&model, "customer"),
            [
                "customer",
                "customer address",
                "customer phone",
                "market segment",
                "customer comment"
            ]
        );
        assert_eq!(
            dimension_names(&model, "orders"),
            [
                "order status",
                "order priority",
                "clerk",
                "ship priority",
                "order comment"
            ]
        );
        assert_eq!(
            dimension_names(&model, "lineitem"),
            [
                "return flag",
                "line status",
                "ship instructions",
                "ship mode",
                "line item comment"
            ]
        );
        assert_eq!(dimension(&model, "region").cardinality, Cardinality::Low);
        assert_eq!(dimension(&model, "customer").cardinality, Cardinality::High);
        assert_eq!(dimension(&model, "customer").names.synonyms, ["customer name"]);
        assert_eq!(dimension(&model, "market segment").cardinality, Cardinality::Low);
        assert_eq!(dimension(&model, "clerk").cardinality, Cardinality::High);
        assert_eq!(dimension(&model, "order status").names.synonyms, ["status"]);
        assert!(
            dimension(&model, "customer comment").names.synonyms.is_empty(),
            "'comment' is in every table, so it names none of them"
        );

        let orders = table(&model, "orders");
        assert_eq!(orders.time_column.as_deref(), Some("o_orderdate"));
        let lineitem = table(&model, "lineitem");
        assert_eq!(lineitem.time_columns, ["l_shipdate", "l_commitdate", "l_receiptdate"]);
        // Shipped, committed and received: no date is the obvious one, so questions are asked.
        assert_eq!(lineitem.time_column, None);
        assert_eq!(table(&model, "customer").time_column, None);
        assert_eq!(model.joins.len(), 4);
    }

    #[test]
    fn a_snake_case_schema_derives_counts_amounts_and_inferred_joins() {
        let model = derived(&fixtures::snake());
        assert_eq!(
            metric_names(&model),
            [
                "invoices",
                "total amount",
                "average amount",
                "accounts",
                "credit limit",
                "average credit limit"
            ]
        );
        assert_eq!(
            metric(&model, "invoices").names.synonyms,
            ["number of invoices", "invoice count"]
        );
        assert_eq!(metric(&model, "credit limit").format, ColumnFormat::Money);
        assert_eq!(dimension_names(&model, "invoices"), ["invoice status"]);
        assert_eq!(dimension_names(&model, "accounts"), ["account", "segment", "country"]);
        assert_eq!(dimension(&model, "account").cardinality, Cardinality::High);
        let invoices = table(&model, "invoices");
        assert_eq!(invoices.time_columns, ["issued_on", "paid_on"]);
        assert_eq!(invoices.time_column.as_deref(), Some("issued_on"));
        assert_eq!(table(&model, "accounts").time_column.as_deref(), Some("signup_dt"));
        let joins: Vec<String> = model
            .joins
            .iter()
            .map(|j| format!("{}.{} -> {}.{}", j.from_table, j.from_column, j.to_table, j.to_column))
            .collect();
        assert_eq!(joins, ["invoices.account_id -> accounts.id"]);
    }

    #[test]
    fn a_camel_case_schema_uses_its_comments_as_descriptions_and_synonyms() {
        let model = derived(&fixtures::camel());
        assert_eq!(
            metric_names(&model),
            [
                "journal entries",
                "debit amount",
                "average debit amount",
                "credit amount",
                "average credit amount",
                "accounts"
            ]
        );
        let entries = metric(&model, "journal entries");
        assert_eq!(
            entries.names.synonyms,
            ["number of journal entries", "journal entry count", "ledger postings"]
        );
        assert_eq!(entries.description, "Number of journal entries: Ledger postings");
        let debit = metric(&model, "debit amount");
        assert_eq!(debit.expression, "SUM(JournalEntry.DebitAmt)");
        assert_eq!(debit.description, "Amount debited, in EUR");
        assert!(debit.names.synonyms.contains(&"amount debited".to_string()));
        assert_eq!(
            metric(&model, "accounts").names.synonyms,
            ["number of accounts", "account count", "chart of accounts"]
        );
        assert_eq!(dimension_names(&model, "JournalEntry"), ["journal entry memo"]);
        assert_eq!(dimension_names(&model, "Account"), ["account", "account type"]);
        assert_eq!(table(&model, "JournalEntry").time_column.as_deref(), Some("PostedDate"));
    }

    #[test]
    fn a_name_two_tables_want_is_qualified_in_both() {
        let mut schema = fixtures::tpch();
        let mut supplier = fixtures::table(
            "supplier",
            vec![
                fixtures::column("s_suppkey", ColumnKind::Integer),
                fixtures::column("s_name", ColumnKind::Text),
                fixtures::column("s_acctbal", ColumnKind::Decimal),
            ],
        );
        supplier.primary_key = vec!["s_suppkey".into()];
        schema.push(supplier);
        let model = derived(&schema);
        assert_eq!(
            metric(&model, "customer account balance").expression,
            "SUM(customer.c_acctbal)"
        );
        assert_eq!(
            metric(&model, "supplier account balance").expression,
            "SUM(supplier.s_acctbal)"
        );
        assert_eq!(
            metric(&model, "average customer account balance").expression,
            "AVG(customer.c_acctbal)"
        );
        assert!(!metric_names(&model).contains(&"account balance".to_string()));
    }

    #[test]
    fn tables_not_wanted_get_no_entries_but_stay_join_targets() {
        let model = derive_model(&fixtures::snake(), |t| t == "invoices", &Vocabulary::standard());
        assert_eq!(
            model.tables.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            ["invoices"]
        );
        assert_eq!(model.joins.len(), 1);
    }
}
