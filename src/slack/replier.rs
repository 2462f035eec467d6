//! Posts a thread's replies to Slack: Block Kit messages in the thread, files via upload-v2.
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use super::blocks::{self, AnswerContext, SerializedMessage, SlackMessage};
use super::web_api::SlackWebApi;
use crate::domain::ThreadKey;
use crate::domain::{Answer, Reply};
use crate::turn::Replier;

pub struct SlackReplier {
    api: SlackWebApi,
    max_rows: usize,
    /// The last text reply rendered and serialized, kept for the next identical one: a burst of
    /// `help` posts one text thousands of times, and rendering it was a tenth of each answer's
    /// CPU (BENCHMARKS.md, "Bursts and memory").
    last_text: Mutex<Option<(String, Arc<SerializedMessage>)>>,
}

impl SlackReplier {
    pub fn new(api: SlackWebApi, max_rows: usize) -> Self {
        Self {
            api,
            max_rows,
            last_text: Mutex::default(),
        }
    }

    fn text_kit(&self, text: &str) -> Arc<SerializedMessage> {
        let last = || self.last_text.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((rendered, message)) = last().as_ref() {
            if rendered == text {
                return message.clone();
            }
        }
        let message = Arc::new(SerializedMessage::of(&blocks::text(text)));
        *last() = Some((text.to_string(), message.clone()));
        message
    }
}

/// The Block Kit message for a reply that is not a file.
fn block_kit(thread: &ThreadKey, reply: &Reply, max_rows: usize) -> Option<SlackMessage> {
    Some(match reply {
        Reply::Answer(answer) => {
            blocks::with_answer_buttons(answer_kit(answer, max_rows), thread.thread_ts(), answer.version)
        }
        Reply::Sql(sql) => blocks::sql(sql),
        Reply::Text(text) => blocks::text(text),
        Reply::Confirm { text, version } => blocks::confirm(text, thread.thread_ts(), *version),
        Reply::Error(error) => blocks::error(error),
        Reply::Schedule {
            text,
            report,
            active,
            phrase,
        } => blocks::with_schedule_buttons(blocks::text(text), thread.thread_ts(), *report, *active, phrase),
        Reply::File { .. } => return None,
        // Posted elsewhere than the thread: see `SlackReplier::privately`.
        Reply::Privately { .. } => return None,
    })
}

/// An answer's table and context line, without buttons.
fn answer_kit(answer: &Answer, max_rows: usize) -> SlackMessage {
    blocks::answer(
        &answer.summary,
        &answer.result,
        max_rows,
        &AnswerContext {
            total_rows: answer.total_rows,
            capped: answer.capped,
            duration: answer.duration,
            query_id: &answer.query_id,
            version: answer.version,
        },
    )
}

/// A reply for one user's eyes: the answer without its buttons (they act on the thread, which a
/// direct message is not).
fn private_kit(reply: &Reply, max_rows: usize) -> SlackMessage {
    match reply {
        Reply::Answer(answer) => answer_kit(answer, max_rows),
        Reply::Sql(sql) => blocks::sql(sql),
        Reply::Text(text) | Reply::Confirm { text, .. } | Reply::Schedule { text, .. } => blocks::text(text),
        Reply::Error(error) => blocks::error(error),
        Reply::File { title, .. } => blocks::text(&format!("{title}: I couldn't send you the file directly.")),
        Reply::Privately { reply, .. } => private_kit(reply, max_rows),
    }
}

/// A reply's message, ready to post.
enum Kit {
    Built(SlackMessage),
    Serialized(Arc<SerializedMessage>),
}

impl SlackReplier {
    /// Uploads `reply` when it is a file, else posts `message` (in a thread when `thread_ts`).
    async fn post_or_upload(
        api: &SlackWebApi,
        channel: &str,
        thread_ts: Option<&str>,
        reply: Reply,
        message: Option<Kit>,
    ) -> anyhow::Result<()> {
        match (reply, message) {
            (
                Reply::File {
                    filename,
                    content_type,
                    bytes,
                    title,
                },
                _,
            ) => {
                api.upload_file(channel, thread_ts, &filename, &content_type, bytes, &title)
                    .await?
            }
            (_, Some(Kit::Built(message))) => {
                api.post_message(channel, thread_ts, &message).await?;
            }
            (_, Some(Kit::Serialized(message))) => {
                api.post_serialized(channel, thread_ts, &message).await?;
            }
            (_, None) => {}
        }
        Ok(())
    }

