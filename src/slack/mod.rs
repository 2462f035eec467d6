//! The Slack edge: request verification, event parsing, HTTP routes and the Web API client.
pub mod blocks;
pub mod channel_directory;
pub mod events;
pub mod ingress;
pub mod install;
pub mod replier;
pub mod report_poster;
pub mod routes;
pub mod socket_mode;
pub mod user_groups;
pub mod verify;
pub mod web_api;
pub mod workspaces;
