//! Charts: a query result drawn as a PNG, for the `chart` follow-up and the Chart button.
//!
//! The chart kind follows the result's shape: a date or time bucket first gives lines over time
//! (one per metric, or one per value of a second text column), a text column first gives bars
//! (grouped when there are several metrics or a second text column). Text is drawn with DejaVu
//! Sans compiled into the binary, so rendering needs no system fonts and no fontconfig, and the
//! whole module is pure: result in, PNG bytes out.
//!
//! The parts: `plan` decides what to draw from the result, `axes` sets the value ranges, ticks
//! and labels, and `draw` draws with plotters and encodes the PNG.
use crate::domain::QueryResult;

mod axes;
mod draw;
#[cfg(test)]
mod fixtures;
mod plan;

use draw::{draw_plan, encode_png, pixel_buffer_len};
use plan::plan_chart;
pub use plan::{MAX_CATEGORIES, MAX_SERIES};

/// Size of every chart, in pixels: wide enough for 30 labelled bars, and Slack shows it whole.
pub const CHART_WIDTH: u32 = 1000;
pub const CHART_HEIGHT: u32 = 600;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ColumnFormat, Value};
    use crate::render::chart::fixtures::*;

    #[test]
    fn several_metrics_by_category_render_as_grouped_bars() {
        let result = segment_orders_and_refunds();

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
}
