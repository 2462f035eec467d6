//! Installs into many workspaces (issue 15): where each workspace's (or Grid org's) bot token
//! is kept once Slack's OAuth flow handed it over.
//!
//! - [`seal`]: tokens are sealed with AES-256-GCM under `THREADQL_ENCRYPTION_KEY` before they
//!   are stored, bound to their installation's identity, with a key id so the key can rotate;
//! - [`store`]: the installations in Postgres (saved, found for an event's team or org,
//!   deactivated, revoked, uninstalled, re-sealed after a key rotation), the single-use `state`s
//!   of installs in progress, and the lock that keeps replicas from refreshing a token twice.
//!
//! With `SLACK_BOT_TOKEN` set instead, none of this is used: one workspace, one token.
pub mod oauth;
pub mod seal;
pub mod store;

pub use seal::{
    InstallationIdentity, SealError, Sealed, SealingKeys, THREADQL_ENCRYPTION_KEY, THREADQL_ENCRYPTION_KEY_PREVIOUS,
};
pub use store::{Installation, InstallationListing, InstallationStore, StateError};
