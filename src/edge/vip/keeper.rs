//! The VIP keeper loop: reads the `vip` key and the edges' status, asks `decide`, and carries the decision out
//! (taking and giving up the VIP is in `holding.rs`).
//!
//! One pass: renew the lease if due, read the view, decide, act, keep the fence running, announce (gratuitous ARP)
//! if due; then wait in one `select!` for shutdown, a DCS change (watch), a health change, or the next deadline
//! (keepalive, step-down, announcement, rank delay, retry, 1 s poll). The fence deadline follows each successful
//! keepalive (`send + ttl - ttl/8`), the holder steps down at `send + ttl - ttl/4`, and the DCS cannot expire the
//! lease before `send + ttl`.
//!
//! Failures are paced and logged once per change (`crate::retry`): a failed read is retried on the next DCS change
//! or health change at once, otherwise no sooner than the poll period doubling up to 4 s; a failed acquisition no
//! sooner than the poll period doubling up to 8 s; keepalives keep their ttl/4 period (the lease depends on them).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::decide::{decide, Candidate, Decision, Holder, Input};
use super::fence::VipFence;
use super::netlink::VipAddress;
use super::{garp, VipError, VipSettings};
use crate::cluster::keys::Keys;
use crate::cluster::lease::LeaseClock;
use crate::dcs::client::{DcsClient, WatchMessage};
use crate::retry::{log_transition, Backoff, FailureLog};

/// Re-read and reconcile at least this often, even without DCS events; also the least pause after a failed read
/// or acquisition.
pub(super) const POLL: Duration = Duration::from_secs(1);
/// Longest pause between reads that keep failing (a DCS or health change still triggers one at once).
const READ_RETRY_CAP: Duration = Duration::from_secs(4);
/// Longest pause between acquisitions that keep failing (e.g. the fence cannot start).
pub(super) const ACQUIRE_RETRY_CAP: Duration = Duration::from_secs(8);
/// A DCS watch that ended is re-created after this pause (doubling up to POLL x 4); the poll covers the gap.
const REWATCH: Duration = Duration::from_millis(250);

/// Runs the keeper until `shutdown`, with this executable as the fencing process (`pgha fence-vip`).
pub async fn run_keeper(
    s: VipSettings,
    edge_name: String,
    dcs: Arc<DcsClient>,
    keys: Keys,
    healthy: watch::Receiver<bool>,
    holder: watch::Sender<Option<String>>,
    shutdown: CancellationToken,
) -> Result<(), VipError> {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("pgha"));
    run_keeper_with(exe, s, edge_name, dcs, keys, healthy, holder, shutdown).await
}

/// [`run_keeper`] with an explicit `pgha` executable for the fencer (tests run the keeper from a test binary).
#[allow(clippy::too_many_arguments)]
pub async fn run_keeper_with(
    exe: PathBuf,
    s: VipSettings,
    edge_name: String,
    dcs: Arc<DcsClient>,
    keys: Keys,
    healthy: watch::Receiver<bool>,
    holder: watch::Sender<Option<String>>,
    shutdown: CancellationToken,
) -> Result<(), VipError> {
    let vip = VipAddress::open(&s.interface, s.address, s.prefix_len).await?;
    let file = super::fence::deadline_file(
        &crate::fence::deadline_dir(&std::env::temp_dir()),
        &edge_name,
        std::process::id(),
    );
    let fence = VipFence::new(file, exe, &s.interface, s.address, s.prefix_len);
    let now = Instant::now();
    let mut k = Keeper {
        clock: LeaseClock::new(s.ttl),
        s,
        me: edge_name,
        dcs,
        keys,
        healthy,
        healthy_closed: false,
        holder_tx: holder,
        vip,
        fence,
        lease: None,
        owning: false,
        next_keepalive: now,
        unhealthy_since: None,
        acquired_at: None,
        bursts: 0,
        holder: None,
        candidates: Vec::new(),
        unreadable: BTreeSet::new(),
        last_holder: None,
        free_since: None,
        settle_until: now + super::decide::RANK_STEP,
        read_pace: Backoff::new(POLL, READ_RETRY_CAP),
        read_after: now,
        acquire_pace: Backoff::new(POLL, ACQUIRE_RETRY_CAP),
        acquire_after: now,
        logs: Logs::default(),
    };
    k.run(shutdown).await;
    Ok(())
}

/// One failure log per kind of effect, so each is reported once when it starts and once when it clears.
#[derive(Default)]
pub(super) struct Logs {
    pub read: FailureLog,
    pub keepalive: FailureLog,
    pub acquire: FailureLog,
    pub fence: FailureLog,
    pub netlink: FailureLog,
    pub garp: FailureLog,
}

