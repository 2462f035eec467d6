//! Charts: a query result drawn as a PNG, for the `chart` follow-up and the Chart button.
//!
//! The chart kind follows the result's shape: a date or time bucket first gives lines over time
//! (one per metric, or one per value of a second text column), a text column first gives bars
//! (grouped when there are several metrics or a second text column). Text is drawn with DejaVu
//! Sans compiled into the binary, so rendering needs no system fonts and no fontconfig, and the
//! whole module is pure: result in, PNG bytes out.
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::OnceLock;

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;
use rust_decimal::prelude::ToPrimitive;

use crate::domain::{Column, ColumnFormat, QueryResult, Value};
use crate::render::number::{display_format, format_value, group_thousands, is_numeric};

/// Size of every chart, in pixels: wide enough for 30 labelled bars, and Slack shows it whole.
pub const CHART_WIDTH: u32 = 1000;
pub const CHART_HEIGHT: u32 = 600;
/// Bars beyond this many categories are unreadable; the largest ones are kept.
pub const MAX_CATEGORIES: usize = 30;
/// Lines or bar colours beyond this many cannot be told apart; the largest series are kept.
pub const MAX_SERIES: usize = 8;
/// Total bars in a grouped chart; fewer categories are kept when there are many series.
const MAX_BARS: usize = 64;

/// Font family name the embedded font is registered under.
const FONT: &str = "sans-serif";
/// Tableau 10: distinct, colour-blind friendly, and readable on white.
const PALETTE: [RGBColor; MAX_SERIES] = [
    RGBColor(0x4E, 0x79, 0xA7),
    RGBColor(0xF2, 0x8E, 0x2B),
    RGBColor(0xE1, 0x57, 0x59),
    RGBColor(0x59, 0xA1, 0x4F),
    RGBColor(0x76, 0xB7, 0xB2),
    RGBColor(0xB0, 0x7A, 0xA1),
    RGBColor(0xED, 0xC9, 0x48),
    RGBColor(0x9C, 0x75, 0x5F),
];
const TEXT: RGBColor = RGBColor(0x22, 0x22, 0x22);
const MUTED: RGBColor = RGBColor(0x66, 0x66, 0x66);
const GRID: RGBColor = RGBColor(0xE4, 0xE4, 0xE4);

/// A rendered chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// PNG file contents.
    pub png: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub kind: ChartKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartKind {
    /// Lines over time, one per series.
    Line,
    /// One bar per category.
    Bars,
    /// Several bars (one per series) side by side in each category.
    GroupedBars,
}

#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// The result has no shape a chart can show; the reason is written for the person who asked.
    #[error("{0}")]
    NothingToChart(NoChartReason),
    /// Drawing or encoding failed: a bug, not the user's doing.
    #[error("the chart could not be drawn: {0}")]
    Draw(String),
}

impl ChartError {
    /// What to tell the person who asked for the chart.
    pub fn user_message(&self) -> String {
        match self {
            ChartError::NothingToChart(reason) => reason.to_string(),
            ChartError::Draw(_) => "Sorry, I could not draw that chart.".to_string(),
        }
    }
}

/// Why a result cannot be charted, as a sentence for the thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NoChartReason {
    #[error(
        "A chart needs at least two rows to compare, and this answer has {0}. Ask for a breakdown \
         (\"by month\", \"by region\") to get something to chart."
    )]
    TooFewRows(usize),
    #[error("A chart needs a column of numbers, and this answer has none.")]
    NoNumbers,
    #[error(
        "A chart needs a column to label the bars or points (a date, a name, a category), and this \
         answer only has one column of numbers."
    )]
    NoLabels,
}

/// Draws `result` as a PNG chart under `title` (usually the question or the answer's headline).
pub fn render_chart(result: &QueryResult, title: &str) -> Result<Chart, ChartError> {
    let plan = plan_chart(result)?;
    let mut pixels = vec![0u8; pixel_buffer_len(CHART_WIDTH, CHART_HEIGHT)];
    draw_plan(&plan, title, &mut pixels)?;
    let png = encode_png(&pixels, CHART_WIDTH, CHART_HEIGHT)?;
    Ok(Chart {
        png,
        width: CHART_WIDTH,
        height: CHART_HEIGHT,
        kind: plan.kind,
    })
}

// ---------------------------------------------------------------------------------------------
// Planning: from rows and columns to axes and series, with the caps applied.
// ---------------------------------------------------------------------------------------------

/// What to draw, decided from the result alone.
#[derive(Debug, Clone, PartialEq)]
struct Plan {
    kind: ChartKind,
    x_name: String,
    x: XAxis,
    series: Vec<Series>,
    y_name: String,
    /// Name of the metric drawn against a second value axis on the right; it is always the
    /// second series.
    right_axis: Option<String>,
    /// How the values read on bars (money, integer, number).
    y_format: ColumnFormat,
    /// Sentences about what was left out, shown under the title.
    notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum XAxis {
    Time {
        points: Vec<NaiveDateTime>,
        grain: TimeGrain,
    },
    Categories(Vec<String>),
}

impl XAxis {
    #[cfg(test)]
    fn len(&self) -> usize {
        match self {
            XAxis::Time { points, .. } => points.len(),
            XAxis::Categories(labels) => labels.len(),
        }
    }
}

/// One line, or one colour of bars; `values` lines up with the x axis.
#[derive(Debug, Clone, PartialEq)]
struct Series {
    name: String,
    values: Vec<Option<f64>>,
}

impl Series {
    fn magnitude(&self) -> f64 {
        self.values.iter().flatten().map(|v| v.abs()).sum()
    }
}

/// How far apart the time buckets are, which decides how their labels read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeGrain {
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

