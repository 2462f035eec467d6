//! Cell formatting: how one value looks to a person (tables, Slack) and to a machine (CSV).
//!
//! Human formatting uses thousands separators and never abbreviates (no "1.2M"): people copy
//! these numbers into other places and an abbreviation silently loses precision. Money is
//! rounded half away from zero to two places, on exact decimals. NULL shows as [`NULL_TEXT`].
use std::str::FromStr;

use chrono::{NaiveDateTime, NaiveTime, Timelike};
use rust_decimal::{Decimal, RoundingStrategy};

use crate::domain::{Column, ColumnFormat, Value};

/// What a NULL looks like to a person. An empty cell reads as "missing from the table", a dash
/// as "no value"; the CSV export uses an empty field instead.
pub const NULL_TEXT: &str = "—";

/// Formats `value` for people, following the column's `format`.
pub fn format_value(value: &Value, format: ColumnFormat) -> String {
    match value {
        Value::Null => NULL_TEXT.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Int(n) => match format {
            ColumnFormat::Integer | ColumnFormat::Number => group_thousands(&n.to_string()),
            ColumnFormat::Money => format_decimal_human(Decimal::from(*n), format),
            ColumnFormat::Date | ColumnFormat::Text => n.to_string(),
        },
        Value::Float(f) => match format {
            ColumnFormat::Integer | ColumnFormat::Money | ColumnFormat::Number => match float_to_decimal(*f) {
                Some(d) => format_decimal_human(d, format),
                None => format_float_fallback(*f, format),
            },
            ColumnFormat::Date | ColumnFormat::Text => f.to_string(),
        },
        Value::Decimal(d) => match format {
            ColumnFormat::Integer | ColumnFormat::Money | ColumnFormat::Number => format_decimal_human(*d, format),
            ColumnFormat::Date | ColumnFormat::Text => d.to_string(),
        },
        Value::Text(text) => match format {
            // SQLite and some drivers hand numbers over as text; format them as numbers when
            // the column says so, and pass anything else through untouched.
            ColumnFormat::Integer | ColumnFormat::Money | ColumnFormat::Number => {
                match Decimal::from_str(text.trim()) {
                    Ok(d) => format_decimal_human(d, format),
                    Err(_) => text.clone(),
                }
            }
            ColumnFormat::Date | ColumnFormat::Text => text.clone(),
        },
        Value::Date(date) => date.format("%Y-%m-%d").to_string(),
        Value::Timestamp(ts) => format_timestamp(ts, format),
    }
}

/// Formats `value` for machines (CSV): no thousands separators, money with exactly two
/// decimals, ISO dates, full precision otherwise, NULL as an empty string.
pub fn format_value_plain(value: &Value, format: ColumnFormat) -> String {
    match value {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Int(n) => match format {
            ColumnFormat::Money => money(Decimal::from(*n)).to_string(),
            _ => n.to_string(),
        },
        Value::Float(f) => match format {
            ColumnFormat::Money => match float_to_decimal(*f) {
                Some(d) => money(d).to_string(),
                None => format!("{f:.2}"),
            },
            _ => f.to_string(),
        },
        Value::Decimal(d) => match format {
            ColumnFormat::Money => money(*d).to_string(),
            _ => d.to_string(),
        },
        Value::Text(text) => match format {
            ColumnFormat::Money => match Decimal::from_str(text.trim()) {
                Ok(d) => money(d).to_string(),
                Err(_) => text.clone(),
            },
            _ => text.clone(),
        },
        Value::Date(date) => date.format("%Y-%m-%d").to_string(),
        Value::Timestamp(ts) => format_timestamp(ts, format),
    }
}

/// The format a table shows a column in. Years are integers that nobody writes as "2,024", so
/// integer columns named like a year are shown without separators.
pub fn display_format(column: &Column) -> ColumnFormat {
    let name = column.name.to_lowercase();
    let is_year = name == "year" || name.ends_with("_year") || name.starts_with("year_");
    match column.format {
        ColumnFormat::Integer | ColumnFormat::Number if is_year => ColumnFormat::Text,
        other => other,
    }
}

