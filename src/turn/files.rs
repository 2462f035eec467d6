//! Commands that turn a version's result into a file: a chart PNG, a CSV export. Both draw on a
//! blocking thread: tens of milliseconds (a chart) to seconds (100,000 CSV rows) of CPU work
//! must not hold the actor's arbiter.
use super::execute::Run;
use super::run::{format_count, Handled, TurnContext, TurnRequest};
use crate::domain::{ErrorCode, QueryResult, Reply};
use crate::render::chart::{render_chart, ChartError};
use crate::render::csv::CsvFile;

impl TurnContext {
    pub(super) async fn chart(&mut self, message: &TurnRequest) -> Handled {
        let Some(version) = self.target(message.version) else {
            return Handled::failed(ErrorCode::NoQueryYet);
        };
        let cap = self.services.limits.answer_fetch_cap;
        let execution = match self.execute(message, Run::of(&version, cap)).await {
            Ok(execution) => execution,
            Err(failure) => return self.failed_run(failure, version.number),
        };
        let title = version.query.summary.clone();
        let drawn = tokio::task::spawn_blocking(move || render_chart(&execution.result, &title)).await;
        match drawn {
            Ok(Ok(chart)) => Handled::answered(Reply::File {
                filename: format!("threadql-{}.png", version.query_id),
                content_type: "image/png".into(),
                bytes: chart.png,
                title: version.query.summary.clone(),
            }),
            Ok(Err(ChartError::NothingToChart(reason))) => {
                Handled::failure(Reply::error_with(ErrorCode::ChartUnsuitable, reason.to_string()))
            }
            Ok(Err(error @ ChartError::Draw(_))) => {
                tracing::error!(thread = %self.key, %error, "Drawing a chart failed");
                Handled::failed(ErrorCode::ChartFailed)
            }
            Err(error) => {
                tracing::error!(thread = %self.key, %error, "Drawing a chart failed");
                Handled::failed(ErrorCode::ChartFailed)
            }
        }
    }

    /// Writes the version's rows into a CSV file as the warehouse hands them over, page by page
    /// on a blocking thread: 100,000 rows are never held both as rows and as the file.
    pub(super) async fn export_csv(&mut self, message: &TurnRequest) -> Handled {
        let Some(version) = self.target(message.version) else {
            return Handled::failed(ErrorCode::NoQueryYet);
        };
        let cap = self.services.limits.export_max_rows;
        let (pages, mut received) = tokio::sync::mpsc::channel::<QueryResult>(1);
        let formats = version.query.formats.clone();
        let writer = tokio::task::spawn_blocking(move || {
            let mut file = CsvFile::default();
            while let Some(mut page) = received.blocking_recv() {
                page.apply_formats(&formats);
                file.write_page(&page);
            }
            file.finish()
        });
        let run = Run {
            pages: Some(pages),
            ..Run::of(&version, cap)
        };
        let execution = self.execute(message, run).await;
        // The sender is gone with the run: the writer has every page.
        let written = writer.await;
        let execution = match execution {
            Ok(execution) => execution,
            Err(failure) => return self.failed_run(failure, version.number),
        };
        let rows = execution.rows;
        self.audit(
            message,
            "csv_exported",
            None,
            format!("query {} ({rows} rows)", version.query_id),
        )
        .await;
        let mut title = format!("{} ({} rows)", version.query.summary, format_count(rows));
        if rows >= cap {
            title.push_str(&format!(", cut at the export limit of {}", format_count(cap)));
        }
        match written {
            Ok(bytes) => Handled::answered(Reply::File {
                filename: format!("threadql-{}.csv", version.query_id),
                content_type: "text/csv".into(),
                bytes,
                title,
            }),
            Err(error) => {
                tracing::error!(thread = %self.key, %error, "Writing a CSV export failed");
                Handled::failed(ErrorCode::ExportFailed)
            }
        }
    }
}
