//! Names people say for warehouse tables and columns: `c_acctbal` is "account balance",
//! `JournalEntry` is "journal entry" (plural "journal entries"), `signup_dt` is "signup date".
//!
//! An identifier is split at underscores, case changes and digits; each lower-case piece is then
//! segmented over a compact word list (`words.txt` plus the abbreviations), so `totalamt` reads
//! "total amt", and abbreviations are expanded ("total amount").
use std::collections::{BTreeMap, HashMap, HashSet};

use rust_stemmers::{Algorithm, Stemmer};

/// Business and data words that concatenated identifiers are made of.
const WORDS: &str = include_str!("words.txt");

/// Abbreviations data teams write and the words people say. A team adds its own under
/// `[naming] abbreviations` in threadql.toml; theirs win over these.
const ABBREVIATIONS: &[(&str, &str)] = &[
    ("acct", "account"),
    ("addr", "address"),
    ("adj", "adjustment"),
    ("amt", "amount"),
    ("avail", "available"),
    ("avg", "average"),
    ("bal", "balance"),
    ("cat", "category"),
    ("ccy", "currency"),
    ("cd", "code"),
    ("cnt", "count"),
    ("cntry", "country"),
    ("ctry", "country"),
    ("curr", "currency"),
    ("cust", "customer"),
    ("dept", "department"),
    ("desc", "description"),
    ("descr", "description"),
    ("dest", "destination"),
    ("disc", "discount"),
    ("dob", "date of birth"),
    ("dt", "date"),
    ("emp", "employee"),
    ("fname", "first name"),
    ("grp", "group"),
    ("hr", "hour"),
    ("instruct", "instructions"),
    ("inv", "invoice"),
    ("lname", "last name"),
    ("ln", "line"),
    ("loc", "location"),
    ("mfgr", "manufacturer"),
    ("mgr", "manager"),
    ("mkt", "market"),
    ("msg", "message"),
    ("nbr", "number"),
    ("no", "number"),
    ("num", "number"),
    ("ord", "order"),
    ("org", "organization"),
    ("pct", "percent"),
    ("pmt", "payment"),
    ("prc", "price"),
    ("prod", "product"),
    ("pymt", "payment"),
    ("qty", "quantity"),
    ("rcpt", "receipt"),
    ("ref", "reference"),
    ("rev", "revenue"),
    ("seg", "segment"),
    ("seq", "sequence"),
    ("src", "source"),
    ("supp", "supplier"),
    ("tot", "total"),
    ("ts", "timestamp"),
    ("trx", "transaction"),
    ("txn", "transaction"),
    ("uom", "unit of measure"),
    ("upd", "updated"),
    ("usr", "user"),
    ("val", "value"),
    ("vol", "volume"),
    ("whse", "warehouse"),
    ("wk", "week"),
    ("yr", "year"),
];

/// Table prefixes that say how a table was built, not what its rows are.
const TABLE_PREFIXES: &[&str] = &["dim_", "fct_", "fact_", "stg_", "tbl_", "vw_", "raw_"];

/// In a partial segmentation, known words shorter than this are not split off: "no" and "dt"
/// hide inside too many ordinary words ("notes").
const MIN_PARTIAL_WORD: usize = 4;
/// In a partial segmentation, an unknown run shorter than this is not left alone.
const MIN_UNKNOWN_RUN: usize = 3;

/// The words identifiers are segmented over and the abbreviations they expand.
#[derive(Debug, Clone)]
pub struct Vocabulary {
    abbreviations: HashMap<String, String>,
    words: HashSet<String>,
    longest_word: usize,
}

/// How people name a table's rows: "order" and "orders".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNouns {
    pub singular: String,
    pub plural: String,
}

/// What a table and its columns are called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    pub nouns: TableNouns,
    /// The prefix most of the table's columns share (`c_`), stripped from their names.
    pub column_prefix: Option<String>,
    /// Each column's words, in the table's column order.
    pub columns: Vec<ColumnWords>,
}

/// A column and the words people say for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnWords {
    pub column: String,
    /// Lower-case words, abbreviations expanded: `["account", "balance"]` for `c_acctbal`.
    pub words: Vec<String>,
}

impl ColumnWords {
    pub fn phrase(&self) -> String {
        self.words.join(" ")
    }

    pub fn last(&self) -> &str {
        self.words.last().map(String::as_str).unwrap_or_default()
    }

