-- Messages for a thread whose owner could not be reached (issue 13): the replica that took the
-- message keeps it here instead of in its memory, and whichever replica owns the thread next
-- takes them, oldest first, before anything newer. Keyed by the message, so a message kept twice
-- (Slack's retry reaching another replica while Redis was down) is kept once.
CREATE TABLE thread_inbox (
    team_id TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    thread_ts TEXT NOT NULL,
    message_ts TEXT NOT NULL,
    -- The message as it is forwarded between replicas (cluster::ForwardedMessage).
    message JSONB NOT NULL,
    kept_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, channel_id, thread_ts, message_ts)
);
