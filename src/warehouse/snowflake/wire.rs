//! The SQL API's JSON bodies and the `jsonv2` values of its results: every value is a string
//! (or null) read by the column's type in `rowType`.
use std::str::FromStr;

use chrono::{DateTime, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::domain::{ColumnFormat, ColumnKind, QueryResult, Value};

/// A `200` answer: partition 0 of the result and what describes all of it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultSet {
    #[serde(default)]
    pub result_set_meta_data: Option<ResultSetMetaData>,
    #[serde(default)]
    pub data: Vec<Vec<Option<String>>>,
    #[serde(default)]
    pub statement_handle: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultSetMetaData {
    #[serde(default)]
    pub num_rows: u64,
    #[serde(default)]
    pub format: Option<String>,
    pub row_type: Vec<RowType>,
    #[serde(default)]
    pub partition_info: Vec<PartitionInfo>,
}

/// One column of the result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowType {
    pub name: String,
    /// `fixed`, `real`, `text`, `date`, `timestamp_ntz`, `boolean`… (Snowflake writes them in
    /// lower case; compared case-insensitively).
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub scale: Option<i64>,
    #[serde(default)]
    pub precision: Option<i64>,
    #[serde(default)]
    pub nullable: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionInfo {
    pub row_count: u64,
    #[serde(default)]
    pub uncompressed_size: Option<u64>,
    #[serde(default)]
    pub compressed_size: Option<u64>,
}

/// A `202` (still running), `408` (timed out) or `422` (failed) answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryStatus {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub sql_state: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub statement_handle: Option<String>,
}

/// Snowflake's name of a column (upper case when the query did not quote it) as threadql names
/// it: all-upper-case names in lower case, which Snowflake reads back as the same name.
pub fn local_name(name: &str) -> String {
    let unquoted_upper = name.chars().next().is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if unquoted_upper {
        name.to_ascii_lowercase()
    } else {
        name.to_string()
    }
}

/// The rows of a result, each cell converted by its column's type.
pub fn convert(row_type: &[RowType], rows: &[Vec<Option<String>>]) -> QueryResult {
    let declared: Vec<(String, String)> = row_type
        .iter()
        .enumerate()
        .map(|(index, column)| (local_name(&column.name), index.to_string()))
        .collect();
    let column_of = |ty: &str| ty.parse::<usize>().ok().and_then(|index| row_type.get(index));
    super::super::typed_result(
        &declared,
        rows,
        |row, index, ty| match (row.get(index), column_of(ty)) {
            (Some(Some(text)), Some(column)) => value(column, text),
            (Some(Some(text)), None) => Value::Text(text.clone()),
            _ => Value::Null,
        },
        |ty| column_of(ty).map(declared_format).unwrap_or(ColumnFormat::Text),
    )
}

fn declared_format(column: &RowType) -> ColumnFormat {
    match column.kind.to_ascii_lowercase().as_str() {
        "fixed" if column.scale.unwrap_or(0) == 0 => ColumnFormat::Integer,
        "fixed" | "real" | "float" | "double" | "decfloat" => ColumnFormat::Number,
        "date" => ColumnFormat::Date,
        _ => ColumnFormat::Text,
    }
}

/// One `jsonv2` value: numbers as decimal text, dates as days since 1970-01-01, timestamps as
/// `seconds.nanoseconds` since the epoch (with the offset after a space for `timestamp_tz`).
/// What does not read as its type is kept as text rather than lost.
pub fn value(column: &RowType, text: &str) -> Value {
    let parsed = match column.kind.to_ascii_lowercase().as_str() {
        "fixed" if column.scale.unwrap_or(0) == 0 => text
            .parse::<i64>()
            .map(Value::Int)
            .ok()
            .or_else(|| Decimal::from_str(text).ok().map(Value::Decimal)),
        "fixed" | "decfloat" => Decimal::from_str(text)
            .or_else(|_| Decimal::from_scientific(text))
            .ok()
            .map(Value::Decimal),
        "real" | "float" | "double" => text.parse::<f64>().ok().map(Value::Float),
        "boolean" => match text.to_ascii_lowercase().as_str() {
            "true" | "1" => Some(Value::Bool(true)),
            "false" | "0" => Some(Value::Bool(false)),
            _ => None,
        },
        "date" => text
            .parse::<i64>()
            .ok()
            .and_then(|days| NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(chrono::Duration::days(days)))
            .map(Value::Date),
        "timestamp_ntz" | "timestamp_ltz" | "timestamp_tz" => {
            // `timestamp_tz` adds its offset after a space; the instant itself is in UTC.
            epoch_timestamp(text.split(' ').next().unwrap_or(text)).map(Value::Timestamp)
        }
        "time" => epoch_timestamp(text).map(|at| Value::Text(at.time().format("%H:%M:%S").to_string())),
        _ => None,
    };
    parsed.unwrap_or_else(|| Value::Text(text.to_string()))
}

