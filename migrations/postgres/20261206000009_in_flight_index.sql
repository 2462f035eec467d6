-- With several replicas, each looks for threads left with a question in flight by a replica
-- that died (every third of THREADQL_LEASE_SECS): a partial index keeps that from scanning every
-- snapshot, as only threads with a question under way are in it.
CREATE INDEX thread_snapshots_in_flight ON thread_snapshots (team_id, channel_id, thread_ts)
    WHERE state ? 'in_flight';