    pub fn has(&self, word: &str) -> bool {
        self.words.iter().any(|w| w == word)
    }
}

impl TableNames {
    pub fn words_of(&self, column: &str) -> Option<&ColumnWords> {
        self.columns.iter().find(|c| c.column == column)
    }
}

impl Default for Vocabulary {
    fn default() -> Self {
        Self::standard()
    }
}

impl Vocabulary {
    /// The built-in word list and abbreviations.
    pub fn standard() -> Self {
        Self::with_abbreviations(&BTreeMap::new())
    }

    /// The built-in vocabulary plus a team's abbreviations (`"xyz" = "something"`), which win
    /// over built-in ones of the same spelling.
    pub fn with_abbreviations(extra: &BTreeMap<String, String>) -> Self {
        let mut abbreviations: HashMap<String, String> = ABBREVIATIONS
            .iter()
            .map(|(short, long)| ((*short).to_string(), (*long).to_string()))
            .collect();
        for (short, long) in extra {
            let short = short.trim().to_lowercase();
            let long = long.trim().to_lowercase();
            if !short.is_empty() && !long.is_empty() {
                abbreviations.insert(short, long);
            }
        }
        let mut words: HashSet<String> = WORDS
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .flat_map(str::split_whitespace)
            .map(str::to_lowercase)
            .collect();
        for (short, long) in &abbreviations {
            words.insert(short.clone());
            words.extend(long.split_whitespace().map(str::to_string));
        }
        let longest_word = words.iter().map(String::len).max().unwrap_or(0);
        Self {
            abbreviations,
            words,
            longest_word,
        }
    }

    /// The words of an identifier, abbreviations expanded: `o_totalprice` (with prefix `o_`)
    /// is `["total", "price"]`, `CustomerName` is `["customer", "name"]`.
    pub fn words(&self, identifier: &str) -> Vec<String> {
        let pieces: Vec<String> = split_identifier(identifier)
            .iter()
            .flat_map(|piece| self.segment(piece))
            .collect();
        let last = pieces.len().saturating_sub(1);
        pieces
            .iter()
            .enumerate()
            .flat_map(|(index, piece)| {
                // "no" is "number" only at the end (`invoice_no`); elsewhere it may be the word.
                let expanded = match self.abbreviations.get(piece) {
                    Some(_) if piece == "no" && index != last => piece.clone(),
                    Some(long) => long.clone(),
                    None => piece.clone(),
                };
                expanded.split_whitespace().map(str::to_string).collect::<Vec<_>>()
            })
            .collect()
    }

    /// What a table's rows are called, from its name: `orders` is "order"/"orders",
    /// `journalentry` is "journal entry"/"journal entries".
    pub fn table_nouns(&self, table: &str) -> TableNouns {
        let bare = TABLE_PREFIXES
            .iter()
            .find_map(|prefix| strip_prefix_ignoring_case(table, prefix))
            .unwrap_or(table);
        let words = self.words(bare);
        TableNouns {
            singular: inflect_last(&words, 1),
            plural: inflect_last(&words, 2),
        }
    }

    /// The nouns of a table and the words of its columns, with the shared prefix removed.
    pub fn table_names(&self, table: &str, columns: &[&str]) -> TableNames {
        let column_prefix = shared_prefix(columns);
        let columns = columns
            .iter()
            .map(|column| {
                let bare = column_prefix
                    .as_deref()
                    .and_then(|prefix| strip_prefix_ignoring_case(column, prefix))
                    .unwrap_or(column);
                ColumnWords {
                    column: (*column).to_string(),
                    words: self.words(bare),
                }
            })
            .collect();
        TableNames {
            nouns: self.table_nouns(table),
            column_prefix,
            columns,
        }
    }

    fn is_word(&self, piece: &str) -> bool {
        if self.words.contains(piece) {
            return true;
        }
        // Plural, past and -ing forms of listed words: "orders", "issued", "extended",
        // "marketing", "shipping".
        ["es", "s", "ed", "d", "ing"].iter().any(|suffix| {
            piece
                .strip_suffix(suffix)
                .is_some_and(|stem| stem.len() >= 3 && self.words.contains(stem))
        })
    }

