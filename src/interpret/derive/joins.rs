//! Joins from foreign keys: many-to-one, from the table holding the key to the table it points
//! at. Declared keys are trusted. Where a table declares none, candidates are inferred from names
//! (`customer_id` -> `customers.id`, `o_custkey` -> `customer.c_custkey`); whether the values
//! of a candidate are contained in its target is a question for the warehouse, so the caller
//! answers it (see [`accept_joins`]).
use super::names::{ColumnWords, TableNames};
use crate::domain::{ColumnKind, TableSchema};

/// Last words of a column naming the row it points at: `account_id`, `custkey`, `invoice_no`.
const POINTER_WORDS: &[&str] = &["id", "key", "number"];

/// A possible join `from_table.from_column -> to_table.to_column`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JoinCandidate {
    pub from_table: String,
    pub from_column: String,
    pub to_table: String,
    pub to_column: String,
    pub evidence: JoinEvidence,
}

/// Why a join is thought to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JoinEvidence {
    /// A foreign key declared in the catalog.
    Declared,
    /// Inferred from column and table names only.
    Named,
}

/// What a sample of the data says about an inferred join: are the `from` values found among
/// the `to` values?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Containment {
    Contained,
    NotContained,
    /// No check could be made (no warehouse at hand, or the check failed).
    Unchecked,
}

/// Declared single-column foreign keys between tables of `schema`, then candidates inferred
/// from names for tables that declare none. `names` are the tables' names, in `schema`'s order.
pub fn join_candidates(schema: &[TableSchema], names: &[TableNames]) -> Vec<JoinCandidate> {
    let tables: Vec<(&TableSchema, &TableNames)> = schema.iter().zip(names).collect();
    let mut candidates = declared_joins(&tables);
    for (table, table_names) in &tables {
        if table.foreign_keys.is_empty() {
            candidates.extend(inferred_joins(table, table_names, &tables));
        }
    }
    candidates
}

/// The joins to keep: declared ones, and inferred ones unless a check found values of the
/// key that its target does not hold. An unchecked name match is kept: names like
/// `customer_id` are right far more often than not, and a wrong join shows in the SQL.
pub fn accept_joins(
    candidates: Vec<JoinCandidate>,
    containment: impl Fn(&JoinCandidate) -> Containment,
) -> Vec<JoinCandidate> {
    candidates
        .into_iter()
        .filter(|candidate| {
            candidate.evidence == JoinEvidence::Declared || containment(candidate) != Containment::NotContained
        })
        .collect()
}

fn declared_joins(tables: &[(&TableSchema, &TableNames)]) -> Vec<JoinCandidate> {
    let mut joins = Vec::new();
    for (table, _) in tables {
        for key in &table.foreign_keys {
            // The model joins on one column; composite keys are left to a hand-written model.
            let ([from_column], [reference]) = (key.columns.as_slice(), key.references.as_slice()) else {
                continue;
            };
            let Some((target, _)) = tables.iter().find(|(t, _)| t.name == key.table) else {
                continue;
            };
            // SQLite names no column when a key points at the primary key.
            let to_column = if target.column(reference).is_some() {
                reference.clone()
            } else {
                match target.primary_key.as_slice() {
                    [only] => only.clone(),
                    _ => continue,
                }
            };
            joins.push(JoinCandidate {
                from_table: table.name.clone(),
                from_column: from_column.clone(),
                to_table: target.name.clone(),
                to_column,
                evidence: JoinEvidence::Declared,
            });
        }
    }
    joins
}

