//! The SQL dialects threadql speaks: which sqlparser dialect reads each, and how identifiers and
//! string literals are written in it. One place, so the guard, the compiler and the LLM prompt
//! agree.
use serde::{Deserialize, Serialize};
use sqlparser::dialect::{
    BigQueryDialect, Dialect as ParserDialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect, SnowflakeDialect,
};

/// SQL dialect of a warehouse: the interpreter compiles to it and the guard parses with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    Postgres,
    Sqlite,
    MySql,
    /// Snowflake folds unquoted identifiers to upper case: the catalog's all-upper-case names are
    /// described in lower case and written bare, so they resolve whatever the case.
    Snowflake,
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
            Dialect::Snowflake => Box::new(SnowflakeDialect {}),
            Dialect::BigQuery => Box::new(BigQueryDialect {}),
        }
    }

    /// The engine's short name: the `engine` label of the warehouse metrics.
    pub fn engine(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::Sqlite => "sqlite",
            Dialect::MySql => "mysql",
            Dialect::Snowflake => "snowflake",
            Dialect::BigQuery => "bigquery",
        }
    }

    /// The engine's name as people (and language models) know it.
    pub fn display_name(self) -> &'static str {
        match self {
            Dialect::Postgres => "PostgreSQL",
            Dialect::Sqlite => "SQLite",
            Dialect::MySql => "MySQL",
            Dialect::Snowflake => "Snowflake",
            Dialect::BigQuery => "BigQuery",
        }
    }
}

/// A string literal: quotes doubled, and backslashes too for MySQL and Snowflake, where they
/// escape. BigQuery escapes both with a backslash (a doubled quote there ends one literal and starts
/// another).
pub fn string_literal(value: &str, dialect: Dialect) -> String {
    if dialect == Dialect::BigQuery {
        return format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"));
    }
    let mut escaped = value.replace('\'', "''");
    if matches!(dialect, Dialect::MySql | Dialect::Snowflake) {
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
    let reserved = is_reserved(name) || (dialect == Dialect::Snowflake && SNOWFLAKE_RESERVED.contains(&name));
    if plain && !reserved {
        return name.to_string();
    }
    match dialect {
        Dialect::MySql => format!("`{}`", name.replace('`', "``")),
        // A plain name quoted only because it is reserved (`date`, `user`) stands for the
        // upper-case name Snowflake's catalog holds (see `Dialect::Snowflake`).
        Dialect::Snowflake if plain => format!("\"{}\"", name.to_ascii_uppercase()),
        Dialect::Postgres | Dialect::Sqlite | Dialect::Snowflake => format!("\"{}\"", name.replace('"', "\"\"")),
        // GoogleSQL escapes a backtick inside a quoted identifier with a backslash.
        Dialect::BigQuery => format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`")),
    }
}

/// Snowflake's reserved words that [`is_reserved`] does not list (Snowflake's "Reserved &
/// limited keywords"): bare, they are a syntax error there, and nowhere else.
const SNOWFLAKE_RESERVED: &[&str] = &[
    "account",
    "connect",
    "connection",
    "current",
    "database",
    "following",
    "gscluster",
    "ilike",
    "increment",
    "issue",
    "lateral",
    "localtime",
    "localtimestamp",
    "minus",
    "organization",
    "qualify",
    "regexp",
    "revoke",
    "rlike",
    "sample",
    "schema",
    "start",
    "tablesample",
    "trigger",
    "try_cast",
    "view",
    "whenever",
];

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_bare_when_plain_and_quoted_in_each_dialects_way_otherwise() {
        for (name, dialect, written) in [
            ("region", Dialect::Postgres, "region"),
            ("region", Dialect::Snowflake, "region"),
            ("date", Dialect::Postgres, "\"date\""),
            ("date", Dialect::MySql, "`date`"),
            // Snowflake's catalog holds DATE; "date" would name another column.
            ("date", Dialect::Snowflake, "\"DATE\""),
            ("Mixed Case", Dialect::Snowflake, "\"Mixed Case\""),
            ("sample", Dialect::Snowflake, "\"SAMPLE\""),
            ("sample", Dialect::Postgres, "sample"),
            ("say \"hi\"", Dialect::Snowflake, "\"say \"\"hi\"\"\""),
        ] {
            assert_eq!(quote_ident(name, dialect), written, "{name} in {dialect:?}");
        }
        assert_eq!(string_literal("a\\b'c", Dialect::Snowflake), "'a\\\\b''c'");
    }
}
