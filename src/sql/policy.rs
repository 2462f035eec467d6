//! Per-user access policy, enforced on the parsed SQL: the last word of governance, after the
//! interpreter and the warehouse's own grants. [`SqlGuard::check_with_policy`] refuses relations
//! and columns the asker may not read, wraps every reference to a row-filtered table in a derived
//! table that applies the filter, and says which tables, columns and filters the answer is built
//! from ([`Disclosure`]).
//!
//! Column resolution is conservative: when the guard cannot tell which table a name belongs to,
//! it counts the name as read from every table it might belong to, and anything it cannot
//! resolve at all is refused if a table in scope denies a column of that name. A statement holding
//! an expression the resolution did not examine is refused outright (see `Resolver::ensure_examined`).
//!
//! [`SqlGuard::check_with_policy`]: super::SqlGuard::check_with_policy
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, JoinConstraint, JoinOperator,
    ObjectName, Query, Select, SelectItem, SelectItemQualifiedWildcardKind, SetExpr, Statement, TableAlias,
    TableFactor, TableWithJoins, Visit, VisitMut, Visitor, VisitorMut, WildcardAdditionalOptions,
};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use super::guard::{
    check_function_name, cte_key, into_flow, is_harmless_table_function, lowercased, name_parts, ColumnsOf, CteScopes,
    GuardError, SqlGuard,
};
use super::{Dialect, GuardedSql};

impl SqlGuard {
    /// Checks `sql` like [`SqlGuard::check`], then against one asker's [`AccessPolicy`]: every
    /// relation must be in the policy's tables, no denied column may be read through any
    /// construct, and every reference to a table with row filters is replaced by a derived table
    /// that applies them. `columns(table)` gives the lower-cased column names of a table (called
    /// with the name as the query wrote it, lower-cased, then with the bare table name); it is
    /// needed to expand `*` and to resolve unqualified names, and `None` makes the check assume
    /// the table may hold any of its denied columns.
    ///
    /// The [`Disclosure`] says what the answer is built from. Statements whose reads cannot be
    /// worked out (PIVOT, LATERAL VIEW, a table function other than the harmless ones, ...) are
    /// refused as unsupported, even for an unrestricted policy, so a disclosure is never partial.
    pub fn check_with_policy(
        &self,
        sql: &str,
        row_cap: u64,
        policy: &AccessPolicy,
        columns: ColumnsOf<'_>,
    ) -> Result<(GuardedSql, Disclosure), GuardError> {
        let dialect = self.dialect();
        self.check_guarded(sql, row_cap, |query| {
            // The asker's tables narrow the warehouse's: a relation must be in both.
            if let Some(tables) = &policy.tables {
                self.check_relations(query, Some(&lowercased(tables.clone())))?;
            }
            let mut disclosure = disclosed_reads(query, policy, columns, dialect)?;
            disclosure.row_filters = apply_row_filters(query, policy, dialect)?;
            Ok(disclosure)
        })
    }
}

/// What one asker may read: the union of their roles.
///
/// Table names are matched like the guard's allowed relations: an entry `customers` covers
/// `customers` and `crm.customers`, an entry `crm.customers` only the latter. Names and columns
/// are compared lower-cased.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    /// Relations the asker may read; `None` allows every non-system relation.
    pub tables: Option<HashSet<String>>,
    /// `(table, column)` pairs the asker may not read, through any construct.
    pub denied_columns: HashSet<(String, String)>,
    /// Table → SQL predicates (written by admins, e.g. `customers.region = 'EMEA'`); a row is
    /// visible when any of its table's predicates holds.
    pub row_filters: HashMap<String, Vec<String>>,
}

impl AccessPolicy {
    /// Every non-system table, every column, every row.
    pub fn unrestricted() -> Self {
        Self::default()
    }

    /// Only `tables`, with every column and every row of each.
    pub fn only_tables<I, S>(tables: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self {
            tables: Some(tables.into_iter().map(|table| normalized(table.as_ref())).collect()),
            ..Self::default()
        }
    }

    /// This policy, with `table.column` hidden.
    pub fn deny_column(mut self, table: &str, column: &str) -> Self {
        self.denied_columns.insert((normalized(table), normalized(column)));
        self
    }

    /// This policy, with the rows of `table` limited to those where `predicate` (or another of
    /// the table's predicates) holds.
    pub fn filter_rows(mut self, table: &str, predicate: &str) -> Self {
        self.row_filters
            .entry(normalized(table))
            .or_default()
            .push(predicate.trim().to_string());
        self
    }

    /// The access of a user holding every one of `policies` (one per role): the union of their
    /// tables, of their columns and of their rows.
    ///
    /// - A table is readable when any role reads it (a role without a table list reads all).
    /// - A column is denied only when every role that reads its table denies it.
    /// - A table's rows are filtered only when every role that reads it filters it; the filters
    ///   of those roles are then OR-ed. A single role that reads the table without a filter lifts
    ///   the filter, since that role alone already shows every row.
    ///
    /// Columns and rows are combined independently, per table: a role that sees `email` of US
    /// customers and another that sees EMEA customers without `email` give `email` of both. Roles
    /// that must not combine that way should not be given to the same user.
    ///
    /// No policies at all give no access (no table).
    pub fn union<I>(policies: I) -> Self
    where
        I: IntoIterator<Item = AccessPolicy>,
    {
        let policies: Vec<AccessPolicy> = policies.into_iter().map(AccessPolicy::normalized).collect();
        let mut tables = Some(HashSet::new());
        for policy in &policies {
            match (&mut tables, &policy.tables) {
                (Some(all), Some(some)) => all.extend(some.iter().cloned()),
                _ => tables = None,
            }
        }
        let mentioned: BTreeSet<&String> = policies
            .iter()
            .flat_map(|policy| {
                policy
                    .denied_columns
                    .iter()
                    .map(|(table, _)| table)
                    .chain(policy.row_filters.keys())
            })
            .collect();
        let mut denied_columns = HashSet::new();
        let mut row_filters = HashMap::new();
        for table in mentioned {
            let readers: Vec<&AccessPolicy> = policies.iter().filter(|policy| policy.lists(table)).collect();
            let Some((first, others)) = readers.split_first() else {
                continue;
            };
            let mut denied: HashSet<&String> = first
                .denied_columns
                .iter()
                .filter(|(t, _)| t == table)
                .map(|(_, column)| column)
                .collect();
            for other in others {
                denied.retain(|column| other.denied_columns.contains(&(table.clone(), (*column).clone())));
            }
            denied_columns.extend(denied.into_iter().map(|column| (table.clone(), column.clone())));
            let filters: Option<Vec<&Vec<String>>> = readers
                .iter()
                .map(|policy| {
                    policy
                        .row_filters
                        .get(table)
                        .filter(|predicates| !predicates.is_empty())
                })
                .collect();
            if let Some(filters) = filters {
                let mut predicates: Vec<String> = Vec::new();
                for predicate in filters.into_iter().flatten() {
                    if !predicates.contains(predicate) {
                        predicates.push(predicate.clone());
                    }
                }
                row_filters.insert(table.clone(), predicates);
            }
        }
        Self {
            tables,
            denied_columns,
            row_filters,
        }
    }

