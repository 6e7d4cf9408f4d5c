//! The VIP keeper on its own thread and runtime at a low real-time priority: its renewals must not queue behind the
//! proxy's work or a CPU-saturated host (corosync runs its heartbeat the same way).

use std::future::Future;

use tokio::task::JoinHandle;

/// Runs the future `make` returns on a new thread named `name` with a current-thread runtime (so its DCS channels,
/// netlink socket and timers live there too); the handle ends when the future does.
pub fn spawn<F, Fut>(name: &str, make: F) -> std::io::Result<JoinHandle<()>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new().name(name.to_string()).spawn(move || {
        if let Err(e) = crate::fence::realtime_priority(crate::fence::KEEPER_PRIORITY) {
            tracing::warn!(
                event = "vip_priority",
                "VIP keeper: no real-time priority ({e}): on a saturated CPU its renewals may come late and move the \
                 VIP; raise edge.vip.ttl_ms or grant CAP_SYS_NICE"
            );
        }
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(
                    event = "vip_keeper_stopped",
                    "VIP keeper: cannot start its runtime: {e}"
                );
                return;
            }
        };
        runtime.block_on(make());
        let _ = done_tx.send(());
    })?;
    Ok(tokio::spawn(async move {
        let _ = done_rx.await;
    }))
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_handle_ends_with_the_future_on_its_own_thread() {
        let main = std::thread::current().id();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let handle = super::spawn("pgha-test", move || async move {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            let _ = tx.send(std::thread::current().name().map(str::to_string));
        })
        .expect("thread");
        handle.await.expect("join");
        assert_eq!(rx.await.expect("ran").as_deref(), Some("pgha-test"));
        assert_eq!(std::thread::current().id(), main);
    }
}