    fn label(self, point: &NaiveDateTime) -> String {
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

fn plan_chart(result: &QueryResult) -> Result<Plan, ChartError> {
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

// ---------------------------------------------------------------------------------------------
// Drawing.
// ---------------------------------------------------------------------------------------------

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

const TITLE_SIZE: f64 = 24.0;
const NOTE_SIZE: f64 = 15.0;
const LABEL_SIZE: f64 = 14.0;
const DESC_SIZE: f64 = 16.0;
const LEGEND_SIZE: f64 = 15.0;
/// Height of the band above the plot holding the title, and the note under it when there is one.
const HEADER_HEIGHT: u32 = 52;
const HEADER_WITH_NOTE_HEIGHT: u32 = 76;
const LEGEND_MAX_WIDTH: u32 = 240;
/// Longest category label, in pixels, before it is cut with an ellipsis.
const CATEGORY_LABEL_MAX_WIDTH: u32 = 160;

fn pixel_buffer_len(width: u32, height: u32) -> usize {
    // Three bytes (RGB) per pixel.
    usize::try_from(u64::from(width) * u64::from(height) * 3).unwrap_or(0)
}

fn draw_error(error: impl std::fmt::Display) -> ChartError {
    ChartError::Draw(error.to_string())
}

/// Registers the embedded font once per process; plotters looks fonts up by family name.
fn ensure_font() -> Result<(), ChartError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(ChartError::Draw("the embedded font could not be loaded".to_string()))
    }
}

fn font(size: f64) -> TextStyle<'static> {
    (FONT, size).into_font().color(&TEXT)
}

fn bold(size: f64) -> TextStyle<'static> {
    (FONT, size, FontStyle::Bold).into_font().color(&TEXT)
}

fn text_width(area: &Area<'_>, text: &str, style: &TextStyle<'_>) -> u32 {
    area.estimate_text_size(text, style).map(|(w, _)| w).unwrap_or(0)
}

/// Cuts `text` with an ellipsis so that it fits in `max_width` pixels.
fn fit_text(area: &Area<'_>, text: &str, style: &TextStyle<'_>, max_width: u32) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text_width(area, &text, style) <= max_width {
        return text;
    }
    let chars: Vec<char> = text.chars().collect();
    let (mut low, mut high) = (0usize, chars.len());
    // Binary search for the longest prefix that fits with the ellipsis.
    while low < high {
        let middle = (low + high).div_ceil(2);
        let candidate: String = chars.iter().take(middle).collect::<String>() + "…";
        if text_width(area, &candidate, style) <= max_width {
            low = middle;
        } else {
            high = middle - 1;
        }
    }
    chars.iter().take(low).collect::<String>().trim_end().to_string() + "…"
}

/// Cuts `text` in the middle so that it fits in `max_width` pixels: category names often share
/// a prefix ("Product …") and differ at the end, so both ends are kept.
fn fit_text_middle(area: &Area<'_>, text: &str, style: &TextStyle<'_>, max_width: u32) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text_width(area, &text, style) <= max_width {
        return text;
    }
    let chars: Vec<char> = text.chars().collect();
    let shortened = |kept: usize| {
        let tail = kept * 2 / 5;
        let head: String = chars.iter().take(kept - tail).collect();
        let tail: String = chars.iter().skip(chars.len() - tail).collect();
        format!("{}…{}", head.trim_end(), tail.trim_start())
    };
    let (mut low, mut high) = (0usize, chars.len());
    while low < high {
        let middle = (low + high).div_ceil(2);
        if text_width(area, &shortened(middle), style) <= max_width {
            low = middle;
        } else {
            high = middle - 1;
        }
    }
    shortened(low)
}