    /// Checks, when the policy is loaded, that each row filter is one predicate in `dialect` with
    /// no subquery (a filter reads its own table only) and no function the guard forbids.
    pub fn validate(&self, dialect: Dialect) -> Result<(), String> {
        for (table, predicates) in &self.row_filters {
            for predicate in predicates {
                parse_predicate(predicate, dialect).map_err(|reason| format!("row filter of {table}: {reason}"))?;
            }
        }
        Ok(())
    }

    /// Whether the relation `name` (`orders`, `sales.orders`) may be read: what an interpreter
    /// may show of the catalog (the guard decides on the parsed SQL).
    pub fn allows_table(&self, name: &str) -> bool {
        let parts: Vec<String> = name.split('.').map(normalized).collect();
        let Some(tables) = &self.tables else { return true };
        tables.iter().any(|entry| names_relation(&normalized(entry), &parts))
    }

    /// Whether `column` of the relation `table` is denied.
    pub fn denies_column(&self, table: &str, column: &str) -> bool {
        let parts: Vec<String> = table.split('.').map(normalized).collect();
        self.denies(&parts, &normalized(column))
    }

    /// Whether any column of the relation `table` is denied.
    pub fn denies_any_column_of(&self, table: &str) -> bool {
        let parts: Vec<String> = table.split('.').map(normalized).collect();
        !self.denied_columns_of(&parts).is_empty()
    }

    /// The row filters (policy table, predicates OR-ed) that apply to the relation `name`.
    pub fn row_filters_of(&self, name: &str) -> Vec<(String, Vec<String>)> {
        let parts: Vec<String> = name.split('.').map(normalized).collect();
        self.filters_of(&parts)
            .into_iter()
            .map(|(table, predicates)| (table, predicates.to_vec()))
            .collect()
    }

    /// Whether this policy lists `table` (a lower-cased entry) among the ones it reads.
    fn lists(&self, table: &str) -> bool {
        self.tables.as_ref().is_none_or(|tables| tables.contains(table))
    }

    fn normalized(self) -> Self {
        Self {
            tables: self.tables.map(|tables| tables.iter().map(|t| normalized(t)).collect()),
            denied_columns: self
                .denied_columns
                .iter()
                .map(|(table, column)| (normalized(table), normalized(column)))
                .collect(),
            row_filters: self
                .row_filters
                .into_iter()
                .map(|(table, predicates)| (normalized(&table), predicates))
                .collect(),
        }
    }

    /// Whether reading `column` of the relation named `parts` (lower-cased) is denied.
    fn denies(&self, parts: &[String], column: &str) -> bool {
        self.denied_columns
            .iter()
            .any(|(table, denied)| normalized(denied) == column && names_relation(&normalized(table), parts))
    }

    /// The denied columns of the relation named `parts`.
    fn denied_columns_of(&self, parts: &[String]) -> Vec<String> {
        let mut columns: Vec<String> = self
            .denied_columns
            .iter()
            .filter(|(table, _)| names_relation(&normalized(table), parts))
            .map(|(_, column)| normalized(column))
            .collect();
        columns.sort();
        columns
    }

    /// The row-filter entries (table, predicates) that apply to the relation named `parts`.
    fn filters_of(&self, parts: &[String]) -> Vec<(String, &[String])> {
        let mut filters: Vec<(String, &[String])> = self
            .row_filters
            .iter()
            .filter(|(table, predicates)| !predicates.is_empty() && names_relation(&normalized(table), parts))
            .map(|(table, predicates)| (normalized(table), predicates.as_slice()))
            .collect();
        filters.sort();
        filters
    }
}

/// What an answer was built from: used to decide whether everyone in a channel may see it, and
/// shown in "Why this result?".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Disclosure {
    /// Relations read, lower-cased as the query names them (`customers`, `crm.customers`).
    pub relations: BTreeSet<String>,
    /// `table.column` pairs read anywhere in the statement (selected, filtered on, joined on,
    /// grouped by...). `*` counts as every column of its table; `table.*` stands for a table
    /// whose columns were unknown.
    pub columns: BTreeSet<String>,
    /// The row filters applied: filtered table (as the policy names it) → its predicates, OR-ed.
    pub row_filters: BTreeMap<String, Vec<String>>,
}

impl Disclosure {
    /// The row filters as people read them: `customers: customers.region = 'EMEA'`.
    pub fn row_filter_lines(&self) -> Vec<String> {
        self.row_filters
            .iter()
            .map(|(table, predicates)| format!("{table}: {}", predicates.join(" OR ")))
            .collect()
    }

    /// What two answers of one turn were built from together (an export beside its answer).
    pub fn merge(&mut self, other: Disclosure) {
        self.relations.extend(other.relations);
        self.columns.extend(other.columns);
        for (table, predicates) in other.row_filters {
            let known = self.row_filters.entry(table).or_default();
            for predicate in predicates {
                if !known.contains(&predicate) {
                    known.push(predicate);
                }
            }
        }
    }
}

fn normalized(name: &str) -> String {
    name.trim().to_lowercase()
}

/// Whether a policy entry (`customers`, `crm.customers`) names the relation written as `parts`.
fn names_relation(entry: &str, parts: &[String]) -> bool {
    (0..parts.len()).any(|start| parts.get(start..).is_some_and(|suffix| suffix.join(".") == entry))
}

/// Parses one row-filter predicate: a single expression, no subquery, no forbidden function.
fn parse_predicate(text: &str, dialect: Dialect) -> Result<Expr, String> {
    let parser_dialect = dialect.parser();
    let mut parser = Parser::new(parser_dialect.as_ref())
        .try_with_sql(text)
        .map_err(|e| e.to_string())?;
    let expr = parser.parse_expr().map_err(|e| e.to_string())?;
    if parser.peek_token().token != Token::EOF {
        return Err("it is more than one expression".into());
    }
    struct Screen;
    impl Visitor for Screen {
        type Break = String;
        fn pre_visit_query(&mut self, _query: &Query) -> ControlFlow<String> {
            ControlFlow::Break("it contains a subquery".into())
        }
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<String> {
            match expr {
                Expr::Function(function) => match name_parts(&function.name).and_then(|p| check_function_name(&p)) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(error) => ControlFlow::Break(error.to_string()),
                },
                _ => ControlFlow::Continue(()),
            }
        }
    }
    match expr.visit(&mut Screen) {
        ControlFlow::Break(reason) => Err(reason),
        ControlFlow::Continue(()) => Ok(expr),
    }
}

// ---------------------------------------------------------------------------------------------
// Column resolution

/// A relation in a FROM clause, as seen by the names of the query around it.
struct Source {
    /// Lower-cased alias, or the bare table name; empty for an unnamed derived table.
    name: String,
    kind: SourceKind,
}

