//! Follows the cluster for the edge: one linearizable read of every key, then a prefix watch whose events keep that
//! copy current (re-read on `Compacted` or a broken watch), never polling the view.
//!
//! Freshness: a watch fed by a member that is cut off from the Raft leader keeps sending progress messages, so
//! progress alone proves nothing. Every ttl/4 the follower makes a linearizable read of one key, which returns the
//! cluster revision R at the time it was SENT (`s`); once the watch has delivered everything up to R (events or a
//! progress message), the view is known to be current as of `s`. If the watch does not reach R within ttl/2, it
//! is re-established (the client has meanwhile moved to a member that answers linearizable reads).
//!
//! Failures are paced (`pacing.rs`: the cluster's loop_wait doubling up to its TTL) and logged once per change.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::pacing::{self, Resume};
use crate::cluster::keys::Keys;
use crate::cluster::model::{ClusterView, DynamicConfig};
use crate::cluster::store::Store;
use crate::dcs::client::{ClientError, DcsClient, WatchMessage};
use crate::dcs::types::{EventKind, KeyValue};
use crate::retry::{log_transition, Backoff, FailureLog};

/// The shortest time a confirmed view keeps routing ([`Followed::fresh_for`]).
pub const MIN_FRESH: Duration = Duration::from_secs(2);

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

    /// How long a confirmed view routes: the leader TTL, but never less than [`MIN_FRESH`]. Routing on an older
    /// view is safe (a primary that lost its lease is fenced, so a stale route reaches a read-only server at worst),
    /// so the bound is about availability, and it must outlast a Raft election (~0.8 s, when no read can confirm the
    /// view) plus a confirmation period, or a DCS leader's crash would drop every edge's primary route.
    pub fn fresh_for(&self) -> Duration {
        self.ttl().max(MIN_FRESH)
    }

    /// True while the view is younger than [`Followed::fresh_for`].
    pub fn fresh(&self, now: Instant) -> bool {
        now < self.confirmed_at + self.fresh_for()
    }
}

type Confirm = Pin<Box<dyn Future<Output = (Instant, Result<i64, ClientError>)> + Send>>;

fn confirm(dcs: Arc<DcsClient>, key: String) -> Confirm {
    Box::pin(async move {
        let sent = Instant::now();
        (sent, dcs.get(key.as_bytes(), false).await.map(|(_, revision)| revision))
    })
}

/// What the follower's failure log calls itself.
const WHAT: &str = "DCS follow";

/// Why a watch session ended.
enum SessionEnd {
    Cancelled,
    /// Compacted, lagging behind the cluster, or the watch gone: re-read the cluster.
    Reread,
}

/// Sleeps `d`; false when `token` was cancelled first.
async fn pause(token: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = token.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// Follows the cluster until `token` is cancelled, publishing every new view or confirmation on `out`.
///
/// Failures (the read, the freshness reads, a watch that lags) are paced by the cluster's `loop_wait` doubling up
/// to its TTL, and logged once when they start or change and once when the view is confirmed current again.
pub async fn run(dcs: Arc<DcsClient>, keys: Keys, out: watch::Sender<Option<Followed>>, token: CancellationToken) {
    let root = keys.root().as_bytes().to_vec();
    let mut health = Health {
        pace: pacing::backoff(&DynamicConfig::default()),
        log: FailureLog::default(),
    };
    loop {
        let sent = Instant::now();
        let read = tokio::select! {
            _ = token.cancelled() => return,
            r = dcs.get(&root, true) => r,
        };
        let (kvs, revision) = match read {
            Ok(r) => r,
            Err(e) => {
                health.failed("read", &format!("cannot read the cluster (retrying): {e}"));
                if !pause(&token, health.pace.delay()).await {
                    return;
                }
                continue;
            }
        };
        let copy: BTreeMap<Vec<u8>, KeyValue> = kvs.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
        let store = Store { dcs: &dcs, keys: &keys };
        let view = store.parse(copy.values().cloned().collect(), revision);
        pacing::retune(&mut health.pace, &view.config);
        let mut state = Following {
            store,
            copy,
            view,
            delivered: revision,
            confirmed_at: sent,
            confirmed_in_session: false,
        };
        state.publish(&out);
        if let SessionEnd::Cancelled = state.session(&dcs, &keys, &root, &out, &token, &mut health).await {
            return;
        }
        if pacing::resume_after_session(state.confirmed_in_session) == Resume::AfterDelay
            && !pause(&token, health.pace.delay()).await
        {
            return;
        }
    }
}

/// The follower's failure state: pacing and what was last logged.
struct Health {
    pace: Backoff,
    log: FailureLog,
}

impl Health {
    fn failed(&mut self, kind: &str, message: &str) {
        self.pace.failed();
        log_transition(WHAT, self.log.failed(kind, message));
    }

    /// The view was just proven current.
    fn confirmed(&mut self) {
        self.pace.succeeded();
        log_transition(WHAT, self.log.succeeded());
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
    /// A freshness read was matched by the watch during this session.
    confirmed_in_session: bool,
}

impl Following<'_> {
    /// Applies the watch from the read's revision on, proving the view current every ttl/4, until the watch ends
    /// or lags behind the cluster. Events are applied and published at once.
    async fn session(
        &mut self,
        dcs: &Arc<DcsClient>,
        keys: &Keys,
        root: &[u8],
        out: &watch::Sender<Option<Followed>>,
        token: &CancellationToken,
        health: &mut Health,
    ) -> SessionEnd {
        let (mut events, mut progress) = dcs.watch_with_progress(root, true, self.delivered + 1);
        let mut pending: VecDeque<(Instant, i64)> = VecDeque::new();
        let mut confirming: Option<Confirm> = None;
        let mut next_confirm = Instant::now();
        loop {
            let ttl = Duration::from_millis(self.view.config.ttl_ms.max(100));
            tokio::select! {
                _ = token.cancelled() => return SessionEnd::Cancelled,
                msg = events.recv() => match msg {
                    Some(WatchMessage::Events(batch)) => {
                        self.apply(batch);
                        pacing::retune(&mut health.pace, &self.view.config);
                    }
                    Some(WatchMessage::Compacted { revision }) => {
                        tracing::info!(event = "edge_watch_compacted", revision, "watch compacted: re-reading the cluster");
                        return SessionEnd::Reread;
                    }
                    None => {
                        health.failed("watch ended", "the watch ended: re-reading the cluster");
                        return SessionEnd::Reread;
                    }
                },
                Ok(()) = progress.changed() => {
                    let r = *progress.borrow_and_update();
                    self.delivered = self.delivered.max(r);
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
                        Err(e) => {
                            health.failed("freshness read", &format!("cannot confirm the view is current: {e}"));
                            // Every ttl/4 from the last start normally; after a failure (which may have been
                            // at once) no sooner than the backoff.
                            next_confirm = next_confirm.max(Instant::now() + health.pace.delay());
                        }
                    }
                }
            }
            while let Some(&(sent, r)) = pending.front() {
                if self.delivered < r {
                    break;
                }
                self.confirmed_at = self.confirmed_at.max(sent);
                self.confirmed_in_session = true;
                health.confirmed();
                pending.pop_front();
            }
            if pending.front().is_some_and(|(sent, _)| sent.elapsed() > ttl / 2) {
                health.failed(
                    "watch lags",
                    "the watch lags the cluster's linearizable revision: re-reading the cluster",
                );
                return SessionEnd::Reread;
            }
            self.publish(out);
        }
    }

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
