//! The shell of cascading replication's slots (`cascade.rs` decides): a standby keeps a physical slot for each member
//! whose `replicatefrom` names it (kept `member_slots_ttl_ms` after that member's key is gone, like the primary's),
//! and the primary moves the slots of cascading members forward. Failures are logged once per state change.

use std::time::{Duration, Instant};

use super::cascade;
use super::runner::DbNode;
use crate::cluster::model::ClusterView;

impl DbNode {
    /// On a running standby: the slots of the members that stream (or may stream) from it. The slots pgha created
    /// that are not wanted (e.g. the member slots of a former primary, which would hold this standby's WAL) are
    /// dropped, never the permanent slots of the config nor anybody else's.
    pub(super) async fn ensure_downstream_slots(&mut self, view: &ClusterView) {
        let standby = self.supervision.last_status.as_ref().is_some_and(|s| s.in_recovery);
        if !standby || self.pg.postmaster_pid().is_none() {
            return;
        }
        let now = Instant::now();
        let ttl = Duration::from_millis(self.config.member_slots_ttl_ms);
        let present: Vec<String> = cascade::downstream(view, &self.settings.name)
            .map(str::to_string)
            .collect();
        for name in &present {
            self.slots.downstream_seen.insert(name.clone(), now);
        }
        self.slots
            .downstream_seen
            .retain(|_, seen| now.saturating_duration_since(*seen) < ttl);
        let mut wanted = super::slots::kept_member_slots(
            &self.settings.name,
            present.iter().map(String::as_str),
            &self.slots.downstream_seen,
            now,
            ttl,
        );
        for slot in super::slots::ahead_of_switchover(view, &self.settings.name, crate::cluster::store::unix_ms()) {
            if !wanted.contains(&slot) {
                wanted.push(slot);
            }
        }
        let droppable: Vec<String> = self
            .slots
            .owned
            .names()
            .into_iter()
            .filter(|n| !self.config.slots.contains_key(n))
            .collect();
        let outcome = match self.pg.ensure_standby_slots(&wanted, &droppable).await {
            Ok(changes) => {
                self.record_slots(&changes.created, &changes.dropped);
                self.slots.cascade_log.succeeded()
            }
            Err(e) => self.slots.cascade_log.failed("standby", &e.to_string()),
        };
        crate::retry::log_transition("slots of cascading replicas", outcome);
    }

    /// On the primary: the slots of members streaming from another replica follow what those members published.
    pub(super) async fn advance_cascade_slots(&mut self, view: &ClusterView) {
        let targets = cascade::advance_targets(view, &self.settings.name);
        if targets.is_empty() {
            return;
        }
        let outcome = match self.pg.advance_slots(&targets).await {
            Ok(_) => self.slots.cascade_log.succeeded(),
            Err(e) => self.slots.cascade_log.failed("primary", &e.to_string()),
        };
        crate::retry::log_transition("slots of cascading replicas", outcome);
    }
}