enum SourceKind {
    /// A table or view of the warehouse: the only place where reads are counted.
    Table {
        /// Lower-cased name parts as written.
        parts: Vec<String>,
        /// Its columns in order, when known.
        columns: Option<Vec<String>>,
        /// Column aliases (`FROM customers AS c(a, b)`), renaming the first columns.
        renamed: Vec<String>,
    },
    /// A derived table, CTE, or table function: its reads were counted where it was defined.
    Derived { columns: Option<Vec<String>> },
}

impl Source {
    fn is_named(&self, qualifier: &[String]) -> bool {
        let Some(last) = qualifier.last() else {
            return false;
        };
        if *last != self.name {
            return false;
        }
        match (&self.kind, qualifier.len()) {
            (_, 1) => true,
            // `crm.customers.email` names a table reference without an alias.
            (SourceKind::Table { parts, .. }, _) => parts.ends_with(qualifier),
            (SourceKind::Derived { .. }, _) => false,
        }
    }

    /// The names the outer query sees, each with the table column it reads (for a table).
    fn visible_columns(&self) -> Option<Vec<(String, Option<String>)>> {
        match &self.kind {
            SourceKind::Table { columns, renamed, .. } => {
                let columns = columns.as_ref()?;
                Some(
                    columns
                        .iter()
                        .enumerate()
                        .map(|(i, column)| {
                            let visible = renamed.get(i).unwrap_or(column).clone();
                            (visible, Some(column.clone()))
                        })
                        .collect(),
                )
            }
            SourceKind::Derived { columns } => {
                Some(columns.as_ref()?.iter().map(|column| (column.clone(), None)).collect())
            }
        }
    }
}

/// Addresses of the nodes the resolution examined, compared with every node of the statement.
#[derive(Default)]
struct Examined {
    queries: HashSet<usize>,
    factors: HashSet<usize>,
    exprs: HashSet<usize>,
}

struct Resolver<'a> {
    policy: &'a AccessPolicy,
    columns_of: &'a dyn Fn(&str) -> Option<Vec<String>>,
    dialect: Dialect,
    /// The FROM clauses of the queries being resolved, innermost last (correlated subqueries
    /// see the outer ones).
    frames: Vec<Vec<Source>>,
    /// CTEs defined so far by each query being resolved: (`cte_key`, output columns).
    ctes: Vec<Vec<(String, Option<Vec<String>>)>>,
    relations: BTreeSet<String>,
    columns: BTreeSet<String>,
    examined: Examined,
}

/// Works out the relations and columns `query` reads, refusing a denied column; the row filters
/// are left to [`apply_row_filters`].
pub(super) fn disclosed_reads(
    query: &Query,
    policy: &AccessPolicy,
    columns_of: &dyn Fn(&str) -> Option<Vec<String>>,
    dialect: Dialect,
) -> Result<Disclosure, GuardError> {
    let mut resolver = Resolver {
        policy,
        columns_of,
        dialect,
        frames: Vec::new(),
        ctes: Vec::new(),
        relations: BTreeSet::new(),
        columns: BTreeSet::new(),
        examined: Examined::default(),
    };
    resolver.query(query)?;
    resolver.ensure_examined(query)?;
    Ok(Disclosure {
        relations: resolver.relations,
        columns: resolver.columns,
        row_filters: BTreeMap::new(),
    })
}

fn address<T>(node: &T) -> usize {
    node as *const T as usize
}

fn lower(ident: &Ident) -> String {
    ident.value.to_lowercase()
}