fn draw_plan(plan: &Plan, title: &str, pixels: &mut [u8]) -> Result<(), ChartError> {
    ensure_font()?;
    let root = BitMapBackend::with_buffer(pixels, (CHART_WIDTH, CHART_HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;

    let header_height = if plan.notes.is_empty() {
        HEADER_HEIGHT
    } else {
        HEADER_WITH_NOTE_HEIGHT
    };
    let (header, body) = root.split_vertically(header_height);
    draw_header(&header, title, &plan.notes)?;

    let legend: Vec<String> = plan
        .series
        .iter()
        .enumerate()
        .map(|(index, series)| match (&plan.right_axis, index) {
            (Some(_), 1) => format!("{} (right axis)", series.name),
            _ => series.name.clone(),
        })
        .collect();
    let legend_width = if legend.len() > 1 {
        let widest = legend
            .iter()
            .map(|l| text_width(&body, l, &font(LEGEND_SIZE)))
            .max()
            .unwrap_or(0);
        (widest + 44).min(LEGEND_MAX_WIDTH)
    } else {
        0
    };
    let (plot, legend_area) = body.split_horizontally(CHART_WIDTH - legend_width);
    match &plan.x {
        XAxis::Time { points, grain } => draw_lines(&plot, plan, points, *grain)?,
        XAxis::Categories(labels) => draw_bars(&plot, plan, labels)?,
    }
    if legend_width > 0 {
        draw_legend(&legend_area, &legend, legend_width)?;
    }
    root.present().map_err(draw_error)
}

fn draw_header(area: &Area<'_>, title: &str, notes: &[String]) -> Result<(), ChartError> {
    let max_width = CHART_WIDTH - 40;
    let title_style = bold(TITLE_SIZE);
    let title = fit_text(area, title, &title_style, max_width);
    area.draw(&Text::new(title, (20, 16), title_style))
        .map_err(draw_error)?;
    if !notes.is_empty() {
        let note_style = font(NOTE_SIZE).color(&MUTED);
        let note = notes.join("; ");
        let mut chars = note.chars();
        let note = match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect::<String>() + ".",
            None => note,
        };
        let note = fit_text(area, &note, &note_style, max_width);
        area.draw(&Text::new(note, (20, 48), note_style)).map_err(draw_error)?;
    }
    Ok(())
}

fn draw_legend(area: &Area<'_>, labels: &[String], width: u32) -> Result<(), ChartError> {
    let style = font(LEGEND_SIZE);
    for (index, (label, color)) in labels.iter().zip(PALETTE.iter()).enumerate() {
        let y = 14 + 26 * i32::try_from(index).unwrap_or(0);
        area.draw(&Rectangle::new([(4, y), (18, y + 14)], color.filled()))
            .map_err(draw_error)?;
        let text = fit_text(area, label, &style, width.saturating_sub(36));
        area.draw(&Text::new(
            text,
            (26, y + 7),
            style.pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(draw_error)?;
    }
    Ok(())
}

/// A series with its position in the plan, which picks its colour.
type IndexedSeries<'a> = (usize, &'a Series);

/// The series drawn against the left axis and the one (if any) drawn against the right axis.
fn split_axes(plan: &Plan) -> (Vec<IndexedSeries<'_>>, Vec<IndexedSeries<'_>>) {
    plan.series
        .iter()
        .enumerate()
        .partition(|(index, _)| plan.right_axis.is_none() || *index != 1)
}

fn value_range_of(series: &[IndexedSeries<'_>], from_zero: bool) -> (f64, f64) {
    let values: Vec<f64> = series
        .iter()
        .flat_map(|(_, s)| s.values.iter().flatten().copied())
        .collect();
    value_range(&values, from_zero)
}

/// The value axis: from zero (bars always; lines unless the values sit far from zero) to a
/// little past the largest value.
fn value_range(values: &[f64], from_zero: bool) -> (f64, f64) {
    let (mut low, mut high) = values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
        (lo.min(v), hi.max(v))
    });
    if !low.is_finite() || !high.is_finite() {
        return (0.0, 1.0);
    }
    let near_zero = (low >= 0.0 && low <= high * 0.5) || (high <= 0.0 && high >= low * 0.5);
    let anchored = from_zero || near_zero;
    if anchored {
        low = low.min(0.0);
        high = high.max(0.0);
    }
    let span = high - low;
    let pad = if span > 0.0 {
        span * 0.06
    } else {
        high.abs().max(1.0) * 0.1
    };
    let low = if low < 0.0 || !anchored { low - pad } else { low };
    let high = if high > 0.0 || !anchored { high + pad } else { high };
    (low, high)
}

/// Formats value-axis ticks with thousands separators and just enough decimals for the step.
fn tick_formatter(low: f64, high: f64) -> impl Fn(&f64) -> String {
    let step = (high - low) / 8.0;
    let decimals = if step >= 1.0 || step <= 0.0 {
        0
    } else {
        usize::try_from((-step.log10()).ceil() as i64).unwrap_or(0).min(6)
    };
    move |value: &f64| {
        let text = format!("{value:.decimals$}");
        // "-0" and "-0.00" read as zero.
        let text = match text.strip_prefix('-') {
            Some(unsigned) if unsigned.chars().all(|c| c == '0' || c == '.') => unsigned.to_string(),
            _ => text,
        };
        group_thousands(&text)
    }
}

/// Width of a value axis's label area: the widest tick label, the tick marks and the rotated
/// axis description.
fn value_label_area_width(area: &Area<'_>, (low, high): (f64, f64)) -> u32 {
    let format = tick_formatter(low, high);
    let widest = [low, high, (low + high) / 2.0]
        .iter()
        .map(|v| text_width(area, &format(v), &font(LABEL_SIZE)))
        .max()
        .unwrap_or(0);
    widest + 46
}

/// Value labels on bars read as rounded numbers; cents on a bar of millions are noise.
fn bar_value_text(value: f64, format: ColumnFormat) -> String {
    let format = match format {
        ColumnFormat::Money if value.abs() >= 1_000.0 => ColumnFormat::Integer,
        other => other,
    };
    format_value(&Value::Float(value), format)
}

/// Builds the plot: a labelled x axis, the left value axis with grid lines, and the right
/// value axis when the plan has one.
fn build_chart<'a, 'b>(
    area: &'a Area<'b>,
    plan: &Plan,
    x_axis: LabelledAxis,
    x_label_height: u32,
    left: (f64, f64),
    right: Option<(f64, f64)>,
    x_format: &dyn Fn(&f64) -> String,
) -> Result<DualChart<'a, 'b>, ChartError> {
    let x_range = x_axis.range();
    let right_range = right.unwrap_or(left);
    let mut chart = ChartBuilder::on(area)
        .margin_left(12)
        .margin_right(if right.is_some() { 12 } else { 28 })
        .margin_top(10)
        .margin_bottom(8)
        .x_label_area_size(x_label_height)
        .y_label_area_size(value_label_area_width(area, left))
        .right_y_label_area_size(if right.is_some() {
            value_label_area_width(area, right_range)
        } else {
            0
        })
        .build_cartesian_2d(x_axis, left.0..left.1)
        .map_err(draw_error)?
        .set_secondary_coord(x_range.clone(), right_range.0..right_range.1);
    let left_format = tick_formatter(left.0, left.1);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .bold_line_style(GRID)
        .light_line_style(WHITE)
        .axis_style(MUTED)
        .y_labels(8)
        .x_label_formatter(x_format)
        .y_label_formatter(&left_format)
        .label_style(font(LABEL_SIZE))
        .axis_desc_style(font(DESC_SIZE))
        .x_desc(plan.x_name.as_str())
        .y_desc(plan.y_name.as_str())
        .draw()
        .map_err(draw_error)?;
    if left.0 < 0.0 && left.1 > 0.0 {
        // Values on both sides of zero: a baseline shows which are which.
        let baseline = [(x_range.start, 0.0), (x_range.end, 0.0)];
        chart
            .draw_series(LineSeries::new(baseline, MUTED.stroke_width(1)))
            .map_err(draw_error)?;
    }
    if let (Some((low, high)), Some(name)) = (right, &plan.right_axis) {
        let right_format = tick_formatter(low, high);
        chart
            .configure_secondary_axes()
            .axis_style(MUTED)
            .y_labels(8)
            .y_label_formatter(&right_format)
            .label_style(font(LABEL_SIZE))
            .axis_desc_style(font(DESC_SIZE))
            .y_desc(name.as_str())
            .draw()
            .map_err(draw_error)?;
    }
    Ok(chart)
}

type DualChart<'a, 'b> = plotters::chart::DualCoordChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<LabelledAxis, RangedCoordf64>,
    Cartesian2d<RangedCoordf64, RangedCoordf64>,
>;

fn draw_lines(area: &Area<'_>, plan: &Plan, points: &[NaiveDateTime], grain: TimeGrain) -> Result<(), ChartError> {
    let (left_series, right_series) = split_axes(plan);
    let left = value_range_of(&left_series, false);
    let right = (!right_series.is_empty()).then(|| value_range_of(&right_series, false));
    let seconds: Vec<f64> = points.iter().map(|p| p.and_utc().timestamp() as f64).collect();
    let first = seconds.first().copied().unwrap_or(0.0);
    let last = seconds.last().copied().unwrap_or(1.0);
    let pad = ((last - first) * 0.02).max(1.0);

    // Label as many buckets as fit side by side, evenly spaced.
    let widest = points
        .iter()
        .map(|p| text_width(area, &grain.label(p), &font(LABEL_SIZE)))
        .max()
        .unwrap_or(60);
    let (plot_width, _) = area.dim_in_pixel();
    let room = usize::try_from(plot_width.saturating_sub(160) / (widest + 28))
        .unwrap_or(1)
        .max(2);
    let labelled_at = label_positions(points, &seconds, grain, room);
    let labels: HashMap<i64, String> = points
        .iter()
        .zip(&seconds)
        .map(|(p, s)| (*s as i64, grain.label(p)))
        .collect();
    let x_format = |x: &f64| labels.get(&(*x as i64)).cloned().unwrap_or_default();
    let x_axis = LabelledAxis::new(first - pad..last + pad, labelled_at);
    let mut chart = build_chart(area, plan, x_axis, 58, left, right, &x_format)?;

    let markers = points.len() <= 60;
    // Thick lines over hundreds of points turn into a solid band.
    let stroke = match points.len() {
        0..=120 => 3,
        121..=300 => 2,
        _ => 1,
    };
    for (index, series) in plan.series.iter().enumerate() {
        let color = PALETTE.get(index % PALETTE.len()).copied().unwrap_or(BLACK);
        let on_right = right_series.iter().any(|(i, _)| *i == index);
        // A missing value breaks the line rather than bridging the gap.
        let pairs: Vec<(Option<f64>, f64)> = series.values.iter().copied().zip(seconds.iter().copied()).collect();
        for run in pairs.split(|(value, _)| value.is_none()) {
            let run: Vec<(f64, f64)> = run.iter().filter_map(|(v, x)| v.map(|v| (*x, v))).collect();
            let line = LineSeries::new(run.iter().copied(), color.stroke_width(stroke));
            let dots = run
                .iter()
                .filter(|_| markers || run.len() == 1)
                .map(|&point| Circle::new(point, 4, color.filled()));
            if on_right {
                chart.draw_secondary_series(line).map_err(draw_error)?;
                chart.draw_secondary_series(dots).map_err(draw_error)?;
            } else {
                chart.draw_series(line).map_err(draw_error)?;
                chart.draw_series(dots).map_err(draw_error)?;
            }
        }
    }
    Ok(())
}

/// Which time buckets get a label: at most `room`, evenly spaced, and for months and long runs
/// of days or weeks on calendar boundaries (the first bucket of a month, quarter or year) so the
/// labels read as a calendar.
fn label_positions(points: &[NaiveDateTime], seconds: &[f64], grain: TimeGrain, room: usize) -> Vec<f64> {
    let room = room.max(1);
    let month_of = |p: &NaiveDateTime| (p.year(), p.month());
    let calendar: Vec<(&NaiveDateTime, f64)> = match grain {
        TimeGrain::Month => points.iter().zip(seconds.iter().copied()).collect(),
        TimeGrain::Day if points.len() > room => points
            .iter()
            .zip(seconds.iter().copied())
            .enumerate()
            .filter(
                |(i, (p, _))| match i.checked_sub(1).and_then(|previous| points.get(previous)) {
                    Some(previous) => month_of(previous) != month_of(p),
                    None => true,
                },
            )
            .map(|(_, point)| point)
            .collect(),
        _ => Vec::new(),
    };
    let needed = calendar.len().div_ceil(room).max(1);
    if let Some(stride) = [1i64, 2, 3, 6, 12, 24, 60, 120]
        .into_iter()
        .find(|&s| s >= i64::try_from(needed).unwrap_or(i64::MAX))
    {
        let aligned: Vec<f64> = calendar
            .iter()
            .filter(|(p, _)| (i64::from(p.year()) * 12 + i64::from(p.month0())).rem_euclid(stride) == 0)
            .map(|(_, s)| *s)
            .collect();
        if aligned.len() >= 2 {
            return aligned;
        }
    }
    seconds
        .iter()
        .step_by(points.len().div_ceil(room).max(1))
        .copied()
        .collect()
}

fn draw_bars(area: &Area<'_>, plan: &Plan, labels: &[String]) -> Result<(), ChartError> {
    let (left_series, right_series) = split_axes(plan);
    let left = value_range_of(&left_series, true);
    let right = (!right_series.is_empty()).then(|| value_range_of(&right_series, true));
    let count = labels.len().max(1);
    let (area_width, _) = area.dim_in_pixel();
    let axes_width = value_label_area_width(area, left) + right.map(|r| value_label_area_width(area, r)).unwrap_or(0);
    let slot = area_width.saturating_sub(axes_width + 40) / u32::try_from(count).unwrap_or(1);

    // Labels sit flat when they all fit under their bar; otherwise they are turned to read
    // upwards and shortened, so neighbours never overlap.
    let label_style = font(LABEL_SIZE);
    let flat = labels.iter().all(|l| text_width(area, l, &label_style) + 8 <= slot);
    let shown: Vec<String> = if flat {
        labels.to_vec()
    } else {
        labels
            .iter()
            .map(|l| fit_text_middle(area, l, &label_style, CATEGORY_LABEL_MAX_WIDTH))
            .collect()
    };
    let x_label_height = if flat {
        58
    } else {
        shown
            .iter()
            .map(|l| text_width(area, l, &label_style))
            .max()
            .unwrap_or(0)
            + 50
    };
    // Categories sit at 0.5, 1.5, ...; flat labels come from the mesh, turned ones are drawn
    // below, because plotters places turned tick labels poorly.
    let x_format = |x: &f64| {
        let index = (x - 0.5).round();
        if !flat || index < 0.0 {
            return String::new();
        }
        shown.get(index as usize).cloned().unwrap_or_default()
    };
    let centres: Vec<f64> = (0..count).map(|i| i as f64 + 0.5).collect();
    let x_axis = LabelledAxis::new(0.0..count as f64, centres.clone());
    let mut chart = build_chart(area, plan, x_axis, x_label_height, left, right, &x_format)?;

    if !flat {
        let (base_x, base_y) = area.get_base_pixel();
        let turned = label_style
            .transform(FontTransform::Rotate270)
            .pos(Pos::new(HPos::Right, VPos::Center));
        for (centre, label) in centres.iter().zip(&shown) {
            let (x, y) = chart.backend_coord(&(*centre, left.0));
            area.draw(&Text::new(label.clone(), (x - base_x, y - base_y + 10), turned.clone()))
                .map_err(draw_error)?;
        }
    }

    let series_count = plan.series.len().max(1);
    let bar_width = 0.8 / series_count as f64;
    for (index, series) in plan.series.iter().enumerate() {
        let color = PALETTE.get(index % PALETTE.len()).copied().unwrap_or(BLACK);
        let offset = 0.1 + index as f64 * bar_width;
        let bars = series.values.iter().enumerate().filter_map(|(i, value)| {
            let value = (*value)?;
            let left = i as f64 + offset;
            Some(Rectangle::new([(left, 0.0), (left + bar_width, value)], color.filled()))
        });
        if right_series.iter().any(|(i, _)| *i == index) {
            chart.draw_secondary_series(bars).map_err(draw_error)?;
        } else {
            chart.draw_series(bars).map_err(draw_error)?;
        }
    }

    // With one series and room above each bar, write the value on it.
    if let [series] = plan.series.as_slice() {
        let value_style = font(LABEL_SIZE).color(&MUTED);
        let texts: Vec<(f64, f64, String)> = series
            .values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i as f64 + 0.5, v, bar_value_text(v, plan.y_format))))
            .collect();
        if texts
            .iter()
            .all(|(_, _, t)| text_width(area, t, &value_style) + 8 <= slot)
        {
            let labels = texts.into_iter().map(|(x, value, text)| {
                let (vertical, offset) = if value >= 0.0 {
                    (VPos::Bottom, -5)
                } else {
                    (VPos::Top, 5)
                };
                let style = value_style.pos(Pos::new(HPos::Center, vertical));
                EmptyElement::at((x, value)) + Text::new(text, (0, offset), style)
            });
            chart.draw_series(labels).map_err(draw_error)?;
        }
    }
    Ok(())
}