/// Whether a column's values are numbers, which tables right-align.
pub fn is_numeric(format: ColumnFormat) -> bool {
    matches!(
        format,
        ColumnFormat::Integer | ColumnFormat::Money | ColumnFormat::Number
    )
}

/// Inserts thousands separators into a plain decimal string ("-1234567.5" → "-1,234,567.5").
pub fn group_thousands(plain: &str) -> String {
    let (sign, unsigned) = match plain.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", plain),
    };
    let (integer, fraction) = match unsigned.split_once('.') {
        Some((integer, fraction)) => (integer, Some(fraction)),
        None => (unsigned, None),
    };
    let digits: Vec<char> = integer.chars().collect();
    let mut grouped = String::with_capacity(plain.len() + digits.len() / 3);
    grouped.push_str(sign);
    for (index, digit) in digits.iter().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(*digit);
    }
    if let Some(fraction) = fraction {
        grouped.push('.');
        grouped.push_str(fraction);
    }
    grouped
}

fn format_decimal_human(d: Decimal, format: ColumnFormat) -> String {
    let rounded = match format {
        ColumnFormat::Money => money(d),
        ColumnFormat::Integer => non_negative_zero(d.round_dp_with_strategy(0, away())),
        // Number: at most two places, without trailing zeros ("2.5", "3", "0.33").
        _ => non_negative_zero(d.round_dp_with_strategy(2, away())).normalize(),
    };
    group_thousands(&rounded.to_string())
}

/// Rounds to exactly two places, half away from zero ("2.675" → "2.68", "-12.5" → "-12.50").
fn money(d: Decimal) -> Decimal {
    let mut rounded = non_negative_zero(d.round_dp_with_strategy(2, away()));
    rounded.rescale(2);
    rounded
}

fn away() -> RoundingStrategy {
    RoundingStrategy::MidpointAwayFromZero
}

/// Rounding -0.001 gives a negative zero, which would print as "-0.00".
fn non_negative_zero(d: Decimal) -> Decimal {
    if d.is_zero() {
        Decimal::ZERO
    } else {
        d
    }
}

/// Converts through the shortest decimal text of the float, so 2.675 (stored as
/// 2.67499999…) rounds the way a person reading "2.675" expects.
fn float_to_decimal(f: f64) -> Option<Decimal> {
    if !f.is_finite() {
        return None;
    }
    Decimal::from_str(&f.to_string()).ok()
}

/// Floats too large for a decimal (or not finite) still get a readable, unabbreviated form.
fn format_float_fallback(f: f64, format: ColumnFormat) -> String {
    if !f.is_finite() {
        return f.to_string();
    }
    let plain = match format {
        ColumnFormat::Money => format!("{f:.2}"),
        _ => format!("{f:.0}"),
    };
    group_thousands(&plain)
}

