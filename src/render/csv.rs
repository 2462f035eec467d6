//! CSV export: every row of a result, machine-readable, for the file uploaded into the thread.
use crate::domain::{Column, ColumnFormat, QueryResult, Value};

use super::number::format_value_plain;

/// `result` as CSV: a header line, then exactly one line per row (fields are quoted as needed,
/// `\n` ends each record). Values are machine-readable: no thousands separators, money with two
/// decimals, ISO dates, NULL as an empty field.
///
/// Two changes keep the file safe to open in a spreadsheet and one record per line:
/// line breaks inside text become spaces, and text that a spreadsheet would run as a formula
/// (starting with `=`, `+`, `-`, `@`) gets a leading `'`, unless it is a plain number.
pub fn to_csv(result: &QueryResult) -> Vec<u8> {
    let mut file = CsvFile::default();
    file.write_page(result);
    file.finish()
}

/// A CSV file written page by page, as an export's pages arrive from the warehouse: the first
/// page fixes the header and each column's format (a later page, whose formats were inferred
/// from its own values alone, is written in the first page's), and each page can be dropped
/// once written.
pub struct CsvFile {
    /// The header's columns, once the first page came.
    columns: Option<Vec<Column>>,
    writer: csv::Writer<Vec<u8>>,
    rows: usize,
}

impl Default for CsvFile {
    fn default() -> Self {
        Self {
            columns: None,
            writer: csv::WriterBuilder::new().from_writer(Vec::new()),
            rows: 0,
        }
    }
}

impl CsvFile {
    pub fn write_page(&mut self, page: &QueryResult) {
        if self.columns.is_none() {
            if page.columns.is_empty() {
                return;
            }
            let header: Vec<String> = page.columns.iter().map(|column| one_line(&column.name)).collect();
            self.write_record(&header);
            self.columns = Some(page.columns.clone());
        }
        let Some(columns) = self.columns.take() else { return };
        for row in &page.rows {
            self.write_record(&record(&columns, row));
            self.rows += 1;
        }
        self.columns = Some(columns);
    }

    /// Rows written so far (the header not counted).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The file: empty when no page had any column.
    pub fn finish(self) -> Vec<u8> {
        self.writer
            .into_inner()
            .unwrap_or_else(|error| error.into_inner().get_ref().clone())
    }

    fn write_record(&mut self, fields: &[String]) {
        // Into a Vec, one field per column: a record cannot fail to be written.
        if let Err(error) = self.writer.write_record(fields) {
            tracing::error!(%error, "a CSV record could not be written");
        }
    }
}

fn record(columns: &[Column], row: &[Value]) -> Vec<String> {
    columns
        .iter()
        .enumerate()
        .map(|(index, column)| match row.get(index) {
            Some(Value::Text(text)) if column.format == ColumnFormat::Text => defuse(&one_line(text)),
            Some(value) => one_line(&format_value_plain(value, column.format)),
            None => String::new(),
        })
        .collect()
}

fn one_line(text: &str) -> String {
    text.replace("\r\n", " ").replace(['\r', '\n'], " ")
}

fn defuse(text: &str) -> String {
    let risky = text.starts_with(['=', '+', '-', '@', '\t']);
    if risky && text.trim().parse::<f64>().is_err() {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use chrono::NaiveDate;
    use rust_decimal::Decimal;

    use super::*;
    use crate::domain::Column;

    fn column(name: &str, format: ColumnFormat) -> Column {
        Column {
            name: name.to_string(),
            format,
        }
    }

    #[test]
    fn csv_has_a_header_and_one_machine_readable_line_per_row() {
        let day = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap_or_default();
        let result = QueryResult {
            columns: vec![
                column("region", ColumnFormat::Text),
                column("revenue", ColumnFormat::Money),
                column("orders", ColumnFormat::Integer),
                column("share", ColumnFormat::Number),
                column("day", ColumnFormat::Date),
            ],
            rows: vec![
                vec![
                    Value::Text("EMEA, North".into()),
                    Value::Decimal(Decimal::from_str("1234567.891").unwrap_or_default()),
                    Value::Int(12_040),
                    Value::Float(0.125),
                    Value::Date(day),
                ],
                vec![
                    Value::Text("say \"hi\"\nthere".into()),
                    Value::Float(-12.5),
                    Value::Null,
                    Value::Int(-3),
                    Value::Text("2024-03-02".into()),
                ],
                vec![
                    Value::Text("=HYPERLINK(\"x\")".into()),
                    Value::Int(7),
                    Value::Int(1),
                    Value::Null,
                    Value::Null,
                ],
            ],
        };
        let csv = String::from_utf8(to_csv(&result)).unwrap_or_default();
        let expected = "\
region,revenue,orders,share,day
\"EMEA, North\",1234567.89,12040,0.125,2024-03-01
\"say \"\"hi\"\" there\",-12.50,,-3,2024-03-02
\"'=HYPERLINK(\"\"x\"\")\",7.00,1,,
";
        assert_eq!(csv, expected);
        assert_eq!(csv.lines().count(), result.rows.len() + 1);
    }

    #[test]
    fn a_file_written_page_by_page_keeps_the_first_pages_formats() {
        let first = QueryResult {
            columns: vec![column("amount", ColumnFormat::Money)],
            rows: vec![vec![Value::Int(1)]],
        };
        let second = QueryResult {
            columns: vec![column("amount", ColumnFormat::Integer)],
            rows: vec![vec![Value::Int(2)], vec![Value::Int(3)]],
        };
        let mut file = CsvFile::default();
        file.write_page(&first);
        file.write_page(&second);
        assert_eq!(file.rows(), 3);
        assert_eq!(String::from_utf8(file.finish()).unwrap(), "amount\n1.00\n2.00\n3.00\n");
    }

    #[test]
    fn csv_of_an_empty_result_is_only_the_header() {
        let result = QueryResult {
            columns: vec![column("n", ColumnFormat::Integer)],
            rows: vec![],
        };
        assert_eq!(to_csv(&result), b"n\n".to_vec());
        assert!(to_csv(&QueryResult::default()).is_empty());
    }
}
