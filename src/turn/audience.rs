//! Who will read an answer. Before a turn's replies are posted, what its queries read is
//! compared with what every member of the channel may see; an answer some member may not see
//! goes to the asker alone, and the thread gets a note that says why without the data. "Why
//! this result?" shows the asker the roles, policies and audience decision behind an answer.
use super::run::{Handled, TurnContext, TurnRequest};
use crate::access::{Audience, AudienceCheck};
use crate::domain::{ErrorCode, Reply};
use crate::sql::Disclosure;

impl TurnContext {
    /// Records what a query of this turn read (several queries of a turn add up).
    pub(super) fn disclose(&self, disclosure: Disclosure) {
        let mut disclosed = match self.disclosed.lock() {
            Ok(disclosed) => disclosed,
            Err(poisoned) => poisoned.into_inner(),
        };
        match disclosed.as_mut() {
            Some(known) => known.merge(disclosure),
            None => *disclosed = Some(disclosure),
        }
    }

    fn take_disclosed(&self) -> Option<Disclosure> {
        match self.disclosed.lock() {
            Ok(mut disclosed) => disclosed.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        }
    }

    /// The turn's replies as they may be posted: unchanged when everyone in the channel may see
    /// them (or no roles are configured, or `THREADQL_AUDIENCE_CHECK=off`); otherwise, under
    /// `enforce`, each reply that shows data goes to the asker alone, after a note in the thread.
    /// Every decision about data is audited (`audience_checked`, or `answer_withheld`).
    pub(super) async fn for_audience(&self, message: &TurnRequest, replies: Vec<Reply>) -> Vec<Reply> {
        let check = self.services.access.audience_check();
        let Some(disclosure) = self.take_disclosed() else {
            return replies;
        };
        if check == AudienceCheck::Off || !replies.iter().any(Reply::shows_data) {
            return replies;
        }
        let audience = self.audience_of(message, &disclosure).await;
        let withheld = audience != Audience::Everyone && check == AudienceCheck::Enforce;
        let action = if withheld {
            "answer_withheld"
        } else {
            "audience_checked"
        };
        let code = withheld.then_some(ErrorCode::NotPermitted);
        self.audit(message, action, code, audience.describe()).await;
        let Some(note) = audience.note().filter(|_| withheld) else {
            if audience != Audience::Everyone {
                tracing::warn!(thread = %self.key, decision = %audience.describe(), "Posted an answer not everyone in the channel may see (THREADQL_AUDIENCE_CHECK=warn)");
            }
            return replies;
        };
        let mut routed = Vec::with_capacity(replies.len() + 1);
        routed.push(Reply::Text(note));
        for reply in replies {
            if reply.shows_data() {
                routed.push(Reply::Privately {
                    user: message.user.clone(),
                    reply: Box::new(reply),
                    ephemeral: false,
                });
            } else {
                routed.push(reply);
            }
        }
        routed
    }

    async fn audience_of(&self, message: &TurnRequest, disclosure: &Disclosure) -> Audience {
        let (team, channel) = (self.key.team().as_str(), self.key.channel().as_str());
        self.services
            .access
            .audience(team, channel, message.user.as_str(), disclosure)
            .await
    }

    /// "Why this result?": for the person who clicked, the roles their access comes from, the
    /// policies that shaped the version's query, who in the channel may see it and the hash of
    /// the SQL that runs (to match the audit trail and the warehouse's query history).
    pub(super) async fn why_this_result(&self, message: &TurnRequest) -> Handled {
        let Some(version) = self.target(message.version) else {
            return Handled::failed(ErrorCode::NoQueryYet);
        };
        let privately = |text: String| {
            Handled::replied(Reply::Privately {
                user: message.user.clone(),
                reply: Box::new(Reply::Text(text)),
                ephemeral: true,
            })
        };
        let grant = match self.grant(message).await {
            Ok(grant) => grant,
            Err(refusal) => return Handled::failure(refusal),
        };
        let cap = self.services.limits.answer_fetch_cap as u64;
        let mut lines = vec![format!("*Why this result?* (version {})", version.number)];
        let checked = match &grant.policy {
            None => {
                lines.push(
                    "• Roles: none are configured, so everyone reads what threadql's warehouse role reads.".into(),
                );
                self.services
                    .guard
                    .check(&version.query.sql, cap)
                    .map(|guarded| (guarded, None))
            }
            Some(policy) => {
                lines.push(format!("• Your roles: {}", grant.roles.join(", ")));
                let columns = self.services.access.columns();
                let columns_of = |table: &str| columns.get(table).cloned();
                self.services
                    .guard
                    .check_with_policy(&version.query.sql, cap, policy, &columns_of)
                    .map(|(guarded, disclosure)| (guarded, Some(disclosure)))
            }
        };
        let (guarded, disclosure) = match checked {
            Ok(checked) => checked,
            Err(error) => {
                lines.push(format!(
                    "• Under your roles this query is refused: {}",
                    super::run::as_sentence(&error.to_string())
                ));
                return privately(lines.join("\n"));
            }
        };
        match &disclosure {
            Some(disclosure) => {
                let filters = disclosure.row_filter_lines();
                lines.push(if filters.is_empty() {
                    "• Policies applied: no row filter".into()
                } else {
                    format!("• Policies applied: row filter {}", filters.join("; "))
                });
                lines.push(format!(
                    "• Read: {}",
                    disclosure.columns.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
                let audience = if self.services.access.audience_check() == AudienceCheck::Off {
                    "not checked (THREADQL_AUDIENCE_CHECK=off)".to_string()
                } else {
                    self.audience_of(message, disclosure).await.describe()
                };
                lines.push(format!("• Audience: {audience}"));
            }
            None => lines.push("• Audience: everyone in the channel may see it (no roles)".into()),
        }
        lines.push(format!("• SQL hash: `{}`", guarded.hash()));
        privately(lines.join("\n"))
    }
}
