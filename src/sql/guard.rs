//! SqlGuard: parses a statement in the warehouse's dialect and lets through only one read-only
//! query over allowed relations, with its LIMIT capped (every statement, from any interpreter).
//!
//! The guard never forwards the caller's text. It re-serializes the checked syntax tree, so
//! comments, odd whitespace and anything the parser did not understand cannot reach the
//! warehouse; and it re-parses its own output to prove the serialization means the same tree.
use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::{Arc, RwLock};

use sqlparser::ast::{
    Expr, Fetch, Ident, LimitClause, ObjectName, ObjectNamePart, Query, SetExpr, Statement, TableFactor, Value, Visit,
    VisitMut, Visitor, VisitorMut,
};
use sqlparser::parser::Parser;

use super::{Dialect, GuardedSql};

/// Longest statement the guard accepts. Interpreters write short queries; a huge one is either a
/// bug or an attempt to make parsing itself expensive.
pub const MAX_SQL_CHARS: usize = 100_000;

/// Functions that read or write files, reach other servers, sleep, take locks, change settings
/// or sequences, signal other sessions, or run SQL given as text (which would bypass the
/// relation check). Matched case-insensitively on the last part of the function name.
const DENIED_FUNCTIONS: &[&str] = &[
    // PostgreSQL
    "pg_stat_file",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_promote",
    "pg_logdir_ls",
    "pg_notify",
    "pg_import_system_collations",
    "set_config",
    "nextval",
    "setval",
    "ts_stat",
    "ts_rewrite",
    "txid_current",
    "pg_current_xact_id",
    // MySQL
    "load_file",
    "sleep",
    "benchmark",
    "get_lock",
    "release_lock",
    "release_all_locks",
    "is_free_lock",
    "is_used_lock",
    "master_pos_wait",
    "source_pos_wait",
    "wait_for_executed_gtid_set",
    "sys_exec",
    "sys_eval",
    // BigQuery: runs SQL text on a federated Cloud SQL or Spanner database (no relation check).
    "external_query",
    // SQLite
    "load_extension",
    "readfile",
    "writefile",
    "edit",
    "fts3_tokenizer",
];

/// Families of dangerous functions, matched as prefixes of the last part of the name.
const DENIED_FUNCTION_PREFIXES: &[&str] = &[
    "pg_sleep",        // pg_sleep, pg_sleep_for, pg_sleep_until
    "pg_read_",        // pg_read_file, pg_read_binary_file
    "pg_ls_",          // pg_ls_dir, pg_ls_logdir, pg_ls_waldir, ...
    "pg_file_",        // adminpack: pg_file_write, pg_file_rename, ...
    "pg_advisory",     // pg_advisory_lock*, pg_advisory_unlock*
    "pg_try_advisory", // pg_try_advisory_lock*
    "pg_stat_reset",   // resets statistics
    "pg_create_",      // replication slots, restore points
    "pg_drop_",        // replication slots
    "pg_replication_", // replication origin control
    "pg_logical_",     // logical decoding and messages
    "pg_backup_",      // pg_backup_start/stop
    "pg_start_backup", // pre-15 name
    "pg_stop_backup",  // pre-15 name
    "pg_switch_",      // pg_switch_wal
    "pg_wal_replay_",  // pause/resume replay
    "dblink",          // dblink, dblink_exec, dblink_connect, ...
    "lo_",             // large objects: lo_import, lo_export, lo_unlink, ...
    "query_to_xml",    // runs SQL text
    "cursor_to_xml",   // reads a cursor
    "table_to_xml",    // reads a whole table by name
    "schema_to_xml",   // reads a whole schema
    "database_to_xml", // reads the whole database
    "system$",         // Snowflake's system functions: cancel queries, wait, read stages, alter state
];

/// Set-returning functions that only compute values; they may appear in FROM even when an
/// allowed set is configured. Their arguments are still checked like any other expression.
const HARMLESS_TABLE_FUNCTIONS: &[&str] = &[
    "generate_series",
    "generate_subscripts",
    "unnest",
    "json_each",
    "json_each_text",
    "jsonb_each",
    "jsonb_each_text",
    "json_array_elements",
    "json_array_elements_text",
    "jsonb_array_elements",
    "jsonb_array_elements_text",
    "json_tree",
    "regexp_matches",
    "regexp_split_to_table",
    "string_to_table",
];

/// Schemas that hold the databases' own catalogs.
const SYSTEM_SCHEMAS: &[&str] = &[
    "pg_catalog",
    "pg_toast",
    "information_schema",
    "mysql",
    "performance_schema",
    "sys",
];

/// Unqualified names that resolve to catalogs: Postgres searches `pg_catalog` first, SQLite keeps
/// `sqlite_master`/`sqlite_schema`/`sqlite_stat*` and exposes PRAGMAs as `pragma_*` tables.
/// BigQuery's legacy meta-tables (`dataset.__TABLES__`, `__TABLES_SUMMARY__`) describe a data set.
const SYSTEM_RELATION_PREFIXES: &[&str] = &["pg_", "sqlite_", "pragma_", "__tables"];

/// Why a statement was refused. Each message is written for the person who asked the question.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("there is no SQL to run")]
    Empty,
    #[error("the SQL is too long ({0} characters; the limit is {MAX_SQL_CHARS})")]
    TooLong(usize),
    #[error("the SQL could not be parsed: {0}")]
    Parse(String),
    #[error("only one statement is allowed, but the SQL contains {0}")]
    MultipleStatements(usize),
    #[error("only read-only queries (SELECT) are allowed, not {0}")]
    NotAQuery(String),
    #[error("a WITH clause may not insert, update, delete or merge data")]
    DataModifyingCte,
    #[error("SELECT ... INTO is not allowed: queries may not create tables or write variables")]
    SelectInto,
    #[error("locking clauses (FOR UPDATE / FOR SHARE) are not allowed")]
    LockingClause,
    #[error("the function {0} is not allowed")]
    ForbiddenFunction(String),
    #[error("the table {0} is not one you are allowed to query")]
    RelationNotAllowed(String),
    /// Names the column as `table.column`, the table as the query wrote it.
    #[error("the column {0} is not one you are allowed to query")]
    ColumnNotAllowed(String),
    /// A row filter of the access policy (written by an admin) is not a plain predicate in the
    /// warehouse's dialect. Refusing keeps an unfiltered read from ever happening.
    #[error("the row filter configured for {0} is not valid, so the table cannot be queried")]
    InvalidRowFilter(String),
    #[error("the system catalog {0} cannot be queried")]
    SystemCatalog(String),
    #[error("this SQL construct is not supported: {0}")]
    Unsupported(String),
    /// The guard's own serialization did not parse back to the checked tree. Refusing is the
    /// only safe answer: the warehouse would run something other than what was checked.
    #[error("the query could not be rewritten safely")]
    Unserializable,
}

