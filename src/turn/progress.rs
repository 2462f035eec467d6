//! The "working on it" message a slow turn shows, later replaced by its answer.
use std::sync::Arc;

use super::services::ThreadServices;
use crate::domain::ThreadKey;

/// A progress message shown when a turn takes longer than `progress_after`.
pub(super) struct Progress {
    state: Arc<tokio::sync::Mutex<ProgressState>>,
    timer: tokio::task::JoinHandle<()>,
}

enum ProgressState {
    Waiting,
    Shown(String),
    Finished,
}

impl Progress {
    pub(super) fn start(services: &Arc<ThreadServices>, key: &ThreadKey) -> Self {
        let state = Arc::new(tokio::sync::Mutex::new(ProgressState::Waiting));
        let (shared, services, key) = (state.clone(), services.clone(), key.clone());
        let timer = tokio::spawn(async move {
            tokio::time::sleep(services.limits.progress_after).await;
            // Holding the lock while posting: `finish` waits for the post, so the answer
            // can replace it.
            let mut state = shared.lock().await;
            if matches!(*state, ProgressState::Waiting) {
                *state = match services
                    .replier
                    .progress(&key, "Working on it… this query is taking a while.")
                    .await
                {
                    Ok(Some(handle)) => ProgressState::Shown(handle),
                    Ok(None) => ProgressState::Finished,
                    Err(error) => {
                        tracing::warn!(thread = %key, ?error, "Failed to post a progress message");
                        ProgressState::Finished
                    }
                };
            }
        });
        Self { state, timer }
    }

    /// Stops the timer; returns the progress message to replace, if one was shown.
    pub(super) async fn finish(self) -> Option<String> {
        let mut state = self.state.lock().await;
        self.timer.abort();
        match std::mem::replace(&mut *state, ProgressState::Finished) {
            ProgressState::Shown(handle) => Some(handle),
            _ => None,
        }
    }
}