fn format_timestamp(ts: &NaiveDateTime, format: ColumnFormat) -> String {
    if format == ColumnFormat::Date || ts.time() == NaiveTime::MIN {
        ts.format("%Y-%m-%d").to_string()
    } else if ts.nanosecond() == 0 {
        ts.format("%Y-%m-%d %H:%M:%S").to_string()
    } else {
        ts.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    fn dec(text: &str) -> Value {
        Value::Decimal(Decimal::from_str(text).unwrap_or_default())
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
    }

    #[test]
    fn values_are_formatted_for_people() {
        let midnight = date(2024, 3, 1).and_hms_opt(0, 0, 0).unwrap_or_default();
        let afternoon = date(2024, 3, 1).and_hms_opt(14, 5, 9).unwrap_or_default();
        let cases: Vec<(&str, Value, ColumnFormat, &str)> = vec![
            (
                "integer with separators",
                Value::Int(1_234_567),
                ColumnFormat::Integer,
                "1,234,567",
            ),
            ("small integer", Value::Int(999), ColumnFormat::Integer, "999"),
            ("negative integer", Value::Int(-1_234), ColumnFormat::Integer, "-1,234"),
            ("zero", Value::Int(0), ColumnFormat::Integer, "0"),
            (
                "i64 min",
                Value::Int(i64::MIN),
                ColumnFormat::Integer,
                "-9,223,372,036,854,775,808",
            ),
            ("money decimal", dec("1234567.891"), ColumnFormat::Money, "1,234,567.89"),
            ("money negative", dec("-12.5"), ColumnFormat::Money, "-12.50"),
            ("money half away from zero", dec("2.675"), ColumnFormat::Money, "2.68"),
            (
                "money negative half away from zero",
                dec("-2.675"),
                ColumnFormat::Money,
                "-2.68",
            ),
            (
                "money tiny negative is zero",
                dec("-0.001"),
                ColumnFormat::Money,
                "0.00",
            ),
            ("money from float", Value::Float(2.675), ColumnFormat::Money, "2.68"),
            ("money from int", Value::Int(1500), ColumnFormat::Money, "1,500.00"),
            (
                "money from text",
                Value::Text("1234.5".into()),
                ColumnFormat::Money,
                "1,234.50",
            ),
            (
                "money is never abbreviated",
                Value::Float(1_200_000_000.0),
                ColumnFormat::Money,
                "1,200,000,000.00",
            ),
            ("number trims zeros", Value::Float(2.50), ColumnFormat::Number, "2.5"),
            ("number whole", Value::Float(3.0), ColumnFormat::Number, "3"),
            (
                "number two places",
                Value::Float(1234.5678),
                ColumnFormat::Number,
                "1,234.57",
            ),
            ("number third", Value::Float(1.0 / 3.0), ColumnFormat::Number, "0.33"),
            ("number decimal", dec("1000000.10"), ColumnFormat::Number, "1,000,000.1"),
            ("number int", Value::Int(12_345), ColumnFormat::Number, "12,345"),
            (
                "integer from float rounds",
                Value::Float(2.5),
                ColumnFormat::Integer,
                "3",
            ),
            (
                "huge float",
                Value::Float(1e30),
                ColumnFormat::Number,
                "1,000,000,000,000,000,019,884,624,838,656",
            ),
            (
                "text passes through",
                Value::Text("EMEA".into()),
                ColumnFormat::Text,
                "EMEA",
            ),
            (
                "non-numeric text in a number column",
                Value::Text("n/a".into()),
                ColumnFormat::Number,
                "n/a",
            ),
            ("date", Value::Date(date(2024, 3, 1)), ColumnFormat::Date, "2024-03-01"),
            (
                "midnight timestamp is a date",
                Value::Timestamp(midnight),
                ColumnFormat::Text,
                "2024-03-01",
            ),
            (
                "timestamp with time",
                Value::Timestamp(afternoon),
                ColumnFormat::Text,
                "2024-03-01 14:05:09",
            ),
            (
                "timestamp in a date column",
                Value::Timestamp(afternoon),
                ColumnFormat::Date,
                "2024-03-01",
            ),
            (
                "iso text passes through",
                Value::Text("2024-03-01".into()),
                ColumnFormat::Date,
                "2024-03-01",
            ),
            ("null", Value::Null, ColumnFormat::Money, "—"),
            ("bool", Value::Bool(true), ColumnFormat::Text, "true"),
        ];
        for (description, value, format, expected) in cases {
            assert_eq!(format_value(&value, format), expected, "{description}");
        }
    }

    #[test]
    fn values_are_formatted_for_machines() {
        let cases: Vec<(&str, Value, ColumnFormat, &str)> = vec![
            (
                "integer without separators",
                Value::Int(1_234_567),
                ColumnFormat::Integer,
                "1234567",
            ),
            (
                "money two places",
                dec("1234567.891"),
                ColumnFormat::Money,
                "1234567.89",
            ),
            ("money from float", Value::Float(12.5), ColumnFormat::Money, "12.50"),
            (
                "number keeps precision",
                Value::Float(1234.5678),
                ColumnFormat::Number,
                "1234.5678",
            ),
            ("decimal keeps precision", dec("0.125"), ColumnFormat::Number, "0.125"),
            (
                "date iso",
                Value::Date(date(2024, 1, 31)),
                ColumnFormat::Date,
                "2024-01-31",
            ),
            ("null is empty", Value::Null, ColumnFormat::Integer, ""),
        ];
        for (description, value, format, expected) in cases {
            assert_eq!(format_value_plain(&value, format), expected, "{description}");
        }
    }
}
