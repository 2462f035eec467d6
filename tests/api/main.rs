#![allow(clippy::unwrap_used, clippy::expect_used)]
//! End-to-end tests: the real server on a free port, a real Postgres state store, the demo
//! warehouse, and a local fake Slack Web API reached through SLACK_API_URL (helpers: the
//! `threadql-testkit` crate, shared with the benchmark).
mod conversation;
// The fake OpenAI server of tests/llm_interpreter.rs, for the LLM's spans in traces.rs.
#[allow(dead_code)]
#[path = "../fake_openai/mod.rs"]
mod fake_openai;
mod governance;
mod installs;
mod monitoring;
mod replicas;
mod resilience;
mod schedules;
mod shutdown;
mod slack_features;
mod slack_ingress;
mod socket_mode;
mod threads;
mod traces;
