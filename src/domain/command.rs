//! Commands that act on a thread's state without interpreting a question.

/// What a message in a thread asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    ShowSql,
    ExportCsv,
    Undo,
    /// Stop the query in flight.
    Cancel,
    /// The current result as a PNG chart.
    Chart,
    /// Why the current query is what it is (the interpreter's explanation).
    Explain,
    /// Run a version the cost guard held back (the "Run anyway" button), once.
    RunAnyway,
    /// The roles, policies and audience decision behind an answer, for the asker alone.
    WhyThisResult,
    /// "every monday at 9", "alert me when refunds today > 50": the thread's query (or the
    /// alert's question) on a schedule. The text as written; the turn reads it in the asker's
    /// time zone.
    Schedule(String),
    /// Listing or changing schedules ("schedules", "pause schedule 3", the echo's buttons).
    Schedules(ScheduleCommand),
    /// A question or a refinement, for the interpreter.
    Ask(String),
}

/// What is done to schedules, by number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleCommand {
    List,
    Pause(i64),
    Resume(i64),
    Delete(i64),
    /// New schedule words for an existing schedule ("edit schedule 3 every friday at 5pm").
    Edit(i64, String),
}

impl ScheduleCommand {
    /// "pause schedule 3", "delete alert 12", "edit schedule 3 daily at 8": `None` otherwise.
    fn parse(normalized: &str, original: &str) -> Option<Self> {
        if matches!(
            normalized,
            "schedules" | "my schedules" | "list schedules" | "show schedules" | "alerts" | "my alerts" | "list alerts"
        ) {
            return Some(Self::List);
        }
        let mut words = normalized.split(' ');
        let verb = words.next()?;
        if !matches!(words.next()?, "schedule" | "alert" | "report") {
            return None;
        }
        let id: i64 = words
            .next()?
            .trim_start_matches('#')
            .trim_end_matches(':')
            .parse()
            .ok()?;
        let rest: Vec<&str> = words.collect();
        match (verb, rest.is_empty()) {
            ("pause", true) => Some(Self::Pause(id)),
            ("resume" | "unpause", true) => Some(Self::Resume(id)),
            ("delete" | "remove", true) => Some(Self::Delete(id)),
            ("edit" | "change", false) => {
                // The new words as written (case kept: time zones and channel names): what
                // follows the third word.
                let mut tail = original.trim_start();
                for _ in 0..3 {
                    let end = tail.find(char::is_whitespace).unwrap_or(tail.len());
                    tail = tail[end..].trim_start();
                }
                Some(Self::Edit(id, tail.trim_start_matches(':').trim().to_string()))
            }
            _ => None,
        }
    }
}

impl Command {
    /// Whether handling it runs a warehouse query (so it can be slow and can be cancelled).
    pub fn runs_query(&self) -> bool {
        matches!(
            self,
            Self::Ask(_) | Self::Undo | Self::ExportCsv | Self::Chart | Self::RunAnyway
        )
    }

    /// Classifies a message (with the bot mention already stripped).
    pub fn parse(text: &str) -> Self {
        let normalized: String = text
            .trim()
            .trim_end_matches(['?', '!', '.'])
            .split_whitespace()
            .map(str::to_lowercase)
            .collect::<Vec<_>>()
            .join(" ");
        match normalized.as_str() {
            "" | "help" | "what can you do" | "commands" => Self::Help,
            "show sql" | "sql" | "show the sql" | "show me the sql" | "show query" | "show the query" => Self::ShowSql,
            "export csv" | "export" | "csv" | "export as csv" | "download csv" | "export to csv" => Self::ExportCsv,
            "undo" | "back" | "go back" | "undo that" | "previous" => Self::Undo,
            "explain" | "why" | "explain that" | "explain the query" | "how did you get that" => Self::Explain,
            "chart" | "plot" | "graph" | "show chart" | "chart it" | "plot it" | "show a chart" => Self::Chart,
            "run anyway" | "run it anyway" => Self::RunAnyway,
            "why this result" | "why this answer" | "why am i seeing this" => Self::WhyThisResult,
            "cancel" | "stop" | "abort" | "never mind" | "nevermind" | "cancel that" | "cancel query" => Self::Cancel,
            _ => {
                if let Some(command) = ScheduleCommand::parse(&normalized, text.trim()) {
                    return Self::Schedules(command);
                }
                // Read in UTC only to tell a schedule from a question: the turn reads it again
                // in the asker's zone.
                let utc = chrono_tz::Tz::UTC;
                let scheduled = !matches!(super::schedule::parse_alert(text, utc), Ok(None))
                    || !matches!(super::schedule::parse_schedule(text, utc), Ok(None));
                if scheduled {
                    Self::Schedule(text.trim().to_string())
                } else {
                    Self::Ask(text.trim().to_string())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_ups_are_recognised_in_their_usual_wordings() {
        let cases = [
            ("help", Command::Help),
            ("", Command::Help),
            ("Show SQL", Command::ShowSql),
            ("show me the sql?", Command::ShowSql),
            ("export csv", Command::ExportCsv),
            ("Export  CSV", Command::ExportCsv),
            ("undo", Command::Undo),
            ("back", Command::Undo),
            ("cancel", Command::Cancel),
            ("Chart", Command::Chart),
            ("explain", Command::Explain),
            ("Why this result?", Command::WhyThisResult),
            ("Never mind.", Command::Cancel),
            ("only EMEA", Command::Ask("only EMEA".into())),
            ("every monday at 9", Command::Schedule("every monday at 9".into())),
            (
                "alert me when refunds today > 50",
                Command::Schedule("alert me when refunds today > 50".into()),
            ),
            ("weekly active users", Command::Ask("weekly active users".into())),
            ("Schedules", Command::Schedules(ScheduleCommand::List)),
            ("pause schedule 3", Command::Schedules(ScheduleCommand::Pause(3))),
            ("resume alert #12", Command::Schedules(ScheduleCommand::Resume(12))),
            ("delete schedule 3", Command::Schedules(ScheduleCommand::Delete(3))),
            (
                "edit schedule 3: every Friday at 5pm Europe/Berlin",
                Command::Schedules(ScheduleCommand::Edit(3, "every Friday at 5pm Europe/Berlin".into())),
            ),
            ("pause schedule three", Command::Ask("pause schedule three".into())),
            (
                "revenue by region last month",
                Command::Ask("revenue by region last month".into()),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(Command::parse(text), expected, "text {text:?}");
        }
    }
}
