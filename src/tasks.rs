//! The daemon's long-lived tasks (the RPC server, the heartbeat, the periodic
//! work, the engine's event watcher and what it starts, image downloads): all
//! spawned on one tracker and told to stop by one token, so that stopping the
//! daemon waits for every one of them, within `graceful_shutdown_timeout`.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

/// The tracker and the stop token; cheap to clone.
#[derive(Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Tasks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Run `f` on the tracker.
    pub fn spawn<F>(&self, f: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(f);
    }

    /// Run `f` on the tracker; its result through the handle.
    pub fn spawn_with_result<F, T>(&self, f: F) -> tokio::task::JoinHandle<T>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.tracker.spawn(f)
    }

    /// Resolves once the daemon is stopping.
    pub async fn stopping(&self) {
        self.stop.cancelled().await
    }

    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Tell every task to stop.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Stop, then wait until every task has ended, at most `timeout`; false
    /// (logged, with how many were still running) when some had not.
    pub async fn shut_down(&self, timeout: Duration) -> bool {
        self.stop();
        self.tracker.close();
        if tokio::time::timeout(timeout, self.tracker.wait())
            .await
            .is_ok()
        {
            return true;
        }
        warn!(
            running = self.tracker.len(),
            ?timeout,
            "tasks still running after graceful_shutdown_timeout"
        );
        false
    }

    /// Sleep for `d`, or less if the daemon stops meanwhile; false when stopping.
    pub async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = self.stop.cancelled() => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn shut_down_waits_for_every_task() {
        let t = Tasks::new();
        let done = Arc::new(AtomicBool::new(false));
        let (t2, d2) = (t.clone(), done.clone());
        t.spawn(async move {
            t2.stopping().await;
            // cleanup after the stop signal still finishes before shut_down returns
            tokio::time::sleep(Duration::from_millis(50)).await;
            d2.store(true, Ordering::SeqCst);
        });
        assert!(t.shut_down(Duration::from_secs(5)).await);
        assert!(done.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn shut_down_gives_up_after_the_timeout() {
        let t = Tasks::new();
        t.spawn(std::future::pending());
        assert!(!t.shut_down(Duration::from_millis(50)).await);
        let t = Tasks::new();
        let t2 = t.clone();
        t.spawn(async move {
            assert!(!t2.sleep(Duration::from_secs(3600)).await);
        });
        assert!(t.shut_down(Duration::from_secs(5)).await);
    }
}
