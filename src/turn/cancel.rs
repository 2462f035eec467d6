//! Stopping a turn's query: by the user's `cancel`, or by a newer message.
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

/// Why a running query was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// The user said `cancel`.
    ByUser,
    /// A newer question or refinement arrived while it ran.
    Superseded,
}

/// Stops a turn's query in the warehouse and remembers why.
#[derive(Debug, Clone, Default)]
pub struct CancelSignal {
    token: CancellationToken,
    reason: Arc<std::sync::OnceLock<CancelReason>>,
}

impl CancelSignal {
    pub fn cancel(&self, reason: CancelReason) {
        // The first reason wins: a supersede after a cancel is still a cancel.
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    pub fn reason(&self) -> Option<CancelReason> {
        self.reason.get().copied()
    }

    /// What the warehouse watches while the query runs.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reason_wins_and_the_token_fires() {
        let signal = CancelSignal::default();
        assert_eq!(signal.reason(), None);
        signal.cancel(CancelReason::ByUser);
        signal.cancel(CancelReason::Superseded);
        assert_eq!(signal.reason(), Some(CancelReason::ByUser));
        assert!(signal.token().is_cancelled());
    }
}