/// A continuous axis labelled exactly at the given points (time buckets, category centres), so
/// the labels are the data's own and never crowd each other.
struct LabelledAxis {
    inner: RangedCoordf64,
    labelled_at: Vec<f64>,
}

impl LabelledAxis {
    fn new(range: Range<f64>, labelled_at: Vec<f64>) -> Self {
        LabelledAxis {
            inner: range.into(),
            labelled_at,
        }
    }
}

impl Ranged for LabelledAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.labelled_at.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.inner.range()
    }
}

fn encode_png(pixels: &[u8], width: u32, height: u32) -> Result<Vec<u8>, ChartError> {
    let mut png = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(draw_error)?;
        writer.write_image_data(pixels).map_err(draw_error)?;
        writer.finish().map_err(draw_error)?;
    }
    Ok(png)
}

#[cfg(test)]
mod tests {
    use chrono::{Datelike, Duration};
    use rust_decimal::Decimal;

    use super::*;

    fn column(name: &str, format: ColumnFormat) -> Column {
        Column {
            name: name.to_string(),
            format,
        }
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
    }

    fn text(value: &str) -> Value {
        Value::Text(value.to_string())
    }

    /// Decodes a PNG and returns its size, failing the test when it does not decode.
    fn decoded_size(png: &[u8]) -> (u32, u32) {
        let decoder = png::Decoder::new(png);
        let mut reader = match decoder.read_info() {
            Ok(reader) => reader,
            Err(error) => panic!("the chart is not a PNG: {error}"),
        };
        let mut pixels = vec![0; reader.output_buffer_size()];
        let info = match reader.next_frame(&mut pixels) {
            Ok(info) => info,
            Err(error) => panic!("the chart's pixels do not decode: {error}"),
        };
        (info.width, info.height)
    }

