-- Thread snapshots: one row per Slack thread; `version` guards against stale writes.
CREATE TABLE thread_snapshots (
    team_id     TEXT        NOT NULL,
    channel_id  TEXT        NOT NULL,
    thread_ts   TEXT        NOT NULL,
    version     BIGINT      NOT NULL,
    state       JSONB       NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, channel_id, thread_ts)
);
CREATE INDEX thread_snapshots_updated_at ON thread_snapshots (updated_at);

-- Every query threadql ran (or refused) for a user.
CREATE TABLE query_history (
    id           BIGSERIAL   PRIMARY KEY,
    query_id     TEXT        NOT NULL,
    team_id      TEXT        NOT NULL,
    channel_id   TEXT        NOT NULL,
    thread_ts    TEXT        NOT NULL,
    user_id      TEXT        NOT NULL,
    question     TEXT        NOT NULL,
    sql          TEXT        NOT NULL,
    status       TEXT        NOT NULL,
    duration_ms  BIGINT      NOT NULL,
    row_count    BIGINT,
    error        TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX query_history_thread ON query_history (team_id, channel_id, thread_ts);
CREATE INDEX query_history_created_at ON query_history (created_at);

-- Security-relevant events: refused statements, exports.
CREATE TABLE audit_logs (
    id          BIGSERIAL   PRIMARY KEY,
    team_id     TEXT        NOT NULL,
    channel_id  TEXT        NOT NULL,
    thread_ts   TEXT        NOT NULL,
    user_id     TEXT        NOT NULL,
    action      TEXT        NOT NULL,
    detail      TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX audit_logs_created_at ON audit_logs (created_at);