impl GuardError {
    /// Stable snake_case code for audit rows and metric labels.
    pub fn code(&self) -> &'static str {
        match self {
            GuardError::Empty => "empty",
            GuardError::TooLong(_) => "too_long",
            GuardError::Parse(_) => "parse_error",
            GuardError::MultipleStatements(_) => "multiple_statements",
            GuardError::NotAQuery(_) => "not_a_query",
            GuardError::DataModifyingCte => "data_modifying_cte",
            GuardError::SelectInto => "select_into",
            GuardError::LockingClause => "locking_clause",
            GuardError::ForbiddenFunction(_) => "forbidden_function",
            GuardError::RelationNotAllowed(_) => "relation_not_allowed",
            GuardError::ColumnNotAllowed(_) => "column_not_allowed",
            GuardError::InvalidRowFilter(_) => "invalid_row_filter",
            GuardError::SystemCatalog(_) => "system_catalog",
            GuardError::Unsupported(_) => "unsupported",
            GuardError::Unserializable => "unserializable",
        }
    }
}

/// The lower-cased column names of a table, when known (see [`SqlGuard::check_with_policy`]).
pub type ColumnsOf<'a> = &'a dyn Fn(&str) -> Option<Vec<String>>;

/// Checks statements for one warehouse and one set of allowed relations.
///
/// Relation matching is case-insensitive. An entry `orders` allows any reference whose table
/// name is `orders` (`orders`, `public.orders`); an entry `sales.orders` allows only references
/// qualified as `sales.orders`. System catalogs are refused unless the set names them exactly
/// as the query does (`pg_catalog.pg_tables`, `sqlite_master`).
///
/// Clones share the set: [`SqlGuard::set_allowed_relations`] on one (a reloaded schema) changes
/// what every clone allows.
#[derive(Debug, Clone)]
pub struct SqlGuard {
    dialect: Dialect,
    /// Lower-cased relation names the user may read; `None` allows every non-system relation.
    allowed_relations: Option<Arc<RwLock<Arc<HashSet<String>>>>>,
}

impl SqlGuard {
    pub fn new(dialect: Dialect, allowed_relations: Option<HashSet<String>>) -> Self {
        Self {
            dialect,
            allowed_relations: allowed_relations.map(|set| Arc::new(RwLock::new(Arc::new(lowercased(set))))),
        }
    }

    /// Replaces the allowed relations of this guard and its clones; a guard that allows every
    /// relation keeps doing so.
    pub fn set_allowed_relations(&self, relations: HashSet<String>) {
        let Some(shared) = &self.allowed_relations else { return };
        let relations = Arc::new(lowercased(relations));
        match shared.write() {
            Ok(mut current) => *current = relations,
            Err(poisoned) => *poisoned.into_inner() = relations,
        }
    }

    fn allowed(&self) -> Option<Arc<HashSet<String>>> {
        let shared = self.allowed_relations.as_ref()?;
        Some(match shared.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Checks `sql` and returns it, re-serialized, with a LIMIT of at most `row_cap`.
    pub fn check(&self, sql: &str, row_cap: u64) -> Result<GuardedSql, GuardError> {
        self.check_guarded(sql, row_cap, |_| Ok(()))
            .map(|(guarded, ())| guarded)
    }

    /// The checks every statement passes, with `step` run on the checked tree before its LIMIT
    /// is capped (an access policy's checks and rewrite, see `policy.rs`); the rewritten tree is
    /// what is proven to serialize faithfully.
    pub(super) fn check_guarded<T>(
        &self,
        sql: &str,
        row_cap: u64,
        step: impl FnOnce(&mut Query) -> Result<T, GuardError>,
    ) -> Result<(GuardedSql, T), GuardError> {
        let length = sql.chars().count();
        if length > MAX_SQL_CHARS {
            return Err(GuardError::TooLong(length));
        }
        let dialect = self.dialect.parser();
        let mut statements = Parser::parse_sql(dialect.as_ref(), sql).map_err(|e| GuardError::Parse(e.to_string()))?;
        let statement = match statements.len() {
            0 => return Err(GuardError::Empty),
            1 => statements.pop().ok_or(GuardError::Empty)?,
            n => return Err(GuardError::MultipleStatements(n)),
        };
        let mut query = match statement {
            Statement::Query(query) => query,
            other => return Err(GuardError::NotAQuery(statement_kind(&other))),
        };

        let allowed = self.allowed();
        self.check_relations(&query, allowed.as_deref())?;
        let stepped = step(&mut query)?;
        cap_limit(&mut query, row_cap)?;
        if self.dialect == Dialect::BigQuery {
            let _ = VisitMut::visit(&mut *query, &mut BigQueryQuotes);
        }

        let guarded = query.to_string();
        // Proves the text the warehouse will run parses to exactly the tree that was checked
        // (and, under a policy, rewritten).
        let reparsed = Parser::parse_sql(dialect.as_ref(), &guarded).map_err(|_| GuardError::Unserializable)?;
        match reparsed.as_slice() {
            [Statement::Query(again)] if **again == *query => Ok((GuardedSql::new(guarded), stepped)),
            _ => Err(GuardError::Unserializable),
        }
    }

    /// Runs the statement checks with `allowed` as the set of relations that may be read.
    pub(super) fn check_relations(&self, query: &Query, allowed: Option<&HashSet<String>>) -> Result<(), GuardError> {
        let mut checker = Checker {
            allowed,
            scopes: CteScopes::new(self.dialect),
        };
        match query.visit(&mut checker) {
            ControlFlow::Break(error) => Err(error),
            ControlFlow::Continue(()) => Ok(()),
        }
    }
}

pub(super) fn lowercased(relations: HashSet<String>) -> HashSet<String> {
    relations.into_iter().map(|name| name.trim().to_lowercase()).collect()
}

/// A short name for a refused statement ("INSERT", "DROP", "EXPLAIN") for the user's message.
fn statement_kind(statement: &Statement) -> String {
    let text = statement.to_string();
    let mut words = text.split_whitespace();
    let first = words.next().unwrap_or("this statement").to_uppercase();
    match first.as_str() {
        "CREATE" | "DROP" | "ALTER" | "TRUNCATE" => match words.next() {
            Some(second) if second.chars().all(|c| c.is_ascii_alphabetic()) => {
                format!("{first} {}", second.to_uppercase())
            }
            _ => first,
        },
        _ => first,
    }
}

/// CTE names visible inside one query, and what each of its CTE bodies may see.
struct Scope {
    /// [`cte_key`]s of the CTE names the query's body may reference.
    visible: HashSet<String>,
    /// For each CTE body (by address of its `Query`), the names visible inside it.
    cte_bodies: Vec<(usize, HashSet<String>)>,
}

/// Which names are CTEs at each point of a walk over nested queries: the statement checks, the
/// column resolution of the access policy and its row-filter rewrite must agree on it, or a
/// table could pass for a CTE in one of them.
pub(super) struct CteScopes {
    dialect: Dialect,
    scopes: Vec<Scope>,
}

impl CteScopes {
    pub(super) fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            scopes: Vec::new(),
        }
    }

    /// To be called before the parts of `query` are walked (and [`CteScopes::exit`] after).
    pub(super) fn enter(&mut self, query: &Query) {
        let address = query as *const Query as usize;
        // A CTE body sees the CTEs defined before it (all of them under RECURSIVE); any other
        // nested query sees what its parent's body sees.
        let base = match self.scopes.last() {
            None => HashSet::new(),
            Some(parent) => parent
                .cte_bodies
                .iter()
                .find(|(body, _)| *body == address)
                .map(|(_, names)| names.clone())
                .unwrap_or_else(|| parent.visible.clone()),
        };
        let mut visible = base.clone();
        let mut cte_bodies = Vec::new();
        if let Some(with) = &query.with {
            let names: Vec<String> = with
                .cte_tables
                .iter()
                .map(|cte| cte_key(&cte.alias.name, self.dialect))
                .collect();
            for (index, cte) in with.cte_tables.iter().enumerate() {
                let mut seen = base.clone();
                let upto = if with.recursive { names.len() } else { index };
                seen.extend(names.iter().take(upto).cloned());
                cte_bodies.push((&*cte.query as *const Query as usize, seen));
            }
            visible.extend(names);
        }
        self.scopes.push(Scope { visible, cte_bodies });
    }

