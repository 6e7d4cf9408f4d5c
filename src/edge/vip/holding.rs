//! Taking and giving up the VIP, and keeping a holder's fence armed, in the order `steps.rs` fixes: the address is
//! added last, only once the fence runs; a step that fails undoes what came before it; a holder whose fence cannot
//! be kept armed releases at once.

use std::time::{Duration, Instant};

use super::keeper::{Keeper, ACQUIRE_RETRY_CAP, POLL};
use super::steps::{self, FenceState, Step, Undo};
use super::VipError;
use crate::cluster::lease::LeaseClock;
use crate::dcs::types::{Compare, CompareTarget, Op, Txn};
use crate::fence::monotonic_ns_in;
use crate::retry::log_transition;

/// How one acquisition step went.
enum StepOutcome {
    Done,
    /// Another edge took the key first: not a failure, nothing to pace.
    Lost,
    Failed(String),
}

/// What the acquisition holds so far.
#[derive(Default)]
struct Taking {
    /// (lease id, granted ttl, when the grant was sent).
    lease: Option<(i64, Duration, Instant)>,
}

impl Keeper {
    /// Takes the free VIP: lease -> CAS key -> arm fence -> add address -> announce. On a failure, undoes the steps
    /// before it (the address is never added without its fence), logs once per kind of failure, and waits at least
    /// the poll period (doubling) before the next attempt.
    pub(super) async fn acquire(&mut self, reason: &str) {
        let mut taking = Taking::default();
        for step in steps::ACQUIRE {
            match self.acquire_step(step, &mut taking).await {
                StepOutcome::Done => {}
                StepOutcome::Lost => {
                    tracing::debug!("VIP: key not taken; another edge was faster");
                    return self.undo(step, &taking).await;
                }
                StepOutcome::Failed(message) => {
                    self.undo(step, &taking).await;
                    self.acquire_pace.failed();
                    let delay = self.acquire_pace.delay();
                    self.acquire_after = Instant::now() + delay;
                    let message = format!("{message}: VIP not taken (key and lease given up), next try in {delay:?}");
                    return log_transition("VIP acquisition", self.logs.acquire.failed(step_kind(step), &message));
                }
            }
        }
        self.owning = true;
        self.acquired_at = Some(Instant::now());
        self.bursts = 0;
        self.acquire_pace.succeeded();
        log_transition("VIP acquisition", self.logs.acquire.succeeded());
        tracing::info!(
            event = "vip_acquired",
            "VIP {} acquired on {}: {reason}",
            self.vip.cidr(),
            self.vip.interface()
        );
        self.holder_tx.send_replace(Some(self.me.clone()));
        self.announce_if_due().await;
    }

