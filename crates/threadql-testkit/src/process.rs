//! `threadql serve` as a child process, as a user runs it.
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::config::{demo_warehouse_path, scratch_dir, BOT_TOKEN, SIGNING_SECRET};
use crate::slack::post_signed_to;

/// How long the binary may take to answer `/healthz` after it starts.
const START_PATIENCE: Duration = Duration::from_secs(60);

/// `threadql serve` as a child process, killed with SIGKILL when dropped.
pub struct ServerProcess {
    child: Child,
    address: String,
    log: PathBuf,
    client: reqwest::Client,
}

impl ServerProcess {
    /// Starts `binary` (the calling test's `env!("CARGO_BIN_EXE_threadql")`) with a clean
    /// environment: the test configuration over `slack_api_url` and `database_url`, plus `env`.
    /// Waits (bounded) until `/healthz` answers.
    pub async fn start(binary: &str, slack_api_url: &str, database_url: &str, env: &[(&str, String)]) -> Self {
        let listen = format!("127.0.0.1:{}", free_port());
        let dir = scratch_dir();
        let log = dir.join(format!("threadql-serve-{}.log", uuid::Uuid::new_v4().simple()));
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(binary)
            .arg("serve")
            // Nothing from the developer's environment (REDIS_URL, OPENAI_API_KEY); and a
            // working directory with no .env or threadql.toml in it.
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("THREADQL_LISTEN", &listen)
            .env("SLACK_SIGNING_SECRET", SIGNING_SECRET)
            .env("SLACK_BOT_TOKEN", BOT_TOKEN)
            .env("SLACK_API_URL", slack_api_url)
            .env("DATABASE_URL", database_url)
            .env("THREADQL_DEMO_WAREHOUSE", demo_warehouse_path())
            .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("the threadql binary starts");
        let mut server = Self {
            child,
            address: format!("http://{listen}"),
            log,
            client: reqwest::Client::new(),
        };
        server.wait_until_healthy().await;
        server
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    async fn wait_until_healthy(&mut self) {
        let deadline = Instant::now() + START_PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("threadql serve exited with {status}:\n{}", self.log_tail());
            }
            let healthy = self
                .client
                .get(format!("{}/healthz", self.address))
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if healthy {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "threadql serve never became healthy:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last few KB the server logged.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        text.get(start..).unwrap_or_default().to_string()
    }

    /// POSTs an event signed as Slack signs it.
    pub async fn post_event(&self, envelope: &Value) -> reqwest::Response {
        let body = serde_json::to_vec(envelope).unwrap();
        post_signed_to(
            &self.client,
            &self.address,
            "/slack/events",
            "application/json",
            body,
            &[],
        )
        .await
    }

    /// SIGKILL: no graceful shutdown, no flush.
    pub fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM, as a deploy or `docker stop` does.
    pub fn terminate(&self) {
        self.signal(libc::SIGTERM, "SIGTERM");
    }

    /// SIGSTOP: the process stops where it is (a long GC pause, a frozen VM) until [`Self::resume`].
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP, "SIGSTOP");
    }

    /// SIGCONT after [`Self::pause`].
    pub fn resume(&self) {
        self.signal(libc::SIGCONT, "SIGCONT");
    }

    fn signal(&self, signal: libc::c_int, name: &str) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid fits in pid_t");
        // SAFETY: kill takes plain integers and touches no memory of ours; the pid is our child's,
        // which cannot be reused before we wait for it.
        let sent = unsafe { libc::kill(pid, signal) };
        assert_eq!(sent, 0, "kill({name}): {}", std::io::Error::last_os_error());
    }

    /// The exit status once the process has exited, or `None` if it is still running after
    /// `within` (polled: a child's exit has no async notification here).
    pub async fn wait_for_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            // The test failed: its server's log is worth reading.
            eprintln!("threadql serve logged to {}", self.log.display());
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
