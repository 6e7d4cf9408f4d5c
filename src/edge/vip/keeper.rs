//! The VIP keeper loop: reads the `vip` key and the edges' status, asks `decide`, and carries the decision out.
//!
//! One pass: renew the lease if due, read the view, decide, act, announce (gratuitous ARP) if due; then wait in one
//! `select!` for shutdown, a DCS change (watch), a health change, or the next deadline (keepalive, step-down,
//! announcement, rank delay, 1 s poll). Order of effects, so the address never outlives the right to hold it:
//! acquire = lease -> CAS key -> arm fence -> add address -> announce; release = remove address -> disarm fence ->
//! revoke lease. The fence deadline follows each successful keepalive (`send + ttl - ttl/8`), the holder steps down
//! at `send + ttl - ttl/4`, and the DCS cannot expire the lease before `send + ttl`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::decide::{decide, Candidate, Decision, Holder, Input};
use super::fence::VipFence;
use super::netlink::VipAddress;
use super::{garp, VipError, VipSettings};
use crate::dcs::client::{DcsClient, WatchMessage};
use crate::dcs::types::{Compare, CompareTarget, Op, Txn};
use crate::ha::fence::monotonic_ns_in;
use crate::ha::keys::Keys;
use crate::ha::lease::LeaseClock;

/// Re-read and reconcile at least this often, even without DCS events.
const POLL: Duration = Duration::from_secs(1);

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
    let file = super::fence::deadline_file(&std::env::temp_dir(), &edge_name, std::process::id());
    let fence = VipFence::new(file, exe, &s.interface, s.address, s.prefix_len);
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
        next_keepalive: Instant::now(),
        acquired_at: None,
        bursts: 0,
        holder: None,
        candidates: Vec::new(),
        last_holder: None,
        free_since: None,
        settle_until: Instant::now() + super::decide::RANK_STEP,
    };
    k.run(shutdown).await;
    Ok(())
}

struct Keeper {
    s: VipSettings,
    me: String,
    dcs: Arc<DcsClient>,
    keys: Keys,
    healthy: watch::Receiver<bool>,
    /// The proxy dropped its health sender: it is gone, so we count as unhealthy.
    healthy_closed: bool,
    holder_tx: watch::Sender<Option<String>>,
    vip: VipAddress,
    fence: VipFence,
    /// Our VIP lease while owning.
    lease: Option<i64>,
    clock: LeaseClock,
    owning: bool,
    next_keepalive: Instant,
    acquired_at: Option<Instant>,
    /// Gratuitous ARP bursts sent since acquiring.
    bursts: u32,
    /// The `vip` key: (holder name, its lease); None = free; not read yet = None with `free_since` None.
    holder: Option<(String, i64)>,
    candidates: Vec<Candidate>,
    last_holder: Option<String>,
    free_since: Option<Instant>,
    /// No take before this (see `Input::settle_until`).
    settle_until: Instant,
}

