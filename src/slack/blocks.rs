//! Block Kit messages for each kind of reply: answers, SQL, and plain notices.
//!
//! Pure: builds JSON blocks and the plain-text fallback, and keeps both inside Slack's limits
//! (Slack's Block Kit reference): section text ≤ 3,000 characters, ≤ 50 blocks, fallback text ≤ 4,000.
//! All text goes out as mrkdwn, so `&`, `<` and `>` are escaped everywhere; that also stops
//! result data from pinging `<!channel>` or forging links.
use std::time::Duration;

use serde_json::{json, Value as Json};

use crate::domain::{QueryResult, UserError};
use crate::render::number::group_thousands;
use crate::render::table::{text_table_with, TableOptions};

/// Longest text of a section block.
pub const MAX_SECTION_CHARS: usize = 3_000;
/// Most blocks in one message.
pub const MAX_BLOCKS: usize = 50;
/// Longest fallback `text` (Slack truncates far later, but notifications should stay short).
pub const MAX_FALLBACK_CHARS: usize = 4_000;

/// Rows an answer's table keeps before it gives up columns to fit.
const MIN_TABLE_ROWS: usize = 5;

/// Opening and closing of a code block inside a section.
const FENCE_OPEN: &str = "```\n";
const FENCE_CLOSE: &str = "\n```";

/// A Slack message: Block Kit blocks plus the plain-text fallback used in notifications.
#[derive(Debug, Clone, PartialEq)]
pub struct SlackMessage {
    pub text: String,
    pub blocks: Vec<serde_json::Value>,
}

/// A message whose blocks are serialized once, to be posted many times: a burst of `help`
/// posts one text thousands of times, and serializing its blocks was a twentieth of each
/// answer's CPU (BENCHMARKS.md, "Bursts and memory").
#[derive(Debug)]
pub struct SerializedMessage {
    pub text: String,
    pub blocks: Box<serde_json::value::RawValue>,
}

impl SerializedMessage {
    pub fn of(message: &SlackMessage) -> Self {
        // A slice of JSON values always serializes.
        let blocks = serde_json::value::to_raw_value(&message.blocks)
            .unwrap_or_else(|_| serde_json::value::RawValue::NULL.to_owned());
        Self {
            text: message.text.clone(),
            blocks,
        }
    }
}

/// Facts about an answer shown under its table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnswerContext<'a> {
    /// Rows the query returned (at least the rows in the result).
    pub total_rows: usize,
    /// The row cap cut the result, so the query matched more rows than `total_rows`.
    pub capped: bool,
    pub duration: Duration,
    pub query_id: &'a str,
    pub version: usize,
}

/// An answer: the summary in bold, the first rows as a table in a code block, and a context
/// line. The table drops rows (and, for very wide results, columns) until its section fits.
/// At most three blocks, so actions can be appended without nearing the 50-block limit.
pub fn answer(summary: &str, result: &QueryResult, max_rows: usize, context: &AnswerContext<'_>) -> SlackMessage {
    let summary = escape_mrkdwn(summary.trim());
    let bold = truncate_escaped(&summary, MAX_SECTION_CHARS - 2);
    let mut blocks = Vec::with_capacity(3);
    // Slack refuses a section with empty text, so an empty summary gets no block.
    if !bold.is_empty() {
        blocks.push(section(format!("*{bold}*")));
    }
    blocks.push(section(table_section(result, max_rows, context)));
    blocks.push(json!({
        "type": "context",
        "elements": [{ "type": "mrkdwn", "text": context_line(context) }],
    }));
    SlackMessage {
        text: answer_fallback(&summary, result, max_rows),
        blocks,
    }
}

/// Appends the answer's buttons (Show SQL, Export CSV, Chart, Undo, Why this result?). Each carries the thread
/// and the version this answer shows, so a click on an older answer acts on that version.
pub fn with_answer_buttons(mut message: SlackMessage, thread_ts: &str, version: usize) -> SlackMessage {
    let value = serde_json::json!({ "thread_ts": thread_ts, "version": version }).to_string();
    let button = |action_id: &str, label: &str| {
        json!({
            "type": "button",
            "action_id": action_id,
            "text": { "type": "plain_text", "text": label },
            "value": value,
        })
    };
    message.blocks.push(json!({
        "type": "actions",
        "block_id": "threadql_answer",
        "elements": [
            button("show_sql", "Show SQL"),
            button("export_csv", "Export CSV"),
            button("chart", "Chart"),
            button("undo", "Undo"),
            button("why_this_result", "Why this result?"),
        ],
    }));
    message
}

