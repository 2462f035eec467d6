//! Deciding what to draw from a query result alone: the chart kind, the x axis (time buckets
//! or categories), one series per metric or per value of a second text column, the axis names,
//! and the caps on categories and series with a note about what was left out.
use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime};
use rust_decimal::prelude::ToPrimitive;

use super::{ChartError, ChartKind, NoChartReason};
use crate::domain::{Column, ColumnFormat, QueryResult, Value};
use crate::render::number::{display_format, format_value, is_numeric};

/// Bars beyond this many categories are unreadable; the largest ones are kept.
pub const MAX_CATEGORIES: usize = 30;
/// Lines or bar colours beyond this many cannot be told apart; the largest series are kept.
pub const MAX_SERIES: usize = 8;
/// Total bars in a grouped chart; fewer categories are kept when there are many series.
const MAX_BARS: usize = 64;

/// What to draw, decided from the result alone.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Plan {
    pub(super) kind: ChartKind,
    pub(super) x_name: String,
    pub(super) x: XAxis,
    pub(super) series: Vec<Series>,
    pub(super) y_name: String,
    /// Name of the metric drawn against a second value axis on the right; it is always the
    /// second series.
    pub(super) right_axis: Option<String>,
    /// How the values read on bars (money, integer, number).
    pub(super) y_format: ColumnFormat,
    /// Sentences about what was left out, shown under the title.
    pub(super) notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum XAxis {
    Time {
        points: Vec<NaiveDateTime>,
        grain: TimeGrain,
    },
    Categories(Vec<String>),
}

impl XAxis {
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        match self {
            XAxis::Time { points, .. } => points.len(),
            XAxis::Categories(labels) => labels.len(),
        }
    }
}

/// One line, or one colour of bars; `values` lines up with the x axis.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Series {
    pub(super) name: String,
    pub(super) values: Vec<Option<f64>>,
}

impl Series {
    fn magnitude(&self) -> f64 {
        self.values.iter().flatten().map(|v| v.abs()).sum()
    }
}

/// How far apart the time buckets are, which decides how their labels read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TimeGrain {
    Year,
    Quarter,
    Month,
    Day,
    Time,
}

impl TimeGrain {
    fn of(points: &[NaiveDateTime]) -> TimeGrain {
        if points.iter().any(|p| p.time() != NaiveTime::MIN) {
            return TimeGrain::Time;
        }
        let dates: Vec<NaiveDate> = points.iter().map(|p| p.date()).collect();
        if dates.iter().any(|d| d.day() != 1) {
            TimeGrain::Day
        } else if dates.iter().all(|d| d.month() == 1) {
            TimeGrain::Year
        } else if dates.iter().all(|d| d.month() % 3 == 1) && min_gap_days(&dates) >= 85 {
            TimeGrain::Quarter
        } else {
            TimeGrain::Month
        }
    }

    pub(super) fn label(self, point: &NaiveDateTime) -> String {
        match self {
            TimeGrain::Year => point.format("%Y").to_string(),
            TimeGrain::Quarter => format!("Q{} {}", (point.month() - 1) / 3 + 1, point.year()),
            TimeGrain::Month => point.format("%b %Y").to_string(),
            TimeGrain::Day => point.format("%Y-%m-%d").to_string(),
            TimeGrain::Time => point.format("%m-%d %H:%M").to_string(),
        }
    }
}

fn min_gap_days(dates: &[NaiveDate]) -> i64 {
    dates
        .windows(2)
        .filter_map(|pair| match pair {
            [a, b] => Some((*b - *a).num_days()),
            _ => None,
        })
        .min()
        .unwrap_or(i64::MAX)
}

