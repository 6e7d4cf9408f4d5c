//! The db role's HA counters, loop duration and lease deadline: process-wide handles the HA shell updates in one
//! line where it acts (`HA.failovers.inc()`), registered on the db node's registry.

use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::postgres::sql::SlotReport;

/// Upper bounds of the HA loop duration histogram (seconds): a quiet iteration is milliseconds, a promotion or a
/// clone many seconds.
const LOOP_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The HA shell's counters.
#[derive(Debug)]
pub struct HaMetrics {
    /// Promotions without a planned handover (a race won, a manual failover).
    pub failovers: Counter,
    /// Promotions of a switchover candidate after the old leader handed over.
    pub switchovers: Counter,
    /// A primary stopped because its lease ran out (step-down) or another member leads (demotion).
    pub fencings: Counter,
    pub rewinds: Counter,
    /// Data directories wiped to be cloned again (a standby that cannot rejoin, a failed rewind).
    pub reclones: Counter,
    /// The leader key named another member than before (as this node's HA loop saw it).
    pub leader_changes: Counter,
    pub loop_duration: Histogram,
    /// When this node must step down if no renewal succeeds (None: it holds no lease that guards a primary).
    step_down_at: Mutex<Option<Instant>>,
    /// The replication slots of this primary as last read (empty on a replica).
    slots: Mutex<Vec<SlotReport>>,
    /// The last leader this node saw.
    last_leader: Mutex<Option<String>>,
}

/// The process's HA metrics.
pub static HA: LazyLock<HaMetrics> = LazyLock::new(HaMetrics::new);

/// Observes one HA loop iteration's duration when dropped.
pub struct LoopTimer(Instant);

impl Drop for LoopTimer {
    fn drop(&mut self) {
        HA.loop_duration.observe(self.0.elapsed().as_secs_f64());
    }
}

impl HaMetrics {
    fn new() -> HaMetrics {
        HaMetrics {
            failovers: Counter::default(),
            switchovers: Counter::default(),
            fencings: Counter::default(),
            rewinds: Counter::default(),
            reclones: Counter::default(),
            leader_changes: Counter::default(),
            loop_duration: Histogram::new(LOOP_BUCKETS),
            step_down_at: Mutex::new(None),
            slots: Mutex::new(Vec::new()),
            last_leader: Mutex::new(None),
        }
    }

    /// Counts a promotion: a switchover when the old leader handed over, a failover otherwise.
    pub fn promoted(&self, handed_over: bool) {
        match handed_over {
            true => self.switchovers.inc(),
            false => self.failovers.inc(),
        };
    }

    /// Times one HA loop iteration (until the guard is dropped).
    pub fn loop_timer(&self) -> LoopTimer {
        LoopTimer(Instant::now())
    }

    /// Records the step-down instant of the lease after an iteration.
    pub fn lease_deadline(&self, at: Option<Instant>) {
        if let Ok(mut slot) = self.step_down_at.lock() {
            *slot = at;
        }
    }

    /// Seconds of lease left at `now` (0 without a lease or once it ran out).
    pub fn lease_remaining(&self, now: Instant) -> f64 {
        let at = self.step_down_at.lock().ok().and_then(|s| *s);
        at.map_or(0.0, |at| at.saturating_duration_since(now).as_secs_f64())
    }

    /// Counts a change of the leader key's holder (the first leader seen, a failover, a switchover), not its
    /// absence in between.
    pub fn leader_seen(&self, leader: Option<&str>) {
        let Some(name) = leader else { return };
        let Ok(mut last) = self.last_leader.lock() else { return };
        if last.as_deref() != Some(name) {
            *last = Some(name.to_string());
            self.leader_changes.inc();
        }
    }

    /// Records the slots the primary read (its slot upkeep).
    pub fn slots_seen(&self, report: &[SlotReport]) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.clear();
            slots.extend_from_slice(report);
        }
    }

    /// The slots last read.
    pub fn slots(&self) -> Vec<SlotReport> {
        self.slots.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Adds the counters and the histogram to a db node's registry.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "failovers",
            "Promotions of this node without a planned handover",
            self.failovers.clone(),
        );
        r.register(
            "switchovers",
            "Promotions of this node after a planned handover",
            self.switchovers.clone(),
        );
        r.register(
            "fencings",
            "Times this node stopped its primary because its lease ran out or another member leads",
            self.fencings.clone(),
        );
        r.register("rewinds", "pg_rewind runs of this node", self.rewinds.clone());
        r.register(
            "ha_leader_changes",
            "Changes of the cluster's leader (the leader key's holder) seen by this node",
            self.leader_changes.clone(),
        );
        r.register(
            "reclones",
            "Times this node wiped its data directory to clone it again",
            self.reclones.clone(),
        );
        r.register_with_unit(
            "ha_loop_duration",
            "Duration of one HA loop iteration",
            Unit::Seconds,
            self.loop_duration.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::HaMetrics;

    #[test]
    fn leader_changes_count_new_holders_only() {
        let m = HaMetrics::new();
        for (seen, total) in [
            (Some("db1"), 1),
            (None, 1),
            (Some("db1"), 1),
            (Some("db2"), 2),
            (Some("db2"), 2),
        ] {
            m.leader_seen(seen);
            assert_eq!(m.leader_changes.get(), total, "after {seen:?}");
        }
    }

    #[test]
    fn promotions_split_into_failovers_and_switchovers() {
        let m = HaMetrics::new();
        m.promoted(false);
        m.promoted(true);
        m.promoted(false);
        assert_eq!((m.failovers.get(), m.switchovers.get()), (2, 1));
    }
}