/// The cost guard's question: what the version would read, and a button that runs exactly
/// that version (its number travels in the button's value).
pub fn confirm(text: &str, thread_ts: &str, version: usize) -> SlackMessage {
    let value = serde_json::json!({ "thread_ts": thread_ts, "version": version }).to_string();
    let mut message = self::text(&format!(
        ":warning: {text}\nRun it anyway, or narrow the question (a shorter time range, a filter)."
    ));
    message.blocks.push(json!({
        "type": "actions",
        "block_id": "threadql_confirm",
        "elements": [{
            "type": "button",
            "action_id": "run_anyway",
            "style": "primary",
            "text": { "type": "plain_text", "text": "Run anyway" },
            "value": value,
        }],
    }));
    message
}

/// Buttons on a schedule's echo and on each of its runs: Pause (or Resume), Edit, Delete. Each
/// carries the thread it is in, the schedule's number and its words for the Edit dialog.
pub fn with_schedule_buttons(
    mut message: SlackMessage,
    thread_ts: &str,
    report: i64,
    active: bool,
    phrase: &str,
) -> SlackMessage {
    let value = serde_json::json!({ "thread_ts": thread_ts, "report": report, "phrase": phrase }).to_string();
    let button = |action_id: &str, label: &str, style: Option<&str>| {
        let mut button = json!({
            "type": "button",
            "action_id": action_id,
            "text": { "type": "plain_text", "text": label },
            "value": value,
        });
        if let Some(style) = style {
            button["style"] = json!(style);
        }
        button
    };
    let toggle = if active {
        button("schedule_pause", "Pause", None)
    } else {
        button("schedule_resume", "Resume", Some("primary"))
    };
    message.blocks.push(json!({
        "type": "actions",
        "block_id": "threadql_schedule",
        "elements": [
            toggle,
            button("schedule_edit", "Edit", None),
            button("schedule_delete", "Delete", Some("danger")),
        ],
    }));
    message
}

/// What the Edit dialog carries through Slack (`private_metadata`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EditMetadata {
    pub channel: String,
    pub thread_ts: String,
    pub report: i64,
}

/// The Edit dialog of a schedule: its words in one field, to change and submit. The thread and
/// the schedule's number travel in `private_metadata`.
pub fn schedule_edit_view(metadata: &EditMetadata, phrase: &str) -> serde_json::Value {
    let report = metadata.report;
    json!({
        "type": "modal",
        "callback_id": "schedule_edit",
        "private_metadata": serde_json::to_string(metadata).unwrap_or_default(),
        "title": { "type": "plain_text", "text": format!("Edit schedule {report}") },
        "submit": { "type": "plain_text", "text": "Save" },
        "close": { "type": "plain_text", "text": "Cancel" },
        "blocks": [{
            "type": "input",
            "block_id": "schedule",
            "label": { "type": "plain_text", "text": "When and where" },
            "hint": { "type": "plain_text", "text": "e.g. every monday at 9:00 Europe/Berlin to #sales with csv, skip if empty" },
            "element": {
                "type": "plain_text_input",
                "action_id": "words",
                "initial_value": phrase,
            },
        }],
    })
}

/// "Working on it" with a Cancel button, shown while a slow query runs.
pub fn progress(text: &str, thread_ts: &str) -> SlackMessage {
    let value = serde_json::json!({ "thread_ts": thread_ts }).to_string();
    let mut message = self::text(&format!(":hourglass_flowing_sand: {text}"));
    message.blocks.push(json!({
        "type": "actions",
        "block_id": "threadql_progress",
        "elements": [{
            "type": "button",
            "action_id": "cancel",
            "style": "danger",
            "text": { "type": "plain_text", "text": "Cancel" },
            "value": value,
        }],
    }));
    message
}

/// The exact SQL in code blocks, split across sections when it is longer than one allows.
pub fn sql(sql: &str) -> SlackMessage {
    let content = escape_mrkdwn(&break_fences(sql));
    let budget = MAX_SECTION_CHARS - FENCE_OPEN.len() - FENCE_CLOSE.len();
    let chunks = split_to_fit(&content, budget, false);
    let blocks = limit_blocks(
        chunks
            .iter()
            .map(|chunk| section(format!("{FENCE_OPEN}{chunk}{FENCE_CLOSE}")))
            .collect(),
        "_The SQL is too long to show here in full._",
    );
    let text = truncate_escaped(&content, MAX_FALLBACK_CHARS);
    SlackMessage { text, blocks }
}

