//! What each column is for, as a data engineer would decide it: keys, codes and ordinals are
//! never summed; measures (amounts, prices, quantities, balances) are summed and averaged;
//! few-valued text and booleans are breakdowns; many-valued text (names, comments, phones) is a
//! label only; dates are time columns.
use super::names::{ColumnWords, TableNames};
use crate::domain::{Cardinality, ColumnKind, ColumnSchema, TableSchema};

/// Words of a numeric column that make it a measure.
const MEASURE_WORDS: &[&str] = &[
    "amount",
    "balance",
    "bonus",
    "budget",
    "charge",
    "commission",
    "cost",
    "count",
    "credit",
    "debit",
    "discount",
    "distance",
    "duration",
    "expense",
    "fee",
    "freight",
    "gross",
    "hours",
    "income",
    "limit",
    "margin",
    "minutes",
    "net",
    "payment",
    "points",
    "price",
    "profit",
    "quantity",
    "revenue",
    "salary",
    "sales",
    "seconds",
    "spend",
    "spent",
    "sum",
    "tax",
    "total",
    "units",
    "value",
    "volume",
    "wage",
    "weight",
];

/// Words of a measure counted in money.
const MONEY_WORDS: &[&str] = &[
    "amount",
    "balance",
    "bonus",
    "budget",
    "charge",
    "commission",
    "cost",
    "credit",
    "debit",
    "expense",
    "fee",
    "freight",
    "income",
    "limit",
    "payment",
    "price",
    "profit",
    "revenue",
    "salary",
    "sales",
    "spend",
    "value",
    "wage",
];

/// Words of a measure whose sum means nothing: only its average is offered.
const RATE_WORDS: &[&str] = &["percent", "percentage", "rate", "ratio", "rating", "score"];

/// Last words of a column that identifies a row or points at one.
const KEY_WORDS: &[&str] = &["id", "key", "uuid", "guid", "identifier"];

/// Last words of a column that orders rows within something.
const ORDINAL_WORDS: &[&str] = &["sequence", "rank", "position", "ordinal", "index", "version"];

/// Words of a whole-number column that is a category rather than a quantity.
const CATEGORY_WORDS: &[&str] = &[
    "priority", "level", "tier", "grade", "status", "type", "class", "category", "flag",
];

/// Words of text that is never a breakdown, however few its values.
const LABEL_ONLY_WORDS: &[&str] = &[
    "address",
    "comment",
    "comments",
    "description",
    "email",
    "fax",
    "memo",
    "note",
    "notes",
    "phone",
    "street",
    "url",
];

/// What a column is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnRole {
    /// Identifies a row or points at one: joined on, never summed or broken down by.
    Key,
    /// Orders rows within something (a line number): neither summed nor a breakdown.
    Ordinal,
    /// A date or timestamp: when rows happen.
    Time,
    /// Summed and averaged.
    Measure(Measure),
    /// Broken down and filtered by.
    Attribute(Attribute),
    /// Nothing a question would name (an unknown type, a number that is no measure).
    Ignored,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measure {
    /// Counted in money (shown with two decimals).
    pub money: bool,
    /// A whole number: its sum is an integer.
    pub integer: bool,
    /// Its sum means something; otherwise only its average is offered (rates, unit prices).
    pub additive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attribute {
    pub cardinality: Cardinality,
    /// The text that names a row (a customer's name): the dimension is called after the table.
    pub names_the_row: bool,
}

/// A column with its words and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassifiedColumn {
    pub column: String,
    pub words: ColumnWords,
    pub role: ColumnRole,
    pub comment: Option<String>,
}

/// Classifies every column of `table`. `sampled` says whether the schema carries sampled
/// values at all: when it does, text without values has many of them; when it does not (a bare
/// schema), only names tell.
pub fn classify_table(table: &TableSchema, names: &TableNames, sampled: bool) -> Vec<ClassifiedColumn> {
    let mut label_taken = false;
    table
        .columns
        .iter()
        .filter_map(|column| {
            let words = names.words_of(&column.name)?.clone();
            let mut role = classify_column(table, column, &words, sampled);
            if let ColumnRole::Attribute(attribute) = &mut role {
                if !label_taken && column.kind == ColumnKind::Text && names_the_row(&words, names) {
                    attribute.names_the_row = true;
                    label_taken = true;
                }
            }
            Some(ClassifiedColumn {
                column: column.name.clone(),
                words,
                role,
                comment: column.comment.clone(),
            })
        })
        .collect()
}

