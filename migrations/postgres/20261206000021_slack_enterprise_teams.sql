-- Which Enterprise Grid org each workspace belongs to, as its events said (issue 15): an org-wide
-- install has no row per team, so a workspace's token is found through its enterprise. Kept here
-- rather than only in memory, so that a scheduled run after a restart (no event yet) finds it.
CREATE TABLE slack_enterprise_teams (
    team_id TEXT PRIMARY KEY,
    enterprise_id TEXT NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
