//! The DCS session of a db node: one lease that binds its member key (and the leader key while it leads), renewed
//! by its own task every `loop_wait`, independent of slow HA actions (a basebackup or a restart in place must not
//! cost the lease). While this node is the leading primary, every renewal also moves the fence deadline.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::cluster::lease::LeaseClock;
use crate::dcs::client::DcsClient;
use crate::fence;
use crate::retry::{log_transition, FailureLog};

/// Shared state of the session, read by the HA loop.
pub struct Session {
    lease: Mutex<Option<i64>>,
    clock: Mutex<LeaseClock>,
    /// Set by the HA loop while this node is the leading primary: renewals then move the fence deadline.
    fence_armed: AtomicBool,
    fence_file: PathBuf,
    /// Wakes the HA loop when the session is lost or regained.
    changed: tokio::sync::Notify,
    /// Failures to move the fence deadline, logged once per change.
    fence_failures: Mutex<FailureLog>,
}

impl Session {
    /// A session with no lease yet.
    pub fn new(ttl: Duration, fence_file: PathBuf) -> Arc<Session> {
        Arc::new(Session {
            lease: Mutex::new(None),
            clock: Mutex::new(LeaseClock::new(ttl)),
            fence_armed: AtomicBool::new(false),
            fence_file,
            changed: tokio::sync::Notify::new(),
            fence_failures: Mutex::default(),
        })
    }

    /// The current lease id, if the session is established.
    pub fn lease(&self) -> Option<i64> {
        self.lease.lock().map(|l| *l).unwrap_or(None)
    }

    /// True while the lease is safely ours by our own clock.
    pub fn valid(&self, now: Instant) -> bool {
        self.clock.lock().map(|c| c.valid(now)).unwrap_or(false)
    }

    /// When this node must have stepped down if no renewal succeeds.
    pub fn step_down_at(&self) -> Option<Instant> {
        self.clock.lock().ok().and_then(|c| c.step_down_at())
    }

    /// Completes once the lease is no longer valid by our clock (at once when there is none); renewals meanwhile
    /// push it later.
    pub async fn lapsed(&self) {
        loop {
            let now = Instant::now();
            match self.step_down_at() {
                Some(at) if at > now => tokio::time::sleep_until(at.into()).await,
                _ => return,
            }
        }
    }

    /// When the fencer kills PostgreSQL if no renewal succeeds.
    pub fn fence_at(&self) -> Option<Instant> {
        self.clock.lock().ok().and_then(|c| c.fence_at())
    }

    /// Starts guarding PostgreSQL with the fence (the caller made sure the fencer process runs).
    pub fn arm_fence(&self) -> Result<(), fence::FenceError> {
        self.fence_armed.store(true, Ordering::SeqCst);
        self.write_fence()
    }

    /// Stops guarding (after a demotion or a clean stop).
    pub fn disarm_fence(&self) -> Result<(), fence::FenceError> {
        self.fence_armed.store(false, Ordering::SeqCst);
        fence::disarm(&self.fence_file)
    }

    /// Whether the fence is armed.
    pub fn fence_armed(&self) -> bool {
        self.fence_armed.load(Ordering::SeqCst)
    }

    /// Moves the fence deadline after a renewal; a failure leaves the old deadline in place (the fencer then stops
    /// PostgreSQL at it) and is logged once per change.
    fn move_fence(&self) {
        let result = self.write_fence();
        if let Ok(mut log) = self.fence_failures.lock() {
            let now = match &result {
                Ok(()) => log.succeeded(),
                Err(e) => log.failed("fence", &e.to_string()),
            };
            log_transition("moving the fence deadline", now);
        }
    }

    fn write_fence(&self) -> Result<(), fence::FenceError> {
        let (drain_at, fence_at) = self
            .clock
            .lock()
            .ok()
            .map(|c| (c.step_down_at(), c.fence_at()))
            .unwrap_or_default();
        // No valid lease: fence immediately (deadline now) rather than leave PostgreSQL unguarded.
        let now = Instant::now();
        let ns_at = |at: Option<Instant>| {
            fence::monotonic_ns_in(at.map(|a| a.saturating_duration_since(now)).unwrap_or_default())
        };
        // The fencer drains (fast shutdown) when pgha itself would have stepped down, and kills at the fence instant.
        fence::arm_draining(&self.fence_file, ns_at(drain_at), ns_at(fence_at))
    }

