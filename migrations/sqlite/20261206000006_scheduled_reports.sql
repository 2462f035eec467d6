-- Scheduled reports and alerts made in threads ("every monday at 9", "alert me when refunds
-- today > 50") and each of their runs. A run is keyed by (report, fire time): whichever replica
-- inserts that row runs it, so a fire time is delivered once however many replicas poll; the
-- Slack ts of what it posted is recorded so a retry after a crash updates that message.
CREATE TABLE scheduled_reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- The thread it was made in; its team is the schedule's workspace.
    team_id TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    thread_ts TEXT NOT NULL,
    -- Whose permissions each run has, and who is told when one fails.
    owner_id TEXT NOT NULL,
    question TEXT NOT NULL,
    -- The proposed query (SQL, structured form, summary, formats) as JSON.
    query TEXT NOT NULL,
    cron TEXT NOT NULL,
    timezone TEXT NOT NULL,
    destination TEXT NOT NULL,
    options TEXT NOT NULL,
    -- An alert's condition, state and last value; NULL for a report.
    alert TEXT,
    -- active | paused
    state TEXT NOT NULL DEFAULT 'active',
    paused_reason TEXT,
    -- The schedule's own thread, once its first run was posted.
    delivery_channel TEXT,
    delivery_thread_ts TEXT,
    -- What the last delivered run showed, for the diff and "skip if unchanged".
    last_result TEXT,
    next_fire_at TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX scheduled_reports_due ON scheduled_reports (state, next_fire_at);
CREATE INDEX scheduled_reports_owner ON scheduled_reports (team_id, owner_id);

CREATE TABLE report_executions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    report_id BIGINT NOT NULL REFERENCES scheduled_reports (id) ON DELETE CASCADE,
    fire_at TEXT NOT NULL,
    -- running | retrying | succeeded | skipped_empty | skipped_unchanged | quiet | failed | missed
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    -- Missed fire times this run stands for (catch-up "latest").
    missed INTEGER NOT NULL DEFAULT 0,
    claimed_by TEXT,
    lease_until TEXT,
    retry_at TEXT,
    slack_channel TEXT,
    slack_ts TEXT,
    error_code TEXT,
    error TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at TEXT,
    UNIQUE (report_id, fire_at)
);
CREATE INDEX report_executions_pending ON report_executions (status, lease_until, retry_at);
