//! SIGTERM/SIGINT: what every long-running command (`run`, `demo`) stops on.

use anyhow::Context;

/// Resolves on the first SIGTERM or SIGINT.
pub async fn wait_for_stop_signal() -> anyhow::Result<()> {
    StopSignals::install()?.wait().await;
    Ok(())
}

/// SIGTERM/SIGINT handlers, installed up front so that a signal arriving during start-up is caught, not fatal.
pub struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Installs both handlers.
    pub fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    /// Resolves on the first SIGTERM or SIGINT (also one that arrived since `install`).
    pub async fn wait(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// Runs `work` unless SIGTERM or SIGINT comes first (then None, and `work` is dropped: whatever it started is torn
/// down by its guards). The handlers are installed before `work` starts.
pub async fn unless_stopped<T>(work: impl std::future::Future<Output = T>) -> anyhow::Result<Option<T>> {
    let mut stop = StopSignals::install()?;
    Ok(tokio::select! {
        r = work => Some(r),
        () = stop.wait() => None,
    })
}