    /// Splits a lower-case run of letters into known words, fewest (so longest) first. When it
    /// cannot be split into known words only, long known words are split off an unknown rest
    /// (`widgetcount` -> "widget count" when "widget" is not known); otherwise it stays whole.
    fn segment(&self, piece: &str) -> Vec<String> {
        if piece.is_empty() || !piece.chars().all(|c| c.is_ascii_lowercase()) {
            return vec![piece.to_string()];
        }
        self.segment_fully(piece)
            .or_else(|| self.segment_partly(piece))
            .unwrap_or_else(|| vec![piece.to_string()])
    }

    /// Dynamic programming over prefixes: for each end, the split into known words with the
    /// fewest words, ties going to the split whose words are longest (sum of squared lengths).
    fn segment_fully(&self, piece: &str) -> Option<Vec<String>> {
        let n = piece.len();
        // best[i]: (words, -sum of squares, start of the last word) for piece[..i].
        let mut best: Vec<Option<(usize, i64, usize)>> = vec![None; n + 1];
        if let Some(first) = best.first_mut() {
            *first = Some((0, 0, 0));
        }
        for end in 1..=n {
            for start in end.saturating_sub(self.longest_word + 2)..end {
                let Some(&Some((words, squares, _))) = best.get(start) else {
                    continue;
                };
                let Some(candidate) = piece.get(start..end) else {
                    continue;
                };
                if !self.is_word(candidate) {
                    continue;
                }
                let len = (end - start) as i64;
                let score = (words + 1, squares - len * len, start);
                let better = match best.get(end) {
                    Some(Some(current)) => (score.0, score.1) < (current.0, current.1),
                    _ => true,
                };
                if better {
                    if let Some(slot) = best.get_mut(end) {
                        *slot = Some(score);
                    }
                }
            }
        }
        let mut words = Vec::new();
        let mut end = n;
        while end > 0 {
            let (_, _, start) = (*best.get(end)?)?;
            words.push(piece.get(start..end)?.to_string());
            end = start;
        }
        words.reverse();
        Some(words)
    }

    /// Known words of at least [`MIN_PARTIAL_WORD`] letters, with unknown runs of at least
    /// [`MIN_UNKNOWN_RUN`] between them; the split leaving the fewest unknown letters wins.
    fn segment_partly(&self, piece: &str) -> Option<Vec<String>> {
        let n = piece.len();
        // best[i][last_unknown]: (unknown letters, pieces, start, previous state).
        type Cell = Option<(usize, usize, usize, bool)>;
        let mut best: Vec<[Cell; 2]> = vec![[None, None]; n + 1];
        if let Some(first) = best.first_mut() {
            first[0] = Some((0, 0, 0, false));
        }
        for end in 1..=n {
            for start in 0..end {
                let Some(candidate) = piece.get(start..end) else {
                    continue;
                };
                let len = end - start;
                let known = len >= MIN_PARTIAL_WORD && self.is_word(candidate);
                let unknown_ok = len >= MIN_UNKNOWN_RUN;
                for previous_unknown in [false, true] {
                    let Some(Some((unknown, pieces, _, _))) =
                        best.get(start).map(|cell| cell[usize::from(previous_unknown)])
                    else {
                        continue;
                    };
                    let mut options = Vec::new();
                    if known {
                        options.push((false, unknown));
                    }
                    if unknown_ok && !previous_unknown {
                        options.push((true, unknown + len));
                    }
                    for (is_unknown, unknown_after) in options {
                        let score = (unknown_after, pieces + 1, start, previous_unknown);
                        if let Some(cell) = best.get_mut(end) {
                            let slot = &mut cell[usize::from(is_unknown)];
                            if slot.is_none_or(|current| (score.0, score.1) < (current.0, current.1)) {
                                *slot = Some(score);
                            }
                        }
                    }
                }
            }
        }
        let cells = best.get(n)?;
        let (mut state, (unknown, _, _, _)) = [false, true]
            .into_iter()
            .filter_map(|state| cells[usize::from(state)].map(|cell| (state, cell)))
            .min_by_key(|(_, cell)| (cell.0, cell.1))?;
        if unknown >= n {
            return None;
        }
        let mut words = Vec::new();
        let mut end = n;
        while end > 0 {
            let (_, _, start, previous) = best.get(end)?[usize::from(state)]?;
            words.push(piece.get(start..end)?.to_string());
            end = start;
            state = previous;
        }
        words.reverse();
        Some(words)
    }
}

