//! Stopping: the signals that ask for it, and waiting for every task once they have been told.

use std::time::Duration;

use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// How long the tasks get to finish (archive uploads, the Redis mirror's last events, open
/// HTTP responses) before the process exits anyway.
pub const SHUTDOWN_LIMIT: Duration = Duration::from_secs(20);

/// Ctrl-C or SIGTERM.
pub async fn signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Waits for every task on `tasks` (which have been told to stop) to end, for at most
/// [`SHUTDOWN_LIMIT`].
pub async fn drain(tasks: &TaskTracker) {
    tasks.close();
    if tokio::time::timeout(SHUTDOWN_LIMIT, tasks.wait())
        .await
        .is_err()
    {
        warn!(
            left = tasks.len(),
            limit_secs = SHUTDOWN_LIMIT.as_secs(),
            "tasks still running after the shutdown limit; exiting anyway"
        );
        return;
    }
    info!("stopped");
}