impl Keeper {
    async fn run(&mut self, shutdown: CancellationToken) {
        match self.vip.reconcile(false).await {
            Ok(removed) => {
                if removed {
                    tracing::info!(
                        "VIP {} removed from {} at start: left over from an earlier run",
                        self.vip.cidr(),
                        self.vip.interface()
                    );
                }
                // The address is gone: deadline files of dead earlier runs guard nothing any more.
                super::fence::sweep_stale(&std::env::temp_dir(), &self.me);
            }
            Err(e) => tracing::error!("VIP: cannot check the address at start: {e}"),
        }
        let mut vip_events = self.dcs.watch(self.keys.vip().as_bytes(), false, 0);
        let mut edge_events = self.dcs.watch(self.keys.edges().as_bytes(), true, 0);
        let mut last_reconcile = Instant::now();
        while !shutdown.is_cancelled() {
            // Past the step-down instant a keepalive cannot help (we release below); e.g. after a freeze.
            if self.owning && Instant::now() >= self.next_keepalive && self.clock.valid(Instant::now()) {
                self.keepalive().await;
            }
            self.read_view().await;
            let mut wake = Instant::now() + POLL;
            match self.decide() {
                Decision::Acquire(reason) => self.acquire(&reason).await,
                Decision::Release(reason) => self.release(&reason, false).await,
                Decision::Wait(d) => wake = wake.min(Instant::now() + d),
                Decision::Keep | Decision::Idle => {}
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
            let closed = self.healthy_closed;
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep_until(wake.into()) => {}
                m = vip_events.recv() => if !matches!(m, Some(WatchMessage::Events(_))) {
                    vip_events = self.dcs.watch(self.keys.vip().as_bytes(), false, 0);
                },
                m = edge_events.recv() => if !matches!(m, Some(WatchMessage::Events(_))) {
                    edge_events = self.dcs.watch(self.keys.edges().as_bytes(), true, 0);
                },
                r = self.healthy.changed(), if !closed => if r.is_err() {
                    tracing::warn!("VIP: the proxy's health signal is gone: counting as unhealthy");
                    self.healthy_closed = true;
                },
            }
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

    /// Budget for one DCS call: a late answer is useless once the lease could be gone.
    fn budget(&self) -> Duration {
        (self.s.ttl / 2).max(Duration::from_millis(100))
    }

    /// Reads the `vip` key and the edges' status; on failure keeps the last view (our lease clock still rules).
    /// While owning, the read never runs past our step-down instant: releasing in time matters more than the view.
    async fn read_view(&mut self) {
        let mut budget = self.budget();
        if let (true, Some(at)) = (self.owning, self.clock.step_down_at()) {
            budget = budget.min(at.saturating_duration_since(Instant::now()));
        }
        let (vip_key, edges_prefix) = (self.keys.vip(), self.keys.edges());
        let both = async {
            tokio::join!(
                self.dcs.get(vip_key.as_bytes(), false),
                self.dcs.get(edges_prefix.as_bytes(), true)
            )
        };
        let Ok((Ok((vip, _)), Ok((edges, _)))) = tokio::time::timeout(budget, both).await else {
            tracing::debug!("VIP: reading the DCS failed; keeping the last view");
            return;
        };
        let holder = vip
            .first()
            .map(|kv| (String::from_utf8_lossy(&kv.value).into_owned(), kv.lease));
        self.candidates = edges
            .iter()
            .filter_map(|kv| match serde_json::from_slice::<Candidate>(&kv.value) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::debug!(key = %String::from_utf8_lossy(&kv.key), "VIP: unreadable edge status: {e}");
                    None
                }
            })
            .collect();
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
        match tokio::time::timeout(budget, self.dcs.lease_keepalive(id)).await {
            Ok(Ok(Some(granted))) => {
                self.clock.set_ttl(granted);
                self.clock.renewed(sent);
                self.move_fence();
            }
            Ok(Ok(None)) => {
                tracing::warn!("VIP: the VIP lease is gone from the DCS");
                self.clock.reset();
            }
            Ok(Err(e)) => tracing::warn!("VIP: keepalive failed: {e}"),
            Err(_) => tracing::warn!("VIP: keepalive timed out after {budget:?}"),
        }
    }

    fn move_fence(&mut self) {
        let remaining = self
            .clock
            .fence_at()
            .map(|at| at.saturating_duration_since(Instant::now()))
            .unwrap_or_default();
        if let Err(e) = self.fence.arm(monotonic_ns_in(remaining)) {
            tracing::error!("VIP: cannot move the fence deadline: {e}");
        }
    }