/// Splits an identifier at underscores and other separators, lower-to-upper case changes
/// (`CustomerName`), the end of an upper-case run (`HTTPStatus`) and digits; lower case.
pub fn split_identifier(identifier: &str) -> Vec<String> {
    let chars: Vec<char> = identifier.chars().collect();
    let mut pieces = Vec::new();
    let mut current = String::new();
    for (index, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !current.is_empty() {
                pieces.push(std::mem::take(&mut current));
            }
            continue;
        }
        let previous = index.checked_sub(1).and_then(|i| chars.get(i)).copied();
        let next = chars.get(index + 1).copied();
        let boundary = match previous {
            None => false,
            Some(p) if !p.is_alphanumeric() => false,
            Some(p) => {
                (p.is_lowercase() && c.is_uppercase())
                    || (p.is_uppercase() && c.is_uppercase() && next.is_some_and(char::is_lowercase))
                    || (p.is_ascii_digit() != c.is_ascii_digit())
            }
        };
        if boundary && !current.is_empty() {
            pieces.push(std::mem::take(&mut current));
        }
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// The prefix (up to its first underscore) shared by most of a table's columns: `c_` for
/// `c_custkey, c_name, …`. Most means more than half of the columns and at least two.
pub fn shared_prefix(columns: &[&str]) -> Option<String> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for column in columns {
        let lower = column.to_lowercase();
        if let Some((head, rest)) = lower.split_once('_') {
            if !head.is_empty() && !rest.is_empty() && head.chars().all(|c| c.is_ascii_alphanumeric()) {
                *counts.entry(format!("{head}_")).or_default() += 1;
            }
        }
    }
    let (prefix, count) = counts.into_iter().max_by_key(|(_, count)| *count)?;
    (count >= 2 && count * 2 > columns.len()).then_some(prefix)
}

/// `text` without `prefix` (any case), when something is left.
pub fn strip_prefix_ignoring_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    let rest = text.get(prefix.len()..)?;
    (head.eq_ignore_ascii_case(prefix) && !rest.is_empty()).then_some(rest)
}

