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
    /// A question or a refinement, for the interpreter.
    Ask(String),
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
            _ => Self::Ask(text.trim().to_string()),
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
