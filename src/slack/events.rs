//! Events API envelopes: parsed tolerantly (Slack adds fields and event types all the time)
//! and classified into what threadql acts on. Pure: no I/O.
use serde::Deserialize;

use crate::domain::{MessageTs, Origin, ThreadKey, UserId};

/// The outer envelope of a POST to `/slack/events`.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub challenge: Option<String>,
    #[serde(default)]
    pub team_id: Option<String>,
    /// The Enterprise Grid org of the team, if any (installs through OAuth look an org-wide
    /// install up by it).
    #[serde(default)]
    pub enterprise_id: Option<String>,
    #[serde(default)]
    pub api_app_id: Option<String>,
    /// Slack's id of this delivery's event (traces and logs carry it; dedupe does not use it).
    #[serde(default)]
    pub event_id: Option<String>,
    #[serde(default)]
    pub authorizations: Vec<Authorization>,
    /// Kept raw: parsed once, into [`MessageEvent`], only for an `event_callback` (building a
    /// `Value` first and converting it cost a tenth of the ack path).
    #[serde(default)]
    pub event: Option<Box<serde_json::value::RawValue>>,
}

#[derive(Debug, Deserialize)]
pub struct Authorization {
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub is_bot: bool,
}

/// The fields of an inner `message` / `app_mention` event threadql reads.
#[derive(Debug, Default, Deserialize)]
struct MessageEvent {
    #[serde(rename = "type", default)]
    kind: String,
    subtype: Option<String>,
    user: Option<String>,
    bot_id: Option<String>,
    text: Option<String>,
    ts: Option<String>,
    thread_ts: Option<String>,
    channel: Option<String>,
    channel_type: Option<String>,
    team: Option<String>,
    /// `tokens_revoked`: the tokens Slack revoked, by kind.
    #[serde(default)]
    tokens: RevokedTokens,
}

#[derive(Debug, Default, Deserialize)]
struct RevokedTokens {
    #[serde(default)]
    bot: Vec<String>,
}

/// A user message threadql should handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    pub thread: ThreadKey,
    pub user: UserId,
    /// The text with mentions of the bot removed.
    pub text: String,
    /// The message's own ts (the thread root's ts for a top-level message).
    pub message_ts: MessageTs,
    pub origin: Origin,
    /// Slack's event id (empty for button clicks and slash commands): an attribute of the
    /// message's trace, not a dedupe key.
    pub event_id: String,
}

/// The workspace (or org) and app an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub enterprise: Option<String>,
    pub team: Option<String>,
    pub app: String,
}

