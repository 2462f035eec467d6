-- What the language model spent on each query (NULL for the rules interpreter), and what it said
-- about the SQL it wrote (`explain` in a thread).
ALTER TABLE query_history ADD COLUMN prompt_tokens     BIGINT;
ALTER TABLE query_history ADD COLUMN completion_tokens BIGINT;
ALTER TABLE query_history ADD COLUMN llm_attempts      INTEGER;
ALTER TABLE query_history ADD COLUMN llm_latency_ms    BIGINT;
ALTER TABLE query_history ADD COLUMN llm_model         TEXT;
ALTER TABLE query_history ADD COLUMN explanation       TEXT;

-- The first successful query of each thread is the team's own example of a question and its SQL.
CREATE INDEX query_history_succeeded ON query_history (team_id, channel_id, thread_ts, id)
    WHERE status = 'succeeded';