pub(super) struct Keeper {
    pub s: VipSettings,
    pub me: String,
    pub dcs: Arc<DcsClient>,
    pub keys: Keys,
    healthy: watch::Receiver<bool>,
    /// The proxy dropped its health sender: it is gone, so we count as unhealthy.
    healthy_closed: bool,
    pub holder_tx: watch::Sender<Option<String>>,
    pub vip: VipAddress,
    pub fence: VipFence,
    /// Our VIP lease while owning.
    pub lease: Option<i64>,
    pub clock: LeaseClock,
    pub owning: bool,
    pub next_keepalive: Instant,
    /// Since when our proxy has been unhealthy (`decide::UNHEALTHY_GRACE`).
    pub unhealthy_since: Option<Instant>,
    pub acquired_at: Option<Instant>,
    /// Gratuitous ARP bursts sent since acquiring.
    pub bursts: u32,
    /// The `vip` key: (holder name, its lease); None = free; not read yet = None with `free_since` None.
    pub holder: Option<(String, i64)>,
    candidates: Vec<Candidate>,
    /// Keys under `edges/` whose value did not parse at the last read (already reported).
    unreadable: BTreeSet<Vec<u8>>,
    pub last_holder: Option<String>,
    pub free_since: Option<Instant>,
    /// No take before this (see `Input::settle_until`).
    settle_until: Instant,
    read_pace: Backoff,
    /// After a failed read, no blind re-read before this.
    read_after: Instant,
    pub acquire_pace: Backoff,
    /// After a failed acquisition, no new attempt before this.
    pub acquire_after: Instant,
    pub logs: Logs,
}

/// A DCS watch that is re-created, paced, when it ends.
struct KeyWatch {
    key: String,
    prefix: bool,
    rx: Option<mpsc::Receiver<WatchMessage>>,
    pace: Backoff,
    retry_at: Instant,
}

impl KeyWatch {
    fn new(dcs: &DcsClient, key: String, prefix: bool) -> KeyWatch {
        KeyWatch {
            rx: Some(dcs.watch(key.as_bytes(), prefix, 0)),
            key,
            prefix,
            pace: Backoff::new(REWATCH, POLL * 4),
            retry_at: Instant::now(),
        }
    }

    /// Re-creates an ended watch once its pause is over; returns when to look again if it is still waiting.
    fn ensure(&mut self, dcs: &DcsClient) -> Option<Instant> {
        if self.rx.is_some() {
            return None;
        }
        if Instant::now() < self.retry_at {
            return Some(self.retry_at);
        }
        self.rx = Some(dcs.watch(self.key.as_bytes(), self.prefix, 0));
        None
    }

    /// The next change (true), or the end of the watch (false; re-created later by `ensure`).
    async fn changed(&mut self) -> bool {
        let Some(rx) = self.rx.as_mut() else {
            return std::future::pending().await;
        };
        if let Some(WatchMessage::Events(_)) = rx.recv().await {
            self.pace.succeeded();
            return true;
        }
        self.rx = None;
        self.pace.failed();
        self.retry_at = Instant::now() + self.pace.delay();
        false
    }
}

