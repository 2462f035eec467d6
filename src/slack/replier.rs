//! Posts a thread's replies to Slack: Block Kit messages in the thread, files via upload-v2.
use async_trait::async_trait;

use super::blocks::{self, AnswerContext, SlackMessage};
use super::web_api::SlackWebApi;
use crate::actors::Replier;
use crate::domain::Reply;
use crate::domain::ThreadKey;

pub struct SlackReplier {
    api: SlackWebApi,
    max_rows: usize,
}

impl SlackReplier {
    pub fn new(api: SlackWebApi, max_rows: usize) -> Self {
        Self { api, max_rows }
    }
}

impl SlackReplier {
    /// The Block Kit message for a reply that is not a file.
    fn message(&self, thread: &ThreadKey, reply: &Reply) -> Option<SlackMessage> {
        Some(match reply {
            Reply::Answer(answer) => blocks::with_answer_buttons(
                blocks::answer(
                    &answer.summary,
                    &answer.result,
                    self.max_rows,
                    &AnswerContext {
                        total_rows: answer.total_rows,
                        capped: answer.capped,
                        duration: answer.duration,
                        query_id: &answer.query_id,
                        version: answer.version,
                    },
                ),
                thread.thread_ts(),
                answer.version,
            ),
            Reply::Sql(sql) => blocks::sql(sql),
            Reply::Text(text) => blocks::text(text),
            Reply::File { .. } => return None,
        })
    }
}

#[async_trait]
impl Replier for SlackReplier {
    async fn reply(&self, thread: &ThreadKey, reply: Reply) -> anyhow::Result<()> {
        let (channel, thread_ts) = (thread.channel(), thread.thread_ts());
        match self.message(thread, &reply) {
            Some(message) => {
                self.api.post_message(channel, Some(thread_ts), &message).await?;
            }
            None => {
                if let Reply::File {
                    filename,
                    content_type,
                    bytes,
                    title,
                } = reply
                {
                    self.api
                        .upload_file(channel, thread_ts, &filename, &content_type, bytes, &title)
                        .await?;
                }
            }
        }
        Ok(())
    }

    async fn progress(&self, thread: &ThreadKey, text: &str) -> anyhow::Result<Option<String>> {
        let message = blocks::progress(text, thread.thread_ts());
        let ts = self
            .api
            .post_message(thread.channel(), Some(thread.thread_ts()), &message)
            .await?;
        Ok(Some(ts).filter(|ts| !ts.is_empty()))
    }

    async fn replace(&self, thread: &ThreadKey, progress: &str, reply: Reply) -> anyhow::Result<()> {
        match self.message(thread, &reply) {
            Some(message) => self.api.update_message(thread.channel(), progress, &message).await?,
            None => {
                // A file cannot replace a message: close the progress message, then upload.
                self.api
                    .update_message(thread.channel(), progress, &blocks::text("Done: the file is below."))
                    .await?;
                self.reply(thread, reply).await?;
            }
        }
        Ok(())
    }

    async fn react(&self, thread: &ThreadKey, message_ts: &str, emoji: &str) -> anyhow::Result<()> {
        self.api.add_reaction(thread.channel(), message_ts, emoji).await?;
        Ok(())
    }
}