impl Resolver<'_> {
    /// Resolves a query and returns its output column names, when known.
    fn query(&mut self, query: &Query) -> Result<Option<Vec<String>>, GuardError> {
        self.examined.queries.insert(address(query));
        self.ctes.push(Vec::new());
        let result = self.query_in_scope(query);
        self.ctes.pop();
        result
    }

    fn query_in_scope(&mut self, query: &Query) -> Result<Option<Vec<String>>, GuardError> {
        if let Some(with) = &query.with {
            if with.recursive {
                // Every CTE of a RECURSIVE list is visible in every body, its own included.
                for cte in &with.cte_tables {
                    let columns = alias_columns(&cte.alias);
                    self.define_cte(&cte.alias.name, columns);
                }
            }
            for cte in &with.cte_tables {
                let columns = self.query(&cte.query)?;
                self.define_cte(&cte.alias.name, renamed(columns, Some(&cte.alias)));
            }
        }
        let output = self.set_expr(&query.body, query)?;
        self.walk(&query.limit_clause)?;
        self.walk(&query.fetch)?;
        Ok(output)
    }

    fn define_cte(&mut self, name: &Ident, columns: Option<Vec<String>>) {
        let key = cte_key(name, self.dialect);
        if let Some(defined) = self.ctes.last_mut() {
            defined.retain(|(existing, _)| *existing != key);
            defined.push((key, columns));
        }
    }

    /// The output columns of the CTE `name` refers to, if it refers to one.
    fn cte(&self, name: &ObjectName) -> Option<Option<Vec<String>>> {
        let [sqlparser::ast::ObjectNamePart::Identifier(ident)] = name.0.as_slice() else {
            return None;
        };
        let key = cte_key(ident, self.dialect);
        self.ctes
            .iter()
            .rev()
            .flat_map(|defined| defined.iter().rev())
            .find(|(existing, _)| *existing == key)
            .map(|(_, columns)| columns.clone())
    }

    /// `owner` is the query whose ORDER BY applies to this body.
    fn set_expr(&mut self, body: &SetExpr, owner: &Query) -> Result<Option<Vec<String>>, GuardError> {
        match body {
            SetExpr::Select(select) => {
                self.frames.push(Vec::new());
                let result = self.select(select, owner);
                self.frames.pop();
                result
            }
            SetExpr::Query(query) => {
                let output = self.query(query)?;
                self.order_by_over_output(owner, output.clone())?;
                Ok(output)
            }
            SetExpr::SetOperation { left, right, .. } => {
                let output = self.branch(left)?;
                self.branch(right)?;
                self.order_by_over_output(owner, output.clone())?;
                Ok(output)
            }
            SetExpr::Values(values) => {
                self.walk(values)?;
                self.order_by_over_output(owner, None)?;
                Ok(None)
            }
            SetExpr::Table(table) => {
                let name: Vec<Ident> = [&table.schema_name, &table.table_name]
                    .into_iter()
                    .flatten()
                    .map(|part| Ident::new(part.as_str()))
                    .collect();
                let name = ObjectName::from(name);
                self.frames.push(Vec::new());
                let result = self.add_named_relation(&name, None).and_then(|()| {
                    if let Some(SourceKind::Table { parts, .. }) = self.innermost().last().map(|s| &s.kind) {
                        if !self.policy.filters_of(parts).is_empty() {
                            return Err(GuardError::Unsupported("TABLE over a table with a row filter".into()));
                        }
                    }
                    let output = self.star_over_frame(&HashSet::new())?;
                    self.walk(&owner.order_by)?;
                    Ok(output)
                });
                self.frames.pop();
                result
            }
            SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => {
                Err(GuardError::DataModifyingCte)
            }
        }
    }

    /// One branch of a set operation: its own scope, no ORDER BY of the whole.
    fn branch(&mut self, body: &SetExpr) -> Result<Option<Vec<String>>, GuardError> {
        match body {
            SetExpr::Select(select) => {
                self.frames.push(Vec::new());
                let result = self.select_body(select);
                self.frames.pop();
                result
            }
            SetExpr::Query(query) => self.query(query),
            SetExpr::SetOperation { left, right, .. } => {
                let output = self.branch(left)?;
                self.branch(right)?;
                Ok(output)
            }
            SetExpr::Values(values) => {
                self.walk(values)?;
                Ok(None)
            }
            SetExpr::Table(_) | SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => {
                Err(GuardError::Unsupported("this set-operation branch".into()))
            }
        }
    }

    /// The ORDER BY of a set operation sees only its output columns.
    fn order_by_over_output(&mut self, owner: &Query, output: Option<Vec<String>>) -> Result<(), GuardError> {
        if owner.order_by.is_none() {
            return Ok(());
        }
        self.frames.push(vec![Source {
            name: String::new(),
            kind: SourceKind::Derived { columns: output },
        }]);
        let result = self.walk(&owner.order_by);
        self.frames.pop();
        result
    }

    fn innermost(&self) -> &[Source] {
        self.frames.last().map(Vec::as_slice).unwrap_or_default()
    }

    fn push_source(&mut self, source: Source) {
        if let Some(frame) = self.frames.last_mut() {
            frame.push(source);
        }
    }

    fn select(&mut self, select: &Select, owner: &Query) -> Result<Option<Vec<String>>, GuardError> {
        let output = self.select_body(select)?;
        // ORDER BY sees the FROM clause (and output aliases, resolved conservatively as names).
        self.walk(&owner.order_by)?;
        Ok(output)
    }

    fn select_body(&mut self, select: &Select) -> Result<Option<Vec<String>>, GuardError> {
        if !select.lateral_views.is_empty() {
            return Err(GuardError::Unsupported("LATERAL VIEW".into()));
        }
        for from in &select.from {
            self.table_with_joins(from)?;
        }
        let select_exclusions = exclusions(None, select.exclude.as_ref());
        let mut output = Some(Vec::new());
        for item in &select.projection {
            let names = match item {
                SelectItem::UnnamedExpr(expr) => {
                    self.walk(expr)?;
                    expr_name(expr).map(|name| vec![name])
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    self.walk(expr)?;
                    Some(vec![lower(alias)])
                }
                SelectItem::Wildcard(options) => {
                    self.walk(options)?;
                    let mut excluded = exclusions(Some(options), None);
                    excluded.extend(select_exclusions.iter().cloned());
                    self.star_over_frame(&excluded)?
                }
                SelectItem::QualifiedWildcard(kind, options) => {
                    self.walk(options)?;
                    let mut excluded = exclusions(Some(options), None);
                    excluded.extend(select_exclusions.iter().cloned());
                    match kind {
                        SelectItemQualifiedWildcardKind::ObjectName(name) => self.qualified_star(name, &excluded)?,
                        SelectItemQualifiedWildcardKind::Expr(expr) => {
                            self.walk(expr)?;
                            None
                        }
                    }
                }
            };
            output = match (output, names) {
                (Some(mut all), Some(names)) => {
                    all.extend(names);
                    Some(all)
                }
                _ => None,
            };
        }
        self.walk(&select.distinct)?;
        self.walk(&select.top)?;
        self.walk(&select.prewhere)?;
        self.walk(&select.selection)?;
        self.walk(&select.group_by)?;
        self.walk(&select.cluster_by)?;
        self.walk(&select.distribute_by)?;
        self.walk(&select.sort_by)?;
        self.walk(&select.having)?;
        self.walk(&select.named_window)?;
        self.walk(&select.qualify)?;
        self.walk(&select.connect_by)?;
        Ok(output)
    }

    fn table_with_joins(&mut self, from: &TableWithJoins) -> Result<(), GuardError> {
        self.table_factor(&from.relation)?;
        for join in &from.joins {
            let before = self.innermost().len();
            self.table_factor(&join.relation)?;
            let (constraint, condition) = match &join.join_operator {
                JoinOperator::Join(c)
                | JoinOperator::Inner(c)
                | JoinOperator::Left(c)
                | JoinOperator::LeftOuter(c)
                | JoinOperator::Right(c)
                | JoinOperator::RightOuter(c)
                | JoinOperator::FullOuter(c)
                | JoinOperator::CrossJoin(c)
                | JoinOperator::Semi(c)
                | JoinOperator::LeftSemi(c)
                | JoinOperator::RightSemi(c)
                | JoinOperator::Anti(c)
                | JoinOperator::LeftAnti(c)
                | JoinOperator::RightAnti(c)
                | JoinOperator::StraightJoin(c) => (Some(c), None),
                JoinOperator::AsOf {
                    match_condition,
                    constraint,
                } => (Some(constraint), Some(match_condition)),
                JoinOperator::CrossApply | JoinOperator::OuterApply => (None, None),
            };
            if let Some(condition) = condition {
                self.walk(condition)?;
            }
            match constraint {
                Some(JoinConstraint::On(expr)) => self.walk(expr)?,
                Some(JoinConstraint::Using(names)) => {
                    for name in names {
                        let parts = name_parts(name)?;
                        if let Some(column) = parts.last() {
                            self.using_column(column)?;
                        }
                    }
                }
                Some(JoinConstraint::Natural) => self.natural_join(before)?,
                Some(JoinConstraint::None) | None => {}
            }
        }
        Ok(())
    }

    fn table_factor(&mut self, factor: &TableFactor) -> Result<(), GuardError> {
        self.examined.factors.insert(address(factor));
        match factor {
            TableFactor::Table { name, alias, args, .. } => {
                // Function arguments, hints, time travel and sampling expressions.
                self.walk(factor)?;
                if args.is_some() {
                    let parts = name_parts(name)?;
                    if !is_harmless_table_function(&parts) {
                        return Err(GuardError::Unsupported(format!(
                            "the table function {} (what it reads cannot be checked)",
                            parts.join(".")
                        )));
                    }
                    self.push_derived(alias.as_ref(), parts.last().cloned().unwrap_or_default(), None);
                    return Ok(());
                }
                self.add_named_relation(name, alias.as_ref())
            }
            TableFactor::Derived { subquery, alias, .. } => {
                let columns = self.query(subquery)?;
                self.push_derived(alias.as_ref(), String::new(), renamed(columns, alias.as_ref()));
                Ok(())
            }
            TableFactor::TableFunction { expr, alias } => {
                self.walk(expr)?;
                self.push_derived(alias.as_ref(), String::new(), None);
                Ok(())
            }
            TableFactor::Function { name, args, alias, .. } => {
                let parts = name_parts(name)?;
                if !is_harmless_table_function(&parts) {
                    return Err(GuardError::Unsupported(format!(
                        "the table function {} (what it reads cannot be checked)",
                        parts.join(".")
                    )));
                }
                self.walk(args)?;
                self.push_derived(alias.as_ref(), parts.last().cloned().unwrap_or_default(), None);
                Ok(())
            }
            TableFactor::UNNEST { alias, array_exprs, .. } => {
                self.walk(array_exprs)?;
                self.push_derived(alias.as_ref(), String::new(), None);
                Ok(())
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                if alias.is_some() {
                    // `(a JOIN b) AS j` hides a and b behind j, whose columns are theirs.
                    return Err(GuardError::Unsupported("an aliased parenthesized join".into()));
                }
                self.table_with_joins(table_with_joins)
            }
            _ => Err(GuardError::Unsupported(
                "PIVOT, UNPIVOT, MATCH_RECOGNIZE, JSON_TABLE and similar table operators".into(),
            )),
        }
    }

    fn push_derived(&mut self, alias: Option<&TableAlias>, default_name: String, columns: Option<Vec<String>>) {
        let name = alias.map(|alias| lower(&alias.name)).unwrap_or(default_name);
        self.push_source(Source {
            name,
            kind: SourceKind::Derived { columns },
        });
    }

    /// A table or CTE reference.
    fn add_named_relation(&mut self, name: &ObjectName, alias: Option<&TableAlias>) -> Result<(), GuardError> {
        let parts = name_parts(name)?;
        let bare = parts.last().cloned().unwrap_or_default();
        if let Some(columns) = self.cte(name) {
            self.push_derived(alias, bare, renamed(columns, alias));
            return Ok(());
        }
        let display = parts.join(".");
        self.relations.insert(display.clone());
        let columns = (self.columns_of)(&display)
            .or_else(|| (self.columns_of)(&bare))
            .map(|columns| columns.iter().map(|c| normalized(c)).collect());
        let renamed = alias
            .map(|alias| alias.columns.iter().map(|column| lower(&column.name)).collect())
            .unwrap_or_default();
        self.push_source(Source {
            name: alias.map(|alias| lower(&alias.name)).unwrap_or(bare),
            kind: SourceKind::Table {
                parts,
                columns,
                renamed,
            },
        });
        Ok(())
    }

    /// Counts `column` of the table `parts` as read, or refuses it.
    fn read(&mut self, parts: &[String], column: &str) -> Result<(), GuardError> {
        let qualified = format!("{}.{column}", parts.join("."));
        if self.policy.denies(parts, column) {
            return Err(GuardError::ColumnNotAllowed(qualified));
        }
        self.columns.insert(qualified);
        Ok(())
    }

    /// `*` over every relation of the innermost FROM clause.
    fn star_over_frame(&mut self, excluded: &HashSet<String>) -> Result<Option<Vec<String>>, GuardError> {
        let count = self.innermost().len();
        let mut output = Some(Vec::new());
        for index in 0..count {
            let names = self.star_over_source(self.frames.len() - 1, index, excluded)?;
            output = match (output, names) {
                (Some(mut all), Some(names)) => {
                    all.extend(names);
                    Some(all)
                }
                _ => None,
            };
        }
        Ok(output)
    }

    /// `*` over one source: every column of a table is read.
    fn star_over_source(
        &mut self,
        frame: usize,
        index: usize,
        excluded: &HashSet<String>,
    ) -> Result<Option<Vec<String>>, GuardError> {
        let Some(source) = self.frames.get(frame).and_then(|frame| frame.get(index)) else {
            return Ok(None);
        };
        let visible = source.visible_columns();
        let parts = match &source.kind {
            SourceKind::Table { parts, .. } => Some(parts.clone()),
            SourceKind::Derived { .. } => None,
        };
        match (parts, visible) {
            (Some(parts), Some(visible)) => {
                let mut names = Vec::new();
                for (name, column) in visible {
                    if excluded.contains(&name) {
                        continue;
                    }
                    if let Some(column) = column {
                        self.read(&parts, &column)?;
                    }
                    names.push(name);
                }
                Ok(Some(names))
            }
            (Some(parts), None) => {
                // Unknown columns: the table may hold any of its denied columns.
                for column in self.policy.denied_columns_of(&parts) {
                    self.read(&parts, &column)?;
                }
                self.columns.insert(format!("{}.*", parts.join(".")));
                Ok(None)
            }
            (None, visible) => Ok(visible.map(|names| {
                names
                    .into_iter()
                    .map(|(name, _)| name)
                    .filter(|name| !excluded.contains(name))
                    .collect()
            })),
        }
    }

    /// `q.*`: every source named `q` in the innermost scope that has one.
    fn qualified_star(
        &mut self,
        name: &ObjectName,
        excluded: &HashSet<String>,
    ) -> Result<Option<Vec<String>>, GuardError> {
        let qualifier = name_parts(name)?;
        let matches = self.sources_named(&qualifier);
        if matches.is_empty() {
            // Not a relation in scope (the warehouse would refuse it); a composite column `x.*`
            // still reads column x.
            if let Some(first) = qualifier.first() {
                self.unqualified(first)?;
            }
            return Ok(None);
        }
        let mut output = Some(Vec::new());
        for (frame, index) in matches {
            let names = self.star_over_source(frame, index, excluded)?;
            output = match (output, names) {
                (Some(mut all), Some(names)) => {
                    all.extend(names);
                    Some(all)
                }
                _ => None,
            };
        }
        Ok(output)
    }

    /// (frame, index) of the sources named `qualifier` in the innermost frame that has any.
    fn sources_named(&self, qualifier: &[String]) -> Vec<(usize, usize)> {
        for (frame_index, frame) in self.frames.iter().enumerate().rev() {
            let found: Vec<(usize, usize)> = frame
                .iter()
                .enumerate()
                .filter(|(_, source)| source.is_named(qualifier))
                .map(|(index, _)| (frame_index, index))
                .collect();
            if !found.is_empty() {
                return found;
            }
        }
        Vec::new()
    }

    /// A column read through source (frame, index), by the name that source shows.
    fn column_of_source(&mut self, frame: usize, index: usize, column: &str) -> Result<(), GuardError> {
        let Some(source) = self.frames.get(frame).and_then(|frame| frame.get(index)) else {
            return Ok(());
        };
        let SourceKind::Table {
            parts,
            columns,
            renamed,
        } = &source.kind
        else {
            return Ok(());
        };
        let parts = parts.clone();
        match renamed.iter().position(|name| name == column) {
            Some(position) => match columns.as_ref().and_then(|columns| columns.get(position)) {
                Some(actual) => {
                    let actual = actual.clone();
                    self.read(&parts, &actual)
                }
                // A renamed column of a table whose columns are unknown: any denied one.
                None => {
                    for denied in self.policy.denied_columns_of(&parts) {
                        self.read(&parts, &denied)?;
                    }
                    Ok(())
                }
            },
            None => self.read(&parts, column),
        }
    }

    /// An unqualified name: a column of the innermost scope that has it, or (PostgreSQL,
    /// BigQuery) a whole row when it names a relation.
    fn unqualified(&mut self, name: &str) -> Result<(), GuardError> {
        let row_sources = self.sources_named(&[name.to_string()]);
        for (frame, index) in row_sources {
            self.star_over_source(frame, index, &HashSet::new())?;
        }
        for frame in (0..self.frames.len()).rev() {
            let mut certain = false;
            let count = self.frames.get(frame).map_or(0, Vec::len);
            for index in 0..count {
                let Some(source) = self.frames.get(frame).and_then(|f| f.get(index)) else {
                    continue;
                };
                let has = source
                    .visible_columns()
                    .map(|visible| visible.iter().any(|(visible, _)| visible == name));
                match (has, &source.kind) {
                    (Some(true), _) => {
                        certain = true;
                        self.column_of_source(frame, index, name)?;
                    }
                    // Unknown columns: the name may be this table's.
                    (None, SourceKind::Table { .. }) => self.column_of_source(frame, index, name)?,
                    _ => {}
                }
            }
            if certain {
                return Ok(());
            }
        }
        // Not found anywhere (an output alias, a lambda parameter, a keyword-like argument...):
        // trusted only if no table in scope denies a column of that name.
        for frame in &self.frames {
            for source in frame {
                if let SourceKind::Table { parts, .. } = &source.kind {
                    if self.policy.denies(parts, name) {
                        return Err(GuardError::ColumnNotAllowed(format!("{}.{name}", parts.join("."))));
                    }
                }
            }
        }
        Ok(())
    }

    /// `a.b`, `t.col`, `schema.t.col`, `t.struct_col.field`.
    fn compound(&mut self, parts: &[String]) -> Result<(), GuardError> {
        for split in (1..parts.len()).rev() {
            let (qualifier, rest) = parts.split_at(split);
            let matches = self.sources_named(qualifier);
            if matches.is_empty() {
                continue;
            }
            if let Some(column) = rest.first() {
                for (frame, index) in matches {
                    self.column_of_source(frame, index, column)?;
                }
            }
            return Ok(());
        }
        // No relation in scope has that name: `col.field` on a struct column, or a reference
        // the warehouse will refuse. Both the first and the last part are checked as names.
        if let Some(first) = parts.first() {
            self.unqualified(first)?;
        }
        if let Some(last) = parts.last() {
            self.unqualified(last)?;
        }
        Ok(())
    }

    /// `JOIN ... USING (column)` reads the column on each side that has it.
    fn using_column(&mut self, column: &str) -> Result<(), GuardError> {
        let frame = self.frames.len().saturating_sub(1);
        for index in 0..self.innermost().len() {
            let Some(source) = self.innermost().get(index) else {
                continue;
            };
            let has = source
                .visible_columns()
                .map(|visible| visible.iter().any(|(visible, _)| visible == column));
            if has != Some(false) {
                self.column_of_source(frame, index, column)?;
            }
        }
        Ok(())
    }

    /// `NATURAL JOIN` reads the columns its sides have in common; `right` is the index of the
    /// right side in the innermost frame.
    fn natural_join(&mut self, right: usize) -> Result<(), GuardError> {
        let frame = self.frames.len().saturating_sub(1);
        let visible: Vec<Option<Vec<String>>> = self
            .innermost()
            .iter()
            .map(|source| {
                source
                    .visible_columns()
                    .map(|columns| columns.into_iter().map(|(name, _)| name).collect())
            })
            .collect();
        if visible.iter().any(Option::is_none) {
            // Unknown columns on some side: any denied column may be joined on.
            let tables: Vec<Vec<String>> = self
                .innermost()
                .iter()
                .filter_map(|source| match &source.kind {
                    SourceKind::Table { parts, .. } => Some(parts.clone()),
                    SourceKind::Derived { .. } => None,
                })
                .collect();
            for parts in tables {
                for column in self.policy.denied_columns_of(&parts) {
                    self.read(&parts, &column)?;
                }
            }
            return Ok(());
        }
        let right_columns = visible.get(right).cloned().flatten().unwrap_or_default();
        let left_columns: HashSet<String> = visible.iter().take(right).flatten().flatten().cloned().collect();
        for column in right_columns.iter().filter(|column| left_columns.contains(*column)) {
            for index in 0..=right {
                let has = visible
                    .get(index)
                    .and_then(Option::as_ref)
                    .is_some_and(|names| names.contains(column));
                if has {
                    self.column_of_source(frame, index, column)?;
                }
            }
        }
        Ok(())
    }

    /// Resolves every expression inside `node` (nested queries get their own scope).
    fn walk<V: Visit>(&mut self, node: &V) -> Result<(), GuardError> {
        let mut walker = ExprWalker {
            resolver: self,
            nested_query: None,
        };
        match node.visit(&mut walker) {
            ControlFlow::Break(error) => Err(error),
            ControlFlow::Continue(()) => Ok(()),
        }
    }

    fn expr(&mut self, expr: &Expr) -> Result<(), GuardError> {
        self.examined.exprs.insert(address(expr));
        match expr {
            Expr::Identifier(ident) => self.unqualified(&lower(ident)),
            Expr::CompoundIdentifier(idents) => {
                let parts: Vec<String> = idents.iter().map(lower).collect();
                self.compound(&parts)
            }
            Expr::QualifiedWildcard(name, _) => self.qualified_star(name, &HashSet::new()).map(|_| ()),
            Expr::Wildcard(_) => self.star_over_frame(&HashSet::new()).map(|_| ()),
            Expr::Function(function) => {
                let FunctionArguments::List(list) = &function.args else {
                    return Ok(());
                };
                let is_count = name_parts(&function.name)?.last().is_some_and(|name| name == "count");
                for arg in &list.args {
                    let arg = match arg {
                        FunctionArg::Named { arg, .. } | FunctionArg::ExprNamed { arg, .. } => arg,
                        FunctionArg::Unnamed(arg) => arg,
                    };
                    match arg {
                        // `count(*)` counts rows; elsewhere (`OBJECT_CONSTRUCT(*)`, `HASH(*)`)
                        // `*` hands every column to the function.
                        FunctionArgExpr::Wildcard if !is_count => {
                            self.star_over_frame(&HashSet::new())?;
                        }
                        FunctionArgExpr::QualifiedWildcard(name) => {
                            self.qualified_star(name, &HashSet::new())?;
                        }
                        FunctionArgExpr::Wildcard | FunctionArgExpr::Expr(_) => {}
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Refuses the statement unless the resolution examined every query, table factor and
    /// expression in it: a construct this module does not know (a new clause of sqlparser, a
    /// dialect's extension) could otherwise read a denied column unseen.
    fn ensure_examined(&self, query: &Query) -> Result<(), GuardError> {
        struct Census<'e> {
            examined: &'e Examined,
        }
        impl Visitor for Census<'_> {
            type Break = ();
            fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
                if self.examined.queries.contains(&address(query)) {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(())
                }
            }
            fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
                if self.examined.factors.contains(&address(factor)) {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(())
                }
            }
            fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
                if self.examined.exprs.contains(&address(expr)) {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(())
                }
            }
        }
        match query.visit(&mut Census {
            examined: &self.examined,
        }) {
            ControlFlow::Continue(()) => Ok(()),
            ControlFlow::Break(()) => Err(GuardError::Unsupported(
                "a clause the access policy cannot check".into(),
            )),
        }
    }
}