fn inferred_joins(
    table: &TableSchema,
    names: &TableNames,
    tables: &[(&TableSchema, &TableNames)],
) -> Vec<JoinCandidate> {
    let mut joins = Vec::new();
    for column in &names.columns {
        let Some((pointer, entity)) = column.words.split_last() else {
            continue;
        };
        if !POINTER_WORDS.contains(&pointer.as_str()) || entity.is_empty() {
            continue;
        }
        let entity = entity.join(" ");
        let own_key = matches!(table.primary_key.as_slice(), [only] if *only == column.column)
            || entity == names.nouns.singular
            || entity == names.nouns.plural;
        if own_key {
            continue;
        }
        let Some((target, target_names)) = target_table(&entity, &table.name, tables) else {
            continue;
        };
        let Some(to_column) = target_key(column, target, target_names) else {
            continue;
        };
        let kinds = (
            table.column(&column.column).map(|c| c.kind),
            target.column(&to_column).map(|c| c.kind),
        );
        if !compatible(kinds) {
            continue;
        }
        joins.push(JoinCandidate {
            from_table: table.name.clone(),
            from_column: column.column.clone(),
            to_table: target.name.clone(),
            to_column,
            evidence: JoinEvidence::Named,
        });
    }
    joins
}

/// The one other table whose rows `entity` names ("customer" -> `customers`), else the one
/// named by the entity's last word (`billing account` -> `accounts`); none when ambiguous.
fn target_table<'a>(
    entity: &str,
    from: &str,
    tables: &[(&'a TableSchema, &'a TableNames)],
) -> Option<(&'a TableSchema, &'a TableNames)> {
    let others = || tables.iter().filter(|(t, _)| t.name != from);
    let exact: Vec<_> = others()
        .filter(|(_, n)| n.nouns.singular == entity || n.nouns.plural == entity)
        .collect();
    if let [only] = exact.as_slice() {
        return Some(**only);
    }
    if !exact.is_empty() {
        return None;
    }
    let last = entity.rsplit(' ').next()?;
    let by_last: Vec<_> = others()
        .filter(|(_, n)| n.nouns.singular == last || n.nouns.plural == last)
        .collect();
    match by_last.as_slice() {
        [only] => Some(**only),
        _ => None,
    }
}

/// The column of `target` that `column` points at: its single primary key, else its `id`,
/// else a column named alike (`AccountId`, or `c_custkey` for `o_custkey`), else its own
/// `<noun> id`/`<noun> key`.
fn target_key(column: &ColumnWords, target: &TableSchema, names: &TableNames) -> Option<String> {
    if let [only] = target.primary_key.as_slice() {
        return Some(only.clone());
    }
    let find =
        |wanted: &dyn Fn(&ColumnWords) -> bool| names.columns.iter().find(|c| wanted(c)).map(|c| c.column.clone());
    find(&|c| c.words == ["id"])
        .or_else(|| find(&|c| c.column.eq_ignore_ascii_case(&column.column)))
        .or_else(|| find(&|c| c.words == column.words))
        .or_else(|| {
            find(&|c| {
                let phrase = c.phrase();
                POINTER_WORDS
                    .iter()
                    .any(|pointer| phrase == format!("{} {pointer}", names.nouns.singular))
            })
        })
}

