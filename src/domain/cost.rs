//! The cost guard's thresholds: "10GB" or "5M rows" (`THREADQL_CONFIRM_ABOVE`,
//! `THREADQL_REFUSE_ABOVE`), compared with what the warehouse estimates a statement would read.
use std::fmt;

/// A limit on what one statement may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostLimit {
    Bytes(u64),
    Rows(u64),
}

/// What the warehouse estimates a statement reads; `None` where the engine does not say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CostEstimate {
    pub rows: Option<u64>,
    pub bytes: Option<u64>,
}

impl CostLimit {
    /// `10GB`, `500 MB`, `1.5TB`, `2048` (bytes), `5M rows`, `200000 rows`. Byte units are
    /// powers of 1024, as warehouses bill them (BigQuery's GB is a GiB).
    pub fn parse(text: &str) -> Result<Self, String> {
        let lower = text.trim().to_ascii_lowercase();
        let (number, unit) = match lower.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
            Some(at) => (lower[..at].trim(), lower[at..].trim()),
            None => (lower.as_str(), ""),
        };
        let value: f64 = number
            .parse()
            .map_err(|_| format!("{text:?} is not a size like 10GB or 5M rows"))?;
        let (scale, rows) = match unit {
            "" | "b" | "bytes" => (1.0, false),
            "kb" | "kib" => (1024.0, false),
            "mb" | "mib" => (1024.0 * 1024.0, false),
            "gb" | "gib" => (1024.0 * 1024.0 * 1024.0, false),
            "tb" | "tib" => (1024.0_f64.powi(4), false),
            "rows" | "row" => (1.0, true),
            "k rows" | "k row" => (1e3, true),
            "m rows" | "m row" => (1e6, true),
            "b rows" | "b row" => (1e9, true),
            _ => return Err(format!("{text:?}: use a size like 10GB or a row count like 5M rows")),
        };
        let amount = value * scale;
        if !(amount >= 1.0 && amount.is_finite()) {
            return Err(format!("{text:?} must be at least one byte or row"));
        }
        let amount = amount.min(u64::MAX as f64) as u64;
        Ok(if rows { Self::Rows(amount) } else { Self::Bytes(amount) })
    }

    /// Whether `estimate` is above this limit; an estimate that says nothing of this unit is not.
    pub fn exceeded_by(&self, estimate: &CostEstimate) -> bool {
        match self {
            Self::Bytes(limit) => estimate.bytes.is_some_and(|bytes| bytes > *limit),
            Self::Rows(limit) => estimate.rows.is_some_and(|rows| rows > *limit),
        }
    }

    /// The estimate in this limit's unit ("about 12.4 GB", "about 7.2M rows").
    pub fn describe(&self, estimate: &CostEstimate) -> String {
        match self {
            Self::Bytes(_) => estimate.bytes.map(bytes_text).unwrap_or_default(),
            Self::Rows(_) => estimate.rows.map(rows_text).unwrap_or_default(),
        }
    }
}

impl fmt::Display for CostLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bytes(bytes) => f.write_str(&bytes_text(*bytes)),
            Self::Rows(rows) => f.write_str(&rows_text(*rows)),
        }
    }
}

/// Bytes the warehouse may read per UTC day for one user and for one channel
/// (`THREADQL_DAILY_BYTES_PER_USER`, `THREADQL_DAILY_BYTES_PER_CHANNEL`), counted from the
/// cost guard's estimates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DailyBudgets {
    pub per_user: Option<u64>,
    pub per_channel: Option<u64>,
}

impl DailyBudgets {
    pub fn is_set(&self) -> bool {
        self.per_user.is_some() || self.per_channel.is_some()
    }

    /// A budget in bytes ("50GB"); a row count is no budget of bytes.
    pub fn parse_bytes(text: &str) -> Result<u64, String> {
        match CostLimit::parse(text)? {
            CostLimit::Bytes(bytes) => Ok(bytes),
            CostLimit::Rows(_) => Err(format!("{text:?}: a daily budget is a size like 50GB, not a row count")),
        }
    }
}

/// "48.2 GB" or "512 bytes".
pub fn bytes_text(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn rows_text(rows: u64) -> String {
    match rows {
        0..=9_999 => format!("{rows} rows"),
        10_000..=999_999 => format!("{:.0}K rows", rows as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1}M rows", rows as f64 / 1e6),
        _ => format!("{:.1}B rows", rows as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daily_budget_is_a_size() {
        assert_eq!(DailyBudgets::parse_bytes("50GB"), Ok(50 * 1024 * 1024 * 1024));
        assert!(DailyBudgets::parse_bytes("5M rows").is_err());
        assert_eq!(bytes_text(3 * 1024 * 1024 * 1024 / 2), "1.5 GB");
    }

    #[test]
    fn sizes_and_row_counts_parse_in_the_units_people_write() {
        assert_eq!(CostLimit::parse("10GB"), Ok(CostLimit::Bytes(10 * 1024 * 1024 * 1024)));
        assert_eq!(CostLimit::parse("500 mb"), Ok(CostLimit::Bytes(500 * 1024 * 1024)));
        assert_eq!(CostLimit::parse("1.5TB"), Ok(CostLimit::Bytes(1_649_267_441_664)));
        assert_eq!(CostLimit::parse("2048"), Ok(CostLimit::Bytes(2048)));
        assert_eq!(CostLimit::parse("5M rows"), Ok(CostLimit::Rows(5_000_000)));
        assert_eq!(CostLimit::parse("200000 rows"), Ok(CostLimit::Rows(200_000)));
        assert!(CostLimit::parse("lots").is_err());
        assert!(CostLimit::parse("10 parsecs").is_err());
        assert!(CostLimit::parse("0GB").is_err());
    }

    #[test]
    fn an_estimate_exceeds_a_limit_only_in_a_unit_it_states() {
        let estimate = CostEstimate {
            rows: Some(7_200_000),
            bytes: None,
        };
        assert!(CostLimit::Rows(5_000_000).exceeded_by(&estimate));
        assert!(!CostLimit::Rows(8_000_000).exceeded_by(&estimate));
        assert!(!CostLimit::Bytes(1).exceeded_by(&estimate), "no bytes estimated");
        assert_eq!(CostLimit::Rows(5_000_000).describe(&estimate), "7.2M rows");
        assert_eq!(CostLimit::Bytes(10 * 1024 * 1024 * 1024).to_string(), "10.0 GB");
    }
}