    pub(super) fn exit(&mut self) {
        self.scopes.pop();
    }

    /// Whether `name`, met in a FROM clause of the query entered last, names a CTE.
    pub(super) fn is_cte(&self, name: &ObjectName) -> bool {
        match name.0.as_slice() {
            [ObjectNamePart::Identifier(ident)] => self.is_cte_ident(ident),
            _ => false,
        }
    }

    fn is_cte_ident(&self, ident: &Ident) -> bool {
        self.scopes
            .last()
            .is_some_and(|scope| scope.visible.contains(&cte_key(ident, self.dialect)))
    }
}

/// The form under which the warehouse compares a CTE name with a table reference. Treating a
/// reference as a CTE when the warehouse reads a table would skip the relation and column checks
/// (`WITH "Secrets" AS (...) SELECT * FROM secrets` reads the table `secrets` in PostgreSQL), so
/// where the folding is uncertain the comparison is exact and the reference counts as a table.
pub(super) fn cte_key(ident: &Ident, dialect: Dialect) -> String {
    let quoted = ident.quote_style.is_some();
    match dialect {
        Dialect::Postgres if !quoted => ident.value.to_lowercase(),
        Dialect::Snowflake if !quoted => ident.value.to_uppercase(),
        // SQLite compares identifiers case-insensitively, quoted or not.
        Dialect::Sqlite => ident.value.to_lowercase(),
        // Quoted names in PostgreSQL and Snowflake; MySQL and BigQuery, whose case sensitivity
        // depends on the server's settings and on the kind of name.
        Dialect::Postgres | Dialect::Snowflake | Dialect::MySql | Dialect::BigQuery => ident.value.clone(),
    }
}

/// Walks the whole tree: every query (top level, CTE bodies, derived tables, expression
/// subqueries, set-operation branches), every table factor and every expression.
struct Checker<'a> {
    allowed: Option<&'a HashSet<String>>,
    scopes: CteScopes,
}

impl Checker<'_> {
    fn check_query(&self, query: &Query) -> Result<(), GuardError> {
        if !query.locks.is_empty() {
            return Err(GuardError::LockingClause);
        }
        if query.for_clause.is_some() {
            return Err(GuardError::Unsupported("FOR XML / FOR JSON".into()));
        }
        if !query.pipe_operators.is_empty() {
            return Err(GuardError::Unsupported("pipe operators".into()));
        }
        if query.settings.is_some() || query.format_clause.is_some() {
            return Err(GuardError::Unsupported("SETTINGS / FORMAT".into()));
        }
        self.check_set_expr(&query.body)
    }

    /// Checks the parts of a query body the generic visitor has no hook for. Nested `Query`
    /// nodes are skipped here because the visitor enters them on its own.
    fn check_set_expr(&self, body: &SetExpr) -> Result<(), GuardError> {
        match body {
            SetExpr::Select(select) => {
                if select.into.is_some() {
                    return Err(GuardError::SelectInto);
                }
                Ok(())
            }
            SetExpr::SetOperation { left, right, .. } => {
                self.check_set_expr(left)?;
                self.check_set_expr(right)
            }
            SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => {
                Err(GuardError::DataModifyingCte)
            }
            // `TABLE name` reads a relation without a table factor.
            SetExpr::Table(table) => {
                let parts: Vec<String> = [&table.schema_name, &table.table_name]
                    .into_iter()
                    .flatten()
                    .map(|part| part.to_lowercase())
                    .collect();
                let is_cte = table.schema_name.is_none()
                    && table
                        .table_name
                        .as_ref()
                        .is_some_and(|name| self.scopes.is_cte_ident(&Ident::new(name.as_str())));
                if is_cte {
                    return Ok(());
                }
                self.check_relation_parts(&parts)
            }
            SetExpr::Query(_) | SetExpr::Values(_) => Ok(()),
        }
    }

    fn check_table_factor(&self, factor: &TableFactor) -> Result<(), GuardError> {
        match factor {
            TableFactor::Table { name, args, .. } => {
                let parts = name_parts(name)?;
                if args.is_some() {
                    // `FROM f(...)`: a table-valued function call, not a table.
                    check_function_name(&parts)?;
                    if is_harmless_table_function(&parts) {
                        return Ok(());
                    }
                }
                if self.scopes.is_cte(name) {
                    return Ok(());
                }
                self.check_relation_parts(&parts)
            }
            TableFactor::Function { name, .. } => {
                let parts = name_parts(name)?;
                check_function_name(&parts)?;
                if is_harmless_table_function(&parts) {
                    Ok(())
                } else {
                    self.check_relation_parts(&parts)
                }
            }
            _ => Ok(()),
        }
    }

    /// `parts` are the lower-cased parts of a relation name (not a CTE), outermost first.
    fn check_relation_parts(&self, parts: &[String]) -> Result<(), GuardError> {
        let display = parts.join(".");
        let Some(table) = parts.last() else {
            return Err(GuardError::Unsupported("an empty relation name".into()));
        };
        let schema = parts.len().checked_sub(2).and_then(|i| parts.get(i));
        let is_system = schema.is_some_and(|s| SYSTEM_SCHEMAS.contains(&s.as_str()))
            || SYSTEM_RELATION_PREFIXES.iter().any(|prefix| table.starts_with(prefix));
        if is_system {
            // Catalogs only with an explicit entry spelled as in the query.
            return if self.allowed.is_some_and(|allowed| allowed.contains(&display)) {
                Ok(())
            } else {
                Err(GuardError::SystemCatalog(display))
            };
        }
        let Some(allowed) = self.allowed else {
            return Ok(());
        };
        // The full name, the schema-qualified name and the bare table name may each match.
        let candidates = (0..parts.len()).rev().filter_map(|start| parts.get(start..));
        if candidates.into_iter().any(|suffix| allowed.contains(&suffix.join("."))) {
            Ok(())
        } else {
            Err(GuardError::RelationNotAllowed(display))
        }
    }
}