fn classify_column(table: &TableSchema, column: &ColumnSchema, words: &ColumnWords, sampled: bool) -> ColumnRole {
    let declared_key = table.primary_key.contains(&column.name)
        || table.foreign_keys.iter().any(|fk| fk.columns.contains(&column.name));
    if declared_key {
        return ColumnRole::Key;
    }
    match column.kind {
        ColumnKind::Date | ColumnKind::Timestamp => return ColumnRole::Time,
        ColumnKind::Boolean => {
            return ColumnRole::Attribute(Attribute {
                cardinality: Cardinality::Low,
                names_the_row: false,
            })
        }
        ColumnKind::Other => return ColumnRole::Ignored,
        ColumnKind::Integer | ColumnKind::Decimal | ColumnKind::Text => {}
    }
    let last = words.last();
    if KEY_WORDS.contains(&last) {
        return ColumnRole::Key;
    }
    if ORDINAL_WORDS.contains(&last) || (last == "number" && words.has("line")) {
        return ColumnRole::Ordinal;
    }
    let has_any = |list: &[&str]| words.words.iter().any(|w| list.contains(&w.as_str()));
    let measure_worded = has_any(MEASURE_WORDS) || has_any(RATE_WORDS);
    // `invoice_no`, `account_number`: an identifier, unless it counts something (`num_items`
    // reads "number items", whose last word is not "number").
    if last == "number" && !measure_worded {
        return ColumnRole::Key;
    }
    let is_code = last == "code";
    match column.kind {
        ColumnKind::Integer | ColumnKind::Decimal if !is_code => {
            let integer = column.kind == ColumnKind::Integer;
            let rate = has_any(RATE_WORDS) || (words.has("unit") && has_any(MONEY_WORDS));
            let counts_things = integer && names_a_plural(words);
            if measure_worded || counts_things || (!integer && !has_any(CATEGORY_WORDS)) {
                ColumnRole::Measure(Measure {
                    money: !has_any(RATE_WORDS) && has_any(MONEY_WORDS),
                    integer,
                    additive: !rate,
                })
            } else if has_any(CATEGORY_WORDS) {
                ColumnRole::Attribute(Attribute {
                    cardinality: Cardinality::Low,
                    names_the_row: false,
                })
            } else {
                ColumnRole::Ignored
            }
        }
        // Numeric codes are categories too: never summed.
        ColumnKind::Integer | ColumnKind::Decimal => ColumnRole::Attribute(Attribute {
            cardinality: Cardinality::Low,
            names_the_row: false,
        }),
        _ => ColumnRole::Attribute(Attribute {
            cardinality: text_cardinality(column, words, sampled),
            names_the_row: false,
        }),
    }
}

/// Few values when sampled ones are there (and the column is no free text); many when the
/// schema was sampled and this column was not; by its name on a bare schema.
fn text_cardinality(column: &ColumnSchema, words: &ColumnWords, sampled: bool) -> Cardinality {
    let label_only = words.words.iter().any(|w| LABEL_ONLY_WORDS.contains(&w.as_str()));
    if label_only {
        Cardinality::High
    } else if !column.values.is_empty() {
        Cardinality::Low
    } else if sampled || matches!(words.last(), "name" | "title") {
        Cardinality::High
    } else {
        Cardinality::Low
    }
}

/// `name`, `title`, or `<table noun> name` (`AccountName` in `Account`).
fn names_the_row(words: &ColumnWords, names: &TableNames) -> bool {
    let phrase = words.phrase();
    matches!(phrase.as_str(), "name" | "title")
        || phrase == format!("{} name", names.nouns.singular)
        || phrase == format!("{} title", names.nouns.singular)
}

