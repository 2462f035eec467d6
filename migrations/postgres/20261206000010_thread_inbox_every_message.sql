-- The inbox now holds every message a replica takes, not only those whose owner could not be
-- reached (issue 13): the row is written before Slack's ack and deleted once the message's turn
-- is over, so a message outlives both the replica that took it and the owner it was forwarded
-- to (SIGKILL mid-turn loses nothing queued), and its key catches Slack's retry at another
-- replica while Redis is down.
COMMENT ON TABLE thread_inbox IS
    'Messages taken and not answered yet: written before the ack, deleted when their turn is over (issue 13).';
