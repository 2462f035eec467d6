//! Something a user said in a thread.
use serde::{Deserialize, Serialize};

use super::ids::{MessageTs, UserId};

/// Something a user said in the thread, remembered as context for refinements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub user: UserId,
    pub text: String,
    pub message_ts: MessageTs,
}