/// `replies`, `active_users`, `crashes`: a whole number named by a plural counts things.
fn names_a_plural(words: &ColumnWords) -> bool {
    let last = words.last();
    last.len() > 3
        && last.ends_with('s')
        && !last.ends_with("ss")
        && !last.ends_with("us")
        && !last.ends_with("is")
        && super::names::singular(last) != last
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::super::names::Vocabulary;
    use super::*;

    fn roles(schema: &[TableSchema], table: &str, sampled: bool) -> Vec<(String, ColumnRole)> {
        let vocabulary = Vocabulary::standard();
        let table = schema
            .iter()
            .find(|t| t.name == table)
            .unwrap_or_else(|| panic!("no table {table}"));
        let columns: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
        let names = vocabulary.table_names(&table.name, &columns);
        classify_table(table, &names, sampled)
            .into_iter()
            .map(|c| (c.column, c.role))
            .collect()
    }

    fn role_of(roles: &[(String, ColumnRole)], column: &str) -> ColumnRole {
        roles
            .iter()
            .find(|(name, _)| name == column)
            .map(|(_, role)| *role)
            .unwrap_or_else(|| panic!("no column {column}"))
    }

    const fn measure(money: bool, integer: bool, additive: bool) -> ColumnRole {
        ColumnRole::Measure(Measure {
            money,
            integer,
            additive,
        })
    }

    const fn attribute(cardinality: Cardinality, names_the_row: bool) -> ColumnRole {
        ColumnRole::Attribute(Attribute {
            cardinality,
            names_the_row,
        })
    }

    #[test]
    fn tpch_keys_are_never_measures_and_balances_prices_and_quantities_are() {
        let schema = fixtures::tpch();
        let customer = roles(&schema, "customer", true);
        let orders = roles(&schema, "orders", true);
        let lineitem = roles(&schema, "lineitem", true);
        use Cardinality::{High, Low};
        for (roles, column, expected) in [
            (&customer, "c_custkey", ColumnRole::Key),
            (&customer, "c_nationkey", ColumnRole::Key),
            (&customer, "c_name", attribute(High, true)),
            (&customer, "c_address", attribute(High, false)),
            (&customer, "c_phone", attribute(High, false)),
            (&customer, "c_acctbal", measure(true, false, true)),
            (&customer, "c_mktsegment", attribute(Low, false)),
            (&customer, "c_comment", attribute(High, false)),
            (&orders, "o_orderkey", ColumnRole::Key),
            (&orders, "o_custkey", ColumnRole::Key),
            (&orders, "o_orderstatus", attribute(Low, false)),
            (&orders, "o_totalprice", measure(true, false, true)),
            (&orders, "o_orderdate", ColumnRole::Time),
            (&orders, "o_orderpriority", attribute(Low, false)),
            (&orders, "o_clerk", attribute(High, false)),
            (&orders, "o_shippriority", attribute(Low, false)),
            (&lineitem, "l_partkey", ColumnRole::Key),
            (&lineitem, "l_suppkey", ColumnRole::Key),
            (&lineitem, "l_linenumber", ColumnRole::Key),
            (&lineitem, "l_quantity", measure(false, false, true)),
            (&lineitem, "l_extendedprice", measure(true, false, true)),
            (&lineitem, "l_discount", measure(false, false, true)),
            (&lineitem, "l_tax", measure(false, false, true)),
            (&lineitem, "l_returnflag", attribute(Low, false)),
            (&lineitem, "l_shipdate", ColumnRole::Time),
            (&lineitem, "l_receiptdate", ColumnRole::Time),
            (&lineitem, "l_shipmode", attribute(Low, false)),
        ] {
            assert_eq!(role_of(roles, column), expected, "{column}");
        }
        let region = roles(&schema, "region", true);
        assert_eq!(role_of(&region, "r_name"), attribute(Low, true), "five regions");
    }

    #[test]
    fn snake_case_ids_are_keys_without_declared_keys() {
        let schema = fixtures::snake();
        let invoices = roles(&schema, "invoices", true);
        let accounts = roles(&schema, "accounts", true);
        use Cardinality::{High, Low};
        for (roles, column, expected) in [
            (&invoices, "id", ColumnRole::Key),
            (&invoices, "account_id", ColumnRole::Key),
            (&invoices, "issued_on", ColumnRole::Time),
            (&invoices, "total_amount", measure(true, false, true)),
            (&invoices, "status", attribute(Low, false)),
            (&accounts, "name", attribute(High, true)),
            (&accounts, "segment", attribute(Low, false)),
            (&accounts, "credit_limit", measure(true, true, true)),
            (&accounts, "signup_dt", ColumnRole::Time),
        ] {
            assert_eq!(role_of(roles, column), expected, "{column}");
        }
    }

    #[test]
    fn camel_case_amounts_are_measures_and_memos_labels() {
        let schema = fixtures::camel();
        let entries = roles(&schema, "JournalEntry", true);
        let accounts = roles(&schema, "Account", true);
        use Cardinality::{High, Low};
        for (roles, column, expected) in [
            (&entries, "EntryId", ColumnRole::Key),
            (&entries, "AccountId", ColumnRole::Key),
            (&entries, "PostedDate", ColumnRole::Time),
            (&entries, "DebitAmt", measure(true, false, true)),
            (&entries, "CreditAmt", measure(true, false, true)),
            (&entries, "Memo", attribute(High, false)),
            (&accounts, "AccountName", attribute(High, true)),
            (&accounts, "AccountType", attribute(Low, false)),
        ] {
            assert_eq!(role_of(roles, column), expected, "{column}");
        }
    }

    #[test]
    fn codes_ordinals_and_identifiers_are_never_summed_and_counts_and_rates_are_measures() {
        use ColumnKind::{Decimal, Integer, Text};
        let table = fixtures::table(
            "tickets",
            vec![
                fixtures::column("ticket_no", Integer),
                fixtures::column("reason_cd", Integer),
                fixtures::column("country_code", Text),
                fixtures::column("line_seq", Integer),
                fixtures::column("rank", Integer),
                fixtures::column("replies", Integer),
                fixtures::column("num_messages", Integer),
                fixtures::column("discount_pct", Decimal),
                fixtures::column("unit_price", Decimal),
                fixtures::column("size", Integer),
                fixtures::column("channel", Text),
            ],
        );
        let roles = roles(&[table], "tickets", false);
        use Cardinality::Low;
        for (column, expected) in [
            ("ticket_no", ColumnRole::Key),
            ("reason_cd", attribute(Low, false)),
            ("country_code", attribute(Low, false)),
            ("line_seq", ColumnRole::Ordinal),
            ("rank", ColumnRole::Ordinal),
            ("replies", measure(false, true, true)),
            ("num_messages", measure(false, true, true)),
            ("discount_pct", measure(false, false, false)),
            ("unit_price", measure(true, false, false)),
            ("size", ColumnRole::Ignored),
            // A bare schema (nothing sampled): text is a breakdown unless its name says label.
            ("channel", attribute(Low, false)),
        ] {
            assert_eq!(role_of(&roles, column), expected, "{column}");
        }
    }
}
