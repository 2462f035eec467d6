-- Which replica owns each thread's live actor (issue 13). A replica claims a thread by
-- compare-and-set (the row is free, its lease has passed, or it is already the owner's) and
-- renews all of its leases in one statement every third of the lease. `epoch` grows on every
-- change of owner: a snapshot write carries the epoch it was made under and is refused unless
-- the row still names its writer with that epoch (fencing), so a replica that was paused past
-- its lease and comes back can write nothing for the threads that moved on without it.
CREATE TABLE thread_owners (
    team_id TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    thread_ts TEXT NOT NULL,
    -- The replica's name (host and a random suffix, new at every start).
    owner TEXT NOT NULL,
    -- Where the other replicas forward this thread's events (THREADQL_ADVERTISE_URL).
    owner_url TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (team_id, channel_id, thread_ts)
);

-- Renewal and release go by owner.
CREATE INDEX thread_owners_by_owner ON thread_owners (owner);