    async fn acquire(&mut self, reason: &str) {
        let budget = self.budget();
        let sent = Instant::now();
        let (id, granted) = match tokio::time::timeout(budget, self.dcs.lease_grant(self.s.ttl)).await {
            Ok(Ok(g)) => g,
            Ok(Err(e)) => return tracing::warn!("VIP: cannot get a lease to take the VIP: {e}"),
            Err(_) => return tracing::warn!("VIP: lease grant timed out"),
        };
        let key = self.keys.vip().into_bytes();
        let txn = Txn {
            compares: vec![Compare {
                key: key.clone(),
                target: CompareTarget::Absent,
            }],
            success: vec![Op::Put {
                key,
                value: self.me.clone().into_bytes(),
                lease: id,
            }],
            failure: vec![],
        };
        let taken = matches!(tokio::time::timeout(budget, self.dcs.txn(txn)).await, Ok(Ok(o)) if o.succeeded);
        if !taken {
            // Lost the race (or the outcome is unknown): revoking also deletes the key if our put went through.
            tracing::debug!("VIP: key not taken; another edge was faster");
            self.revoke_in_background(id);
            return;
        }
        self.clock = LeaseClock::new(granted);
        self.clock.renewed(sent);
        self.lease = Some(id);
        self.owning = true;
        self.next_keepalive = sent + self.s.ttl / 4;
        self.holder = Some((self.me.clone(), id));
        self.free_since = None;
        // The fence first: from here on a crash cannot leave the address behind for longer than the lease.
        self.move_fence();
        if !self.clock.valid(Instant::now()) {
            return self.release("lease deadline passed while taking the key", false).await;
        }
        if let Err(e) = self.vip.add().await {
            tracing::error!("VIP: {e}");
            return self.release("cannot add the address", false).await;
        }
        self.acquired_at = Some(Instant::now());
        self.bursts = 0;
        tracing::info!("VIP {} acquired on {}: {reason}", self.vip.cidr(), self.vip.interface());
        self.holder_tx.send_replace(Some(self.me.clone()));
        self.announce_if_due().await;
    }

    /// Removes the address, disarms the fence and gives the key up (revoking our lease deletes it).
    async fn release(&mut self, reason: &str, wait_for_revoke: bool) {
        if let Err(e) = self.vip.remove().await {
            tracing::error!("VIP: {e} (the fencing process removes it at the lease deadline)");
        }
        if let Err(e) = self.fence.disarm() {
            tracing::error!("VIP: {e}");
        }
        self.owning = false;
        self.acquired_at = None;
        self.clock.reset();
        self.last_holder = Some(self.me.clone());
        tracing::info!(
            "VIP {} released from {}: {reason}",
            self.vip.cidr(),
            self.vip.interface()
        );
        if let Some(id) = self.lease.take() {
            if wait_for_revoke {
                match tokio::time::timeout(self.budget(), self.dcs.lease_revoke(id)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!("VIP: revoking the lease failed (it will expire): {e}"),
                    Err(_) => tracing::warn!("VIP: revoking the lease timed out (it will expire)"),
                }
            } else {
                self.revoke_in_background(id);
            }
        }
    }

    fn revoke_in_background(&self, id: i64) {
        let dcs = self.dcs.clone();
        let budget = self.budget();
        tokio::spawn(async move {
            if let Ok(Err(e)) = tokio::time::timeout(budget, dcs.lease_revoke(id)).await {
                tracing::debug!("VIP: revoking lease {id} failed (it will expire): {e}");
            }
        });
    }

    /// The kernel's address list must match what we hold (someone may have added or removed it by hand).
    async fn reconcile(&mut self) {
        match self.vip.reconcile(self.owning).await {
            Ok(true) if self.owning => tracing::warn!(
                "VIP {} was missing on {}: re-added",
                self.vip.cidr(),
                self.vip.interface()
            ),
            Ok(true) => tracing::warn!(
                "VIP {} found on {} while not holding it: removed",
                self.vip.cidr(),
                self.vip.interface()
            ),
            Ok(false) => {}
            Err(e) => tracing::error!("VIP: reconciling the address failed: {e}"),
        }
    }

    async fn announce_if_due(&mut self) {
        let Some(acquired) = self.acquired_at else { return };
        if !self.owning || Instant::now() < garp::next_due(acquired, self.bursts) {
            return;
        }
        self.bursts += 1;
        let (interface, ip) = (self.s.interface.clone(), self.s.address);
        match tokio::task::spawn_blocking(move || garp::send_burst(&interface, ip)).await {
            Ok(Ok(())) => tracing::debug!("VIP: gratuitous ARP burst {} sent", self.bursts),
            Ok(Err(e)) => tracing::warn!("VIP: {e}"),
            Err(e) => tracing::warn!("VIP: gratuitous ARP task failed: {e}"),
        }
    }
}
