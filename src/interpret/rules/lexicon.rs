//! The words of a text: how a text is split (the same way for questions and for the model's
//! phrases and values) and the fixed word lists the reader knows.

/// Words that carry no meaning for a query. Anything else that cannot be placed is reported.
#[rustfmt::skip]
pub(super) const STOPWORDS: &[&str] = &[
    "a", "about", "across", "actually", "again", "am", "an", "are", "as", "at", "be", "been", "breakdown",
    "broken", "but", "by", "calculate", "can", "compute", "could", "count", "data", "did", "display", "do",
    "does", "during", "each", "figure", "figures", "find", "for", "from", "get", "give", "got", "had", "has",
    "have", "hello", "hey", "hi", "how", "how's", "i", "in", "instead", "is", "it", "its", "it's", "just",
    "kindly", "let", "let's", "lets", "like", "list", "many", "me", "much", "my", "need", "now", "number", "of",
    "ok", "okay", "on", "only", "our", "over", "overall", "per", "please", "rather", "same", "see", "show",
    "so", "tell", "thank", "thanks", "that", "the", "then", "there", "these", "this", "those", "to", "total",
    "totals", "us", "view", "want", "was", "we", "were", "what", "what's", "whats", "what're", "when", "which",
    "with", "within", "would", "you", "all", "any", "every", "who", "whose",
];

/// Words that mark a text as a change to the current query rather than a new question.
#[rustfmt::skip]
pub(super) const REFINEMENT_WORDS: &[&str] = &[
    "instead", "rather", "only", "just", "now", "also", "but", "same", "again", "switch", "change",
];

/// Words a time phrase may start with ("in May", "for the last 7 days").
/// Words of a metric's name that make a higher value a worse one ("worst week for crashes").
pub(super) const UNWANTED_MEASURES: &[&str] = &[
    "refund",
    "return",
    "crash",
    "error",
    "failure",
    "failed",
    "churn",
    "cancellation",
    "cancelled",
    "complaint",
    "defect",
    "bug",
    "incident",
    "outage",
    "downtime",
    "cost",
    "expense",
    "loss",
    "latency",
    "delay",
    "bounce",
    "chargeback",
    "dispute",
    "discount",
    "debt",
    "overdue",
];

pub(super) const PREPOSITIONS: &[&str] = &["in", "during", "for", "over", "within", "from", "on", "the"];

/// One word of the user's text: lowercase for matching, original for replies.
#[derive(Debug, Clone)]
pub(super) struct Word {
    pub(super) lower: String,
    pub(super) original: String,
}

/// Splits text into words the same way for questions and for model phrases and values, so
/// "United Kingdom" or "Home & Garden" match word for word. Commas stay as words: they
/// separate lists.
pub(super) fn split_words(text: &str) -> Vec<Word> {
    let mut spaced = String::new();
    for c in text.chars() {
        match c {
            ',' => spaced.push_str(" , "),
            '’' | '‘' => spaced.push('\''),
            c if c.is_alphanumeric() || matches!(c, '-' | '&' | '\'' | '.' | '/' | '+' | '_') => spaced.push(c),
            _ => spaced.push(' '),
        }
    }
    spaced
        .split_whitespace()
        .map(|raw| raw.trim_matches(|c| matches!(c, '.' | '\'' | '/')))
        .filter(|w| !w.is_empty())
        .map(|w| Word {
            lower: w.to_lowercase(),
            original: w.to_string(),
        })
        .collect()
}

/// A phrase and its plural ("category" -> "categories", "country" -> "countries").
pub(super) fn plural_forms(phrase: &str) -> Vec<String> {
    let mut forms = vec![phrase.to_string()];
    let plural = if phrase.ends_with('y') && !phrase.ends_with("ay") && !phrase.ends_with("ey") {
        format!("{}ies", phrase.trim_end_matches('y'))
    } else if phrase.ends_with('s') || phrase.ends_with('x') || phrase.ends_with("ch") || phrase.ends_with("sh") {
        format!("{phrase}es")
    } else {
        format!("{phrase}s")
    };
    forms.push(plural);
    forms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_keeps_multiword_values_and_drops_punctuation() {
        let words: Vec<String> = split_words("What about EMEA, APAC?")
            .into_iter()
            .map(|w| w.lower)
            .collect();
        assert_eq!(words, vec!["what", "about", "emea", ",", "apac"]);
    }
}
