//! Commands over the thread's versions: help, show sql, explain, undo.
use super::execute::{Consent, Failure, Run};
use super::run::{as_sentence, Handled, TurnContext, TurnRequest};
use crate::domain::{ErrorCode, QueryVersion, Reply};

impl TurnContext {
    /// The version a command acts on: the one a button was attached to, else the current one.
    pub(super) fn target(&self, requested: Option<usize>) -> Option<QueryVersion> {
        requested
            .and_then(|number| self.state.version(number))
            .or_else(|| self.state.current())
            .cloned()
    }

    /// Help for the asker: what the interpreter knows that their roles read.
    pub(super) async fn help(&self, message: &TurnRequest) -> Handled {
        match self.grant(message).await {
            Ok(grant) => Handled::replied(Reply::Text(self.help_text(grant.policy.as_ref()))),
            Err(refusal) => Handled::failure(refusal),
        }
    }

    fn help_text(&self, access: Option<&crate::sql::AccessPolicy>) -> String {
        format!(
            "{}\n\n*In a thread* you can refine the last answer (`only EMEA`, `by week`, `top 5`, `exclude refunded`, \
             `and by channel`, `remove the region filter`, `last year instead`) and use:\n\
             • `show sql`: the exact SQL of the current answer\n\
             • `export csv`: the full result as a CSV file\n\
             • `undo`: back to the previous version\n\
             • `chart`: the result as a chart\n\
             • `explain`: why the query is what it is\n\
             • `why this result`: the roles and policies behind the answer and who may see it (shown to you alone)\n\
             • `cancel`: stop the query that is running\n\
             • `help`: this message",
            self.services.interpreter.help_for(access)
        )
    }

    pub(super) fn show_sql(&self, requested: Option<usize>) -> Handled {
        let Some(version) = self.target(requested) else {
            return Handled::failed(ErrorCode::NoQueryYet);
        };
        // The guarded form is what ran (with its row cap); a version the guard now refuses
        // still shows what was proposed.
        let sql = match self
            .services
            .guard
            .check(&version.query.sql, self.services.limits.answer_fetch_cap as u64)
        {
            Ok(guarded) => guarded.as_str().to_string(),
            Err(_) => version.query.sql.clone(),
        };
        Handled::answered(Reply::Sql(sql))
    }

    pub(super) fn explain(&self, requested: Option<usize>) -> Handled {
        let Some(version) = self.target(requested) else {
            return Handled::failed(ErrorCode::NoQueryYet);
        };
        Handled::replied(Reply::Text(if version.query.explanation.trim().is_empty() {
            format!(
                "*{}*\nThis answer comes from the built-in rules over the semantic model: each word of your \
                 question maps to a metric, a breakdown, a filter or a time range. `show sql` shows the exact query.",
                version.query.summary
            )
        } else {
            format!("*{}*\n{}", version.query.summary, version.query.explanation)
        }))
    }

    pub(super) async fn undo(&mut self, message: &TurnRequest) -> Handled {
        let undone = match message.version {
            Some(number) => self.state.undo_from(number),
            None => self.state.undo(),
        };
        let version = match undone {
            Ok(version) => version.clone(),
            Err(error) => {
                return Handled::failure(Reply::error_with(
                    ErrorCode::NothingToUndo,
                    as_sentence(&error.to_string()),
                ))
            }
        };
        match self
            .execute(message, Run::of(&version, self.services.limits.answer_fetch_cap))
            .await
        {
            Ok(execution) => {
                let summary = format!("Back to version {}: {}", version.number, version.query.summary);
                Handled::answered(self.answer(summary, execution, version.query_id, version.number))
            }
            Err(failure) => self.failed_run(failure, version.number),
        }
    }

    /// "Run anyway": the version the cost guard held back (the button's, else the current
    /// one), run with the asker's consent and remembered as consented, so its export and chart
    /// are not held back again.
    pub(super) async fn run_anyway(&mut self, message: &TurnRequest) -> Handled {
        let Some(number) = self.target(message.version).map(|v| v.number) else {
            return Handled::failed(ErrorCode::NoQueryYet);
        };
        let Some(version) = self.state.confirm(number).cloned() else {
            return Handled::failed(ErrorCode::NoQueryYet);
        };
        match self
            .execute(
                message,
                Run {
                    consent: Consent::Given,
                    ..Run::of(&version, self.services.limits.answer_fetch_cap)
                },
            )
            .await
        {
            Ok(execution) => Handled::answered(self.answer(
                version.query.summary.clone(),
                execution,
                version.query_id,
                version.number,
            )),
            Err(failure) => Handled::failure(failure.reply),
        }
    }

    /// The reply to a run that did not happen: the cost guard's "Run anyway" question for
    /// `version`, else the failure's own reply.
    pub(super) fn failed_run(&self, failure: Failure, version: usize) -> Handled {
        match failure.confirm {
            Some(text) => Handled::replied(Reply::Confirm { text, version }),
            None => Handled::failure(failure.reply),
        }
    }
}