    async fn acquire_step(&mut self, step: Step, taking: &mut Taking) -> StepOutcome {
        let budget = self.budget();
        match step {
            Step::GrantLease => {
                let sent = Instant::now();
                match tokio::time::timeout(budget, self.dcs.lease_grant(self.s.ttl)).await {
                    Ok(Ok((id, granted))) => {
                        taking.lease = Some((id, granted, sent));
                        StepOutcome::Done
                    }
                    Ok(Err(e)) => StepOutcome::Failed(format!("cannot get a lease: {e}")),
                    Err(_) => StepOutcome::Failed(format!("lease grant timed out after {budget:?}")),
                }
            }
            Step::TakeKey => {
                let Some((id, granted, sent)) = taking.lease else {
                    return StepOutcome::Failed("no lease".into());
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
                match tokio::time::timeout(budget, self.dcs.txn(txn)).await {
                    Ok(Ok(o)) if o.succeeded => {
                        self.clock = LeaseClock::new(granted);
                        self.clock.renewed(sent);
                        self.lease = Some(id);
                        self.next_keepalive = sent + self.s.ttl / 4;
                        self.holder = Some((self.me.clone(), id));
                        self.free_since = None;
                        StepOutcome::Done
                    }
                    Ok(Ok(_)) => StepOutcome::Lost,
                    // The outcome is unknown: revoking (the undo) also deletes the key if our put went through.
                    Ok(Err(e)) => StepOutcome::Failed(format!("taking the key failed: {e}")),
                    Err(_) => StepOutcome::Failed(format!("taking the key timed out after {budget:?}")),
                }
            }
            // From here on a crash cannot leave the address behind for longer than the lease.
            Step::ArmFence => match self.move_fence() {
                Ok(_) => StepOutcome::Done,
                Err(e) => StepOutcome::Failed(format!("cannot arm the fence ({e})")),
            },
            Step::AddAddress => {
                if !self.clock.valid(Instant::now()) {
                    return StepOutcome::Failed("lease deadline passed while taking the key".into());
                }
                match self.vip.add().await {
                    Ok(()) => StepOutcome::Done,
                    Err(e) => StepOutcome::Failed(format!("cannot add the address ({e})")),
                }
            }
        }
    }

    /// Undoes an acquisition that stopped at `failed`. Quiet: the caller logs the failure once.
    async fn undo(&mut self, failed: Step, taking: &Taking) {
        for undo in steps::undo_after(failed) {
            match undo {
                Undo::RemoveAddress => {
                    if let Err(e) = self.vip.remove().await {
                        tracing::error!("VIP: {e} (the fencing process removes it at the lease deadline)");
                    }
                }
                Undo::DisarmFence => {
                    if let Err(e) = self.fence.disarm() {
                        tracing::error!("VIP: {e}");
                    }
                }
                Undo::RevokeLease => {
                    if let Some((id, _, _)) = taking.lease {
                        self.revoke_in_background(id);
                    }
                }
            }
        }
        if taking.lease.is_some_and(|(id, _, _)| self.lease == Some(id)) {
            // The key was ours for a moment: the others go first next time.
            self.last_holder = Some(self.me.clone());
        }
        self.lease = None;
        self.clock.reset();
    }

    /// Removes the address, disarms the fence and gives the key up (revoking our lease deletes it).
    pub(super) async fn release(&mut self, reason: &str, wait_for_revoke: bool) {
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
            event = "vip_released",
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

    /// Writes the fence deadline of our lease clock and makes sure the fencer runs (restarting it if it exited
    /// while we hold the VIP, which is logged once per run of such exits).
    pub(super) fn move_fence(&mut self) -> Result<FenceState, VipError> {
        let remaining = self
            .clock
            .fence_at()
            .map(|at| at.saturating_duration_since(Instant::now()))
            .unwrap_or_default();
        let exited = self.fence.exited();
        let armed = self.fence.arm(monotonic_ns_in(remaining));
        let state = steps::fence_state(exited.is_none(), armed.is_ok());
        if self.owning {
            match (state, &exited) {
                (FenceState::Restarted, Some(how)) => log_transition(
                    "VIP fence",
                    self.logs.fence.failed(
                        "exited",
                        &format!("the fencing process exited ({how}) while this edge holds the VIP: restarted"),
                    ),
                ),
                (FenceState::Armed, _) => log_transition("VIP fence", self.logs.fence.succeeded()),
                _ => {}
            }
        }
        armed.map(|()| state)
    }

    /// Once per pass while holding: a fencer that exited is restarted at once; if it cannot be, the address goes.
    pub(super) async fn keep_fence_running(&mut self) {
        if self.fence.exited().is_none() {
            return log_transition("VIP fence", self.logs.fence.succeeded());
        }
        if let Err(e) = self.move_fence() {
            let reason = format!("the fencing process exited and cannot be restarted ({e})");
            self.release(&reason, false).await;
        }
    }
}

/// The stable kind of an acquisition failure (what failed, for the failure log).
fn step_kind(step: Step) -> &'static str {
    match step {
        Step::GrantLease => "lease grant",
        Step::TakeKey => "take key",
        Step::ArmFence => "arm fence",
        Step::AddAddress => "add address",
    }
}

// The first retry after a failed acquisition waits the normal pass period; keep the two in step.
const _: () = assert!(POLL.as_millis() <= ACQUIRE_RETRY_CAP.as_millis());
