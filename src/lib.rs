//! threadql: ask data questions in Slack threads and refine them back and forth.
//!
//! Modules mirror the runtime picture in the README: Slack ingress and Web API client at the edge,
//! one actor per thread, a pure domain, interpreters, the SQL guard, warehouses,
//! the state store and renderers.
pub mod access;
pub mod activity;
pub mod actors;
pub mod audit_command;
pub mod check;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod domain;
pub mod healthcheck;
pub mod http;
pub mod installations_command;
pub mod interpret;
pub mod limits;
pub mod metrics;
pub mod model_check;
pub mod model_command;
pub mod outbound;
pub mod render;
pub mod roles_command;
pub mod schedules;
pub mod schedules_command;
pub mod slack;
pub mod sql;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod turn;
pub mod warehouse;
