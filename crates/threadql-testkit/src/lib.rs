//! What threadql's integration tests and its benchmark share, so there is one copy of each:
//!
//! - [`TestDatabase`]: a Postgres database of its own per test (or benchmark run), dropped
//!   (`WITH (FORCE)`) when the guard goes, also when the test fails; [`TestMySqlDatabase`]
//!   likewise on the local MariaDB;
//! - [`RedisPrefix`]: a key prefix of its own on the shared Redis, its keys deleted likewise;
//!   [`RedisServer`]: a `redis-server` of its own, to kill, pause and restart;
//! - [`config_with`]: the server's configuration for a test, from the defaults plus overrides;
//! - [`FakeSlack`]: the Slack Web API stand-in (wiremock) that records what the server posts,
//!   and Slack's payload samples turned into signed events ([`app_mention`], [`thread_reply`]…);
//! - [`spawn_app`] / [`TestApp`]: the real server in process, with [`TestApp::wait_until_idle`],
//!   the step function that resolves once every turn is over and every reply reached Slack;
//! - [`ServerProcess`]: `threadql serve` as a child process (SIGKILL, SIGTERM);
//! - [`eventually`]: a bounded wait on a condition that has no step function.
//!
//! Everything it reads (Slack's samples) is inside the repository; what it writes (the demo data
//! set, server logs) goes to [`scratch_dir`].

// Test support: a setup step that fails should fail the test loudly, so helpers unwrap. Entry
// points the benchmark calls for its environment (Postgres, Redis) also have `try_` forms.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod app;
mod config;
mod eventually;
mod mysql;
mod postgres;
mod process;
mod redis_prefix;
mod redis_server;
mod slack;

pub use app::{spawn_app, spawn_app_with, start_server, start_server_with, Replica, TestApp};
pub use config::{
    config_with, demo_warehouse_path, scratch_dir, try_config_with, BOT_TOKEN, BOT_USER, SIGNING_SECRET, TEAM,
};
pub use eventually::{eventually, eventually_every};
pub use mysql::{TestMySqlDatabase, MARIADB_SERVER};
pub use postgres::{TestDatabase, POSTGRES_SERVER};
pub use process::{free_port, ServerProcess};
pub use redis_prefix::{RedisPrefix, SHARED_REDIS};
pub use redis_server::RedisServer;
pub use slack::{
    api_success, app_mention, as_form, button_click, button_value, direct_channel, fixture, fixtures, is_progress,
    new_channel, new_ts, post_signed_to, post_text, read_fixture, thread_reply, FakeSlack,
};