/// The words with the last one made singular (`count` 1) or plural.
fn inflect_last(words: &[String], count: isize) -> String {
    let Some((last, head)) = words.split_last() else {
        return String::new();
    };
    let last = pluralizer::pluralize(last, count, false);
    head.iter()
        .map(String::as_str)
        .chain(std::iter::once(last.as_str()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `phrase` with its last word singular: "order lines" -> "order line".
pub fn singular(phrase: &str) -> String {
    let words: Vec<String> = phrase.split_whitespace().map(str::to_string).collect();
    inflect_last(&words, 1)
}

/// `phrase` with its last word plural: "journal entry" -> "journal entries".
pub fn plural(phrase: &str) -> String {
    let words: Vec<String> = phrase.split_whitespace().map(str::to_string).collect();
    inflect_last(&words, 2)
}

/// The stem words are matched by, so that "delivered" finds "delivery" and "channels" finds
/// "channel". Snowball English first; it keeps a noun's final y (as i) while it removes a
/// verb's "-ed" and then "-er", so a final i is dropped and the rest stemmed again.
pub fn stem(word: &str) -> String {
    let stemmer = Stemmer::create(Algorithm::English);
    let lower = word.to_lowercase();
    let first = stemmer.stem(&lower).into_owned();
    match first.strip_suffix('i') {
        Some(rest) if rest.len() >= 3 => stemmer.stem(rest).into_owned(),
        _ => first,
    }
}

/// Words of a date column's name that say it is a date, not which event it dates.
const DATE_WORDS: &[&str] = &[
    "date",
    "dt",
    "on",
    "at",
    "time",
    "timestamp",
    "ts",
    "day",
    "datetime",
    "utc",
    "when",
    "of",
];

/// Past forms the stemmer does not bring back to their event ("paid" and "payment").
const IRREGULAR_EVENTS: &[(&str, &str)] = &[
    ("paid", "pay"),
    ("sold", "sale"),
    ("sent", "send"),
    ("received", "receipt"),
    ("made", "make"),
    ("bought", "buy"),
    ("signed up", "signup"),
    ("sign up", "signup"),
    ("logged in", "login"),
    ("checked out", "checkout"),
];

/// The event a word names, the same for the verb and the noun: "issued" and "issue",
/// "shipped" and "ship", "paid" and "payment", "delivered" and "delivery".
pub fn event_stem(word: &str) -> String {
    let lower = word.to_lowercase();
    let base = IRREGULAR_EVENTS
        .iter()
        .find(|(irregular, _)| *irregular == lower)
        .map_or(lower.as_str(), |(_, base)| *base);
    let stemmed = stem(base);
    match stemmed.strip_suffix("ment") {
        Some(rest) if rest.len() >= 3 => rest.to_string(),
        _ => stemmed,
    }
}

/// The event a phrase of the user's words names, comparable with [`date_column_event`]:
/// "signed up" as one event, "first order" word by word.
pub fn event_phrase(words: &[&str]) -> String {
    let joined = words.join(" ").to_lowercase();
    if IRREGULAR_EVENTS.iter().any(|(irregular, _)| *irregular == joined) {
        return event_stem(&joined);
    }
    words.iter().map(|word| event_stem(word)).collect::<Vec<_>>().join(" ")
}

/// The event a date column dates, as event stems joined by spaces ("issued_on" -> "issu",
/// "l_shipdate" -> "ship", "signup_dt" -> "signup"); `None` when the name only says "date".
pub fn date_column_event(column: &str) -> Option<String> {
    let words: Vec<String> = split_identifier(column)
        .into_iter()
        .filter(|word| word.len() > 1 && word.chars().all(char::is_alphabetic))
        .map(|word| {
            // "shipdate", "createdat": the date word glued to the event.
            ["date", "time"]
                .iter()
                .find_map(|suffix| word.strip_suffix(suffix).filter(|rest| rest.len() >= 3))
                .map_or(word.clone(), str::to_string)
        })
        .filter(|word| !DATE_WORDS.contains(&word.as_str()))
        .map(|word| event_stem(&word))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// A catalog comment's leading phrase, when it is short enough to be something people say
/// ("Customer lifetime value (EUR)" -> "customer lifetime value"); longer prose stays a
/// description only.
pub fn comment_phrase(comment: &str) -> Option<String> {
    const MAX_WORDS: usize = 5;
    let clause = comment
        .split(['.', ',', ';', ':', '(', '[', '\u{2013}', '\u{2014}'])
        .next()?
        .split(" - ")
        .next()?;
    let words: Vec<String> = clause.split_whitespace().map(str::to_lowercase).collect();
    let plain = words
        .iter()
        .all(|word| word.chars().all(|c| c.is_alphabetic() || c == '\''));
    (plain && !words.is_empty() && words.len() <= MAX_WORDS).then(|| words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_column_is_named_by_its_event_in_verb_or_noun_form() {
        for (column, said) in [
            ("issued_on", "issue"),
            ("paid_on", "paid"),
            ("payment_date", "paid"),
            ("signup_dt", "signed up"),
            ("l_shipdate", "shipped"),
            ("delivery_date", "delivered"),
            ("CreatedAt", "created"),
            ("o_orderdate", "ordered"),
        ] {
            assert_eq!(date_column_event(column), Some(event_stem(said)), "{column} ~ {said}");
        }
        assert_eq!(date_column_event("signup_dt"), Some(event_phrase(&["signed", "up"])));
        assert_eq!(date_column_event("date"), None);
        assert_eq!(date_column_event("dt"), None);
    }

    fn words(identifier: &str) -> String {
        Vocabulary::standard().words(identifier).join(" ")
    }

    #[test]
    fn concatenated_abbreviated_and_camel_case_names_read_as_words() {
        for (identifier, expected) in [
            ("totalamt", "total amount"),
            ("invoicedate", "invoice date"),
            ("acctbal", "account balance"),
            ("CustomerName", "customer name"),
            ("signup_dt", "signup date"),
            ("extendedprice", "extended price"),
            ("mktsegment", "market segment"),
            ("totalprice", "total price"),
            ("orderpriority", "order priority"),
            ("shipinstruct", "ship instructions"),
            ("availqty", "available quantity"),
            ("supplycost", "supply cost"),
            ("custkey", "customer key"),
            ("linenumber", "line number"),
            ("DebitAmt", "debit amount"),
            ("PostedDate", "posted date"),
            ("EntryId", "entry id"),
            ("invoice_no", "invoice number"),
            ("HTTPStatus", "http status"),
            ("address2", "address 2"),
            ("credit_limit", "credit limit"),
            ("mfgr", "manufacturer"),
        ] {
            assert_eq!(words(identifier), expected, "{identifier}");
        }
    }

    #[test]
    fn unknown_words_stay_whole_and_long_known_words_are_split_off_them() {
        assert_eq!(words("clerk"), "clerk");
        assert_eq!(words("notes"), "notes", "'no' is not split off an unknown rest");
        assert_eq!(words("xyzzy"), "xyzzy");
        assert_eq!(words("widgetcount"), "widget count");
        assert_eq!(
            words("marketing"),
            "marketing",
            "an -ing form of a known word stays whole"
        );
        assert_eq!(words("marketingspend"), "marketing spend");
    }

    #[test]
    fn team_abbreviations_extend_and_override_the_built_in_ones() {
        let extra = BTreeMap::from([
            ("xyz".to_string(), "widget".to_string()),
            ("ts".to_string(), "time".to_string()),
        ]);
        let vocabulary = Vocabulary::with_abbreviations(&extra);
        assert_eq!(vocabulary.words("xyzcount").join(" "), "widget count");
        assert_eq!(vocabulary.words("created_ts").join(" "), "created time");
    }

    #[test]
    fn table_names_are_singular_and_plural_nouns() {
        let vocabulary = Vocabulary::standard();
        for (table, singular, plural) in [
            ("orders", "order", "orders"),
            ("customer", "customer", "customers"),
            ("customers", "customer", "customers"),
            ("journalentry", "journal entry", "journal entries"),
            ("JournalEntry", "journal entry", "journal entries"),
            ("lineitem", "line item", "line items"),
            ("nation", "nation", "nations"),
            ("invoices", "invoice", "invoices"),
            ("dim_customer", "customer", "customers"),
            ("support_tickets", "support ticket", "support tickets"),
            ("partsupp", "part supplier", "part suppliers"),
        ] {
            let nouns = vocabulary.table_nouns(table);
            assert_eq!(
                (nouns.singular.as_str(), nouns.plural.as_str()),
                (singular, plural),
                "{table}"
            );
        }
    }

    #[test]
    fn a_prefix_shared_by_most_columns_is_stripped() {
        let vocabulary = Vocabulary::standard();
        let customer = vocabulary.table_names(
            "customer",
            &[
                "c_custkey",
                "c_name",
                "c_address",
                "c_nationkey",
                "c_phone",
                "c_acctbal",
                "c_mktsegment",
                "c_comment",
            ],
        );
        assert_eq!(customer.column_prefix.as_deref(), Some("c_"));
        let phrases: Vec<String> = customer.columns.iter().map(ColumnWords::phrase).collect();
        assert_eq!(
            phrases,
            [
                "customer key",
                "name",
                "address",
                "nation key",
                "phone",
                "account balance",
                "market segment",
                "comment"
            ]
        );
        for columns in [
            vec!["inv_id", "inv_acctkey", "inv_totalamt", "status"],
            vec!["acct_id", "acct_name", "acct_bal"],
            vec!["ln_id", "ln_qty", "ln_amt"],
        ] {
            let prefix = shared_prefix(&columns);
            assert!(
                prefix.as_deref().is_some_and(|p| columns[0].starts_with(p)),
                "{columns:?}: {prefix:?}"
            );
        }
        assert_eq!(
            shared_prefix(&["id", "account_id", "issued_on", "paid_on", "total_amount"]),
            None
        );
        assert_eq!(
            Vocabulary::standard()
                .table_names("invoices", &["inv_id", "inv_acctkey", "inv_totalamt"])
                .columns
                .iter()
                .map(ColumnWords::phrase)
                .collect::<Vec<_>>(),
            ["id", "account key", "total amount"]
        );
    }

    #[test]
    fn stems_match_inflections_of_the_same_word() {
        for (a, b) in [
            ("delivered", "delivery"),
            ("deliveries", "delivery"),
            ("channels", "channel"),
            ("shipped", "ship"),
            ("categories", "category"),
            ("countries", "country"),
            ("orders", "ordered"),
        ] {
            assert_eq!(stem(a), stem(b), "{a} ~ {b}");
        }
        assert_ne!(stem("order"), stem("orange"));
    }

    #[test]
    fn short_comments_become_phrases_and_prose_does_not() {
        assert_eq!(
            comment_phrase("Customer lifetime value (EUR)").as_deref(),
            Some("customer lifetime value")
        );
        assert_eq!(
            comment_phrase("Amount debited, in EUR").as_deref(),
            Some("amount debited")
        );
        assert_eq!(
            comment_phrase("One row per posted ledger line, written by the nightly close job"),
            None
        );
        assert_eq!(comment_phrase("Ref #12"), None);
    }
}