    fn render(result: &QueryResult, title: &str) -> Chart {
        match render_chart(result, title) {
            Ok(chart) => chart,
            Err(error) => panic!("{title}: the chart was not drawn: {error}"),
        }
    }

    /// Monthly revenue and orders over two years, the way SQLite returns it (ISO text).
    fn monthly_revenue() -> QueryResult {
        let rows = (0..24)
            .map(|i| {
                let month = day(2023 + i / 12, u32::try_from(i % 12).unwrap_or(0) + 1, 1);
                let seasonal = if i % 12 >= 10 { 1.6 } else { 1.0 };
                let revenue = (180_000.0 + 6_500.0 * f64::from(i)) * seasonal;
                vec![
                    text(&month.format("%Y-%m-%d").to_string()),
                    Value::Float(revenue),
                    Value::Int(i64::from(2_400 + 90 * i)),
                ]
            })
            .collect();
        QueryResult {
            columns: vec![
                column("month", ColumnFormat::Date),
                column("revenue", ColumnFormat::Money),
                column("orders", ColumnFormat::Integer),
            ],
            rows,
        }
    }

    /// Weekly active users per platform: one metric split by a second dimension.
    fn weekly_users_by_platform() -> QueryResult {
        let start = day(2024, 1, 1);
        let mut rows = Vec::new();
        for week in 0..40i64 {
            for (platform, base) in [("ios", 5_200), ("android", 6_100), ("web", 2_300)] {
                let date = start + Duration::weeks(week);
                rows.push(vec![
                    Value::Date(date),
                    text(platform),
                    Value::Int(base + 37 * week + (week % 5) * 120),
                ]);
            }
        }
        QueryResult {
            columns: vec![
                column("week", ColumnFormat::Date),
                column("platform", ColumnFormat::Text),
                column("active_users", ColumnFormat::Integer),
            ],
            rows,
        }
    }