/// Help, errors and notices: the message as mrkdwn sections, split where it is too long.
pub fn text(message: &str) -> SlackMessage {
    let content = escape_mrkdwn(message.trim_end());
    let chunks = split_to_fit(&content, MAX_SECTION_CHARS, true);
    let blocks = limit_blocks(
        chunks.into_iter().map(section).collect(),
        "_The message is too long to show here in full._",
    );
    SlackMessage {
        text: truncate_escaped(&content, MAX_FALLBACK_CHARS),
        blocks,
    }
}

/// Why a message got no answer: the sentence and our own detail as text, then the error code
/// in a context line, so a user can quote it and an operator can find it in the logs.
pub fn error(error: &UserError) -> SlackMessage {
    let mut message = text(&format!(":warning: {}", error.text()));
    message.blocks.truncate(MAX_BLOCKS - 1);
    message.blocks.push(json!({
        "type": "context",
        "elements": [{ "type": "mrkdwn", "text": format!("code `{}`", error.code) }],
    }));
    message
}

/// Escapes the three characters Slack's mrkdwn treats as control characters.
pub fn escape_mrkdwn(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            other => escaped.push(other),
        }
    }
    escaped
}

fn section(text: String) -> Json {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": text } })
}

/// The table section's text: the largest table whose code block plus note fits in one section,
/// first choosing columns so that a few rows fit, then as many rows as fit. The table is
/// aligned before escaping, which is right: Slack shows `&amp;` as one character.
fn table_section(result: &QueryResult, max_rows: usize, context: &AnswerContext<'_>) -> String {
    if result.rows.is_empty() || result.columns.is_empty() {
        return "_No rows._".to_string();
    }
    let row_limit = max_rows.min(result.rows.len());
    let total = context.total_rows.max(result.rows.len());
    let render = |columns: usize, rows: usize| {
        let options = TableOptions {
            max_rows: rows,
            max_columns: columns,
            ..TableOptions::default()
        };
        let table = escape_mrkdwn(&break_fences(&text_table_with(result, &options)));
        let mut text = format!("{FENCE_OPEN}{table}{FENCE_CLOSE}");
        if let Some(note) = more_note(total - rows, result.columns.len() - columns, context.capped) {
            text.push('\n');
            text.push_str(&note);
        }
        text
    };
    let fits = |text: &String| text.chars().count() <= MAX_SECTION_CHARS;
    let all_columns = result.columns.len();
    // A very wide table shows a few rows of its first columns rather than two unreadable,
    // wrapped rows of all of them.
    let columns = largest_fitting(1, all_columns, |c| fits(&render(c, row_limit.min(MIN_TABLE_ROWS))));
    let rows = largest_fitting(0, row_limit, |r| fits(&render(columns, r)));
    let text = render(columns, rows);
    if fits(&text) {
        text
    } else {
        // Only reachable with absurd column names; a cut table beats a rejected message.
        truncate_escaped(&text, MAX_SECTION_CHARS)
    }
}

/// The largest `n` in `low..=high` for which `fits(n)` holds (or `low`), given that fitting is
/// monotone: fewer rows or columns never make the text longer.
fn largest_fitting(low: usize, high: usize, fits: impl Fn(usize) -> bool) -> usize {
    if high <= low || fits(high) {
        return high.max(low);
    }
    let (mut good, mut bad) = (low, high);
    while bad - good > 1 {
        let middle = good + (bad - good) / 2;
        if fits(middle) {
            good = middle;
        } else {
            bad = middle;
        }
    }
    good
}

fn more_note(hidden_rows: usize, hidden_columns: usize, capped: bool) -> Option<String> {
    let rows = match (hidden_rows, capped) {
        (0, false) => None,
        (0, true) => Some("more rows may match".to_string()),
        (n, true) => Some(format!("{}+ more rows", group_thousands(&n.to_string()))),
        (1, false) => Some("1 more row".to_string()),
        (n, false) => Some(format!("{} more rows", group_thousands(&n.to_string()))),
    };
    let columns = match hidden_columns {
        0 => None,
        1 => Some("1 more column".to_string()),
        n => Some(format!("{n} more columns")),
    };
    let what = match (rows, columns) {
        (None, None) => return None,
        (Some(rows), None) => rows,
        (None, Some(columns)) => columns,
        (Some(rows), Some(columns)) => format!("{rows} and {columns}"),
    };
    Some(format!("_{what} — export csv for all_"))
}

