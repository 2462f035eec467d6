-- The audit trail (`threadql audit`): Slack's event id of the message each row is about (empty
-- for a click or the terminal), and an index for one user's rows over a time range
-- (`--user U… --since 1d`); the retention job deletes by the existing created_at index.
ALTER TABLE audit_logs ADD COLUMN event_id TEXT NOT NULL DEFAULT '';
CREATE INDEX audit_logs_user_created_at ON audit_logs (user_id, created_at);