    fn revenue_by_region() -> QueryResult {
        let rows = [
            ("North America", "1843201.55"),
            ("EMEA", "1210933.10"),
            ("APAC", "988412.00"),
            ("LATAM", "301877.45"),
        ]
        .iter()
        .map(|(region, revenue)| vec![text(region), Value::Decimal(revenue.parse().unwrap_or(Decimal::ZERO))])
        .collect();
        QueryResult {
            columns: vec![
                column("region", ColumnFormat::Text),
                column("revenue", ColumnFormat::Money),
            ],
            rows,
        }
    }

    fn revenue_by_region_and_channel() -> QueryResult {
        let mut rows = Vec::new();
        for (region, scale) in [("North America", 1.0), ("EMEA", 0.7), ("APAC", 0.55), ("LATAM", 0.2)] {
            for (channel, share) in [("web", 0.55), ("mobile", 0.35), ("marketplace", 0.1)] {
                rows.push(vec![
                    text(region),
                    text(channel),
                    Value::Float(1_800_000.0 * scale * share),
                ]);
            }
        }
        QueryResult {
            columns: vec![
                column("region", ColumnFormat::Text),
                column("channel", ColumnFormat::Text),
                column("revenue", ColumnFormat::Money),
            ],
            rows,
        }
    }

    fn many_products(count: usize) -> QueryResult {
        let rows = (0..count)
            .map(|i| {
                let units = i64::try_from((i * 7_919) % 1_000).unwrap_or(0) * 13 + 50;
                vec![
                    text(&format!("Product with a fairly long name #{i}")),
                    Value::Int(units),
                ]
            })
            .collect();
        QueryResult {
            columns: vec![
                column("product", ColumnFormat::Text),
                column("units_sold", ColumnFormat::Integer),
            ],
            rows,
        }
    }

