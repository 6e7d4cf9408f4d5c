//! Republishes the member key while a replica creation runs (the loop is busy in it), so `ctl list` shows its
//! progress: method, bytes so far, seconds.

use std::future::Future;
use std::time::{Duration, Instant};

use super::runner::DbNode;
use crate::cluster::model::ClusterView;

/// At most one member key write per this while a copy progresses (every sample would be a DCS write per second).
const PUBLISH_EVERY: Duration = Duration::from_secs(5);

impl DbNode {
    /// Runs `work` (a replica creation) while publishing the progress samples it makes, at most every
    /// [`PUBLISH_EVERY`]; returns its result.
    pub(super) async fn publishing_clone_progress<T>(&self, view: &ClusterView, work: impl Future<Output = T>) -> T {
        let mut samples = self.pg.watch_clone_progress();
        let mut last: Option<Instant> = None;
        let mut work = std::pin::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return out,
                changed = samples.changed() => {
                    if changed.is_err() {
                        return work.await; // no sender: nothing more to publish
                    }
                    if last.is_none_or(|t| t.elapsed() >= PUBLISH_EVERY) {
                        last = Some(Instant::now());
                        self.publish(view).await;
                    }
                }
            }
        }
    }
}
