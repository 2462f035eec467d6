//! The SQL dialects threadql speaks: which sqlparser dialect reads each, and how identifiers and
//! string literals are written in it. One place, so the guard, the compiler and the LLM prompt
//! agree.
use serde::{Deserialize, Serialize};
use sqlparser::dialect::{BigQueryDialect, Dialect as ParserDialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect};

/// SQL dialect of a warehouse: the interpreter compiles to it and the guard parses with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    Postgres,
    Sqlite,
    MySql,
    /// Google BigQuery's GoogleSQL (standard SQL, never legacy SQL).
    BigQuery,
}

impl Dialect {
    /// The sqlparser dialect that reads this warehouse's SQL.
    pub fn parser(self) -> Box<dyn ParserDialect> {
        match self {
            Dialect::Postgres => Box::new(PostgreSqlDialect {}),
            Dialect::Sqlite => Box::new(SQLiteDialect {}),
            Dialect::MySql => Box::new(MySqlDialect {}),
            Dialect::BigQuery => Box::new(BigQueryDialect {}),
        }
    }

    /// The engine's short name: the `engine` label of the warehouse metrics.
    pub fn engine(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::Sqlite => "sqlite",
            Dialect::MySql => "mysql",
            Dialect::BigQuery => "bigquery",
        }
    }

    /// The engine's name as people (and language models) know it.
    pub fn display_name(self) -> &'static str {
        match self {
            Dialect::Postgres => "PostgreSQL",
            Dialect::Sqlite => "SQLite",
            Dialect::MySql => "MySQL",
            Dialect::BigQuery => "BigQuery",
        }
    }
}

/// A string literal: quotes doubled, and backslashes too for MySQL, where they escape.
/// BigQuery escapes both with a backslash (a doubled quote there ends one literal and starts
/// another).
pub fn string_literal(value: &str, dialect: Dialect) -> String {
    if dialect == Dialect::BigQuery {
        return format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"));
    }
    let mut escaped = value.replace('\'', "''");
    if dialect == Dialect::MySql {
        escaped = escaped.replace('\\', "\\\\");
    }
    format!("'{escaped}'")
}

/// An identifier as written in SQL: bare when plain lowercase and not a keyword, else quoted.
pub fn quote_ident(name: &str, dialect: Dialect) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain && !is_reserved(name) {
        return name.to_string();
    }
    match dialect {
        Dialect::MySql => format!("`{}`", name.replace('`', "``")),
        // GoogleSQL escapes a backtick inside a quoted identifier with a backslash.
        Dialect::BigQuery => format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`")),
        Dialect::Postgres | Dialect::Sqlite => format!("\"{}\"", name.replace('"', "\"\"")),
    }
}

/// Words that cannot be bare identifiers in at least one supported dialect (or that sqlparser
/// reads as something else), so they are always quoted.
pub fn is_reserved(word: &str) -> bool {
    const RESERVED: &[&str] = &[
        "all",
        "alter",
        "and",
        "any",
        "as",
        "asc",
        "at",
        "between",
        "by",
        "case",
        "cast",
        "check",
        "column",
        "constraint",
        "create",
        "cross",
        "current_date",
        "current_time",
        "current_timestamp",
        "current_user",
        "date",
        "default",
        "delete",
        "desc",
        "distinct",
        "do",
        "drop",
        "else",
        "end",
        "except",
        "exists",
        "false",
        "fetch",
        "for",
        "foreign",
        "from",
        "full",
        "grant",
        "group",
        "having",
        "if",
        "in",
        "index",
        "inner",
        "insert",
        "interval",
        "intersect",
        "into",
        "is",
        "join",
        "key",
        "left",
        "like",
        "limit",
        "natural",
        "not",
        "null",
        "of",
        "offset",
        "on",
        "or",
        "order",
        "outer",
        "primary",
        "range",
        "references",
        "right",
        "row",
        "rows",
        "select",
        "set",
        "some",
        "table",
        "then",
        "time",
        "timestamp",
        "to",
        "true",
        "union",
        "unique",
        "update",
        "user",
        "using",
        "values",
        "when",
        "where",
        "window",
        "with",
    ];
    RESERVED.contains(&word)
}