    /// Two years of daily orders with weekly and yearly seasonality (730 points).
    fn daily_orders() -> QueryResult {
        let start = day(2023, 1, 1);
        let rows = (0..730i64)
            .map(|i| {
                let date = start + Duration::days(i);
                let weekly = if date.weekday().number_from_monday() >= 6 {
                    1.3
                } else {
                    1.0
                };
                let yearly = if date.month() >= 11 { 1.5 } else { 1.0 };
                let orders = (60.0 + i as f64 * 0.05) * weekly * yearly;
                vec![text(&date.format("%Y-%m-%d").to_string()), Value::Int(orders as i64)]
            })
            .collect();
        QueryResult {
            columns: vec![
                column("day", ColumnFormat::Date),
                column("orders", ColumnFormat::Integer),
            ],
            rows,
        }
    }

    fn revenue_by_category() -> QueryResult {
        let rows = [
            ("Electronics", 912_334.5),
            ("Home & Kitchen", 543_120.25),
            ("Sports & Outdoors", 321_877.0),
            ("Books", 120_443.9),
            ("Toys & Games", 210_009.1),
            ("Beauty & Personal Care", 188_500.0),
            ("Clothing, Shoes & Jewelry", 402_312.7),
            ("Garden", 99_120.0),
            ("Office Products", 75_400.3),
            ("Pet Supplies", 133_761.0),
            ("Automotive", 64_200.0),
            ("Health & Household", 154_900.0),
        ]
        .iter()
        .map(|(category, revenue)| vec![text(category), Value::Float(*revenue)])
        .collect();
        QueryResult {
            columns: vec![
                column("category", ColumnFormat::Text),
                column("revenue", ColumnFormat::Money),
            ],
            rows,
        }
    }

    fn profit_by_country() -> QueryResult {
        let rows = [
            ("United States", 120_400),
            ("Germany", 54_300),
            ("France", -12_800),
            ("Japan", 33_900),
            ("Brazil", -4_100),
            ("Australia", 18_700),
        ]
        .iter()
        .map(|(country, profit)| vec![text(country), Value::Int(*profit)])
        .collect();
        QueryResult {
            columns: vec![
                column("country", ColumnFormat::Text),
                column("profit", ColumnFormat::Integer),
            ],
            rows,
        }
    }

    fn segment_orders_and_refunds() -> QueryResult {
        QueryResult {
            columns: vec![
                column("segment", ColumnFormat::Text),
                column("orders", ColumnFormat::Integer),
                column("refunds", ColumnFormat::Integer),
            ],
            rows: vec![
                vec![text("consumer"), Value::Int(41_000), Value::Int(1_900)],
                vec![text("small business"), Value::Int(17_500), Value::Int(600)],
                vec![text("enterprise"), Value::Int(4_200), Value::Int(95)],
            ],
        }
    }

    fn plan(result: &QueryResult) -> Plan {
        match plan_chart(result) {
            Ok(plan) => plan,
            Err(error) => panic!("no plan: {error}"),
        }
    }

    #[test]
    fn a_time_series_renders_as_a_line_chart_png_of_the_chart_size() {
        // Arrange
        let result = monthly_revenue();

        // Act
        let chart = render(&result, "Revenue and orders by month");

        // Assert
        assert_eq!(chart.kind, ChartKind::Line);
        assert_eq!((chart.width, chart.height), (CHART_WIDTH, CHART_HEIGHT));
        assert_eq!(decoded_size(&chart.png), (CHART_WIDTH, CHART_HEIGHT));
    }

    #[test]
    fn a_category_result_renders_as_a_bar_chart_png_of_the_chart_size() {
        let chart = render(&revenue_by_region(), "Revenue by region");

        assert_eq!(chart.kind, ChartKind::Bars);
        assert_eq!(decoded_size(&chart.png), (CHART_WIDTH, CHART_HEIGHT));
    }

    #[test]
    fn two_dimensions_and_one_metric_render_as_grouped_bars_with_one_series_per_second_dimension() {
        let result = revenue_by_region_and_channel();

        let chart = render(&result, "Revenue by region and channel");
        let plan = plan(&result);

        assert_eq!(chart.kind, ChartKind::GroupedBars);
        assert_eq!(decoded_size(&chart.png), (CHART_WIDTH, CHART_HEIGHT));
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

        let chart = render(&result, "Weekly active users by platform");
        let plan = plan(&result);

        assert_eq!(chart.kind, ChartKind::Line);
        assert_eq!(plan.series.len(), 3);
        assert_eq!(plan.x.len(), 40);
        assert_eq!(decoded_size(&chart.png), (CHART_WIDTH, CHART_HEIGHT));
    }

    #[test]
    fn several_metrics_by_category_render_as_grouped_bars() {
        let result = QueryResult {
            columns: vec![
                column("segment", ColumnFormat::Text),
                column("orders", ColumnFormat::Integer),
                column("refunds", ColumnFormat::Integer),
            ],
            rows: vec![
                vec![text("consumer"), Value::Int(41_000), Value::Int(1_900)],
                vec![text("business"), Value::Int(17_500), Value::Int(600)],
            ],
        };

        let chart = render(&result, "Orders and refunds by segment");

        assert_eq!(chart.kind, ChartKind::GroupedBars);
    }

