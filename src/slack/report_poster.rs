//! Scheduled runs posted through the Web API: the answer's table under the run's heading, marked
//! with Slack message metadata (`threadql_report_run`, the run's id) so that a retry after a
//! crash finds what it already posted (`conversations.history` / `conversations.replies`) and
//! updates it instead of posting twice.
use async_trait::async_trait;
use serde_json::json;

use super::blocks::{self, AnswerContext, SlackMessage};
use super::web_api::{SlackApiError, SlackWebApi};
use crate::domain::Reply;
use crate::schedules::{Delivery, PostError, ReportPoster};

/// The metadata `event_type` of a scheduled run's post.
pub const RUN_EVENT_TYPE: &str = "threadql_report_run";

/// Slack's codes for a channel the bot can no longer post in.
const GONE: [&str; 5] = [
    "channel_not_found",
    "is_archived",
    "not_in_channel",
    "channel_is_archived",
    "cannot_dm_bot",
];

pub struct SlackReportPoster {
    api: SlackWebApi,
    max_rows: usize,
}

impl SlackReportPoster {
    pub fn new(api: SlackWebApi, max_rows: usize) -> Self {
        Self { api, max_rows }
    }

    fn message(&self, delivery: &Delivery) -> SlackMessage {
        let mut message = blocks::text(&delivery.heading);
        if let Some(answer) = &delivery.answer {
            let table = blocks::answer(
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
            );
            message.text = format!("{}\n{}", message.text, table.text);
            message.blocks.extend(table.blocks);
        }
        message.blocks.push(json!({
            "type": "context",
            "elements": [{ "type": "mrkdwn", "text": delivery.footer }],
        }));
        message
    }
}

fn post_error(error: SlackApiError) -> PostError {
    match error {
        SlackApiError::Refused { code, .. } if GONE.contains(&code.as_str()) => PostError::ChannelGone(code),
        // An installation that is there but inactive pauses; one not found is tried again (an
        // org-wide install is found once an event has named the team's enterprise).
        SlackApiError::NoToken(no_token @ super::workspaces::NoToken::Inactive { .. }) => {
            PostError::WorkspaceGone(no_token.to_string())
        }
        other => PostError::Failed(other.to_string()),
    }
}

#[async_trait]
impl ReportPoster for SlackReportPoster {
    async fn direct_channel(&self, team: &str, user: &str) -> Result<String, PostError> {
        self.api
            .for_team(team)
            .await
            .map_err(post_error)?
            .open_direct_message(user)
            .await
            .map_err(post_error)
    }

    async fn post(
        &self,
        team: &str,
        channel: &str,
        thread_ts: Option<&str>,
        delivery: &Delivery,
    ) -> Result<String, PostError> {
        let metadata = json!({
            "event_type": RUN_EVENT_TYPE,
            "event_payload": { "report": delivery.report_id, "run": delivery.execution_id },
        });
        self.api
            .for_team(team)
            .await
            .map_err(post_error)?
            .post_message_with(channel, thread_ts, &self.message(delivery), Some(&metadata))
            .await
            .map_err(post_error)
    }

    async fn update(&self, team: &str, channel: &str, ts: &str, delivery: &Delivery) -> Result<(), PostError> {
        self.api
            .for_team(team)
            .await
            .map_err(post_error)?
            .update_message(channel, ts, &self.message(delivery))
            .await
            .map_err(post_error)
    }

    async fn find(
        &self,
        team: &str,
        channel: &str,
        thread_ts: Option<&str>,
        execution_id: i64,
    ) -> Result<Option<String>, PostError> {
        let api = self.api.for_team(team).await.map_err(post_error)?;
        let messages = api.recent_messages(channel, thread_ts).await.map_err(post_error)?;
        Ok(messages
            .iter()
            .find(|message| {
                message["metadata"]["event_type"] == RUN_EVENT_TYPE
                    && message["metadata"]["event_payload"]["run"].as_i64() == Some(execution_id)
            })
            .and_then(|message| message["ts"].as_str())
            .map(str::to_string))
    }

    async fn attach(&self, team: &str, channel: &str, thread_ts: &str, file: Reply) -> Result<(), PostError> {
        let Reply::File {
            filename,
            content_type,
            bytes,
            title,
        } = file
        else {
            return Ok(());
        };
        self.api
            .for_team(team)
            .await
            .map_err(post_error)?
            .upload_file(channel, Some(thread_ts), &filename, &content_type, bytes, &title)
            .await
            .map_err(post_error)
    }

    async fn say(&self, team: &str, channel: &str, thread_ts: Option<&str>, text: &str) -> Result<(), PostError> {
        self.api
            .for_team(team)
            .await
            .map_err(post_error)?
            .post_message(channel, thread_ts, &blocks::text(text))
            .await
            .map(|_| ())
            .map_err(post_error)
    }
}