impl Keeper {
    async fn run(&mut self, shutdown: CancellationToken) {
        match self.vip.reconcile(false).await {
            Ok(removed) => {
                if removed {
                    tracing::info!(
                        event = "vip_leftover_removed",
                        "VIP {} removed from {} at start: left over from an earlier run",
                        self.vip.cidr(),
                        self.vip.interface()
                    );
                }
                // The address is gone: deadline files of dead earlier runs guard nothing any more.
                // (Where this version keeps them, and the temp dir where earlier versions did.)
                let temp = std::env::temp_dir();
                super::fence::sweep_stale(&crate::fence::deadline_dir(&temp), &self.me);
                super::fence::sweep_stale(&temp, &self.me);
            }
            Err(e) => tracing::error!("VIP: cannot check the address at start: {e}"),
        }
        let mut vip_watch = KeyWatch::new(&self.dcs, self.keys.vip(), false);
        let mut edge_watch = KeyWatch::new(&self.dcs, self.keys.edges(), true);
        let mut last_reconcile = Instant::now();
        // Something changed (DCS event, health): read at once even while reads are paced after failures.
        let mut changed = true;
        while !shutdown.is_cancelled() {
            // Past the step-down instant a keepalive cannot help (we release below); e.g. after a freeze.
            if self.owning && Instant::now() >= self.next_keepalive && self.clock.valid(Instant::now()) {
                self.keepalive().await;
            }
            if changed || Instant::now() >= self.read_after {
                self.read_view().await;
            }
            self.unhealthy_since = match self.healthy() {
                true => None,
                false => self.unhealthy_since.or(Some(Instant::now())),
            };
            let mut wake = Instant::now() + POLL;
            match self.decide() {
                Decision::Acquire(_) if Instant::now() < self.acquire_after => wake = wake.min(self.acquire_after),
                Decision::Acquire(reason) => self.acquire(&reason).await,
                Decision::Release(reason) => self.release(&reason, false).await,
                Decision::Wait(d) => wake = wake.min(Instant::now() + d),
                Decision::Keep | Decision::Idle => {}
            }
            if self.owning {
                self.keep_fence_running().await;
            }
            if last_reconcile.elapsed() >= POLL {
                last_reconcile = Instant::now();
                self.reconcile().await;
            }
            self.announce_if_due().await;
            if self.owning {
                wake = wake.min(self.next_keepalive);
                if let Some(at) = self.clock.step_down_at() {
                    wake = wake.min(at);
                }
                if let Some(acquired) = self.acquired_at {
                    wake = wake.min(garp::next_due(acquired, self.bursts));
                }
            }
            for w in [&mut vip_watch, &mut edge_watch] {
                if let Some(at) = w.ensure(&self.dcs) {
                    wake = wake.min(at);
                }
            }
            let closed = self.healthy_closed;
            changed = tokio::select! {
                _ = shutdown.cancelled() => false,
                _ = tokio::time::sleep_until(wake.into()) => false,
                c = vip_watch.changed() => c,
                c = edge_watch.changed() => c,
                r = self.healthy.changed(), if !closed => {
                    if r.is_err() {
                        tracing::warn!(
                            event = "vip_health_gone",
                            "VIP: the proxy's health signal is gone: counting as unhealthy"
                        );
                        self.healthy_closed = true;
                    }
                    true
                },
            };
        }
        if self.owning {
            self.release("shutting down", true).await;
        }
    }

    fn healthy(&self) -> bool {
        !self.healthy_closed && *self.healthy.borrow()
    }

    fn decide(&self) -> Decision {
        let holder = match &self.holder {
            None => Holder::Free,
            Some((name, lease)) if *name == self.me && Some(*lease) == self.lease => Holder::Me,
            Some((name, _)) => Holder::Other(name.clone()),
        };
        decide(&Input {
            me: &self.me,
            my_priority: self.s.priority,
            healthy: self.healthy(),
            // A closed health channel (the edge is stopping) counts as unhealthy for long.
            unhealthy_since: self.unhealthy_since.filter(|_| !self.healthy_closed),
            owning: self.owning,
            lease_valid: self.clock.valid(Instant::now()),
            holder,
            candidates: &self.candidates,
            last_holder: self.last_holder.as_deref(),
            free_since: self.free_since,
            preempt: self.s.preempt,
            settle_until: self.settle_until,
            now: Instant::now(),
        })
    }

    /// Budget for one DCS call: a late answer is useless once the lease could be gone (a holder's calls are also
    /// bounded by its step-down instant), but a loaded DCS member may answer slower than a short VIP TTL.
    pub(super) fn budget(&self) -> Duration {
        self.s.ttl.max(Duration::from_millis(500))
    }

    /// Reads the `vip` key and the edges' status; on failure keeps the last view (our lease clock still rules).
    /// While owning, the read never runs past our next renewal: reads need a Raft leader and renewals do not, so
    /// during an election a read must not keep the holder from renewing (it keeps the last view instead).
    async fn read_view(&mut self) {
        let mut budget = self.budget();
        if let (true, Some(at)) = (self.owning, self.clock.step_down_at()) {
            let now = Instant::now();
            budget = budget.min(at.saturating_duration_since(now)).min(
                self.next_keepalive
                    .saturating_duration_since(now)
                    .max(Duration::from_millis(10)),
            );
            if at <= now {
                return; // past the step-down instant (e.g. after a freeze): this pass releases, no read needed
            }
        }
        let (vip_key, edges_prefix) = (self.keys.vip(), self.keys.edges());
        let both = async {
            tokio::join!(
                self.dcs.get(vip_key.as_bytes(), false),
                self.dcs.get(edges_prefix.as_bytes(), true)
            )
        };
        let (vip, edges) = match tokio::time::timeout(budget, both).await {
            Ok((Ok((vip, _)), Ok((edges, _)))) => (vip, edges),
            Ok((Err(e), _)) | Ok((_, Err(e))) => return self.read_failed("error", &format!("reading the DCS: {e}")),
            Err(_) => return self.read_failed("timeout", &format!("reading the DCS timed out after {budget:?}")),
        };
        self.read_pace.succeeded();
        self.read_after = Instant::now();
        log_transition("VIP", self.logs.read.succeeded());
        let holder = vip
            .first()
            .map(|kv| (String::from_utf8_lossy(&kv.value).into_owned(), kv.lease));
        let mut unreadable = BTreeSet::new();
        self.candidates = edges
            .iter()
            .filter_map(|kv| match serde_json::from_slice::<Candidate>(&kv.value) {
                Ok(c) => Some(c),
                Err(e) => {
                    // Read on every pass: report each bad value once, not once per pass.
                    if !self.unreadable.contains(&kv.key) {
                        tracing::debug!(key = %String::from_utf8_lossy(&kv.key), "VIP: unreadable edge status: {e}");
                    }
                    unreadable.insert(kv.key.clone());
                    None
                }
            })
            .collect();
        self.unreadable = unreadable;
        match (&self.holder, &holder) {
            (Some((previous, _)), None) => {
                self.last_holder = Some(previous.clone());
                self.free_since = Some(Instant::now());
            }
            (None, None) if self.free_since.is_none() => self.free_since = Some(Instant::now()),
            (_, Some(_)) => self.free_since = None,
            _ => {}
        }
        self.holder = holder;
        let name = self.holder.as_ref().map(|(n, _)| n.clone());
        self.holder_tx.send_if_modified(|h| {
            let changed = *h != name;
            *h = name;
            changed
        });
    }