    #[test]
    fn a_single_row_is_nothing_to_chart_with_a_message_for_the_user() {
        let result = QueryResult {
            columns: vec![column("revenue", ColumnFormat::Money)],
            rows: vec![vec![Value::Float(1_234.5)]],
        };

        let error = render_chart(&result, "Total revenue");

        match error {
            Err(error @ ChartError::NothingToChart(NoChartReason::TooFewRows(1))) => {
                assert!(
                    error.user_message().contains("at least two rows"),
                    "{}",
                    error.user_message()
                );
            }
            other => panic!("expected NothingToChart, got {other:?}"),
        }
    }

    #[test]
    fn a_result_without_numbers_is_nothing_to_chart() {
        let result = QueryResult {
            columns: vec![column("name", ColumnFormat::Text), column("email", ColumnFormat::Text)],
            rows: vec![
                vec![text("Ada"), text("ada@example.com")],
                vec![text("Bo"), text("bo@example.com")],
            ],
        };

        let error = render_chart(&result, "Customers");

        assert!(
            matches!(error, Err(ChartError::NothingToChart(NoChartReason::NoNumbers))),
            "{error:?}"
        );
    }

    #[test]
    fn a_single_numeric_column_is_nothing_to_chart_because_nothing_labels_the_bars() {
        let result = QueryResult {
            columns: vec![column("total", ColumnFormat::Integer)],
            rows: vec![vec![Value::Int(1)], vec![Value::Int(2)]],
        };

        let error = render_chart(&result, "Totals");

        assert!(
            matches!(error, Err(ChartError::NothingToChart(NoChartReason::NoLabels))),
            "{error:?}"
        );
    }

    #[test]
    fn two_hundred_categories_render_with_the_largest_thirty_and_a_note() {
        let result = many_products(200);

        let chart = render(&result, "Units sold by product");
        let plan = plan(&result);

        assert_eq!(decoded_size(&chart.png), (CHART_WIDTH, CHART_HEIGHT));
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

        let chart = render(&result, "Sessions per hour");
        let plan = plan(&result);

        assert_eq!(chart.kind, ChartKind::Line);
        assert!(matches!(
            plan.x,
            XAxis::Time {
                grain: TimeGrain::Time,
                ..
            }
        ));
    }

    #[test]
    fn a_metric_that_is_null_in_every_row_is_nothing_to_chart() {
        let result = QueryResult {
            columns: vec![
                column("region", ColumnFormat::Text),
                column("revenue", ColumnFormat::Money),
            ],
            rows: vec![vec![text("EMEA"), Value::Null], vec![text("APAC"), Value::Null]],
        };

        assert!(matches!(
            render_chart(&result, "Revenue by region"),
            Err(ChartError::NothingToChart(NoChartReason::NoNumbers))
        ));
    }

    #[test]
    fn two_metrics_on_different_scales_get_a_right_axis_for_the_second() {
        let plan = plan(&monthly_revenue());

        assert_eq!(plan.y_name, "revenue");
        assert_eq!(plan.right_axis.as_deref(), Some("orders"));
    }

    #[test]
    fn long_titles_and_labels_are_shortened_with_an_ellipsis() {
        let mut result = revenue_by_region();
        if let Some(Value::Text(name)) = result.rows.first_mut().and_then(|row| row.first_mut()) {
            *name = "A region whose name goes on and on and on well past any sensible length".to_string();
        }
        let title = "How much revenue did each region bring in ".repeat(5);

        let chart = render(&result, &title);

        assert_eq!(decoded_size(&chart.png), (CHART_WIDTH, CHART_HEIGHT));
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

    #[test]
    fn value_axis_ticks_have_thousands_separators_and_decimals_only_when_needed() {
        let large = tick_formatter(0.0, 2_000_000.0);
        let small = tick_formatter(0.0, 0.4);

        assert_eq!(large(&1_250_000.0), "1,250,000");
        assert_eq!(small(&0.25), "0.25");
        assert_eq!(large(&-0.0), "0");
    }

    /// Writes the example charts to `target/chart-examples/` for a person to look at:
    /// `cargo test --lib render::chart -- --ignored`.
    #[test]
    #[ignore = "writes PNG files for manual review"]
    fn example_charts_are_written_for_review() {
        let directory = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/chart-examples");
        if let Err(error) = std::fs::create_dir_all(&directory) {
            panic!("cannot create {}: {error}", directory.display());
        }
        let examples = [
            (
                "monthly_revenue",
                monthly_revenue(),
                "What was revenue and the number of orders by month over the last two years?",
            ),
            (
                "weekly_users",
                weekly_users_by_platform(),
                "Weekly active users by platform",
            ),
            ("revenue_by_region", revenue_by_region(), "Revenue by region"),
            (
                "region_channel",
                revenue_by_region_and_channel(),
                "Revenue by region and channel",
            ),
            ("products_200", many_products(200), "Units sold by product"),
            ("products_12", many_products(12), "Units sold by product"),
            ("daily_orders", daily_orders(), "Orders per day"),
            (
                "categories",
                revenue_by_category(),
                "Revenue by product category, last 12 months",
            ),
            ("profit", profit_by_country(), "Profit by country"),
            (
                "segment_orders_refunds",
                segment_orders_and_refunds(),
                "Orders and refunds by segment",
            ),
        ];
        for (name, result, title) in examples {
            let chart = render(&result, title);
            let path = directory.join(format!("{name}.png"));
            if let Err(error) = std::fs::write(&path, &chart.png) {
                panic!("cannot write {}: {error}", path.display());
            }
        }
    }
}