    /// Waits until the session changes (lost or regained).
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    /// Revokes the lease (clean shutdown): member and leader keys vanish at once.
    pub async fn revoke(&self, dcs: &DcsClient) {
        let lease = self.lease.lock().ok().and_then(|mut l| l.take());
        if let Some(id) = lease {
            if let Err(e) = dcs.lease_revoke(id).await {
                tracing::warn!("revoking the session lease failed (it will expire): {e}");
            }
        }
        if let Ok(mut c) = self.clock.lock() {
            c.reset();
        }
    }

    /// The TTL of the current lease as granted by the DCS.
    pub fn granted_ttl(&self) -> Option<Duration> {
        self.lease()?;
        self.clock.lock().ok().map(|c| c.ttl())
    }

    /// Switches to a new lease (granted with `ttl` by a request sent at `sent_at`) that the caller already bound our
    /// keys to; the old lease is the caller's to revoke. The clock restarts from the grant: an earlier keepalive of
    /// the old lease says nothing about the new one.
    pub fn adopt(&self, lease: i64, ttl: Duration, sent_at: Instant) {
        if let Ok(mut c) = self.clock.lock() {
            c.set_ttl(ttl);
            c.reset();
            c.renewed(sent_at);
        }
        self.set_lease(Some(lease));
        if self.fence_armed() {
            self.move_fence();
        }
    }

    fn set_lease(&self, lease: Option<i64>) {
        if let Ok(mut l) = self.lease.lock() {
            if *l != lease {
                *l = lease;
                self.changed.notify_one();
            }
        }
    }

    /// One renewal (grant when there is no lease); returns whether the lease is held afterwards.
    pub async fn renew(&self, dcs: &DcsClient, ttl: Duration) -> bool {
        let sent_at = Instant::now();
        // Never wait longer than the lease can last: a late success is useless and a failure must surface.
        let budget = (ttl / 2).max(Duration::from_millis(100));
        // The TTL the DCS reports for the lease is what the clock must count with: a lease granted before a
        // dynamic-config change keeps its original TTL until the session is renewed with a new grant.
        let result = match self.lease() {
            None => tokio::time::timeout(budget, dcs.lease_grant(ttl))
                .await
                .map(|r| r.map(Some)),
            // Directly on a quorum of voters first: a Raft election does not cost the primary its lease.
            Some(id) => tokio::time::timeout(budget, dcs.lease_renew(id, ttl / 4))
                .await
                .map(|r| r.map(|granted| granted.map(|t| (id, t)))),
        };
        match result {
            // A keepalive of a lease replaced meanwhile (see `adopt`) says nothing about the current one.
            Ok(Ok(Some((id, _)))) if self.lease().is_some_and(|current| current != id) => true,
            Ok(Ok(Some((id, granted)))) => {
                if let Ok(mut c) = self.clock.lock() {
                    c.set_ttl(granted);
                    c.renewed(sent_at);
                }
                self.set_lease(Some(id));
                if self.fence_armed() {
                    self.move_fence();
                }
                true
            }
            Ok(Ok(None)) => {
                tracing::warn!("the DCS session lease is gone (expired): starting a new session");
                if let Ok(mut c) = self.clock.lock() {
                    c.reset();
                }
                self.set_lease(None);
                false
            }
            Ok(Err(e)) => {
                tracing::debug!("lease renewal failed: {e}");
                false
            }
            Err(_) => {
                tracing::debug!("lease renewal timed out");
                false
            }
        }
    }
}

/// Renews the session every `loop_wait` until cancelled.
pub async fn keep(
    session: Arc<Session>,
    dcs: Arc<DcsClient>,
    timing: tokio::sync::watch::Receiver<crate::cluster::timing::Timing>,
    token: CancellationToken,
) {
    loop {
        let timing = *timing.borrow();
        session.renew(&dcs, timing.ttl).await;
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(timing.loop_wait) => {}
        }
    }
}