/// The walk of one expression tree: column names are resolved, a nested query is resolved in
/// its own scope (and its insides skipped here).
struct ExprWalker<'r, 'a> {
    resolver: &'r mut Resolver<'a>,
    /// The nested query being skipped, by address, once it has been resolved.
    nested_query: Option<usize>,
}

impl Visitor for ExprWalker<'_, '_> {
    type Break = GuardError;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<GuardError> {
        if self.nested_query.is_some() {
            return ControlFlow::Continue(());
        }
        self.nested_query = Some(address(query));
        into_flow(self.resolver.query(query).map(|_| ()))
    }

    fn post_visit_query(&mut self, query: &Query) -> ControlFlow<GuardError> {
        if self.nested_query == Some(address(query)) {
            self.nested_query = None;
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<GuardError> {
        if self.nested_query.is_some() {
            return ControlFlow::Continue(());
        }
        into_flow(self.resolver.expr(expr))
    }

    fn pre_visit_statement(&mut self, _statement: &Statement) -> ControlFlow<GuardError> {
        ControlFlow::Break(GuardError::DataModifyingCte)
    }
}

/// The name an output column gets from a bare column reference; other expressions get names
/// that differ by warehouse, so they are unknown.
fn expr_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(ident) => Some(lower(ident)),
        Expr::CompoundIdentifier(idents) => idents.last().map(lower),
        _ => None,
    }
}

