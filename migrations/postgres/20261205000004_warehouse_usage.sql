-- Bytes the warehouse was estimated to read per day (UTC) and subject ("user:T1:U1",
-- "channel:T1:C1"), for the daily budgets (THREADQL_DAILY_BYTES_PER_USER / _PER_CHANNEL).
CREATE TABLE warehouse_usage (
    day TEXT NOT NULL,
    subject TEXT NOT NULL,
    bytes BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, subject)
);
