-- Slack workspaces and Enterprise Grid orgs that installed threadql through OAuth (issue 15).
-- A workspace's own install is keyed by its team (and its enterprise when it is in an org), an
-- org-wide install by its enterprise with an empty team: absent ids are '' rather than NULL so
-- they can be part of the primary key, and an event from any team of an org finds the org-wide
-- row by (enterprise, ''). Tokens are sealed (src/slack/install/seal.rs):
-- `v1:<key id>:<nonce>:<ciphertext>`, with the row's enterprise, team and app ids as associated
-- data, so a token copied into another row does not open there.
CREATE TABLE slack_installations (
    enterprise_id TEXT NOT NULL DEFAULT '',
    team_id TEXT NOT NULL DEFAULT '',
    app_id TEXT NOT NULL,
    is_enterprise_install BOOLEAN NOT NULL DEFAULT false,
    bot_user_id TEXT NOT NULL,
    -- NULL once Slack revoked the tokens (tokens_revoked); the row goes with app_uninstalled.
    bot_token_sealed TEXT,
    -- Comma-separated, as Slack lists them.
    bot_scopes TEXT NOT NULL DEFAULT '',
    -- With token rotation on: what renews the bot token, and when the bot token expires
    -- (12 hours after it was issued).
    bot_refresh_token_sealed TEXT,
    bot_token_expires_at TIMESTAMPTZ,
    installer_user_id TEXT NOT NULL DEFAULT '',
    -- The workspace's name, or the org's for an org-wide install.
    team_name TEXT NOT NULL DEFAULT '',
    -- false once its tokens stopped working (invalid_grant, token_revoked, tokens_revoked): its
    -- schedules pause and its audit rows stay.
    active BOOLEAN NOT NULL DEFAULT true,
    inactive_reason TEXT,
    installed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (enterprise_id, team_id),
    CHECK (enterprise_id <> '' OR team_id <> '')
);

-- The `state` of each install begun on the install page, accepted once by the OAuth redirect:
-- consuming it sets used_at in the same statement that checks it was unset, so a replayed
-- redirect is refused even when two arrive at once. Rows older than a day are pruned when new
-- ones are created.
CREATE TABLE slack_oauth_states (
    state TEXT PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    used_at TIMESTAMPTZ
);

CREATE INDEX slack_oauth_states_by_age ON slack_oauth_states (created_at);