/// "1,234 rows · 0.42 s · query q-abc123 · version 2"
fn context_line(context: &AnswerContext<'_>) -> String {
    let count = group_thousands(&context.total_rows.to_string());
    let rows = match (context.total_rows, context.capped) {
        (_, true) => format!("{count}+ rows"),
        (1, false) => "1 row".to_string(),
        (_, false) => format!("{count} rows"),
    };
    format!(
        "{rows} · {} · query {} · version {}",
        format_duration(context.duration),
        escape_mrkdwn(context.query_id),
        context.version
    )
}

fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs_f64();
    if seconds < 60.0 {
        format!("{seconds:.2} s")
    } else {
        let whole = duration.as_secs();
        format!("{} min {} s", whole / 60, whole % 60)
    }
}

/// The notification text: the summary, then whole lines of the table while they fit.
fn answer_fallback(summary: &str, result: &QueryResult, max_rows: usize) -> String {
    let mut text = truncate_escaped(summary, MAX_FALLBACK_CHARS);
    if result.rows.is_empty() {
        let note = "\nNo rows.";
        if text.chars().count() + note.chars().count() <= MAX_FALLBACK_CHARS {
            text.push_str(note);
        }
        return text;
    }
    let options = TableOptions {
        max_rows,
        ..TableOptions::default()
    };
    let table = escape_mrkdwn(&text_table_with(result, &options));
    let mut length = text.chars().count();
    for line in table.lines() {
        let added = line.chars().count() + 1;
        if length + added > MAX_FALLBACK_CHARS {
            break;
        }
        text.push('\n');
        text.push_str(line);
        length += added;
    }
    text
}

/// Keeps a message within the block limit, replacing the overflow with a note.
fn limit_blocks(mut blocks: Vec<Json>, note: &str) -> Vec<Json> {
    if blocks.len() > MAX_BLOCKS {
        blocks.truncate(MAX_BLOCKS - 1);
        blocks.push(section(note.to_string()));
    }
    if blocks.is_empty() {
        // Slack refuses a section with empty text; a lone space renders as nothing.
        blocks.push(section(" ".to_string()));
    }
    blocks
}

/// Three backticks in data or SQL would close the code block early; a zero-width space after
/// every second backtick keeps them visible without ending the block.
fn break_fences(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = 0;
    for c in text.chars() {
        if c == '`' {
            if run == 2 {
                out.push('\u{200B}');
                run = 0;
            }
            run += 1;
        } else {
            run = 0;
        }
        out.push(c);
    }
    out
}

/// Splits already-escaped text into chunks of at most `budget` characters, at line breaks
/// where possible, then at spaces, then between characters, never inside an `&amp;` entity.
/// `trim` drops surrounding whitespace of each chunk (prose); code keeps it.
fn split_to_fit(text: &str, budget: usize, trim: bool) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut current = String::new();
    let mut length = 0;
    let mut push = |piece: &str, chunks: &mut Vec<String>, current: &mut String| {
        let size = piece.chars().count();
        if length + size > budget && !current.is_empty() {
            chunks.push(std::mem::take(current));
            length = 0;
        }
        current.push_str(piece);
        length += size;
    };
    for line in text.split_inclusive('\n') {
        if line.chars().count() <= budget {
            push(line, &mut chunks, &mut current);
            continue;
        }
        for word in line.split_inclusive(' ') {
            if word.chars().count() <= budget {
                push(word, &mut chunks, &mut current);
                continue;
            }
            for atom in atoms(word) {
                push(atom, &mut chunks, &mut current);
            }
        }
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
        .into_iter()
        .map(|chunk| {
            if trim {
                chunk.trim().to_string()
            } else {
                chunk.strip_suffix('\n').unwrap_or(&chunk).to_string()
            }
        })
        .filter(|chunk| !chunk.is_empty())
        .collect()
}

/// Single characters, except that an escape entity (`&amp;`, `&lt;`, `&gt;`) stays whole.
fn atoms(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let first = rest.chars().next()?;
        let end = if first == '&' {
            rest.find(';').map_or(1, |semicolon| semicolon + 1)
        } else {
            first.len_utf8()
        };
        let (atom, tail) = rest.split_at(end);
        rest = tail;
        Some(atom)
    })
}

