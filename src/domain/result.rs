//! Rows a warehouse returned and how their columns are shown.
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// One cell of a result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Decimal(Decimal),
    Text(String),
    Date(NaiveDate),
    Timestamp(chrono::NaiveDateTime),
}

/// How a column is shown to people. The warehouse infers it from the SQL type; the semantic
/// model overrides it (revenue is money even when SQLite returns a float).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnFormat {
    Integer,
    /// Two decimals, thousands separators.
    Money,
    /// Up to two decimals, thousands separators.
    Number,
    Date,
    Text,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub format: ColumnFormat,
}

/// Rows returned by a warehouse, in order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct QueryResult {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
}

impl QueryResult {
    /// Applies format hints by column name (from the semantic model).
    pub fn apply_formats(&mut self, formats: &[(String, ColumnFormat)]) {
        for column in &mut self.columns {
            if let Some((_, format)) = formats.iter().find(|(name, _)| *name == column.name) {
                column.format = *format;
            }
        }
    }
}

/// Whether `text` is an ISO calendar date (`YYYY-MM-DD`), the way SQLite stores dates.
pub fn is_iso_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        })
        && NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
}

/// Infers how a column is shown from the values it holds; `declared` (from the SQL type) is used
/// when every value is NULL, so an empty result still gets a sensible format.
pub fn infer_column_format<'a>(values: impl IntoIterator<Item = &'a Value>, declared: ColumnFormat) -> ColumnFormat {
    let mut inferred: Option<ColumnFormat> = None;
    for value in values {
        let format = match value {
            Value::Null => continue,
            Value::Int(_) => ColumnFormat::Integer,
            Value::Float(_) | Value::Decimal(_) => ColumnFormat::Number,
            Value::Date(_) => ColumnFormat::Date,
            // A timestamp truncated to a day (date_trunc('week', ..)) reads as a date.
            Value::Timestamp(ts) if ts.time() == chrono::NaiveTime::MIN => ColumnFormat::Date,
            Value::Text(text) if is_iso_date(text) => ColumnFormat::Date,
            Value::Bool(_) | Value::Text(_) | Value::Timestamp(_) => ColumnFormat::Text,
        };
        inferred = Some(match (inferred, format) {
            (None, format) => format,
            (Some(seen), format) if seen == format => seen,
            (Some(ColumnFormat::Integer | ColumnFormat::Number), ColumnFormat::Integer | ColumnFormat::Number) => {
                ColumnFormat::Number
            }
            // Mixed kinds (a CASE returning numbers and text) can only be shown as text.
            (Some(_), _) => ColumnFormat::Text,
        });
    }
    inferred.unwrap_or(declared)
}