fn alias_columns(alias: &TableAlias) -> Option<Vec<String>> {
    if alias.columns.is_empty() {
        None
    } else {
        Some(alias.columns.iter().map(|column| lower(&column.name)).collect())
    }
}

/// Output columns renamed by an alias's column list (`AS d(a, b)` renames the first two).
fn renamed(columns: Option<Vec<String>>, alias: Option<&TableAlias>) -> Option<Vec<String>> {
    let names: Vec<String> = alias
        .map(|alias| alias.columns.iter().map(|column| lower(&column.name)).collect())
        .unwrap_or_default();
    if names.is_empty() {
        return columns;
    }
    let mut columns = columns?;
    for (column, name) in columns.iter_mut().zip(names) {
        *column = name;
    }
    Some(columns)
}

/// Column names a wildcard leaves out (`* EXCLUDE (a)`, `* EXCEPT (a)`).
fn exclusions(
    options: Option<&WildcardAdditionalOptions>,
    select_exclude: Option<&sqlparser::ast::ExcludeSelectItem>,
) -> HashSet<String> {
    use sqlparser::ast::ExcludeSelectItem;
    let mut excluded = HashSet::new();
    let excludes = options
        .and_then(|options| options.opt_exclude.as_ref())
        .into_iter()
        .chain(select_exclude);
    for exclude in excludes {
        match exclude {
            ExcludeSelectItem::Single(ident) => {
                excluded.insert(lower(ident));
            }
            ExcludeSelectItem::Multiple(idents) => excluded.extend(idents.iter().map(lower)),
        }
    }
    if let Some(except) = options.and_then(|options| options.opt_except.as_ref()) {
        excluded.insert(lower(&except.first_element));
        excluded.extend(except.additional_elements.iter().map(lower));
    }
    excluded
}