/// Numbers join numbers and text joins text; an unknown type joins anything.
fn compatible(kinds: (Option<ColumnKind>, Option<ColumnKind>)) -> bool {
    let family = |kind: ColumnKind| match kind {
        ColumnKind::Integer | ColumnKind::Decimal => Some(0),
        ColumnKind::Text => Some(1),
        ColumnKind::Date | ColumnKind::Timestamp => Some(2),
        ColumnKind::Boolean => Some(3),
        ColumnKind::Other => None,
    };
    match kinds {
        (Some(a), Some(b)) => match (family(a), family(b)) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::super::names::Vocabulary;
    use super::*;

    fn candidates(schema: &[TableSchema]) -> Vec<(String, JoinEvidence)> {
        let vocabulary = Vocabulary::standard();
        let names: Vec<TableNames> = schema
            .iter()
            .map(|t| {
                let columns: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
                vocabulary.table_names(&t.name, &columns)
            })
            .collect();
        join_candidates(schema, &names)
            .into_iter()
            .map(|j| {
                (
                    format!("{}.{} -> {}.{}", j.from_table, j.from_column, j.to_table, j.to_column),
                    j.evidence,
                )
            })
            .collect()
    }

    #[test]
    fn declared_foreign_keys_become_many_to_one_joins() {
        let found = candidates(&fixtures::tpch());
        let expected: Vec<(String, JoinEvidence)> = [
            "nation.n_regionkey -> region.r_regionkey",
            "customer.c_nationkey -> nation.n_nationkey",
            "orders.o_custkey -> customer.c_custkey",
            "lineitem.l_orderkey -> orders.o_orderkey",
        ]
        .iter()
        .map(|j| (j.to_string(), JoinEvidence::Declared))
        .collect();
        // `region` declares no key of its own but holds no pointer either: nothing is inferred.
        assert_eq!(found, expected);
    }

    #[test]
    fn prefixed_keys_are_inferred_from_the_table_their_words_name() {
        let mut schema = fixtures::tpch();
        for table in &mut schema {
            table.foreign_keys.clear();
            table.primary_key.clear();
        }
        let found: Vec<String> = candidates(&schema).into_iter().map(|(j, _)| j).collect();
        assert_eq!(
            found,
            [
                "nation.n_regionkey -> region.r_regionkey",
                "customer.c_nationkey -> nation.n_nationkey",
                "orders.o_custkey -> customer.c_custkey",
                "lineitem.l_orderkey -> orders.o_orderkey",
            ],
            "l_partkey and l_suppkey name tables that are not there"
        );
    }

    #[test]
    fn snake_case_ids_point_at_the_table_they_name() {
        assert_eq!(
            candidates(&fixtures::snake()),
            [("invoices.account_id -> accounts.id".to_string(), JoinEvidence::Named)]
        );
    }

    #[test]
    fn camel_case_ids_point_at_the_primary_key_of_the_table_they_name() {
        assert_eq!(
            candidates(&fixtures::camel()),
            [(
                "JournalEntry.AccountId -> Account.AccountId".to_string(),
                JoinEvidence::Named
            )]
        );
    }

    #[test]
    fn abbreviated_keys_and_role_names_find_their_table_and_ambiguity_finds_none() {
        use ColumnKind::{Integer, Text};
        let schema = vec![
            fixtures::table(
                "invoices",
                vec![
                    fixtures::column("inv_id", Integer),
                    fixtures::column("inv_acctkey", Integer),
                    fixtures::column("inv_billing_account_id", Integer),
                    fixtures::column("inv_region_code", Text),
                    fixtures::column("inv_seller_id", Integer),
                ],
            ),
            fixtures::table(
                "accounts",
                vec![
                    fixtures::column("acct_acctkey", Integer),
                    fixtures::column("acct_name", Text),
                ],
            ),
            fixtures::table("sellers", vec![fixtures::column("id", Text)]),
            fixtures::table("seller", vec![fixtures::column("id", Integer)]),
        ];
        let found: Vec<String> = candidates(&schema).into_iter().map(|(j, _)| j).collect();
        assert_eq!(
            found,
            [
                "invoices.inv_acctkey -> accounts.acct_acctkey",
                "invoices.inv_billing_account_id -> accounts.acct_acctkey",
            ],
            "two tables are called seller: no guess"
        );
    }

    #[test]
    fn a_join_the_data_contradicts_is_dropped_and_an_unchecked_one_kept() {
        let candidate = |column: &str, evidence| JoinCandidate {
            from_table: "invoices".into(),
            from_column: column.into(),
            to_table: "accounts".into(),
            to_column: "id".into(),
            evidence,
        };
        let all = vec![
            candidate("declared_id", JoinEvidence::Declared),
            candidate("contained_id", JoinEvidence::Named),
            candidate("stray_id", JoinEvidence::Named),
            candidate("unchecked_id", JoinEvidence::Named),
        ];
        let kept = accept_joins(all, |c| match c.from_column.as_str() {
            "contained_id" => Containment::Contained,
            "stray_id" | "declared_id" => Containment::NotContained,
            _ => Containment::Unchecked,
        });
        let kept: Vec<&str> = kept.iter().map(|c| c.from_column.as_str()).collect();
        assert_eq!(kept, ["declared_id", "contained_id", "unchecked_id"]);
    }
}
