//! A query over the semantic model, as the rules interpreter builds and refines it.
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// A query over the semantic model: what to measure, how to break it down, which rows count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StructuredQuery {
    /// Metric names from the semantic model, at least one.
    pub metrics: Vec<String>,
    /// Dimension names from the semantic model, in output order.
    pub dimensions: Vec<String>,
    /// Time grain of the time dimension, when broken down over time.
    pub grain: Option<Grain>,
    pub filters: Vec<Filter>,
    pub time_range: Option<TimeRange>,
    pub top: Option<TopN>,
    /// "vs last quarter": the metrics over `time_range` and over this earlier range side by
    /// side, with the change between them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare_to: Option<TimeRange>,
    /// "share of revenue by channel": each row's share of the total, in percent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub share: bool,
    /// "sort by name", "sort ascending": overrides the default order (largest first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<Sort>,
    /// "issued in 2019", "shipped last month": the date column (`table.column`) the time range
    /// and grain apply to, when the question named one; else the fact table's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_column: Option<String>,
}

/// An explicit order of the rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sort {
    pub by: SortKey,
    pub descending: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortKey {
    /// The first metric.
    Metric,
    /// The breakdown's labels (the first dimension, else the time bucket).
    Label,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grain {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl Grain {
    /// The output column name of the time bucket, also the word used in summaries.
    pub fn name(self) -> &'static str {
        match self {
            Grain::Day => "day",
            Grain::Week => "week",
            Grain::Month => "month",
            Grain::Quarter => "quarter",
            Grain::Year => "year",
        }
    }
}

/// `dimension IN (values)` or, negated, `NOT IN`. Values are canonical values read from the
/// warehouse, never the user's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    pub dimension: String,
    pub values: Vec<String>,
    pub negated: bool,
}

/// Half-open date range `[start, end)` with the words it came from ("last month").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRange {
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub label: String,
}

/// `top N` (largest first) or `bottom N` (smallest first) by the first metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopN {
    pub n: u32,
    pub largest_first: bool,
}