    fn read_failed(&mut self, kind: &str, message: &str) {
        self.read_pace.failed();
        self.read_after = Instant::now() + self.read_pace.delay();
        log_transition(
            "VIP",
            self.logs
                .read
                .failed(kind, &format!("{message}; keeping the last view")),
        );
    }

    /// Renews our lease (every ttl/4 while owning, whatever happened before: the lease depends on it) and moves the
    /// fence deadline with it; a fence that cannot follow means release.
    async fn keepalive(&mut self) {
        let Some(id) = self.lease else { return };
        let sent = Instant::now();
        self.next_keepalive = sent + self.s.ttl / 4;
        let until_step_down = self
            .clock
            .step_down_at()
            .map(|at| at.saturating_duration_since(sent))
            .unwrap_or_default();
        let budget = self.budget().min(until_step_down).max(Duration::from_millis(10));
        // Directly on a quorum of voters first: an election does not cost the holder its address.
        let renewal = self.dcs.lease_renew(id, budget);
        let failure = match tokio::time::timeout(budget, renewal).await {
            Ok(Ok(Some(granted))) => {
                self.clock.set_ttl(granted);
                self.clock.renewed(sent);
                log_transition("VIP keepalive", self.logs.keepalive.succeeded());
                if let Err(e) = self.move_fence() {
                    let reason = format!("cannot move the fence deadline ({e}): not keeping the address unfenced");
                    return self.release(&reason, false).await;
                }
                return;
            }
            Ok(Ok(None)) => {
                tracing::warn!(event = "vip_lease_gone", "VIP: the VIP lease is gone from the DCS");
                self.clock.reset();
                return;
            }
            Ok(Err(e)) => ("error", format!("keepalive failed: {e}")),
            Err(_) => ("timeout", format!("keepalive timed out after {budget:?}")),
        };
        log_transition("VIP keepalive", self.logs.keepalive.failed(failure.0, &failure.1));
    }

    /// The kernel's address list must match what we hold (someone may have added or removed it by hand).
    async fn reconcile(&mut self) {
        match self.vip.reconcile(self.owning).await {
            Ok(changed) => {
                log_transition("VIP netlink", self.logs.netlink.succeeded());
                match (changed, self.owning) {
                    (true, true) => tracing::warn!(
                        event = "vip_readded",
                        "VIP {} was missing on {}: re-added",
                        self.vip.cidr(),
                        self.vip.interface()
                    ),
                    (true, false) => tracing::warn!(
                        event = "vip_stray_removed",
                        "VIP {} found on {} while not holding it: removed",
                        self.vip.cidr(),
                        self.vip.interface()
                    ),
                    (false, _) => {}
                }
            }
            Err(e) => log_transition(
                "VIP netlink",
                self.logs
                    .netlink
                    .failed("reconcile", &format!("reconciling the address failed: {e}")),
            ),
        }
    }

    pub(super) async fn announce_if_due(&mut self) {
        let Some(acquired) = self.acquired_at else { return };
        if !self.owning || Instant::now() < garp::next_due(acquired, self.bursts) {
            return;
        }
        self.bursts += 1;
        let (interface, ip) = (self.s.interface.clone(), self.s.address);
        let failure = match tokio::task::spawn_blocking(move || garp::send_burst(&interface, ip)).await {
            Ok(Ok(())) => {
                tracing::debug!("VIP: gratuitous ARP burst {} sent", self.bursts);
                return log_transition("VIP announcement", self.logs.garp.succeeded());
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => format!("gratuitous ARP task failed: {e}"),
        };
        log_transition("VIP announcement", self.logs.garp.failed("send", &failure));
    }
}