// ---------------------------------------------------------------------------------------------
// Row filters

/// Replaces every reference to a row-filtered table (not a CTE of the same name) with
/// `(SELECT * FROM table WHERE (filter) OR (...)) AS alias`, keeping the reference's alias (or
/// the bare table name), so the rest of the query reads the same names. Returns the filters
/// applied, as shown in [`Disclosure::row_filters`].
pub(super) fn apply_row_filters(
    query: &mut Query,
    policy: &AccessPolicy,
    dialect: Dialect,
) -> Result<BTreeMap<String, Vec<String>>, GuardError> {
    if policy.row_filters.values().all(Vec::is_empty) {
        return Ok(BTreeMap::new());
    }
    let mut predicates = HashMap::new();
    for (table, texts) in &policy.row_filters {
        let table = normalized(table);
        let parsed: Result<Vec<Expr>, String> = texts.iter().map(|text| parse_predicate(text, dialect)).collect();
        let parsed = parsed.map_err(|_| GuardError::InvalidRowFilter(table.clone()))?;
        predicates.insert(table, parsed);
    }
    let mut rewriter = RowFilterRewriter {
        policy,
        dialect,
        predicates,
        scopes: CteScopes::new(dialect),
        applied: BTreeMap::new(),
    };
    if let ControlFlow::Break(error) = VisitMut::visit(query, &mut rewriter) {
        return Err(error);
    }
    Ok(rewriter.applied)
}

struct RowFilterRewriter<'a> {
    policy: &'a AccessPolicy,
    dialect: Dialect,
    /// Parsed predicates by lower-cased policy table.
    predicates: HashMap<String, Vec<Expr>>,
    scopes: CteScopes,
    /// Filters applied, by policy table, as the admin wrote them.
    applied: BTreeMap<String, Vec<String>>,
}

