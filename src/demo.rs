//! `threadql demo`: one thread in the terminal over the embedded defaults, through the same
//! thread actors, interpreter, guard, warehouse and renderer as Slack.
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::actors::{ThreadRegistry, UserMessage};
use crate::config::Config;
use crate::domain::Origin;
use crate::domain::Reply;
use crate::domain::ThreadKey;
use crate::domain::{ColumnFormat, Value};
use crate::render::number::format_value;
use crate::render::table::text_table;
use crate::startup::Backends;
use crate::turn::Replier;

/// Prints replies and writes exported files into a folder.
struct TerminalReplier {
    max_rows: usize,
    exports: PathBuf,
}

#[async_trait]
impl Replier for TerminalReplier {
    async fn reply(&self, thread: &ThreadKey, reply: Reply) -> anyhow::Result<()> {
        let text = match reply {
            Reply::Privately { user, reply, .. } => {
                println!("(for {user} only)");
                return self.reply(thread, *reply).await;
            }
            Reply::Answer(answer) => {
                let count = |n: usize| format_value(&Value::Int(n as i64), ColumnFormat::Integer);
                let shown = answer.total_rows.min(self.max_rows);
                let rows = match (answer.capped, answer.total_rows) {
                    (true, n) => format!("{}+ rows", count(n)),
                    (false, 1) => "1 row".to_string(),
                    (false, n) => format!("{} rows", count(n)),
                };
                let more = if answer.total_rows > shown {
                    format!(" (first {shown} shown; `export csv` for all)")
                } else {
                    String::new()
                };
                format!(
                    "{}\n\n{}\n{rows}{more} · {:.2} s · query {} · version {}",
                    answer.summary,
                    text_table(&answer.result, self.max_rows),
                    answer.duration.as_secs_f64(),
                    answer.query_id,
                    answer.version
                )
            }
            Reply::Sql(sql) => sql,
            Reply::Text(text) => text,
            Reply::Confirm { text, version } => {
                format!("{text}\nSay `run anyway` to run version {version} all the same, or narrow the question.")
            }
            Reply::Schedule {
                text, report, active, ..
            } => {
                let toggle = if active { "pause" } else { "resume" };
                format!(
                    "{text}\n(`{toggle} schedule {report}`, `edit schedule {report} …`, `delete schedule {report}`)"
                )
            }
            Reply::Error(error) => format!("{}\n(code: {})", error.text(), error.code),
            Reply::File {
                filename, bytes, title, ..
            } => {
                std::fs::create_dir_all(&self.exports)
                    .with_context(|| format!("Failed to create {}", self.exports.display()))?;
                let path = self.exports.join(filename);
                std::fs::write(&path, bytes).with_context(|| format!("Failed to write {}", path.display()))?;
                let shown = std::fs::canonicalize(&path).unwrap_or(path);
                format!("{title}\nWrote {}", shown.display())
            }
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "\n{text}\n")?;
        out.flush()?;
        Ok(())
    }
}

/// Runs the interactive thread until end of input or `quit`.
pub async fn run(config: Config) -> anyhow::Result<()> {
    eprintln!("threadql demo: preparing the demo warehouse and state store…");
    let backends = Backends::build(&config).await?;
    let replier = Arc::new(TerminalReplier {
        max_rows: config.max_rows,
        exports: PathBuf::from("threadql-exports"),
    });
    let registry = ThreadRegistry::start(backends.thread_services(&config, replier), 1, 0);
    let thread_ts = format!("{}.000000", chrono::Utc::now().timestamp());
    let thread = ThreadKey::parse("TDEMO", "terminal", &thread_ts).context("Failed to name the demo thread")?;

    println!(
        "threadql demo — one thread, as in Slack. Ask e.g. `revenue by region last month`, then refine: \
         `only EMEA`, `by week`, `top 5`, `show sql`, `export csv`, `undo`, `help`. `quit` ends.\n"
    );
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        print!("you> ");
        std::io::stdout().flush()?;
        let Some(line) = lines.next_line().await.context("Failed to read from the terminal")? else {
            break;
        };
        let line = line.trim().to_string();
        if line.is_empty() {
            continue;
        }
        if matches!(line.as_str(), "quit" | "exit") {
            break;
        }
        let (done, finished) = tokio::sync::oneshot::channel();
        let message_ts = format!(
            "{}.{:06}",
            chrono::Utc::now().timestamp(),
            chrono::Utc::now().timestamp_subsec_micros()
        );
        registry.dispatch(
            thread.clone(),
            UserMessage::new("UDEMO", &line, &message_ts, Origin::DirectMessage).with_done(done),
        );
        // An Err only means the turn ended without signalling (it panicked and was reported).
        let _ = finished.await;
    }
    Ok(())
}