/// What to do with an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    UrlVerification(String),
    /// A message to hand to its thread. Slack's event id is not kept: dedupe is by the message
    /// (team, channel, ts), which a retry and a second delivery under another event id share.
    Message(InboundMessage),
    /// Someone joined or left a channel, or it was shared or unshared: who reads its answers
    /// changed (`member_joined_channel`, `member_left_channel`, `channel_shared`,
    /// `channel_unshared`).
    AudienceChanged {
        team: String,
        channel: String,
    },
    /// A user group was created, renamed or changed members (`subteam_*`): roles naming groups
    /// may now grant other people.
    UserGroupsChanged,
    /// The app was uninstalled from a workspace (`app_uninstalled`): its installation goes.
    Uninstalled(Workspace),
    /// A workspace's bot token was revoked (`tokens_revoked` listing bot tokens): it is
    /// deleted and the installation marked inactive.
    TokensRevoked(Workspace),
    /// Valid, but nothing for threadql (other event types, bot messages, edits, chatter).
    Ignored(&'static str),
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// Classifies an envelope. `fallback_bot_user` is the bot's user id learned at start-up
/// (`auth.test`), used when the envelope carries no bot authorization.
pub fn classify(envelope: Envelope, fallback_bot_user: Option<&str>) -> Classified {
    match envelope.kind.as_str() {
        "url_verification" => match non_empty(envelope.challenge) {
            Some(challenge) => Classified::UrlVerification(challenge),
            None => Classified::Ignored("url_verification without challenge"),
        },
        "event_callback" => {
            let bot_user = envelope
                .authorizations
                .iter()
                .filter(|a| a.is_bot)
                .find_map(|a| non_empty(a.user_id.clone()))
                .or_else(|| fallback_bot_user.map(str::to_string));
            let Some(event) = envelope.event else {
                return Classified::Ignored("no inner event");
            };
            let Ok(event) = serde_json::from_str::<MessageEvent>(event.get()) else {
                return Classified::Ignored("inner event of another shape");
            };
            let workspace = || Workspace {
                enterprise: non_empty(envelope.enterprise_id.clone()),
                team: non_empty(envelope.team_id.clone()),
                app: envelope.api_app_id.clone().unwrap_or_default(),
            };
            match event.kind.as_str() {
                "app_uninstalled" => return Classified::Uninstalled(workspace()),
                "tokens_revoked" if event.tokens.bot.is_empty() => {
                    return Classified::Ignored("tokens_revoked for user tokens only")
                }
                "tokens_revoked" => return Classified::TokensRevoked(workspace()),
                "member_joined_channel" | "member_left_channel" | "channel_shared" | "channel_unshared" => {
                    let team = non_empty(event.team).or(non_empty(envelope.team_id));
                    return match (team, non_empty(event.channel)) {
                        (Some(team), Some(channel)) => Classified::AudienceChanged { team, channel },
                        _ => Classified::Ignored("membership change without a channel"),
                    };
                }
                "subteam_created"
                | "subteam_updated"
                | "subteam_members_changed"
                | "subteam_self_added"
                | "subteam_self_removed" => return Classified::UserGroupsChanged,
                _ => {}
            }
            match classify_message(event, envelope.team_id, bot_user.as_deref()) {
                Ok(mut message) => {
                    message.event_id = envelope.event_id.unwrap_or_default();
                    Classified::Message(message)
                }
                Err(reason) => Classified::Ignored(reason),
            }
        }
        _ => Classified::Ignored("envelope type threadql does not handle"),
    }
}

fn classify_message(
    event: MessageEvent,
    team_id: Option<String>,
    bot_user: Option<&str>,
) -> Result<InboundMessage, &'static str> {
    let is_mention_event = match event.kind.as_str() {
        "app_mention" => true,
        "message" => false,
        _ => return Err("event type threadql does not handle"),
    };
    // Edits, deletions, joins, bot posts...: only plain user messages (and thread broadcasts,
    // which are replies also shown in the channel) are questions.
    if let Some(subtype) = non_empty(event.subtype) {
        if subtype != "thread_broadcast" {
            return Err("message subtype");
        }
    }
    if non_empty(event.bot_id).is_some() {
        return Err("message from a bot");
    }
    let user = non_empty(event.user).ok_or("message without a user")?;
    if Some(user.as_str()) == bot_user {
        return Err("the bot's own message");
    }
    let channel = non_empty(event.channel).ok_or("message without a channel")?;
    let ts = non_empty(event.ts).ok_or("message without a ts")?;
    let team = non_empty(team_id)
        .or(non_empty(event.team))
        .ok_or("message without a team")?;
    let raw_text = event.text.unwrap_or_default();
    let mentions_bot = bot_user.is_some_and(|bot| raw_text.contains(&format!("<@{bot}")));
    let thread_ts = non_empty(event.thread_ts);
    let origin = if is_mention_event || mentions_bot {
        Origin::Mention
    } else if event.channel_type.as_deref() == Some("im") {
        Origin::DirectMessage
    } else if thread_ts.is_some() {
        Origin::ThreadReply
    } else {
        return Err("channel message that does not mention the bot");
    };
    let thread =
        ThreadKey::parse(&team, &channel, thread_ts.as_deref().unwrap_or(&ts)).ok_or("incomplete thread key")?;
    Ok(InboundMessage {
        thread,
        user: UserId::new(user),
        text: strip_mentions(&raw_text, bot_user),
        message_ts: MessageTs::new(ts),
        origin,
        event_id: String::new(),
    })
}