/// Decides what to draw for `result`, or why nothing can be drawn.
pub(super) fn plan_chart(result: &QueryResult) -> Result<Plan, ChartError> {
    if result.rows.len() < 2 {
        return Err(ChartError::NothingToChart(NoChartReason::TooFewRows(result.rows.len())));
    }
    let columns = &result.columns;
    let cell = |row: &[Value], index: usize| row.get(index).cloned().unwrap_or(Value::Null);

    // Metrics are the numeric columns that hold numbers; every other column labels them.
    let mut metrics: Vec<usize> = (0..columns.len())
        .filter(|&i| columns.get(i).is_some_and(|c| is_numeric(display_format(c))))
        .filter(|&i| result.rows.iter().any(|row| numeric(&cell(row, i)).is_some()))
        .collect();
    let mut dimensions: Vec<usize> = (0..columns.len()).filter(|i| !metrics.contains(i)).collect();
    if metrics.is_empty() {
        return Err(ChartError::NothingToChart(NoChartReason::NoNumbers));
    }
    if dimensions.is_empty() {
        // Only numbers ("hour, orders"): the first column labels the rest.
        if metrics.len() < 2 {
            return Err(ChartError::NothingToChart(NoChartReason::NoLabels));
        }
        dimensions.push(metrics.remove(0));
    }
    let (x_index, group_indices) = match dimensions.split_first() {
        Some((first, rest)) => (*first, rest.to_vec()),
        None => return Err(ChartError::NothingToChart(NoChartReason::NoLabels)),
    };
    let x_column = column_at(columns, x_index);
    // Judged by the values rather than the declared format: a "date" column holding week
    // names ("2024-W05") is still better drawn as categories than not at all.
    let is_time = all_times(result.rows.iter().map(|row| cell(row, x_index)));

    // Pivot: one x position per distinct x value, one series per (group, metric).
    let mut x_times: BTreeMap<NaiveDateTime, usize> = BTreeMap::new();
    let mut x_labels: Vec<String> = Vec::new();
    let mut x_by_label: HashMap<String, usize> = HashMap::new();
    let mut series_names: Vec<String> = Vec::new();
    let mut series_by_name: HashMap<String, usize> = HashMap::new();
    let mut cells: HashMap<(usize, usize), f64> = HashMap::new();
    let mut skipped_without_x = 0usize;
    let mut duplicates = 0usize;
    for row in &result.rows {
        let x_value = cell(row, x_index);
        let x_position = if is_time {
            match as_time(&x_value) {
                Some(time) => {
                    let next = x_times.len();
                    *x_times.entry(time).or_insert(next)
                }
                None => {
                    skipped_without_x += 1;
                    continue;
                }
            }
        } else {
            let label = label_of(&x_value, x_column);
            let next = x_labels.len();
            *x_by_label.entry(label.clone()).or_insert_with(|| {
                x_labels.push(label);
                next
            })
        };
        let group = group_indices
            .iter()
            .map(|&i| label_of(&cell(row, i), column_at(columns, i)))
            .collect::<Vec<_>>()
            .join(" · ");
        for &metric in &metrics {
            let name = match (group.is_empty(), metrics.len()) {
                (true, _) => column_at(columns, metric).name.clone(),
                (false, 1) => group.clone(),
                (false, _) => format!("{group} · {}", column_at(columns, metric).name),
            };
            let next = series_names.len();
            let series_index = *series_by_name.entry(name.clone()).or_insert_with(|| {
                series_names.push(name);
                next
            });
            if let Some(value) = numeric(&cell(row, metric)) {
                if cells.insert((x_position, series_index), value).is_some() {
                    duplicates += 1;
                }
            }
        }
    }

    // Times are numbered in arrival order; renumber them in time order.
    let (x_axis, x_order): (XAxis, Vec<usize>) = if is_time {
        let points: Vec<NaiveDateTime> = x_times.keys().copied().collect();
        let order = x_times.values().copied().collect();
        let grain = TimeGrain::of(&points);
        (XAxis::Time { points, grain }, order)
    } else {
        let order = (0..x_labels.len()).collect();
        (XAxis::Categories(x_labels), order)
    };
    let mut series: Vec<Series> = series_names
        .into_iter()
        .enumerate()
        .map(|(index, name)| Series {
            name,
            values: x_order.iter().map(|&x| cells.get(&(x, index)).copied()).collect(),
        })
        .filter(|s| s.values.iter().any(Option::is_some))
        .collect();
    if series.is_empty() {
        return Err(ChartError::NothingToChart(NoChartReason::NoNumbers));
    }

    let mut notes = Vec::new();
    if skipped_without_x > 0 {
        notes.push(format!(
            "{} rows without a {} are left out",
            skipped_without_x, x_column.name
        ));
    }
    if duplicates > 0 {
        notes.push(format!(
            "{duplicates} repeated {} values show only their last row",
            x_column.name
        ));
    }

    let metric_names: Vec<&str> = metrics.iter().map(|&i| column_at(columns, i).name.as_str()).collect();
    let y_name = metric_names.join(", ");
    if series.len() > MAX_SERIES {
        let total = series.len();
        series = keep_largest(series, MAX_SERIES, |s| s.magnitude());
        let what = match (group_indices.is_empty(), group_indices.first()) {
            (false, Some(&first)) if metrics.len() == 1 => column_at(columns, first).name.clone(),
            _ => "series".to_string(),
        };
        let what = if what == "series" {
            what
        } else {
            format!("{what} values")
        };
        notes.push(format!("showing the {MAX_SERIES} largest of {total} {what}"));
    }

    let mut x = x_axis;
    if let XAxis::Categories(labels) = &x {
        let limit = if series.len() > 1 {
            (MAX_BARS / series.len()).clamp(5, MAX_CATEGORIES)
        } else {
            MAX_CATEGORIES
        };
        if labels.len() > limit {
            let total = labels.len();
            let weights: Vec<f64> = (0..total)
                .map(|i| {
                    series
                        .iter()
                        .filter_map(|s| s.values.get(i).copied().flatten())
                        .map(f64::abs)
                        .sum()
                })
                .collect();
            let keep = largest_indices(&weights, limit);
            x = XAxis::Categories(keep.iter().filter_map(|&i| labels.get(i).cloned()).collect());
            for s in &mut series {
                s.values = keep.iter().map(|&i| s.values.get(i).copied().flatten()).collect();
            }
            notes.push(format!(
                "showing the {limit} largest of {total} {} values by {y_name}",
                x_column.name
            ));
        }
    }

    let kind = match (&x, series.len()) {
        (XAxis::Time { points, .. }, _) if points.len() >= 2 => ChartKind::Line,
        (_, 1) => ChartKind::Bars,
        _ => ChartKind::GroupedBars,
    };
    // A single point in time cannot make a line; it is drawn as bars labelled with its date.
    if let XAxis::Time { points, grain } = &x {
        if kind != ChartKind::Line {
            x = XAxis::Categories(points.iter().map(|p| grain.label(p)).collect());
        }
    }
    let formats: Vec<ColumnFormat> = metrics.iter().map(|&i| display_format(column_at(columns, i))).collect();
    let y_format = match formats.split_first() {
        Some((first, rest)) if rest.iter().all(|f| f == first) => *first,
        _ => ColumnFormat::Number,
    };
    // Two metrics on very different scales (revenue and orders) get an axis each, or the
    // smaller one would lie flat along the bottom.
    let right_axis = match (
        group_indices.is_empty(),
        metric_names.as_slice(),
        series.as_slice(),
        formats.as_slice(),
    ) {
        (true, [left_name, right_name], [left, right], [left_format, right_format])
            if left_format != right_format || scale_ratio(left, right) >= 8.0 =>
        {
            Some((left_name.to_string(), right_name.to_string()))
        }
        _ => None,
    };
    let (y_name, right_axis) = match right_axis {
        Some((left, right)) => (left, Some(right)),
        None => (y_name, None),
    };
    Ok(Plan {
        kind,
        x_name: x_column.name.clone(),
        x,
        series,
        y_name,
        right_axis,
        y_format,
        notes,
    })
}