    /// Sends `reply` to `user` alone: by direct message (`conversations.open`), or ephemerally in
    /// the thread when asked to or when a direct message cannot be opened (no `im:write`).
    async fn privately(&self, thread: &ThreadKey, user: &str, reply: Reply, ephemeral: bool) -> anyhow::Result<()> {
        let api = self.api.for_team(thread.team()).await?;
        if !ephemeral {
            match api.open_direct_message(user).await {
                Ok(direct) => {
                    let message = Kit::Built(private_kit(&reply, self.max_rows));
                    return Self::post_or_upload(&api, &direct, None, reply, Some(message)).await;
                }
                Err(error) => {
                    tracing::warn!(%error, "Failed to open a direct message; answering ephemerally in the thread");
                }
            }
        }
        api.post_ephemeral(
            thread.channel(),
            user,
            Some(thread.thread_ts()),
            &private_kit(&reply, self.max_rows),
        )
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Replier for SlackReplier {
    async fn reply(&self, thread: &ThreadKey, reply: Reply) -> anyhow::Result<()> {
        let (channel, thread_ts) = (thread.channel(), thread.thread_ts());
        if let Reply::Privately { user, reply, ephemeral } = reply {
            return self.privately(thread, user.as_str(), *reply, ephemeral).await;
        }
        let message = match &reply {
            Reply::Text(text) => Some(Kit::Serialized(self.text_kit(text))),
            _ => block_kit(thread, &reply, self.max_rows).map(Kit::Built),
        };
        let api = self.api.for_team(thread.team()).await?;
        Self::post_or_upload(&api, channel, Some(thread_ts), reply, message).await
    }

    async fn progress(&self, thread: &ThreadKey, text: &str) -> anyhow::Result<Option<String>> {
        let message = blocks::progress(text, thread.thread_ts());
        let ts = self
            .api
            .for_team(thread.team())
            .await?
            .post_message(thread.channel(), Some(thread.thread_ts()), &message)
            .await?;
        Ok(Some(ts).filter(|ts| !ts.is_empty()))
    }

    async fn replace(&self, thread: &ThreadKey, progress: &str, reply: Reply) -> anyhow::Result<()> {
        let api = self.api.for_team(thread.team()).await?;
        match block_kit(thread, &reply, self.max_rows) {
            Some(message) => api.update_message(thread.channel(), progress, &message).await?,
            None => {
                // A file cannot replace a message: close the progress message, then upload.
                api.update_message(thread.channel(), progress, &blocks::text("Done: the file is below."))
                    .await?;
                self.reply(thread, reply).await?;
            }
        }
        Ok(())
    }

    async fn react(&self, thread: &ThreadKey, message_ts: &str, emoji: &str) -> anyhow::Result<()> {
        self.api
            .for_team(thread.team())
            .await?
            .add_reaction(thread.channel(), message_ts, emoji)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The Block Kit of each reply kind, pinned: a change to what users see shows up here.
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::time::Duration;

    use super::*;
    use crate::domain::{Answer, Column, ColumnFormat, ErrorCode, QueryId, QueryResult, Value};

    fn thread() -> ThreadKey {
        ThreadKey::parse("T1", "C1", "1700000000.000100").unwrap()
    }

    #[test]
    fn a_repeated_text_is_rendered_once_and_a_new_one_afresh() {
        let url = url::Url::parse("http://127.0.0.1:9/api/").unwrap();
        let api = SlackWebApi::new(
            &url,
            &secrecy::SecretString::from("xoxb-test"),
            crate::metrics::Metrics::new().unwrap(),
        )
        .unwrap();
        let replier = SlackReplier::new(api, 10);

        let help = replier.text_kit("*help* <here>");
        assert!(Arc::ptr_eq(&help, &replier.text_kit("*help* <here>")), "rendered once");
        let serialized = |message: &SerializedMessage| (message.text.clone(), message.blocks.get().to_string());
        let expected = |text: &str| {
            let message = blocks::text(text);
            (message.text, serde_json::to_string(&message.blocks).unwrap())
        };
        assert_eq!(serialized(&help), expected("*help* <here>"));
        let other = replier.text_kit("something else");
        assert_eq!(serialized(&other), expected("something else"));
        assert!(
            !Arc::ptr_eq(&help, &replier.text_kit("*help* <here>")),
            "the cache keeps one text"
        );
    }

    fn kit(reply: Reply) -> serde_json::Value {
        let message = block_kit(&thread(), &reply, 10).unwrap();
        serde_json::json!({ "text": message.text, "blocks": message.blocks })
    }

    #[test]
    fn an_answer() {
        let result = QueryResult {
            columns: vec![
                Column {
                    name: "region".into(),
                    format: ColumnFormat::Text,
                },
                Column {
                    name: "revenue".into(),
                    format: ColumnFormat::Money,
                },
            ],
            rows: vec![
                vec![Value::Text("EMEA".into()), Value::Float(1234.5)],
                vec![Value::Text("APAC".into()), Value::Float(99.0)],
            ],
        };
        let reply = Reply::Answer(Box::new(Answer {
            summary: "Revenue by region · last month (Oct 2026)".into(),
            result,
            total_rows: 2,
            capped: false,
            duration: Duration::from_millis(420),
            query_id: QueryId::new("q-abc123"),
            version: 2,
        }));
        insta::assert_json_snapshot!(kit(reply), @r#"
        {
          "blocks": [
            {
              "text": {
                "text": "*Revenue by region · last month (Oct 2026)*",
                "type": "mrkdwn"
              },
              "type": "section"
            },
            {
              "text": {
                "text": "```\nregion |  revenue\n-------+---------\nEMEA   | 1,234.50\nAPAC   |    99.00\n```",
                "type": "mrkdwn"
              },
              "type": "section"
            },
            {
              "elements": [
                {
                  "text": "2 rows · 0.42 s · query q-abc123 · version 2",
                  "type": "mrkdwn"
                }
              ],
              "type": "context"
            },
            {
              "block_id": "threadql_answer",
              "elements": [
                {
                  "action_id": "show_sql",
                  "text": {
                    "text": "Show SQL",
                    "type": "plain_text"
                  },
                  "type": "button",
                  "value": "{\"thread_ts\":\"1700000000.000100\",\"version\":2}"
                },
                {
                  "action_id": "export_csv",
                  "text": {
                    "text": "Export CSV",
                    "type": "plain_text"
                  },
                  "type": "button",
                  "value": "{\"thread_ts\":\"1700000000.000100\",\"version\":2}"
                },
                {
                  "action_id": "chart",
                  "text": {
                    "text": "Chart",
                    "type": "plain_text"
                  },
                  "type": "button",
                  "value": "{\"thread_ts\":\"1700000000.000100\",\"version\":2}"
                },
                {
                  "action_id": "undo",
                  "text": {
                    "text": "Undo",
                    "type": "plain_text"
                  },
                  "type": "button",
                  "value": "{\"thread_ts\":\"1700000000.000100\",\"version\":2}"
                },
                {
                  "action_id": "why_this_result",
                  "text": {
                    "text": "Why this result?",
                    "type": "plain_text"
                  },
                  "type": "button",
                  "value": "{\"thread_ts\":\"1700000000.000100\",\"version\":2}"
                }
              ],
              "type": "actions"
            }
          ],
          "text": "Revenue by region · last month (Oct 2026)\nregion |  revenue\n-------+---------\nEMEA   | 1,234.50\nAPAC   |    99.00"
        }
        "#);
    }

    #[test]
    fn sql() {
        insta::assert_json_snapshot!(kit(Reply::Sql("SELECT region, SUM(total) AS revenue FROM orders GROUP BY region LIMIT 10000".into())), @r#"
        {
          "blocks": [
            {
              "text": {
                "text": "```\nSELECT region, SUM(total) AS revenue FROM orders GROUP BY region LIMIT 10000\n```",
                "type": "mrkdwn"
              },
              "type": "section"
            }
          ],
          "text": "SELECT region, SUM(total) AS revenue FROM orders GROUP BY region LIMIT 10000"
        }
        "#);
    }

    #[test]
    fn text() {
        insta::assert_json_snapshot!(kit(Reply::Text("*Revenue by region*\nThis answer comes from the rules.".into())), @r#"
        {
          "blocks": [
            {
              "text": {
                "text": "*Revenue by region*\nThis answer comes from the rules.",
                "type": "mrkdwn"
              },
              "type": "section"
            }
          ],
          "text": "*Revenue by region*\nThis answer comes from the rules."
        }
        "#);
    }

    #[test]
    fn an_error_with_its_code() {
        insta::assert_json_snapshot!(kit(Reply::error_with(ErrorCode::QueryCancelled, "It was the query for “revenue <by> region”.")), @r#"
        {
          "blocks": [
            {
              "text": {
                "text": ":warning: Cancelled the query.\nIt was the query for “revenue &lt;by&gt; region”.",
                "type": "mrkdwn"
              },
              "type": "section"
            },
            {
              "elements": [
                {
                  "text": "code `query_cancelled`",
                  "type": "mrkdwn"
                }
              ],
              "type": "context"
            }
          ],
          "text": ":warning: Cancelled the query.\nIt was the query for “revenue &lt;by&gt; region”."
        }
        "#);
    }

    #[test]
    fn progress() {
        let message = blocks::progress("Working on it… this query is taking a while.", thread().thread_ts());
        insta::assert_json_snapshot!(serde_json::json!({ "text": message.text, "blocks": message.blocks }), @r#"
        {
          "blocks": [
            {
              "text": {
                "text": ":hourglass_flowing_sand: Working on it… this query is taking a while.",
                "type": "mrkdwn"
              },
              "type": "section"
            },
            {
              "block_id": "threadql_progress",
              "elements": [
                {
                  "action_id": "cancel",
                  "style": "danger",
                  "text": {
                    "text": "Cancel",
                    "type": "plain_text"
                  },
                  "type": "button",
                  "value": "{\"thread_ts\":\"1700000000.000100\"}"
                }
              ],
              "type": "actions"
            }
          ],
          "text": ":hourglass_flowing_sand: Working on it… this query is taking a while."
        }
        "#);
    }

    #[test]
    fn a_file_has_no_message_of_its_own() {
        let file = Reply::File {
            filename: "threadql-q.csv".into(),
            content_type: "text/csv".into(),
            bytes: b"a\n1\n".to_vec(),
            title: "Export".into(),
        };
        assert!(block_kit(&thread(), &file, 10).is_none());
    }
}