/// Removes `<@BOT>` / `<@BOT|name>` mentions of the bot (and a leading mention of anyone, as
/// Slack puts the bot's own mention first in an app_mention).
fn strip_mentions(text: &str, bot_user: Option<&str>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<@") {
        let Some(len) = rest[start..].find('>') else { break };
        let mention = &rest[start + 2..start + len];
        let id = mention.split('|').next().unwrap_or_default();
        out.push_str(&rest[..start]);
        let is_bot = bot_user.is_some_and(|bot| bot == id);
        let is_leading = out.trim().is_empty();
        if !(is_bot || (is_leading && bot_user.is_none())) {
            out.push_str(&rest[start..start + len + 1]);
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn envelope(event: serde_json::Value) -> Envelope {
        // As over the wire: the inner event is kept raw, which only a parse of text allows.
        let body = json!({
            "type": "event_callback", "team_id": "T1", "event_id": "Ev1",
            "authorizations": [{"user_id": "UBOT", "is_bot": true}],
            "event": event,
        });
        serde_json::from_str(&body.to_string()).unwrap()
    }

    #[test]
    fn a_mention_starts_a_thread_at_its_own_ts_with_the_mention_removed() {
        let classified = classify(
            envelope(
                json!({"type": "app_mention", "user": "U1", "text": "<@UBOT> revenue by region", "ts": "1.1", "channel": "C1"}),
            ),
            None,
        );
        let Classified::Message(message) = classified else {
            panic!("{classified:?}")
        };
        assert_eq!(message.thread, ThreadKey::parse("T1", "C1", "1.1").unwrap());
        assert_eq!(
            (message.text.as_str(), message.origin),
            ("revenue by region", Origin::Mention)
        );
    }

    #[test]
    fn messages_are_classified_by_where_they_come_from() {
        let cases = [
            (
                "dm",
                json!({"type": "message", "channel_type": "im", "user": "U1", "text": "hi", "ts": "2.1", "channel": "D1"}),
                Some(Origin::DirectMessage),
            ),
            (
                "reply in thread",
                json!({"type": "message", "channel_type": "channel", "user": "U1", "text": "only EMEA", "ts": "2.2", "thread_ts": "1.1", "channel": "C1"}),
                Some(Origin::ThreadReply),
            ),
            (
                "message copy of a mention",
                json!({"type": "message", "user": "U1", "text": "<@UBOT> revenue", "ts": "1.1", "channel": "C1"}),
                Some(Origin::Mention),
            ),
            (
                "channel chatter",
                json!({"type": "message", "user": "U1", "text": "lunch?", "ts": "2.3", "channel": "C1"}),
                None,
            ),
            (
                "bot message",
                json!({"type": "message", "bot_id": "B1", "user": "U2", "text": "x", "ts": "2.4", "channel": "C1", "thread_ts": "1.1"}),
                None,
            ),
            (
                "own message",
                json!({"type": "message", "user": "UBOT", "text": "x", "ts": "2.5", "channel": "C1", "thread_ts": "1.1"}),
                None,
            ),
            (
                "edit",
                json!({"type": "message", "subtype": "message_changed", "channel": "C1", "ts": "2.6"}),
                None,
            ),
            (
                "delete",
                json!({"type": "message", "subtype": "message_deleted", "channel": "C1", "ts": "2.7"}),
                None,
            ),
            ("reaction", json!({"type": "reaction_added", "user": "U1"}), None),
            (
                "blank sample",
                json!({"type": "message", "user": "", "text": "", "ts": "", "channel": ""}),
                None,
            ),
        ];
        for (description, event, expected) in cases {
            let origin = match classify(envelope(event), None) {
                Classified::Message(message) => Some(message.origin),
                _ => None,
            };
            assert_eq!(origin, expected, "{description}");
        }
    }

    #[test]
    fn url_verification_returns_the_challenge() {
        let envelope: Envelope =
            serde_json::from_value(json!({"token": "x", "challenge": "3eZbrw1aB", "type": "url_verification"}))
                .unwrap();
        assert_eq!(
            classify(envelope, None),
            Classified::UrlVerification("3eZbrw1aB".into())
        );
    }

    #[test]
    fn mentions_of_other_people_are_kept() {
        assert_eq!(
            strip_mentions("<@UBOT> orders by <@U2>", Some("UBOT")),
            "orders by <@U2>"
        );
        assert_eq!(strip_mentions("<@UBOT|threadql>   top 5", Some("UBOT")), "top 5");
    }
}

#[cfg(test)]
mod sample_tests {
    use super::*;

    /// Slack's published samples of every event type (blank values): none is a question.
    #[test]
    fn no_slack_sample_event_is_taken_for_a_question() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/slack-samples/events");
        let mut checked = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
            value["type"] = serde_json::json!("event_callback");
            let envelope: Envelope = serde_json::from_str(&value.to_string()).unwrap();
            let classified = classify(envelope, Some("UBOT"));
            assert!(
                !matches!(classified, Classified::Message { .. }),
                "{}: {classified:?}",
                path.display()
            );
            checked += 1;
        }
        assert!(checked >= 90);
    }
}