impl Visitor for Checker<'_> {
    type Break = GuardError;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<GuardError> {
        self.scopes.enter(query);
        into_flow(self.check_query(query))
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<GuardError> {
        self.scopes.exit();
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<GuardError> {
        into_flow(self.check_table_factor(factor))
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<GuardError> {
        match expr {
            Expr::Function(function) => {
                into_flow(name_parts(&function.name).and_then(|parts| check_function_name(&parts)))
            }
            _ => ControlFlow::Continue(()),
        }
    }

    /// The visitor is started on the top-level query, so any statement it meets is nested in a
    /// query: a data-modifying CTE or something stranger.
    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<GuardError> {
        match statement {
            Statement::Insert(_) | Statement::Update { .. } | Statement::Delete(_) | Statement::Merge { .. } => {
                ControlFlow::Break(GuardError::DataModifyingCte)
            }
            Statement::Query(_) => ControlFlow::Continue(()),
            other => ControlFlow::Break(GuardError::NotAQuery(statement_kind(other))),
        }
    }
}

/// sqlparser writes a quote inside a string literal doubled (`'it''s'`), which BigQuery reads
/// as two literals side by side and refuses; BigQuery's double-quoted literal holds the quote
/// as it is (`"it's"`). A literal holding both quotes, or a backslash (an escape to BigQuery,
/// printed raw by sqlparser), does not read back the same and is refused as unserializable.
struct BigQueryQuotes;

impl VisitorMut for BigQueryQuotes {
    type Break = ();

    fn pre_visit_value(&mut self, value: &mut Value) -> ControlFlow<()> {
        if let Value::SingleQuotedString(text) = value {
            if text.contains('\'') && !text.contains('"') {
                *value = Value::DoubleQuotedString(std::mem::take(text));
            }
        }
        ControlFlow::Continue(())
    }
}

pub(super) fn into_flow(result: Result<(), GuardError>) -> ControlFlow<GuardError> {
    match result {
        Ok(()) => ControlFlow::Continue(()),
        Err(error) => ControlFlow::Break(error),
    }
}

/// Lower-cased identifier parts of a name. Names built by functions at run time (Snowflake's
/// `IDENTIFIER(...)`) cannot be checked, so they are refused.
pub(super) fn name_parts(name: &ObjectName) -> Result<Vec<String>, GuardError> {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => Ok(ident.value.to_lowercase()),
            ObjectNamePart::Function(_) => Err(GuardError::Unsupported("names computed at run time".into())),
        })
        .collect()
}

pub(super) fn check_function_name(parts: &[String]) -> Result<(), GuardError> {
    let Some(last) = parts.last() else {
        return Ok(());
    };
    let denied = DENIED_FUNCTIONS.contains(&last.as_str())
        || DENIED_FUNCTION_PREFIXES.iter().any(|prefix| last.starts_with(prefix));
    if denied {
        Err(GuardError::ForbiddenFunction(last.clone()))
    } else {
        Ok(())
    }
}

pub(super) fn is_harmless_table_function(parts: &[String]) -> bool {
    let schema_ok = match parts {
        [_] => true,
        [schema, _] => schema == "pg_catalog" || schema == "main",
        _ => false,
    };
    schema_ok
        && parts
            .last()
            .is_some_and(|name| HARMLESS_TABLE_FUNCTIONS.contains(&name.as_str()))
}

/// Makes the top-level row count at most `row_cap`: adds a LIMIT when there is none, lowers a
/// larger one, and replaces one that is not a plain non-negative integer (an expression, a
/// parameter, or SQLite's "negative means no limit").
fn cap_limit(query: &mut Query, row_cap: u64) -> Result<(), GuardError> {
    if let Some(fetch) = &mut query.fetch {
        // FETCH FIRST n ROWS ONLY is a LIMIT in other words; PERCENT and WITH TIES can return
        // more than n rows, so they cannot be bounded this way.
        if fetch.percent || fetch.with_ties {
            return Err(GuardError::Unsupported("FETCH ... PERCENT / WITH TIES".into()));
        }
        cap_fetch(fetch, row_cap);
        if query.limit_clause.is_none() {
            return Ok(());
        }
    }
    match &mut query.limit_clause {
        None => {
            query.limit_clause = Some(LimitClause::LimitOffset {
                limit: Some(cap_expr(row_cap)),
                offset: None,
                limit_by: Vec::new(),
            });
        }
        Some(LimitClause::LimitOffset { limit, .. }) => {
            let capped = match limit.take() {
                Some(expr) if literal_limit(&expr).is_some_and(|n| n <= row_cap) => expr,
                _ => cap_expr(row_cap),
            };
            *limit = Some(capped);
        }
        Some(LimitClause::OffsetCommaLimit { limit, .. }) => {
            if literal_limit(limit).is_none_or(|n| n > row_cap) {
                *limit = cap_expr(row_cap);
            }
        }
    }
    Ok(())
}

fn cap_fetch(fetch: &mut Fetch, row_cap: u64) {
    let keep = match &fetch.quantity {
        // FETCH FIRST ROW ONLY means one row.
        None => 1 <= row_cap,
        Some(expr) => literal_limit(expr).is_some_and(|n| n <= row_cap),
    };
    if !keep {
        fetch.quantity = Some(cap_expr(row_cap));
    }
}

fn literal_limit(expr: &Expr) -> Option<u64> {
    match expr {
        Expr::Value(value) => match &value.value {
            Value::Number(digits, _) => digits.parse::<u64>().ok(),
            _ => None,
        },
        _ => None,
    }
}