/// How many times larger the bigger series is than the smaller one, by their largest values.
fn scale_ratio(a: &Series, b: &Series) -> f64 {
    let peak = |s: &Series| s.values.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
    let (a, b) = (peak(a), peak(b));
    let (big, small) = if a >= b { (a, b) } else { (b, a) };
    if small > 0.0 {
        big / small
    } else {
        f64::INFINITY
    }
}

fn column_at(columns: &[Column], index: usize) -> &Column {
    static MISSING: OnceLock<Column> = OnceLock::new();
    columns.get(index).unwrap_or_else(|| {
        MISSING.get_or_init(|| Column {
            name: String::new(),
            format: ColumnFormat::Text,
        })
    })
}

/// Keeps the `limit` items with the largest `weight`, in their original order.
fn keep_largest<T>(items: Vec<T>, limit: usize, weight: impl Fn(&T) -> f64) -> Vec<T> {
    let weights: Vec<f64> = items.iter().map(&weight).collect();
    let keep = largest_indices(&weights, limit);
    items
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, item)| item)
        .collect()
}

/// Indices of the `limit` largest weights, in ascending index order.
fn largest_indices(weights: &[f64], limit: usize) -> Vec<usize> {
    let mut by_weight: Vec<usize> = (0..weights.len()).collect();
    by_weight.sort_by(|&a, &b| {
        let (wa, wb) = (weights.get(a).copied(), weights.get(b).copied());
        wb.partial_cmp(&wa).unwrap_or(std::cmp::Ordering::Equal).then(a.cmp(&b))
    });
    by_weight.truncate(limit);
    by_weight.sort_unstable();
    by_weight
}

fn label_of(value: &Value, column: &Column) -> String {
    format_value(value, display_format(column))
}