/// At most `limit` characters of escaped text, ending with "…" when cut, never inside an
/// entity.
fn truncate_escaped(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_string();
    }
    let mut out = String::new();
    let mut length = 0;
    for atom in atoms(text) {
        let size = atom.chars().count();
        if length + size + 1 > limit {
            break;
        }
        out.push_str(atom);
        length += size;
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use rust_decimal::Decimal;

    use super::*;
    use crate::domain::{Column, ColumnFormat, Value};

    fn column(name: &str, format: ColumnFormat) -> Column {
        Column {
            name: name.to_string(),
            format,
        }
    }

    fn context(total_rows: usize, capped: bool) -> AnswerContext<'static> {
        AnswerContext {
            total_rows,
            capped,
            duration: Duration::from_millis(420),
            query_id: "q-abc123",
            version: 2,
        }
    }

    fn section_texts(message: &SlackMessage) -> Vec<String> {
        message
            .blocks
            .iter()
            .filter(|block| block["type"] == "section")
            .map(|block| block["text"]["text"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    fn assert_within_limits(message: &SlackMessage, description: &str) {
        assert!(
            message.blocks.len() <= MAX_BLOCKS,
            "{description}: {} blocks",
            message.blocks.len()
        );
        for text in section_texts(message) {
            let length = text.chars().count();
            assert!(
                length <= MAX_SECTION_CHARS,
                "{description}: a section has {length} characters"
            );
            assert!(length > 0, "{description}: a section is empty");
        }
        let fallback = message.text.chars().count();
        assert!(
            fallback <= MAX_FALLBACK_CHARS,
            "{description}: fallback has {fallback} characters"
        );
    }

    #[test]
    fn a_small_answer_has_a_bold_summary_a_table_and_a_context_line() {
        let result = QueryResult {
            columns: vec![
                column("region", ColumnFormat::Text),
                column("revenue", ColumnFormat::Money),
            ],
            rows: vec![
                vec![
                    Value::Text("EMEA".into()),
                    Value::Decimal(Decimal::from_str("1234.5").unwrap_or_default()),
                ],
                vec![Value::Text("R&D <internal>".into()), Value::Int(-12)],
                vec![Value::Text("APAC".into()), Value::Int(99)],
            ],
        };
        let message = answer("Revenue by region, last month", &result, 2, &context(3, false));
        let expected = json!([
            { "type": "section", "text": { "type": "mrkdwn", "text": "*Revenue by region, last month*" } },
            { "type": "section", "text": { "type": "mrkdwn", "text":
                "```\nregion         |  revenue\n---------------+---------\nEMEA           | 1,234.50\nR&amp;D &lt;internal&gt; |   -12.00\n```\n_1 more row — export csv for all_" } },
            { "type": "context", "elements": [
                { "type": "mrkdwn", "text": "3 rows · 0.42 s · query q-abc123 · version 2" } ] },
        ]);
        assert_eq!(Json::Array(message.blocks.clone()), expected);
        assert_eq!(
            message.text,
            "Revenue by region, last month\nregion         |  revenue\n---------------+---------\nEMEA           | 1,234.50\nR&amp;D &lt;internal&gt; |   -12.00"
        );
    }

    #[test]
    fn a_capped_answer_says_more_rows_may_exist() {
        let result = QueryResult {
            columns: vec![column("n", ColumnFormat::Integer)],
            rows: (0..5).map(|i| vec![Value::Int(i)]).collect(),
        };
        let message = answer("Numbers", &result, 5, &context(5, true));
        let texts = section_texts(&message);
        assert!(
            texts
                .get(1)
                .is_some_and(|t| t.ends_with("_more rows may match — export csv for all_")),
            "{texts:?}"
        );
        assert_eq!(
            message.blocks[2]["elements"][0]["text"],
            "5+ rows · 0.42 s · query q-abc123 · version 2"
        );
    }

    #[test]
    fn an_empty_answer_says_there_are_no_rows() {
        let result = QueryResult {
            columns: vec![column("n", ColumnFormat::Integer)],
            rows: vec![],
        };
        let message = answer("Nothing", &result, 20, &context(0, false));
        assert_eq!(
            section_texts(&message),
            vec!["*Nothing*".to_string(), "_No rows._".to_string()]
        );
        assert_eq!(
            message.blocks[2]["elements"][0]["text"],
            "0 rows · 0.42 s · query q-abc123 · version 2"
        );
        assert_eq!(message.text, "Nothing\nNo rows.");
    }

    #[test]
    fn a_wide_and_long_answer_stays_within_slack_limits() {
        let columns: Vec<Column> = (0..30)
            .map(|i| match i % 3 {
                0 => column(&format!("description_{i}"), ColumnFormat::Text),
                1 => column(&format!("amount_{i}"), ColumnFormat::Money),
                _ => column(&format!("count_{i}"), ColumnFormat::Integer),
            })
            .collect();
        let rows: Vec<Vec<Value>> = (0..200i64)
            .map(|r| {
                (0..30i64)
                    .map(|c| match c % 3 {
                        0 => Value::Text(format!("row {r} <&> {}", "long text ".repeat(8))),
                        1 => Value::Float(r as f64 * 1234.567 + c as f64),
                        _ => Value::Int(r * 1_000_003 + c),
                    })
                    .collect()
            })
            .collect();
        let result = QueryResult { columns, rows };
        for max_rows in [20, 200] {
            let message = answer(&"A long summary ".repeat(300), &result, max_rows, &context(200, false));
            let description = format!("max_rows {max_rows}");
            assert_within_limits(&message, &description);
            let texts = section_texts(&message);
            let table = texts.get(1).cloned().unwrap_or_default();
            assert!(
                table.starts_with("```\n") && table.contains("\n```\n"),
                "{description}: {table}"
            );
            assert!(
                table.contains("more columns — export csv for all_"),
                "{description}: {table}"
            );
            assert!(table.contains("more rows and"), "{description}: {table}");
        }
        let narrow = QueryResult {
            columns: result.columns.iter().take(3).cloned().collect(),
            rows: result
                .rows
                .iter()
                .map(|row| row.iter().take(3).cloned().collect())
                .collect(),
        };
        let message = answer("Narrow", &narrow, 200, &context(200, false));
        assert_within_limits(&message, "narrow, 200 rows");
        let table = section_texts(&message).get(1).cloned().unwrap_or_default();
        assert!(table.ends_with("more rows — export csv for all_"), "{table}");
    }

    #[test]
    fn long_sql_is_split_across_code_blocks_without_losing_characters() {
        let statement = format!(
            "SELECT a & b, c < d, '```'\nFROM t\nWHERE {}",
            (0..800)
                .map(|i| format!("x{i} > {i}"))
                .collect::<Vec<_>>()
                .join(" AND ")
        );
        let message = sql(&statement);
        assert_within_limits(&message, "long sql");
        let texts = section_texts(&message);
        assert!(texts.len() > 1, "{} sections", texts.len());
        let joined: String = texts
            .iter()
            .map(|t| {
                t.trim_start_matches(FENCE_OPEN)
                    .trim_end_matches(FENCE_CLOSE)
                    .to_string()
            })
            .collect();
        let unescaped = joined
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
            .replace('\u{200B}', "");
        assert_eq!(unescaped.replace('\n', ""), statement.replace('\n', ""));
    }

    #[test]
    fn short_sql_is_one_code_block() {
        let message = sql("SELECT 1 AS \"a<b\"");
        assert_eq!(
            message.blocks,
            vec![
                json!({ "type": "section", "text": { "type": "mrkdwn", "text": "```\nSELECT 1 AS \"a&lt;b\"\n```" } })
            ]
        );
        assert_eq!(message.text, "SELECT 1 AS \"a&lt;b\"");
    }

    #[test]
    fn text_is_escaped_and_split_into_sections() {
        let message = text("Use <@U123> & friends");
        assert_eq!(
            section_texts(&message),
            vec!["Use &lt;@U123&gt; &amp; friends".to_string()]
        );

        let long = (0..400)
            .map(|i| format!("Paragraph {i} says & explains things."))
            .collect::<Vec<_>>()
            .join("\n");
        let message = text(&long);
        assert_within_limits(&message, "long text");
        assert!(section_texts(&message).len() > 1);
        assert!(message.text.ends_with('…'));

        let enormous = "&".repeat(200_000);
        let message = text(&enormous);
        assert_within_limits(&message, "enormous text");
        assert_eq!(message.blocks.len(), MAX_BLOCKS);
        assert!(
            section_texts(&message).iter().all(|t| !t.ends_with("&am")),
            "an entity was split"
        );
    }
}
