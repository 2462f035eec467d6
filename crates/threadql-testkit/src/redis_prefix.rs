//! A key prefix per test on the shared Redis, cleared with its guard.
use std::fmt;
use std::time::Duration;

/// The Redis the tests and the benchmark share.
pub const SHARED_REDIS: &str = "redis://127.0.0.1:6379";

/// Keys are deleted in batches of this many.
const BATCH: usize = 10_000;

/// `<label>-<uuid>:`, the prefix of every key one test (or benchmark run) writes to the shared
/// Redis (`THREADQL_REDIS_PREFIX`, `IngressGate::new(.., prefix)`). Dropping it deletes those
/// keys, also when the test failed.
#[derive(Debug)]
pub struct RedisPrefix {
    prefix: String,
}

impl RedisPrefix {
    pub fn new(label: &str) -> Self {
        Self {
            prefix: format!("{label}-{}:", uuid::Uuid::new_v4().simple()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.prefix
    }

    /// Keys on the shared Redis under this prefix followed by `rest` (`""`: all of them).
    pub fn count(&self, rest: &str) -> anyhow::Result<u64> {
        let mut connection = connect()?;
        let mut count = 0;
        for_each_batch(&mut connection, &format!("{}{rest}", self.prefix), |keys| {
            count += keys.len() as u64;
            Ok(())
        })?;
        Ok(count)
    }

    /// Deletes every key under the prefix on the shared Redis.
    pub fn clear(&self) -> anyhow::Result<()> {
        let mut connection = connect()?;
        let mut doomed = Vec::new();
        for_each_batch(&mut connection, &self.prefix, |keys| {
            doomed.extend_from_slice(keys);
            Ok(())
        })?;
        for chunk in doomed.chunks(BATCH) {
            let _: u64 = redis::cmd("UNLINK").arg(chunk).query(&mut connection)?;
        }
        Ok(())
    }
}

impl fmt::Display for RedisPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.prefix)
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        // A blocking client: Drop cannot await. A Redis that is down has nothing to clear.
        if let Err(error) = self.clear() {
            eprintln!("warning: failed to clear Redis keys under {}: {error:#}", self.prefix);
        }
    }
}

fn connect() -> anyhow::Result<redis::Connection> {
    let client = redis::Client::open(SHARED_REDIS)?;
    Ok(client.get_connection_with_timeout(Duration::from_secs(2))?)
}

/// Calls `visit` with each batch of keys matching `prefix*` (SCAN, so Redis is never blocked).
fn for_each_batch(
    connection: &mut redis::Connection,
    prefix: &str,
    mut visit: impl FnMut(&[String]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(BATCH)
            .query(connection)?;
        visit(&keys)?;
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}