fn cap_expr(row_cap: u64) -> Expr {
    Expr::Value(Value::Number(row_cap.to_string(), false).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: u64 = 100;

    fn allowed(names: &[&str]) -> Option<HashSet<String>> {
        Some(names.iter().map(|name| name.to_string()).collect())
    }

    fn postgres() -> SqlGuard {
        SqlGuard::new(Dialect::Postgres, allowed(&["orders", "customers", "sales.regions"]))
    }

    /// Runs each case through `guard` and checks the error code it is refused with.
    fn assert_rejected(guard: &SqlGuard, cases: &[(&str, &str, &str)]) {
        for (description, sql, code) in cases {
            match guard.check(sql, CAP) {
                Ok(guarded) => panic!("{description}: `{sql}` was accepted as `{guarded}`"),
                Err(error) => assert_eq!(
                    error.code(),
                    *code,
                    "{description}: `{sql}` was refused for the wrong reason: {error}"
                ),
            }
        }
    }

    fn assert_accepted(guard: &SqlGuard, cases: &[(&str, &str, &str)]) {
        for (description, sql, expected) in cases {
            match guard.check(sql, CAP) {
                Ok(guarded) => assert_eq!(guarded.as_str(), *expected, "{description}"),
                Err(error) => panic!("{description}: `{sql}` was refused: {error}"),
            }
        }
    }

    #[test]
    fn writes_and_other_statements_are_rejected() {
        assert_rejected(
            &SqlGuard::new(Dialect::Postgres, None),
            &[
                ("insert", "INSERT INTO orders VALUES (1)", "not_a_query"),
                ("update", "UPDATE orders SET amount = 0", "not_a_query"),
                ("delete", "DELETE FROM orders", "not_a_query"),
                (
                    "merge",
                    "MERGE INTO orders o USING customers c ON o.id = c.id WHEN MATCHED THEN DELETE",
                    "not_a_query",
                ),
                ("drop", "DROP TABLE orders", "not_a_query"),
                ("create", "CREATE TABLE x (id int)", "not_a_query"),
                (
                    "create table as",
                    "CREATE TABLE x AS SELECT * FROM orders",
                    "not_a_query",
                ),
                ("alter", "ALTER TABLE orders ADD COLUMN x int", "not_a_query"),
                ("truncate", "TRUNCATE orders", "not_a_query"),
                ("copy", "COPY orders TO '/tmp/x'", "not_a_query"),
                ("set", "SET statement_timeout = 0", "not_a_query"),
                ("call", "CALL do_things()", "not_a_query"),
                ("grant", "GRANT ALL ON orders TO public", "not_a_query"),
                ("begin", "BEGIN", "not_a_query"),
                ("commit", "COMMIT", "not_a_query"),
                ("explain analyze", "EXPLAIN ANALYZE SELECT * FROM orders", "not_a_query"),
                ("explain", "EXPLAIN SELECT * FROM orders", "not_a_query"),
                ("empty", "", "empty"),
                ("only a comment", "-- nothing here", "empty"),
                ("only semicolons", ";", "empty"),
                ("garbage", "SELEC * FROM orders", "parse_error"),
            ],
        );
        assert_rejected(
            &SqlGuard::new(Dialect::Sqlite, None),
            &[
                ("pragma", "PRAGMA writable_schema = 1", "not_a_query"),
                ("attach", "ATTACH DATABASE '/tmp/x.db' AS x", "not_a_query"),
            ],
        );
    }

    #[test]
    fn more_than_one_statement_is_rejected_even_when_hidden_by_comments() {
        assert_rejected(
            &SqlGuard::new(Dialect::Postgres, None),
            &[
                ("two statements", "SELECT 1; DROP TABLE x", "multiple_statements"),
                ("two selects", "SELECT 1; SELECT 2", "multiple_statements"),
                (
                    "after a line comment",
                    "SELECT 1 -- x\n; DELETE FROM t",
                    "multiple_statements",
                ),
                (
                    "after a block comment",
                    "SELECT 1 /* ; */ ; DELETE FROM t",
                    "multiple_statements",
                ),
                (
                    "inside a block comment split",
                    "SELECT 1 /* x */; /* y */ DELETE FROM t",
                    "multiple_statements",
                ),
                ("no space", "SELECT 1;DELETE FROM t", "multiple_statements"),
            ],
        );
    }

    #[test]
    fn comments_never_reach_the_warehouse() {
        assert_accepted(
            &SqlGuard::new(Dialect::Postgres, None),
            &[
                ("line comment", "SELECT 1 -- ; DELETE FROM t", "SELECT 1 LIMIT 100"),
                ("block comment", "SELECT /* ; DROP TABLE x */ 1", "SELECT 1 LIMIT 100"),
                ("trailing semicolon", "SELECT 1;", "SELECT 1 LIMIT 100"),
                (
                    "nested block comment",
                    "SELECT 1 /* /* */ DELETE FROM t */",
                    "SELECT 1 LIMIT 100",
                ),
            ],
        );
        // MySQL runs the body of `/*! ... */`; the guard drops it like any other comment.
        assert_accepted(
            &SqlGuard::new(Dialect::MySql, None),
            &[(
                "executable comment",
                "SELECT /*!50000 load_file('/etc/passwd'), */ 2",
                "SELECT 2 LIMIT 100",
            )],
        );
    }

    #[test]
    fn denylisted_functions_are_rejected_wherever_they_appear() {
        let code = "forbidden_function";
        assert_rejected(
            &postgres(),
            &[
                ("select list", "SELECT pg_sleep(10)", code),
                ("qualified name", "SELECT pg_catalog.pg_sleep(10)", code),
                ("upper case", "SELECT PG_SLEEP(10)", code),
                ("quoted name", "SELECT \"pg_sleep\"(10)", code),
                ("where", "SELECT * FROM orders WHERE pg_sleep(1) IS NULL", code),
                ("scalar subquery", "SELECT (SELECT pg_read_file('/etc/passwd'))", code),
                (
                    "in subquery",
                    "SELECT * FROM orders WHERE id IN (SELECT lo_import('/etc/passwd'))",
                    code,
                ),
                ("cte body", "WITH x AS (SELECT pg_ls_dir('.')) SELECT * FROM x", code),
                (
                    "nested call",
                    "SELECT upper(current_setting(set_config('a', 'b', false)))",
                    code,
                ),
                ("order by", "SELECT * FROM orders ORDER BY pg_sleep(1)", code),
                (
                    "having",
                    "SELECT id FROM orders GROUP BY id HAVING count(pg_cancel_backend(1)) > 0",
                    code,
                ),
                (
                    "dblink in from",
                    "SELECT * FROM dblink('host=x', 'select 1') AS t(a int)",
                    code,
                ),
                ("table function in from", "SELECT * FROM pg_ls_dir('.') AS f", code),
                ("sequence", "SELECT nextval('orders_id_seq')", code),
                ("advisory lock", "SELECT pg_advisory_lock(1)", code),
                (
                    "sql as text",
                    "SELECT query_to_xml('select * from secrets', true, true, '')",
                    code,
                ),
                (
                    "table read by name",
                    "SELECT table_to_xml('secrets', true, true, '')",
                    code,
                ),
                (
                    "ts_stat runs sql",
                    "SELECT * FROM ts_stat('select v from secrets')",
                    code,
                ),
                ("terminate", "SELECT pg_terminate_backend(1)", code),
            ],
        );
        assert_rejected(
            &SqlGuard::new(Dialect::MySql, None),
            &[
                ("sleep", "SELECT SLEEP(5)", code),
                ("benchmark", "SELECT BENCHMARK(1000000, MD5('a'))", code),
                ("load_file", "SELECT LOAD_FILE('/etc/passwd')", code),
            ],
        );
        assert_rejected(
            &SqlGuard::new(Dialect::Sqlite, None),
            &[
                ("load_extension", "SELECT load_extension('/tmp/evil.so')", code),
                ("readfile", "SELECT readfile('/etc/passwd')", code),
                ("writefile", "SELECT writefile('/tmp/x', 'y')", code),
            ],
        );
    }

    #[test]
    fn harmless_functions_are_allowed() {
        assert_accepted(
            &postgres(),
            &[
                (
                    "current_setting and aggregates",
                    "SELECT current_setting('TimeZone'), count(*), sum(amount) FROM orders",
                    "SELECT current_setting('TimeZone'), count(*), sum(amount) FROM orders LIMIT 100",
                ),
                (
                    "generate_series in from",
                    "SELECT d FROM generate_series(1, 3) AS d",
                    "SELECT d FROM generate_series(1, 3) AS d LIMIT 100",
                ),
                (
                    "a column named like a function family",
                    "SELECT lo_value FROM orders",
                    "SELECT lo_value FROM orders LIMIT 100",
                ),
            ],
        );
    }

    #[test]
    fn relations_outside_the_allowed_set_are_rejected() {
        let code = "relation_not_allowed";
        assert_rejected(
            &postgres(),
            &[
                ("from", "SELECT * FROM secrets", code),
                ("join", "SELECT * FROM orders o JOIN secrets s ON s.id = o.id", code),
                ("comma join", "SELECT * FROM orders, secrets", code),
                ("derived table", "SELECT * FROM (SELECT * FROM secrets) s", code),
                (
                    "where subquery",
                    "SELECT * FROM orders WHERE id IN (SELECT id FROM secrets)",
                    code,
                ),
                (
                    "exists",
                    "SELECT * FROM orders WHERE EXISTS (SELECT 1 FROM secrets)",
                    code,
                ),
                (
                    "scalar subquery",
                    "SELECT (SELECT max(x) FROM secrets) FROM orders",
                    code,
                ),
                ("cte body", "WITH s AS (SELECT * FROM secrets) SELECT * FROM s", code),
                ("union", "SELECT id FROM orders UNION SELECT id FROM secrets", code),
                (
                    "union all nested",
                    "SELECT id FROM orders UNION ALL (SELECT id FROM customers EXCEPT SELECT id FROM secrets)",
                    code,
                ),
                (
                    "lateral",
                    "SELECT * FROM orders o, LATERAL (SELECT * FROM secrets s WHERE s.id = o.id) x",
                    code,
                ),
                (
                    "other schema for a qualified entry",
                    "SELECT * FROM public.regions",
                    code,
                ),
                ("unqualified name for a qualified entry", "SELECT * FROM regions", code),
                ("table syntax", "SELECT id FROM orders UNION TABLE secrets", code),
                ("unknown table function", "SELECT * FROM my_function(1)", code),
                (
                    "cte name used before it is defined",
                    "WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a",
                    code,
                ),
                (
                    "cte shadowing a table it reads",
                    "WITH secrets AS (SELECT * FROM secrets) SELECT * FROM secrets",
                    code,
                ),
                (
                    "cte name out of scope",
                    "SELECT * FROM (WITH secrets AS (SELECT 1) SELECT * FROM secrets) x, secrets",
                    code,
                ),
                (
                    "qualified name is not the cte",
                    "WITH s AS (SELECT 1) SELECT * FROM public.s",
                    code,
                ),
            ],
        );
    }

    #[test]
    fn system_catalogs_are_rejected_unless_explicitly_allowed() {
        let code = "system_catalog";
        let open = SqlGuard::new(Dialect::Postgres, None);
        assert_rejected(
            &open,
            &[
                ("pg_catalog", "SELECT * FROM pg_catalog.pg_authid", code),
                ("unqualified pg_ table", "SELECT * FROM pg_shadow", code),
                ("information_schema", "SELECT * FROM information_schema.tables", code),
                ("mysql schema", "SELECT * FROM mysql.user", code),
            ],
        );
        assert_rejected(
            &SqlGuard::new(Dialect::Sqlite, None),
            &[
                ("sqlite_master", "SELECT * FROM sqlite_master", code),
                ("sqlite_schema", "SELECT sql FROM main.sqlite_schema", code),
                ("pragma table", "SELECT * FROM pragma_table_info('orders')", code),
            ],
        );
        let explicit = SqlGuard::new(Dialect::Postgres, allowed(&["information_schema.columns"]));
        assert_accepted(
            &explicit,
            &[(
                "explicitly allowed catalog",
                "SELECT column_name FROM information_schema.columns",
                "SELECT column_name FROM information_schema.columns LIMIT 100",
            )],
        );
        assert_rejected(
            &SqlGuard::new(Dialect::Postgres, allowed(&["tables"])),
            &[(
                "bare entry does not open a catalog",
                "SELECT * FROM information_schema.tables",
                code,
            )],
        );
    }

    #[test]
    fn select_into_locking_and_data_modifying_ctes_are_rejected() {
        let guard = SqlGuard::new(Dialect::Postgres, None);
        assert_rejected(
            &guard,
            &[
                ("select into", "SELECT * INTO copy_of_orders FROM orders", "select_into"),
                (
                    "select into in a union",
                    "SELECT 1 UNION SELECT * INTO x FROM orders",
                    "select_into",
                ),
                ("for update", "SELECT * FROM orders FOR UPDATE", "locking_clause"),
                ("for share", "SELECT * FROM orders FOR SHARE", "locking_clause"),
                (
                    "for update in subquery",
                    "SELECT * FROM (SELECT * FROM orders FOR UPDATE) o",
                    "locking_clause",
                ),
                (
                    "delete cte",
                    "WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d",
                    "data_modifying_cte",
                ),
                (
                    "insert cte",
                    "WITH d AS (INSERT INTO orders VALUES (1) RETURNING *) SELECT * FROM d",
                    "data_modifying_cte",
                ),
                (
                    "update cte",
                    "WITH d AS (UPDATE orders SET amount = 0 RETURNING *) SELECT * FROM d",
                    "data_modifying_cte",
                ),
                (
                    "fetch with ties",
                    "SELECT * FROM orders ORDER BY amount FETCH FIRST 5 ROWS WITH TIES",
                    "unsupported",
                ),
            ],
        );
        assert_rejected(
            &SqlGuard::new(Dialect::MySql, None),
            &[("for update", "SELECT * FROM orders FOR UPDATE", "locking_clause")],
        );
    }

    #[test]
    fn limits_are_added_capped_or_kept() {
        assert_accepted(
            &postgres(),
            &[
                ("no limit", "SELECT * FROM orders", "SELECT * FROM orders LIMIT 100"),
                (
                    "larger limit",
                    "SELECT * FROM orders LIMIT 100000",
                    "SELECT * FROM orders LIMIT 100",
                ),
                (
                    "smaller limit",
                    "SELECT * FROM orders LIMIT 5",
                    "SELECT * FROM orders LIMIT 5",
                ),
                (
                    "equal limit",
                    "SELECT * FROM orders LIMIT 100",
                    "SELECT * FROM orders LIMIT 100",
                ),
                (
                    "expression limit",
                    "SELECT * FROM orders LIMIT 2 * 1000",
                    "SELECT * FROM orders LIMIT 100",
                ),
                (
                    "subquery limit",
                    "SELECT * FROM orders LIMIT (SELECT 5)",
                    "SELECT * FROM orders LIMIT 100",
                ),
                (
                    "limit all",
                    "SELECT * FROM orders LIMIT ALL",
                    "SELECT * FROM orders LIMIT 100",
                ),
                (
                    "offset kept",
                    "SELECT * FROM orders LIMIT 10 OFFSET 20",
                    "SELECT * FROM orders LIMIT 10 OFFSET 20",
                ),
                (
                    "offset only",
                    "SELECT * FROM orders OFFSET 20",
                    "SELECT * FROM orders LIMIT 100 OFFSET 20",
                ),
                (
                    "union gets one outer limit",
                    "SELECT id FROM orders UNION SELECT id FROM customers",
                    "SELECT id FROM orders UNION SELECT id FROM customers LIMIT 100",
                ),
                (
                    "inner limits untouched",
                    "SELECT * FROM (SELECT * FROM orders LIMIT 5000) o",
                    "SELECT * FROM (SELECT * FROM orders LIMIT 5000) AS o LIMIT 100",
                ),
                (
                    "fetch capped",
                    "SELECT * FROM orders FETCH FIRST 500 ROWS ONLY",
                    "SELECT * FROM orders FETCH FIRST 100 ROWS ONLY",
                ),
                (
                    "fetch kept",
                    "SELECT * FROM orders FETCH FIRST 5 ROWS ONLY",
                    "SELECT * FROM orders FETCH FIRST 5 ROWS ONLY",
                ),
            ],
        );
        assert_accepted(
            &SqlGuard::new(Dialect::Sqlite, None),
            &[(
                "negative limit means unlimited in sqlite",
                "SELECT * FROM orders LIMIT -1",
                "SELECT * FROM orders LIMIT 100",
            )],
        );
        assert_accepted(
            &SqlGuard::new(Dialect::MySql, None),
            &[
                (
                    "offset comma limit capped",
                    "SELECT * FROM orders LIMIT 10, 5000",
                    "SELECT * FROM orders LIMIT 10, 100",
                ),
                (
                    "offset comma limit kept",
                    "SELECT * FROM orders LIMIT 10, 5",
                    "SELECT * FROM orders LIMIT 10, 5",
                ),
            ],
        );
    }

    #[test]
    fn cte_names_and_case_differences_are_allowed() {
        assert_accepted(
            &postgres(),
            &[
                (
                    "cte name",
                    "WITH recent AS (SELECT * FROM orders) SELECT * FROM recent",
                    "WITH recent AS (SELECT * FROM orders) SELECT * FROM recent LIMIT 100",
                ),
                (
                    "cte referencing an earlier cte",
                    "WITH a AS (SELECT * FROM orders), b AS (SELECT * FROM a) SELECT * FROM b",
                    "WITH a AS (SELECT * FROM orders), b AS (SELECT * FROM a) SELECT * FROM b LIMIT 100",
                ),
                (
                    "recursive cte",
                    "WITH RECURSIVE n AS (SELECT 1 AS i UNION ALL SELECT i + 1 FROM n WHERE i < 5) SELECT * FROM n",
                    "WITH RECURSIVE n AS (SELECT 1 AS i UNION ALL SELECT i + 1 FROM n WHERE i < 5) SELECT * FROM n LIMIT 100",
                ),
                (
                    "cte visible in a subquery",
                    "WITH r AS (SELECT id FROM orders) SELECT * FROM customers WHERE id IN (SELECT id FROM r)",
                    "WITH r AS (SELECT id FROM orders) SELECT * FROM customers WHERE id IN (SELECT id FROM r) LIMIT 100",
                ),
                ("upper case table", "SELECT * FROM ORDERS", "SELECT * FROM ORDERS LIMIT 100"),
                ("quoted mixed case", "SELECT * FROM \"Orders\"", "SELECT * FROM \"Orders\" LIMIT 100"),
                ("schema qualified bare entry", "SELECT * FROM public.orders", "SELECT * FROM public.orders LIMIT 100"),
                ("qualified entry", "SELECT * FROM Sales.Regions", "SELECT * FROM Sales.Regions LIMIT 100"),
                ("upper case cte", "WITH R AS (SELECT 1) SELECT * FROM r", "WITH R AS (SELECT 1) SELECT * FROM r LIMIT 100"),
            ],
        );
    }

    #[test]
    fn a_cte_named_in_another_case_does_not_hide_a_table() {
        // PostgreSQL folds `secrets` to lower case but keeps "Secrets": the query reads the table.
        assert_rejected(
            &postgres(),
            &[
                (
                    "quoted cte, bare reference",
                    "WITH \"Secrets\" AS (SELECT 1) SELECT * FROM secrets",
                    "relation_not_allowed",
                ),
                (
                    "bare cte, quoted reference",
                    "WITH secrets AS (SELECT 1) SELECT * FROM \"Secrets\"",
                    "relation_not_allowed",
                ),
            ],
        );
        // Snowflake folds to upper case: a quoted lower-case CTE is not the bare name.
        assert_rejected(
            &SqlGuard::new(Dialect::Snowflake, allowed(&["orders"])),
            &[(
                "quoted lower-case cte",
                "WITH \"secrets\" AS (SELECT 1) SELECT * FROM secrets",
                "relation_not_allowed",
            )],
        );
        assert_accepted(
            &SqlGuard::new(Dialect::Snowflake, allowed(&["orders"])),
            &[(
                "same name unquoted",
                "WITH Recent AS (SELECT 1) SELECT * FROM RECENT",
                "WITH Recent AS (SELECT 1) SELECT * FROM RECENT LIMIT 100",
            )],
        );
        // SQLite compares names without case, quoted or not.
        assert_accepted(
            &SqlGuard::new(Dialect::Sqlite, allowed(&["orders"])),
            &[(
                "quoted cte in another case",
                "WITH \"Recent\" AS (SELECT 1) SELECT * FROM recent",
                "WITH \"Recent\" AS (SELECT 1) SELECT * FROM recent LIMIT 100",
            )],
        );
    }

    #[test]
    fn each_dialect_parses_its_own_syntax() {
        assert_accepted(
            &SqlGuard::new(Dialect::Postgres, allowed(&["orders"])),
            &[
                (
                    "postgres casts and date_trunc",
                    "SELECT date_trunc('month', created_at)::date AS month, sum(amount) FROM orders WHERE created_at >= '2024-01-01'::date GROUP BY 1",
                    "SELECT date_trunc('month', created_at)::DATE AS month, sum(amount) FROM orders WHERE created_at >= '2024-01-01'::DATE GROUP BY 1 LIMIT 100",
                ),
                (
                    "postgres interval and ilike",
                    "SELECT * FROM orders WHERE region ILIKE 'em%' AND created_at > now() - interval '7 days'",
                    "SELECT * FROM orders WHERE region ILIKE 'em%' AND created_at > now() - INTERVAL '7 days' LIMIT 100",
                ),
            ],
        );
        assert_accepted(
            &SqlGuard::new(Dialect::Sqlite, allowed(&["orders"])),
            &[(
                "sqlite strftime",
                "SELECT strftime('%Y-%m', created_at) AS month, SUM(amount) FROM orders GROUP BY 1",
                "SELECT strftime('%Y-%m', created_at) AS month, SUM(amount) FROM orders GROUP BY 1 LIMIT 100",
            )],
        );
        assert_accepted(
            &SqlGuard::new(Dialect::MySql, allowed(&["orders"])),
            &[
                (
                    "mysql backticks",
                    "SELECT `region`, SUM(`amount`) FROM `orders` GROUP BY `region`",
                    "SELECT `region`, SUM(`amount`) FROM `orders` GROUP BY `region` LIMIT 100",
                ),
                (
                    "mysql date_format",
                    "SELECT DATE_FORMAT(created_at, '%Y-%m') AS m FROM orders",
                    "SELECT DATE_FORMAT(created_at, '%Y-%m') AS m FROM orders LIMIT 100",
                ),
            ],
        );
        assert_rejected(
            &SqlGuard::new(Dialect::MySql, allowed(&["orders"])),
            &[(
                "mysql table in backticks",
                "SELECT * FROM `secrets`",
                "relation_not_allowed",
            )],
        );
    }

    #[test]
    fn snowflake_statements_that_move_files_or_run_code_are_rejected() {
        let guard = SqlGuard::new(Dialect::Snowflake, None);
        assert_rejected(
            &guard,
            &[
                ("copy into a stage", "COPY INTO @my_stage FROM orders", "not_a_query"),
                ("copy into a table", "COPY INTO orders FROM @my_stage", "not_a_query"),
                // sqlparser does not read PUT and GET: refused before any check.
                ("put a file", "PUT file:///tmp/data.csv @my_stage", "parse_error"),
                ("get a file", "GET @my_stage file:///tmp/", "parse_error"),
                ("call a procedure", "CALL cleanup_orders()", "not_a_query"),
                (
                    "execute immediate",
                    "EXECUTE IMMEDIATE 'DROP TABLE orders'",
                    "not_a_query",
                ),
                ("system wait", "SELECT SYSTEM$WAIT(60)", "forbidden_function"),
                (
                    "system cancel in a subquery",
                    "SELECT * FROM orders WHERE id IN (SELECT SYSTEM$CANCEL_ALL_QUERIES(1))",
                    "forbidden_function",
                ),
                (
                    "lower-case system function",
                    "SELECT system$clustering_information('orders')",
                    "forbidden_function",
                ),
                (
                    "the catalog",
                    "SELECT * FROM information_schema.tables",
                    "system_catalog",
                ),
            ],
        );
        assert_accepted(
            &SqlGuard::new(Dialect::Snowflake, allowed(&["orders"])),
            &[
                (
                    "snowflake casts, date_trunc and ilike",
                    "SELECT DATE_TRUNC('month', created_at)::date AS month, SUM(amount) FROM orders WHERE region ILIKE 'em%' GROUP BY 1",
                    "SELECT DATE_TRUNC('month', created_at)::DATE AS month, SUM(amount) FROM orders WHERE region ILIKE 'em%' GROUP BY 1 LIMIT 100",
                ),
                (
                    "upper-case names match the allowed lower-case ones",
                    "SELECT \"REGION\" FROM ORDERS",
                    "SELECT \"REGION\" FROM ORDERS LIMIT 100",
                ),
            ],
        );
    }

    #[test]
    fn string_literals_survive_reserialization() {
        assert_accepted(
            &SqlGuard::new(Dialect::Postgres, None),
            &[("doubled quote", "SELECT 'it''s' AS s", "SELECT 'it''s' AS s LIMIT 100")],
        );
        // MySQL's backslash escapes are where serializers and servers tend to disagree. Whatever
        // the guard accepts must be a fixed point: checking its output again changes nothing.
        let mysql = SqlGuard::new(Dialect::MySql, None);
        for sql in [
            r"SELECT 'a\\' AS s",
            r"SELECT 'a\'b' AS s",
            r"SELECT 'x\\'' , 1",
            "SELECT 'a\nb'",
        ] {
            match mysql.check(sql, CAP) {
                Ok(guarded) => assert_eq!(
                    mysql.check(guarded.as_str(), CAP).as_ref().map(GuardedSql::as_str),
                    Ok(guarded.as_str()),
                    "`{sql}` became `{guarded}`"
                ),
                Err(error) => assert!(
                    matches!(error, GuardError::Unserializable | GuardError::Parse(_)),
                    "`{sql}` was refused for the wrong reason: {error}"
                ),
            }
        }
    }

    #[test]
    fn bigquery_writes_exports_and_scripts_are_rejected() {
        let guard = SqlGuard::new(Dialect::BigQuery, allowed(&["orders", "customers"]));
        assert_rejected(
            &guard,
            &[
                ("insert", "INSERT INTO shop.orders (id) VALUES (1)", "not_a_query"),
                ("update", "UPDATE shop.orders SET total = 0 WHERE TRUE", "not_a_query"),
                ("delete", "DELETE FROM shop.orders WHERE TRUE", "not_a_query"),
                (
                    "merge",
                    "MERGE shop.orders o USING shop.customers c ON o.id = c.id WHEN MATCHED THEN DELETE",
                    "not_a_query",
                ),
                (
                    "export data",
                    "EXPORT DATA OPTIONS (uri = 'gs://bucket/*.csv', format = 'CSV') AS SELECT * FROM orders",
                    "not_a_query",
                ),
                ("declare", "DECLARE x INT64 DEFAULT 1", "not_a_query"),
                ("set", "SET x = 1", "not_a_query"),
                ("call", "CALL shop.refresh()", "not_a_query"),
                ("script", "DECLARE x INT64; SELECT * FROM orders", "multiple_statements"),
                (
                    "temp function",
                    "CREATE TEMP FUNCTION f(x INT64) AS (x + 1)",
                    "not_a_query",
                ),
                (
                    "temp function before a query",
                    "CREATE TEMP FUNCTION f(x INT64) AS (x + 1); SELECT f(id) FROM orders",
                    "multiple_statements",
                ),
                (
                    "federated query",
                    "SELECT * FROM EXTERNAL_QUERY('proj.us.conn', 'SELECT * FROM users')",
                    "forbidden_function",
                ),
                (
                    "federated query in an expression",
                    "SELECT (SELECT COUNT(*) FROM orders), EXTERNAL_QUERY('c', 'SELECT 1')",
                    "forbidden_function",
                ),
                (
                    "information schema",
                    "SELECT * FROM shop.INFORMATION_SCHEMA.COLUMNS",
                    "system_catalog",
                ),
                (
                    "region information schema",
                    "SELECT * FROM `region-us`.INFORMATION_SCHEMA.JOBS",
                    "system_catalog",
                ),
                ("meta-table", "SELECT * FROM shop.__TABLES__", "system_catalog"),
                ("other table", "SELECT * FROM shop.secrets", "relation_not_allowed"),
            ],
        );
        for (description, sql) in [
            ("begin end", "BEGIN SELECT 1; END"),
            ("begin transaction", "BEGIN TRANSACTION"),
        ] {
            assert!(guard.check(sql, CAP).is_err(), "{description}: `{sql}` was accepted");
        }
    }

    #[test]
    fn bigquery_queries_are_accepted_with_backticks_and_a_capped_limit() {
        assert_accepted(
            &SqlGuard::new(Dialect::BigQuery, allowed(&["orders"])),
            &[
                (
                    "date_trunc and backticks",
                    "SELECT DATE_TRUNC(DATE(o.order_date), MONTH) AS month, SUM(o.`total`) AS revenue \
                     FROM `orders` AS o GROUP BY DATE_TRUNC(DATE(o.order_date), MONTH) LIMIT 500",
                    "SELECT DATE_TRUNC(DATE(o.order_date), MONTH) AS month, SUM(o.`total`) AS revenue \
                     FROM `orders` AS o GROUP BY DATE_TRUNC(DATE(o.order_date), MONTH) LIMIT 100",
                ),
                (
                    "dataset-qualified",
                    "SELECT COUNT(*) FROM shop.orders WHERE order_date >= DATE_SUB(CURRENT_DATE(), INTERVAL 7 DAY)",
                    "SELECT COUNT(*) FROM shop.orders WHERE order_date >= DATE_SUB(CURRENT_DATE(), INTERVAL 7 DAY) \
                     LIMIT 100",
                ),
            ],
        );
    }

    #[test]
    fn bigquery_string_literals_with_quotes_are_written_the_way_bigquery_reads_them() {
        let guard = SqlGuard::new(Dialect::BigQuery, None);
        assert_accepted(
            &guard,
            &[
                ("plain", "SELECT 'EMEA' AS s", "SELECT 'EMEA' AS s LIMIT 100"),
                (
                    "escaped quote",
                    r"SELECT 'it\'s' AS s",
                    r#"SELECT "it's" AS s LIMIT 100"#,
                ),
                (
                    "double-quoted",
                    r#"SELECT "it's" AS s"#,
                    r#"SELECT "it's" AS s LIMIT 100"#,
                ),
            ],
        );
        // Whatever is accepted is a fixed point; the rest is refused as unserializable.
        for sql in [r"SELECT 'a\\b' AS s", r#"SELECT 'say \"it\'s\"' AS s"#] {
            match guard.check(sql, CAP) {
                Ok(guarded) => assert_eq!(
                    guard.check(guarded.as_str(), CAP).as_ref().map(GuardedSql::as_str),
                    Ok(guarded.as_str()),
                    "`{sql}` became `{guarded}`"
                ),
                Err(error) => assert_eq!(error, GuardError::Unserializable, "`{sql}`"),
            }
        }
    }

    #[test]
    fn overly_long_sql_is_rejected() {
        let sql = format!("SELECT 1 AS a{}", " ".repeat(MAX_SQL_CHARS));
        assert_rejected(&SqlGuard::new(Dialect::Postgres, None), &[("long", &sql, "too_long")]);
    }
}