/// The number in a cell; SQLite may hand numbers over as text.
fn numeric(value: &Value) -> Option<f64> {
    let number = match value {
        Value::Int(n) => *n as f64,
        Value::Float(f) => *f,
        Value::Decimal(d) => d.to_f64()?,
        Value::Text(text) => text.trim().parse::<f64>().ok()?,
        Value::Null | Value::Bool(_) | Value::Date(_) | Value::Timestamp(_) => return None,
    };
    number.is_finite().then_some(number)
}

/// The point in time a cell stands for: dates, timestamps, and ISO text ("2024-03-01",
/// "2024-03", "2024-03-01 10:00:00", RFC 3339).
fn as_time(value: &Value) -> Option<NaiveDateTime> {
    match value {
        Value::Date(date) => Some(date.and_time(NaiveTime::MIN)),
        Value::Timestamp(ts) => Some(*ts),
        Value::Text(text) => {
            let text = text.trim();
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(|d| d.and_time(NaiveTime::MIN))
                .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f"))
                .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f"))
                .or_else(|_| chrono::DateTime::parse_from_rfc3339(text).map(|t| t.naive_utc()))
                .or_else(|_| {
                    NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d").map(|d| d.and_time(NaiveTime::MIN))
                })
                .ok()
                .filter(|_| text.len() >= 7)
        }
        Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) | Value::Decimal(_) => None,
    }
}