/// `1704164645.123000000` as a date and time.
fn epoch_timestamp(text: &str) -> Option<chrono::NaiveDateTime> {
    let (seconds, fraction) = text.split_once('.').unwrap_or((text, "0"));
    let seconds: i64 = seconds.parse().ok()?;
    let digits: String = fraction.chars().take(9).collect();
    let nanos: u32 = format!("{digits:0<9}").parse().ok()?;
    // Negative instants count the fraction forward from the whole second before them.
    DateTime::from_timestamp(seconds, nanos).map(|at| at.naive_utc())
}

/// The broad kind of an `INFORMATION_SCHEMA.COLUMNS.DATA_TYPE` (`NUMBER` with its scale).
pub fn column_kind(data_type: &str, scale: Option<i64>) -> ColumnKind {
    match data_type.to_ascii_uppercase().as_str() {
        "NUMBER" | "DECIMAL" | "NUMERIC" | "FIXED" if scale.unwrap_or(0) == 0 => ColumnKind::Integer,
        "INT" | "INTEGER" | "BIGINT" | "SMALLINT" | "TINYINT" | "BYTEINT" => ColumnKind::Integer,
        "NUMBER" | "DECIMAL" | "NUMERIC" | "FIXED" | "FLOAT" | "FLOAT4" | "FLOAT8" | "DOUBLE" | "REAL" | "DECFLOAT" => {
            ColumnKind::Decimal
        }
        "TEXT" | "VARCHAR" | "STRING" | "CHAR" | "CHARACTER" => ColumnKind::Text,
        "DATE" => ColumnKind::Date,
        "TIMESTAMP_NTZ" | "TIMESTAMP_LTZ" | "TIMESTAMP_TZ" | "DATETIME" | "TIMESTAMP" => ColumnKind::Timestamp,
        "BOOLEAN" => ColumnKind::Boolean,
        _ => ColumnKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(kind: &str, scale: Option<i64>) -> RowType {
        RowType {
            name: "C".into(),
            kind: kind.into(),
            scale,
            ..Default::default()
        }
    }

    #[test]
    fn jsonv2_values_are_read_by_their_column_type() {
        let day = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        for (kind, scale, text, expected) in [
            ("fixed", Some(0), "42", Value::Int(42)),
            (
                "fixed",
                Some(0),
                "1234567890123456789012345",
                Value::Decimal(Decimal::from_str("1234567890123456789012345").unwrap()),
            ),
            ("fixed", Some(2), "12.34", Value::Decimal(Decimal::new(1234, 2))),
            ("real", None, "1.5", Value::Float(1.5)),
            ("text", None, "EMEA", Value::Text("EMEA".into())),
            ("boolean", None, "true", Value::Bool(true)),
            ("date", None, "19782", Value::Date(day)),
            (
                "date",
                None,
                "-1",
                Value::Date(NaiveDate::from_ymd_opt(1969, 12, 31).unwrap()),
            ),
            (
                "timestamp_ntz",
                Some(9),
                "1709210096.250000000",
                Value::Timestamp(day.and_hms_milli_opt(12, 34, 56, 250).unwrap()),
            ),
            (
                "timestamp_tz",
                Some(9),
                "1709210096.000000000 1500",
                Value::Timestamp(day.and_hms_opt(12, 34, 56).unwrap()),
            ),
            ("time", Some(9), "45296.000000000", Value::Text("12:34:56".into())),
            ("variant", None, "{\"a\":1}", Value::Text("{\"a\":1}".into())),
            ("fixed", Some(0), "not a number", Value::Text("not a number".into())),
        ] {
            assert_eq!(value(&column(kind, scale), text), expected, "{kind} {text}");
        }
    }

    #[test]
    fn upper_case_names_are_lower_cased_and_quoted_ones_kept() {
        assert_eq!(local_name("ORDER_DATE"), "order_date");
        assert_eq!(local_name("REVENUE_CHANGE_PCT"), "revenue_change_pct");
        assert_eq!(local_name("Revenue"), "Revenue");
        assert_eq!(local_name("COUNT(*)"), "COUNT(*)");
        assert_eq!(local_name("order_date"), "order_date");
    }
}
