//! Posts a thread's replies to Slack: Block Kit messages in the thread, files via upload-v2.
use async_trait::async_trait;

use super::blocks::{self, AnswerContext};
use super::outbox::SlackWebApi;
use crate::actors::{Replier, Reply};
use crate::conversation::ThreadKey;

pub struct SlackReplier {
    api: SlackWebApi,
    max_rows: usize,
}

impl SlackReplier {
    pub fn new(api: SlackWebApi, max_rows: usize) -> Self {
        Self { api, max_rows }
    }
}

#[async_trait]
impl Replier for SlackReplier {
    async fn reply(&self, thread: &ThreadKey, reply: Reply) -> anyhow::Result<()> {
        let (channel, thread_ts) = (thread.channel(), thread.thread_ts());
        let message = match reply {
            Reply::Answer(answer) => blocks::answer(
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
            Reply::Sql(sql) => blocks::sql(&sql),
            Reply::Text(text) => blocks::text(&text),
            Reply::File {
                filename,
                content_type,
                bytes,
                title,
            } => {
                self.api
                    .upload_file(channel, thread_ts, &filename, &content_type, bytes, &title)
                    .await?;
                return Ok(());
            }
        };
        self.api.post_message(channel, Some(thread_ts), &message).await?;
        Ok(())
    }
}
