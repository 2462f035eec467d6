//! Schemas in three naming styles, as `Warehouse::describe` would read them, for the tests of
//! the derivation: TPC-H-like prefixed names with declared keys, snake_case with `*_id` columns
//! and no declared keys, and CamelCase with comments.
use crate::domain::{ColumnKind, ColumnSchema, ForeignKey, TableSchema};

pub fn column(name: &str, kind: ColumnKind) -> ColumnSchema {
    ColumnSchema {
        name: name.to_string(),
        data_type: format!("{kind:?}").to_lowercase(),
        kind,
        ..Default::default()
    }
}

pub fn with_values(mut column: ColumnSchema, values: &[&str]) -> ColumnSchema {
    column.values = values.iter().map(|v| (*v).to_string()).collect();
    column
}

pub fn with_comment(mut column: ColumnSchema, comment: &str) -> ColumnSchema {
    column.comment = Some(comment.to_string());
    column
}

pub fn table(name: &str, columns: Vec<ColumnSchema>) -> TableSchema {
    TableSchema {
        name: name.to_string(),
        columns,
        ..Default::default()
    }
}

fn keyed(mut table: TableSchema, primary_key: &[&str], foreign_keys: &[(&str, &str, &str)]) -> TableSchema {
    table.primary_key = primary_key.iter().map(|c| (*c).to_string()).collect();
    table.foreign_keys = foreign_keys
        .iter()
        .map(|(column, target, reference)| ForeignKey {
            columns: vec![(*column).to_string()],
            table: (*target).to_string(),
            references: vec![(*reference).to_string()],
        })
        .collect();
    table
}

/// TPC-H-like: one-letter column prefixes, concatenated abbreviations, declared keys, several
/// date columns in `lineitem`.
pub fn tpch() -> Vec<TableSchema> {
    use ColumnKind::{Date, Decimal, Integer, Text};
    vec![
        keyed(
            table(
                "region",
                vec![
                    column("r_regionkey", Integer),
                    with_values(
                        column("r_name", Text),
                        &["AFRICA", "AMERICA", "ASIA", "EUROPE", "MIDDLE EAST"],
                    ),
                    column("r_comment", Text),
                ],
            ),
            &["r_regionkey"],
            &[],
        ),
        keyed(
            table(
                "nation",
                vec![
                    column("n_nationkey", Integer),
                    column("n_name", Text),
                    column("n_regionkey", Integer),
                    column("n_comment", Text),
                ],
            ),
            &["n_nationkey"],
            &[("n_regionkey", "region", "r_regionkey")],
        ),
        keyed(
            table(
                "customer",
                vec![
                    column("c_custkey", Integer),
                    column("c_name", Text),
                    column("c_address", Text),
                    column("c_nationkey", Integer),
                    column("c_phone", Text),
                    column("c_acctbal", Decimal),
                    with_values(
                        column("c_mktsegment", Text),
                        &["AUTOMOBILE", "BUILDING", "FURNITURE", "HOUSEHOLD", "MACHINERY"],
                    ),
                    column("c_comment", Text),
                ],
            ),
            &["c_custkey"],
            &[("c_nationkey", "nation", "n_nationkey")],
        ),
        keyed(
            table(
                "orders",
                vec![
                    column("o_orderkey", Integer),
                    column("o_custkey", Integer),
                    with_values(column("o_orderstatus", Text), &["F", "O", "P"]),
                    column("o_totalprice", Decimal),
                    column("o_orderdate", Date),
                    with_values(
                        column("o_orderpriority", Text),
                        &["1-URGENT", "2-HIGH", "3-MEDIUM", "4-NOT SPECIFIED", "5-LOW"],
                    ),
                    column("o_clerk", Text),
                    column("o_shippriority", Integer),
                    column("o_comment", Text),
                ],
            ),
            &["o_orderkey"],
            &[("o_custkey", "customer", "c_custkey")],
        ),
        keyed(
            table(
                "lineitem",
                vec![
                    column("l_orderkey", Integer),
                    column("l_partkey", Integer),
                    column("l_suppkey", Integer),
                    column("l_linenumber", Integer),
                    column("l_quantity", Decimal),
                    column("l_extendedprice", Decimal),
                    column("l_discount", Decimal),
                    column("l_tax", Decimal),
                    with_values(column("l_returnflag", Text), &["A", "N", "R"]),
                    with_values(column("l_linestatus", Text), &["F", "O"]),
                    column("l_shipdate", Date),
                    column("l_commitdate", Date),
                    column("l_receiptdate", Date),
                    with_values(
                        column("l_shipinstruct", Text),
                        &["COLLECT COD", "DELIVER IN PERSON", "NONE", "TAKE BACK RETURN"],
                    ),
                    with_values(
                        column("l_shipmode", Text),
                        &["AIR", "FOB", "MAIL", "RAIL", "REG AIR", "SHIP", "TRUCK"],
                    ),
                    column("l_comment", Text),
                ],
            ),
            &["l_orderkey", "l_linenumber"],
            &[("l_orderkey", "orders", "o_orderkey")],
        ),
    ]
}

/// snake_case: `id` and `*_id` columns, no declared keys, a `_dt` abbreviation.
pub fn snake() -> Vec<TableSchema> {
    use ColumnKind::{Date, Decimal, Integer, Text};
    vec![
        table(
            "invoices",
            vec![
                column("id", Integer),
                column("account_id", Integer),
                column("issued_on", Date),
                column("paid_on", Date),
                column("total_amount", Decimal),
                with_values(column("status", Text), &["draft", "paid", "void"]),
            ],
        ),
        table(
            "accounts",
            vec![
                column("id", Integer),
                column("name", Text),
                with_values(column("segment", Text), &["Enterprise", "Mid-Market", "SMB"]),
                with_values(column("country", Text), &["Canada", "France", "Japan"]),
                column("credit_limit", Integer),
                column("signup_dt", Date),
            ],
        ),
    ]
}

/// CamelCase with table and column comments, primary keys declared and foreign keys not.
pub fn camel() -> Vec<TableSchema> {
    use ColumnKind::{Date, Decimal, Integer, Text};
    let mut entries = keyed(
        table(
            "JournalEntry",
            vec![
                column("EntryId", Integer),
                column("AccountId", Integer),
                column("PostedDate", Date),
                with_comment(column("DebitAmt", Decimal), "Amount debited, in EUR"),
                with_comment(column("CreditAmt", Decimal), "Amount credited, in EUR"),
                with_comment(column("Memo", Text), "Free text the bookkeeper wrote on the entry"),
            ],
        ),
        &["EntryId"],
        &[],
    );
    entries.comment = Some("Ledger postings".to_string());
    let mut accounts = keyed(
        table(
            "Account",
            vec![
                column("AccountId", Integer),
                column("AccountName", Text),
                with_values(
                    column("AccountType", Text),
                    &["Asset", "Equity", "Expense", "Liability", "Revenue"],
                ),
            ],
        ),
        &["AccountId"],
        &[],
    );
    accounts.comment = Some("Chart of accounts".to_string());
    vec![entries, accounts]
}
