//! Renderers: pure functions from query results to text people read (tables, numbers) and
//! files they download (CSV). No I/O; Slack's Block Kit wrapping lives in `slack::blocks`.
pub mod chart;
pub mod csv;
pub mod number;
pub mod table;

pub use number::{format_value, format_value_plain, NULL_TEXT};
pub use table::{text_table, text_table_with, TableOptions};