fn all_times(values: impl Iterator<Item = Value>) -> bool {
    let mut seen = false;
    for value in values {
        if value == Value::Null {
            continue;
        }
        if as_time(&value).is_none() {
            return false;
        }
        seen = true;
    }
    seen
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::render::chart::fixtures::*;
    use crate::render::chart::render_chart;

    fn plan(result: &QueryResult) -> Plan {
        match plan_chart(result) {
            Ok(plan) => plan,
            Err(error) => panic!("no plan: {error}"),
        }
    }

    #[test]
    fn two_dimensions_and_one_metric_render_as_grouped_bars_with_one_series_per_second_dimension() {
        let result = revenue_by_region_and_channel();

        let plan = plan(&result);

        assert_eq!(plan.kind, ChartKind::GroupedBars);
        let names: Vec<&str> = plan.series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["web", "mobile", "marketplace"]);
        assert_eq!(
            plan.x,
            XAxis::Categories(vec![
                "North America".into(),
                "EMEA".into(),
                "APAC".into(),
                "LATAM".into()
            ])
        );
    }

    #[test]
    fn a_time_bucket_with_a_second_dimension_gives_one_line_per_value() {
        let result = weekly_users_by_platform();

        let plan = plan(&result);

        assert_eq!(plan.kind, ChartKind::Line);
        assert_eq!(plan.series.len(), 3);
        assert_eq!(plan.x.len(), 40);
    }

    #[test]
    fn two_hundred_categories_render_with_the_largest_thirty_and_a_note() {
        let result = many_products(200);

        let plan = plan(&result);

        assert_eq!(plan.x.len(), MAX_CATEGORIES);
        assert!(
            plan.notes
                .iter()
                .any(|n| n.contains("30 largest of 200 product values")),
            "{:?}",
            plan.notes
        );
        // The kept bars are the largest ones.
        let smallest_kept = plan
            .series
            .iter()
            .flat_map(|s| s.values.iter().flatten())
            .fold(f64::MAX, |a, &b| a.min(b));
        let mut all: Vec<f64> = result.rows.iter().filter_map(|r| r.get(1).and_then(numeric)).collect();
        all.sort_by(|a, b| b.partial_cmp(a).unwrap_or(std::cmp::Ordering::Equal));
        assert_eq!(Some(&smallest_kept), all.get(MAX_CATEGORIES - 1));
    }

    #[test]
    fn more_than_eight_series_are_cut_to_the_largest_eight_with_a_note() {
        let mut rows = Vec::new();
        for month in 1..=6 {
            for country in 0..12i64 {
                rows.push(vec![
                    Value::Date(day(2024, month, 1)),
                    text(&format!("country {country}")),
                    Value::Int(1_000 * (country + 1)),
                ]);
            }
        }
        let result = QueryResult {
            columns: vec![
                column("month", ColumnFormat::Date),
                column("country", ColumnFormat::Text),
                column("orders", ColumnFormat::Integer),
            ],
            rows,
        };

        let plan = plan(&result);

        assert_eq!(plan.series.len(), MAX_SERIES);
        assert_eq!(plan.series.first().map(|s| s.name.as_str()), Some("country 4"));
        assert!(
            plan.notes.iter().any(|n| n.contains("8 largest of 12 country values")),
            "{:?}",
            plan.notes
        );
        assert!(render_chart(&result, "Orders by country").is_ok());
    }

    #[test]
    fn time_buckets_are_ordered_by_time_and_labelled_by_their_grain() {
        let cases: Vec<(&str, Vec<Value>, TimeGrain, &str)> = vec![
            (
                "months as iso text",
                vec![text("2024-02-01"), text("2024-01-01")],
                TimeGrain::Month,
                "Jan 2024",
            ),
            (
                "months as year-month text",
                vec![text("2024-02"), text("2024-01")],
                TimeGrain::Month,
                "Jan 2024",
            ),
            (
                "hours as rfc 3339 text",
                vec![text("2024-03-01T11:00:00Z"), text("2024-03-01T10:00:00.000Z")],
                TimeGrain::Time,
                "03-01 10:00",
            ),
            (
                "years",
                vec![text("2024-01-01"), text("2023-01-01")],
                TimeGrain::Year,
                "2023",
            ),
            (
                "quarters",
                vec![Value::Date(day(2024, 4, 1)), Value::Date(day(2024, 1, 1))],
                TimeGrain::Quarter,
                "Q1 2024",
            ),
            (
                "days",
                vec![Value::Date(day(2024, 3, 5)), Value::Date(day(2024, 3, 4))],
                TimeGrain::Day,
                "2024-03-04",
            ),
        ];
        for (description, buckets, expected_grain, first_label) in cases {
            let result = QueryResult {
                columns: vec![column("bucket", ColumnFormat::Text), column("n", ColumnFormat::Integer)],
                rows: buckets.into_iter().map(|b| vec![b, Value::Int(1)]).collect(),
            };
            let plan = plan(&result);
            match &plan.x {
                XAxis::Time { points, grain } => {
                    assert_eq!(*grain, expected_grain, "{description}");
                    assert_eq!(
                        points.first().map(|p| grain.label(p)).as_deref(),
                        Some(first_label),
                        "{description}"
                    );
                    assert!(
                        points.windows(2).all(|w| w.first() < w.last()),
                        "{description}: not in time order"
                    );
                }
                XAxis::Categories(_) => panic!("{description}: expected a time axis"),
            }
        }
    }

    #[test]
    fn a_single_point_in_time_with_several_series_is_drawn_as_grouped_bars() {
        let result = QueryResult {
            columns: vec![
                column("month", ColumnFormat::Date),
                column("region", ColumnFormat::Text),
                column("revenue", ColumnFormat::Money),
            ],
            rows: vec![
                vec![Value::Date(day(2024, 3, 1)), text("EMEA"), Value::Float(10.0)],
                vec![Value::Date(day(2024, 3, 1)), text("APAC"), Value::Float(12.0)],
            ],
        };

        let plan = plan(&result);

        assert_eq!(plan.kind, ChartKind::GroupedBars);
        assert_eq!(plan.x, XAxis::Categories(vec!["Mar 2024".into()]));
        assert!(render_chart(&result, "Revenue by region in March").is_ok());
    }

    #[test]
    fn missing_values_and_hourly_timestamps_still_render_a_line_chart() {
        let start = day(2024, 3, 1).and_hms_opt(0, 0, 0).unwrap_or_default();
        let rows = (0..48i64)
            .map(|hour| {
                let value = if hour % 10 == 3 {
                    Value::Null
                } else {
                    Value::Int(100 + hour * 3)
                };
                vec![Value::Timestamp(start + Duration::hours(hour)), value]
            })
            .collect();
        let result = QueryResult {
            columns: vec![
                column("hour", ColumnFormat::Text),
                column("sessions", ColumnFormat::Integer),
            ],
            rows,
        };

        let plan = plan(&result);

        assert_eq!(plan.kind, ChartKind::Line);
        assert!(matches!(
            plan.x,
            XAxis::Time {
                grain: TimeGrain::Time,
                ..
            }
        ));
    }

    #[test]
    fn two_metrics_on_different_scales_get_a_right_axis_for_the_second() {
        let plan = plan(&monthly_revenue());

        assert_eq!(plan.y_name, "revenue");
        assert_eq!(plan.right_axis.as_deref(), Some("orders"));
    }

    #[test]
    fn year_numbers_are_categories_not_values() {
        let result = QueryResult {
            columns: vec![
                column("year", ColumnFormat::Integer),
                column("orders", ColumnFormat::Integer),
            ],
            rows: vec![
                vec![Value::Int(2023), Value::Int(25_000)],
                vec![Value::Int(2024), Value::Int(31_000)],
            ],
        };

        let plan = plan(&result);

        assert_eq!(plan.x, XAxis::Categories(vec!["2023".into(), "2024".into()]));
        assert_eq!(plan.series.len(), 1);
    }
}