impl RowFilterRewriter<'_> {
    fn wrap(&mut self, factor: &mut TableFactor) -> Result<(), GuardError> {
        let TableFactor::Table { name, alias, args, .. } = factor else {
            return Ok(());
        };
        if self.scopes.is_cte(name) {
            return Ok(());
        }
        let parts = name_parts(name)?;
        let filters = self.policy.filters_of(&parts);
        if filters.is_empty() {
            return Ok(());
        }
        if args.is_some() {
            return Err(GuardError::Unsupported(format!(
                "{} called as a function while it has a row filter",
                parts.join(".")
            )));
        }
        // One filter entry: its predicates OR-ed; several entries naming the same table
        // (`customers` and `crm.customers`): each must hold.
        let mut condition: Option<Expr> = None;
        for (table, texts) in filters {
            let either = self
                .predicates
                .get(&table)
                .into_iter()
                .flatten()
                .map(|predicate| Expr::Nested(Box::new(predicate.clone())))
                .reduce(|left, right| Expr::BinaryOp {
                    left: Box::new(left),
                    op: BinaryOperator::Or,
                    right: Box::new(right),
                })
                .ok_or_else(|| GuardError::InvalidRowFilter(table.clone()))?;
            condition = Some(match condition {
                None => either,
                Some(both) => Expr::BinaryOp {
                    left: Box::new(both),
                    op: BinaryOperator::And,
                    right: Box::new(Expr::Nested(Box::new(either))),
                },
            });
            self.applied.insert(table, texts.to_vec());
        }
        let outer_alias = alias.take().unwrap_or_else(|| TableAlias {
            name: name
                .0
                .last()
                .and_then(|part| part.as_ident())
                .cloned()
                .unwrap_or_else(|| Ident::new("t")),
            columns: Vec::new(),
        });
        // The inner reference keeps the name as written (and any hints or time travel) but no
        // alias, so a filter qualified by the table's name resolves inside the wrapper.
        let inner = factor.clone();
        let mut wrapper = self.template()?;
        let SetExpr::Select(select) = wrapper.body.as_mut() else {
            return Err(GuardError::Unserializable);
        };
        let Some(from) = select.from.first_mut() else {
            return Err(GuardError::Unserializable);
        };
        from.relation = inner;
        select.selection = condition;
        *factor = TableFactor::Derived {
            lateral: false,
            subquery: Box::new(wrapper),
            alias: Some(outer_alias),
        };
        Ok(())
    }

    /// `SELECT * FROM t WHERE TRUE` in the dialect, whose table and condition are replaced:
    /// parsing it keeps every field of the tree as the parser itself fills it.
    fn template(&self) -> Result<Query, GuardError> {
        let parser_dialect = self.dialect.parser();
        let mut statements = Parser::parse_sql(parser_dialect.as_ref(), "SELECT * FROM t WHERE TRUE")
            .map_err(|_| GuardError::Unserializable)?;
        match statements.pop() {
            Some(Statement::Query(query)) => Ok(*query),
            _ => Err(GuardError::Unserializable),
        }
    }
}

impl VisitorMut for RowFilterRewriter<'_> {
    type Break = GuardError;

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<GuardError> {
        self.scopes.enter(query);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &mut Query) -> ControlFlow<GuardError> {
        self.scopes.exit();
        ControlFlow::Continue(())
    }

    /// After the factor's insides were visited, so the wrapper itself is never visited (and
    /// never wrapped again).
    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<GuardError> {
        into_flow(self.wrap(factor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> HashSet<String> {
        items.iter().map(|item| item.to_string()).collect()
    }

    #[test]
    fn builders_lower_case_names() {
        let policy = AccessPolicy::only_tables(["Customers", "orders"])
            .deny_column("Customers", "Email")
            .filter_rows("CUSTOMERS", " region = 'EMEA' ");
        assert_eq!(policy.tables, Some(set(&["customers", "orders"])));
        assert!(policy
            .denied_columns
            .contains(&("customers".to_string(), "email".to_string())));
        assert_eq!(
            policy.row_filters.get("customers"),
            Some(&vec!["region = 'EMEA'".to_string()])
        );
        assert_eq!(AccessPolicy::unrestricted().tables, None);
    }

    #[test]
    fn entries_match_bare_and_qualified_names() {
        let parts = |name: &str| name.split('.').map(str::to_string).collect::<Vec<_>>();
        assert!(names_relation("customers", &parts("customers")));
        assert!(names_relation("customers", &parts("crm.customers")));
        assert!(names_relation("crm.customers", &parts("crm.customers")));
        assert!(!names_relation("crm.customers", &parts("customers")));
        assert!(!names_relation("customers", &parts("customers_archive")));
        let policy = AccessPolicy::unrestricted().deny_column("customers", "email");
        assert!(policy.denies(&parts("crm.customers"), "email"));
        assert!(!policy.denies(&parts("orders"), "email"));
        assert_eq!(policy.denied_columns_of(&parts("customers")), vec!["email".to_string()]);
    }

    #[test]
    fn union_widens_tables_columns_and_rows() {
        let sales = AccessPolicy::only_tables(["customers", "orders"])
            .deny_column("customers", "email")
            .deny_column("customers", "phone")
            .filter_rows("customers", "region = 'EMEA'");
        let support = AccessPolicy::only_tables(["customers", "tickets"])
            .deny_column("customers", "phone")
            .filter_rows("customers", "region = 'US'");
        let both = AccessPolicy::union([sales.clone(), support]);
        assert_eq!(both.tables, Some(set(&["customers", "orders", "tickets"])));
        // email is visible to support, phone to nobody.
        assert_eq!(
            both.denied_columns,
            [("customers".to_string(), "phone".to_string())].into_iter().collect()
        );
        assert_eq!(
            both.row_filters.get("customers"),
            Some(&vec!["region = 'EMEA'".to_string(), "region = 'US'".to_string()])
        );

        // A role reading customers without a filter lifts the filter.
        let everyone = AccessPolicy::only_tables(["customers"]);
        let lifted = AccessPolicy::union([sales.clone(), everyone]);
        assert!(lifted.row_filters.is_empty());
        assert!(lifted.denied_columns.is_empty());

        // A role that does not read customers changes nothing about it.
        let other = AccessPolicy::only_tables(["orders"]);
        let same = AccessPolicy::union([sales.clone(), other]);
        assert_eq!(same.denied_columns, sales.denied_columns);
        assert_eq!(same.row_filters, sales.row_filters);

        // An unrestricted role reads everything.
        assert_eq!(
            AccessPolicy::union([sales, AccessPolicy::unrestricted()]),
            AccessPolicy::unrestricted()
        );
        // No role, no table.
        assert_eq!(AccessPolicy::union([]).tables, Some(HashSet::new()));
    }

    #[test]
    fn validate_accepts_plain_predicates_only() {
        let ok = AccessPolicy::unrestricted()
            .filter_rows("customers", "customers.region = 'EMEA'")
            .filter_rows("orders", "amount < 1000 AND status IN ('paid', 'open')");
        assert_eq!(ok.validate(Dialect::Postgres), Ok(()));
        for bad in [
            "region = 'EMEA' OR id IN (SELECT id FROM customers)",
            "pg_sleep(1) IS NULL",
            "region = 'EMEA'; DROP TABLE customers",
            "region = 'EMEA' region",
            "",
        ] {
            let policy = AccessPolicy::unrestricted().filter_rows("customers", bad);
            assert!(policy.validate(Dialect::Postgres).is_err(), "`{bad}` was accepted");
        }
    }

    #[test]
    fn output_names_and_aliases() {
        let alias = TableAlias {
            name: Ident::new("d"),
            columns: vec![sqlparser::ast::TableAliasColumnDef::from_name("a")],
        };
        assert_eq!(
            renamed(Some(vec!["x".into(), "y".into()]), Some(&alias)),
            Some(vec!["a".to_string(), "y".to_string()])
        );
        assert_eq!(renamed(None, Some(&alias)), None);
        assert_eq!(expr_name(&Expr::Identifier(Ident::new("Email"))), Some("email".into()));
    }
}
