//! Aligned monospace tables, for Slack code blocks and the terminal demo.
use crate::domain::QueryResult;

use super::number::{display_format, format_value, is_numeric};

/// Widest a cell may be before it is cut with "…"; keeps one long text from pushing every other
/// column off the screen.
pub const MAX_CELL_WIDTH: usize = 40;

/// What part of a result a table shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableOptions {
    /// Rows shown, from the first.
    pub max_rows: usize,
    /// Columns shown, from the first.
    pub max_columns: usize,
    /// Characters per cell, "…" included.
    pub max_cell_width: usize,
}

impl Default for TableOptions {
    fn default() -> Self {
        Self {
            max_rows: 20,
            max_columns: usize::MAX,
            max_cell_width: MAX_CELL_WIDTH,
        }
    }
}

/// The first `max_rows` rows of `result` as an aligned table: a header, a separator line, then
/// one line per row. Numbers are right-aligned, everything else left-aligned.
pub fn text_table(result: &QueryResult, max_rows: usize) -> String {
    text_table_with(
        result,
        &TableOptions {
            max_rows,
            ..TableOptions::default()
        },
    )
}

/// Like [`text_table`], with every limit chosen by the caller.
pub fn text_table_with(result: &QueryResult, options: &TableOptions) -> String {
    let columns: Vec<_> = result.columns.iter().take(options.max_columns).collect();
    if columns.is_empty() {
        return String::new();
    }
    let width = options.max_cell_width.max(1);
    let header: Vec<String> = columns.iter().map(|c| cell_text(&c.name, width)).collect();
    let body: Vec<Vec<String>> = result
        .rows
        .iter()
        .take(options.max_rows)
        .map(|row| {
            columns
                .iter()
                .enumerate()
                .map(|(index, column)| {
                    let text = row
                        .get(index)
                        .map(|value| format_value(value, display_format(column)))
                        .unwrap_or_default();
                    cell_text(&text, width)
                })
                .collect()
        })
        .collect();

    let widths: Vec<usize> = (0..columns.len())
        .map(|index| {
            std::iter::once(&header)
                .chain(body.iter())
                .filter_map(|cells| cells.get(index))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let right: Vec<bool> = columns
        .iter()
        .map(|column| is_numeric(display_format(column)))
        .collect();

    let mut lines = Vec::with_capacity(body.len() + 2);
    lines.push(join_cells(&header, &widths, &right));
    lines.push(widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("-+-"));
    for cells in &body {
        lines.push(join_cells(cells, &widths, &right));
    }
    lines.join("\n")
}

fn join_cells(cells: &[String], widths: &[usize], right: &[bool]) -> String {
    let padded: Vec<String> = cells
        .iter()
        .zip(widths)
        .zip(right)
        .map(|((cell, width), right)| {
            if *right {
                format!("{cell:>width$}")
            } else {
                format!("{cell:<width$}")
            }
        })
        .collect();
    padded.join(" | ").trim_end().to_string()
}

/// One line of at most `width` characters: control characters (newlines, tabs) would break
/// the grid, so they become spaces; longer text is cut and ends with "…".
fn cell_text(text: &str, width: usize) -> String {
    let clean: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if clean.chars().count() <= width {
        clean
    } else {
        let mut cut: String = clean.chars().take(width - 1).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use chrono::NaiveDate;
    use rust_decimal::Decimal;

    use super::*;
    use crate::domain::{Column, ColumnFormat, Value};

    fn column(name: &str, format: ColumnFormat) -> Column {
        Column {
            name: name.to_string(),
            format,
        }
    }

    fn sample() -> QueryResult {
        let day = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap_or_default();
        QueryResult {
            columns: vec![
                column("region", ColumnFormat::Text),
                column("revenue", ColumnFormat::Money),
                column("orders", ColumnFormat::Integer),
                column("first_order", ColumnFormat::Date),
            ],
            rows: vec![
                vec![
                    Value::Text("EMEA".into()),
                    Value::Decimal(Decimal::from_str("1234567.891").unwrap_or_default()),
                    Value::Int(12_040),
                    Value::Date(day),
                ],
                vec![
                    Value::Text("North America".into()),
                    Value::Float(-12.5),
                    Value::Int(7),
                    Value::Null,
                ],
                vec![
                    Value::Text("APAC".into()),
                    Value::Int(0),
                    Value::Int(1),
                    Value::Date(day),
                ],
            ],
        }
    }

    #[test]
    fn a_table_aligns_numbers_right_and_text_left() {
        let expected = "\
region        |      revenue | orders | first_order
--------------+--------------+--------+------------
EMEA          | 1,234,567.89 | 12,040 | 2024-03-01
North America |       -12.50 |      7 | —
APAC          |         0.00 |      1 | 2024-03-01";
        assert_eq!(text_table(&sample(), 20), expected);
    }

    #[test]
    fn a_table_shows_only_the_first_rows_asked_for() {
        let expected = "\
region |      revenue | orders | first_order
-------+--------------+--------+------------
EMEA   | 1,234,567.89 | 12,040 | 2024-03-01";
        assert_eq!(text_table(&sample(), 1), expected);
    }

    #[test]
    fn long_cells_are_cut_with_an_ellipsis_and_newlines_flattened() {
        let result = QueryResult {
            columns: vec![
                column("note", ColumnFormat::Text),
                column("year", ColumnFormat::Integer),
            ],
            rows: vec![vec![
                Value::Text(format!("line one\nline two {}", "x".repeat(60))),
                Value::Int(2024),
            ]],
        };
        let table = text_table(&result, 5);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert_eq!(
            lines.get(2).copied(),
            Some("line one line two xxxxxxxxxxxxxxxxxxxxx… | 2024"),
            "{table}"
        );
    }

    #[test]
    fn a_result_without_rows_is_just_the_header() {
        let result = QueryResult {
            columns: vec![column("n", ColumnFormat::Integer)],
            rows: vec![],
        };
        assert_eq!(text_table(&result, 5), "n\n-");
        assert_eq!(text_table(&QueryResult::default(), 5), "");
    }

    #[test]
    fn columns_can_be_limited() {
        let options = TableOptions {
            max_rows: 1,
            max_columns: 1,
            ..TableOptions::default()
        };
        assert_eq!(text_table_with(&sample(), &options), "region\n------\nEMEA");
    }
}
