//! A `redis-server` of a test's own, to stop, pause and restart under a server that uses it.
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::eventually::eventually;
use crate::process::free_port;

/// A `redis-server` child process on its own port, without persistence, killed when dropped.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free port.
    pub async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    /// Starts one on `port` and waits (bounded) until it answers.
    pub async fn start_on(port: u16) -> Self {
        let mut redis = Self { port, child: None };
        redis.restart().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it again on the same port (empty: it keeps nothing) and waits until it answers.
    pub async fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed");
        self.child = Some(child);
        let port = self.port;
        eventually(
            &format!("redis-server on port {port} answers"),
            Duration::from_secs(10),
            || async { self.keys("*").await.is_some() },
        )
        .await;
    }

    /// Keys matching `pattern`, or `None` when it does not answer within a second.
    pub async fn keys(&self, pattern: &str) -> Option<Vec<String>> {
        let client = redis::Client::open(self.url()).ok()?;
        let mut connection = tokio::time::timeout(Duration::from_secs(1), client.get_multiplexed_async_connection())
            .await
            .ok()?
            .ok()?;
        tokio::time::timeout(
            Duration::from_secs(1),
            redis::cmd("KEYS").arg(pattern).query_async(&mut connection),
        )
        .await
        .ok()?
        .ok()
    }

    /// SIGSTOP: it keeps its connections but answers nothing, like a Redis stuck on a slow disk.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after [`RedisServer::pause`].
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        let child = self.child.as_ref().expect("redis-server is running");
        let pid = libc::pid_t::try_from(child.id()).expect("a pid fits in pid_t");
        // SAFETY: kill takes plain integers and touches no memory of ours; the pid is our child's,
        // which cannot be reused before we wait for it.
        let sent = unsafe { libc::kill(pid, signal) };
        assert_eq!(sent, 0, "kill({signal}): {}", std::io::Error::last_os_error());
    }

    /// SIGKILL, as a crash would; [`RedisServer::restart`] brings it back.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
