//! Follows the cluster for the edge: one linearizable read of every key, then a prefix watch whose events keep that
//! copy current (re-read on `Compacted` or a broken watch), never polling the view.
//!
//! Freshness: a watch fed by a member that is cut off from the Raft leader keeps sending progress messages, so
//! progress alone proves nothing. Every ttl/4 the follower makes a linearizable read of one key, which returns the
//! cluster revision R at the time it was SENT (`s`); once the watch has delivered everything up to R (events or a
//! progress message), the view is known to be current as of `s`. If the watch does not reach R within ttl/2, it
//! is re-established (the client has meanwhile moved to a member that answers linearizable reads).

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::dcs::client::{ClientError, DcsClient, WatchMessage};
use crate::dcs::types::{EventKind, KeyValue};
use crate::ha::keys::Keys;
use crate::ha::model::ClusterView;
use crate::ha::store::Store;

/// The cluster as the edge last knew it.
#[derive(Clone, Debug)]
pub struct Followed {
    pub view: Arc<ClusterView>,
    /// The view reflected the whole cluster at least as of this instant (send time of a linearizable read).
    pub confirmed_at: Instant,
}

impl Followed {
    /// The leader TTL of the dynamic configuration.
    pub fn ttl(&self) -> Duration {
        Duration::from_millis(self.view.config.ttl_ms.max(1))
    }

    /// True while the view is younger than the leader TTL.
    pub fn fresh(&self, now: Instant) -> bool {
        now < self.confirmed_at + self.ttl()
    }
}

type Confirm = Pin<Box<dyn Future<Output = (Instant, Result<i64, ClientError>)> + Send>>;

fn confirm(dcs: Arc<DcsClient>, key: String) -> Confirm {
    Box::pin(async move {
        let sent = Instant::now();
        (sent, dcs.get(key.as_bytes(), false).await.map(|(_, revision)| revision))
    })
}

/// Follows the cluster until `token` is cancelled, publishing every new view or confirmation on `out`.
pub async fn run(dcs: Arc<DcsClient>, keys: Keys, out: watch::Sender<Option<Followed>>, token: CancellationToken) {
    let root = keys.root().as_bytes().to_vec();
    let mut last_error = String::new();
    loop {
        let sent = Instant::now();
        let read = tokio::select! {
            _ = token.cancelled() => return,
            r = dcs.get(&root, true) => r,
        };
        let (kvs, revision) = match read {
            Ok(r) => r,
            Err(e) => {
                if e.to_string() != last_error {
                    tracing::warn!("cannot read the cluster from the DCS (retrying): {e}");
                    last_error = e.to_string();
                }
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
                }
            }
        };
        if !last_error.is_empty() {
            tracing::info!("reading the cluster from the DCS again");
            last_error.clear();
        }
        let copy: BTreeMap<Vec<u8>, KeyValue> = kvs.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
        let store = Store { dcs: &dcs, keys: &keys };
        let view = store.parse(copy.values().cloned().collect(), revision);
        let mut state = Following {
            store,
            copy,
            view,
            delivered: revision,
            confirmed_at: sent,
        };
        state.publish(&out);
        let (mut events, mut progress) = dcs.watch_with_progress(&root, true, revision + 1);
        let mut pending: VecDeque<(Instant, i64)> = VecDeque::new();
        let mut confirming: Option<Confirm> = None;
        let mut next_confirm = Instant::now();
        loop {
            let ttl = Duration::from_millis(state.view.config.ttl_ms.max(100));
            tokio::select! {
                _ = token.cancelled() => return,
                msg = events.recv() => match msg {
                    Some(WatchMessage::Events(batch)) => state.apply(batch),
                    Some(WatchMessage::Compacted { revision }) => {
                        tracing::info!(revision, "watch compacted: re-reading the cluster");
                        break;
                    }
                    None => break,
                },
                Ok(()) = progress.changed() => {
                    let r = *progress.borrow_and_update();
                    state.delivered = state.delivered.max(r);
                }
                _ = tokio::time::sleep_until(next_confirm.into()), if confirming.is_none() => {
                    confirming = Some(confirm(dcs.clone(), keys.leader()));
                    next_confirm = Instant::now() + ttl / 4;
                }
                (sent, result) = async {
                    match confirming.as_mut() {
                        Some(f) => f.await,
                        None => std::future::pending().await,
                    }
                } => {
                    confirming = None;
                    match result {
                        Ok(r) => pending.push_back((sent, r)),
                        Err(e) => tracing::debug!("freshness read failed: {e}"),
                    }
                }
            }
            while let Some(&(sent, r)) = pending.front() {
                if state.delivered < r {
                    break;
                }
                state.confirmed_at = state.confirmed_at.max(sent);
                pending.pop_front();
            }
            if pending.front().is_some_and(|(sent, _)| sent.elapsed() > ttl / 2) {
                tracing::warn!("the watch lags the cluster's linearizable revision: re-reading the cluster");
                break;
            }
            state.publish(&out);
        }
    }
}

/// The local copy of the cluster's keys while one watch runs.
struct Following<'a> {
    store: Store<'a>,
    copy: BTreeMap<Vec<u8>, KeyValue>,
    /// The view of `copy`.
    view: ClusterView,
    /// Every matching event up to this revision has been applied.
    delivered: i64,
    confirmed_at: Instant,
}

impl Following<'_> {
    fn apply(&mut self, batch: Vec<crate::dcs::types::Event>) {
        let mut revision = self.view.revision;
        for event in batch {
            revision = revision.max(event.revision());
            self.delivered = self.delivered.max(event.revision());
            match event.kind {
                EventKind::Put => {
                    self.copy.insert(event.kv.key.clone(), event.kv);
                }
                EventKind::Delete => {
                    self.copy.remove(&event.kv.key);
                }
            }
        }
        self.view = self.store.parse(self.copy.values().cloned().collect(), revision);
    }

    fn publish(&self, out: &watch::Sender<Option<Followed>>) {
        out.send_if_modified(|current| {
            let changed = current
                .as_ref()
                .is_none_or(|c| *c.view != self.view || c.confirmed_at != self.confirmed_at);
            if changed {
                *current = Some(Followed {
                    view: Arc::new(self.view.clone()),
                    confirmed_at: self.confirmed_at,
                });
            }
            changed
        });
    }
}
