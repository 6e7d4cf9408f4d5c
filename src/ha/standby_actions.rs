//! Applying the standby cluster decisions (`standby_cluster.rs`): the first member cloned from the remote, the
//! standby leader following the remote, a primary leader demoted into a standby leader (`ctl demote-cluster`).

use std::time::Duration;

use super::error::{HaError, Step};
use super::hooks::HookRole;
use super::runner::DbNode;
use crate::cluster::model::{ClusterView, HistoryEntry, PgState};
use crate::cluster::standby::StandbyCluster;
use crate::cluster::store::unix_ms;
use crate::postgres::{ConfRole, StopMode};

/// How a standby leader's PostgreSQL is configured for `remote`.
fn remote_role(remote: &StandbyCluster) -> ConfRole {
    ConfRole::Remote {
        host: remote.host.clone(),
        port: remote.port.unwrap_or(crate::cluster::standby::DEFAULT_PORT),
        slot: remote.primary_slot_name.clone(),
        restore_command: remote.restore_command.clone(),
    }
}

impl DbNode {
    /// The standby setting that bootstraps this cluster: the DCS's once written, else the config file's.
    pub(super) fn bootstrap_standby(&self, view: &ClusterView) -> Option<StandbyCluster> {
        view.config
            .standby_cluster
            .clone()
            .or_else(|| self.settings.bootstrap_config.standby_cluster.clone())
    }

    /// The first member of a standby cluster: its data comes from the remote (the replica creation methods:
    /// pg_basebackup from the remote primary, or pgBackRest), not initdb; the cluster identity is the remote's system
    /// identifier. Every step is idempotent, like `initialize`.
    pub(super) async fn initialize_standby(&mut self, remote: &StandbyCluster) -> Result<(), HaError> {
        if !self.store().claim_initialize(&self.settings.name).await? {
            return Ok(());
        }
        let lease = self.session.lease().step("no DCS session")?;
        self.supervision.activity = Some(PgState::CreatingReplica);
        if matches!(self.pg.data_state().await?, crate::postgres::DataState::Missing) {
            let Some((host, port)) = remote.remote() else {
                return Err(HaError::Refused(
                    "a standby cluster with only a restore_command cannot create its first member: set \
                     standby_cluster.host (the remote primary to clone), or restore the data directory first"
                        .into(),
                ));
            };
            tracing::info!(event = "standby_bootstrap", remote = %remote.describe(), "won the initialize race: cloning the remote primary");
            let method = self
                .pg
                .create_replica(&host, port)
                .await
                .step("cloning the remote primary")?;
            tracing::info!(event = "replica_created", method = %method, source = %format!("{host}:{port}"), "standby cluster data directory created");
            self.pg
                .follow_data_dir_version()
                .step("PostgreSQL binaries for the cloned data directory")?;
        }
        self.pg
            .write_config(&remote_role(remote))
            .await
            .step("writing the standby leader configuration")?;
        if self.pg.postmaster_pid().is_none() {
            self.supervision.activity = Some(PgState::Starting);
            self.pg
                .start(self.settings.start_timeout)
                .await
                .step("starting PostgreSQL")?;
            self.hooks_after_start(HookRole::Replica, false);
        }
        self.supervision.expect_running = true;
        self.supervision.following = remote.remote();
        self.supervision.standby_of = Some(remote.clone());
        self.take_bootstrap_leader(lease).await?;
        let status = self.pg.status().await?;
        self.store()
            .complete_initialize(status.system_identifier, &self.settings.bootstrap_config)
            .await?;
        tracing::info!(
            event = "standby_cluster_initialized",
            system_identifier = status.system_identifier,
            remote = %remote.describe(),
            "standby cluster initialized: this node is the standby leader"
        );
        Ok(())
    }

    /// Configures our PostgreSQL to follow the remote (starting it, or reloading: `primary_conninfo` and
    /// `restore_command` are reloadable), as the standby leader: read-only, so no fence.
    pub(super) async fn follow_remote(&mut self, remote: &StandbyCluster) -> Result<(), HaError> {
        let role = remote_role(remote);
        if self.pg.postmaster_pid().is_some() {
            if self.pg.write_config(&role).await? {
                self.pg.reload().await.step("reloading PostgreSQL")?;
                self.hooks_after_reload();
            }
        } else {
            self.pg
                .write_config(&role)
                .await
                .step("writing the standby leader configuration")?;
            self.start(HookRole::Replica, false).await?;
        }
        self.unfence_standby_leader()?;
        self.supervision.following = remote.remote();
        self.supervision.standby_of = Some(remote.clone());
        self.restart_stall_clock();
        tracing::info!(
            event = "follow_remote",
            remote = %remote.describe(),
            reason = %self.last_reason,
            "standby leader now follows the remote {}",
            remote.describe()
        );
        Ok(())
    }

    /// Keeps leading as the standby leader: no fence (it cannot write), our replicas' slots (they stream from us).
    pub(super) async fn lead_standby(&mut self, view: &ClusterView) -> Result<(), HaError> {
        self.unfence_standby_leader()?;
        self.restartpoint_new_timeline();
        // A standby's slots are made with the standby's own call (the primary's refuses a server in recovery).
        let now = std::time::Instant::now();
        let mut wanted = super::slots::kept_member_slots(
            &self.settings.name,
            view.members.keys().map(String::as_str),
            &self.slots.member_seen,
            now,
            Duration::from_millis(self.config.member_slots_ttl_ms),
        );
        wanted.extend(self.config.physical_slots());
        wanted.sort();
        wanted.dedup();
        let droppable: Vec<String> = self
            .slots
            .owned
            .names()
            .into_iter()
            .filter(|n| !self.config.slots.contains_key(n) && !wanted.contains(n))
            .collect();
        let outcome = match self.pg.ensure_standby_slots(&wanted, &droppable).await {
            Ok(changes) => {
                self.record_slots(&changes.created, &changes.dropped);
                self.slots.cascade_log.succeeded()
            }
            Err(e) => self.slots.cascade_log.failed("standby leader", &e.to_string()),
        };
        crate::retry::log_transition("slots of the standby cluster's members", outcome);
        Ok(())
    }

    /// After the remote's promotion our last restartpoint stays on the old timeline, and our replicas' pg_rewind
    /// reads the timeline from it: a CHECKPOINT (a restartpoint on a standby) runs in the background until it moves.
    fn restartpoint_new_timeline(&mut self) {
        if self.checkpoint_after_promote.take_if(|t| t.is_finished()).is_some() {
            return; // done (or failed: asked again): the status read next loop says whether the timeline moved
        }
        let behind = self
            .supervision
            .last_status
            .as_ref()
            .is_some_and(|s| s.in_recovery && s.checkpoint_timeline != 0 && s.checkpoint_timeline < s.timeline);
        if behind && self.checkpoint_after_promote.is_none() {
            tracing::info!(
                event = "restartpoint",
                "the remote changed timeline: a restartpoint, so our replicas can pg_rewind from us"
            );
            self.checkpoint_after_promote = Some(self.pg.checkpoint_in_background());
        }
    }

    fn unfence_standby_leader(&mut self) -> Result<(), HaError> {
        if self.session.fence_armed() {
            self.session.disarm_fence()?;
            tracing::info!(
                event = "fence_disarmed",
                "fence disarmed: a standby leader is read-only"
            );
        }
        Ok(())
    }

    /// `ctl demote-cluster`: our primary stops being writable at once (immediate stop, as a demotion), is rewound
    /// from the remote when its history diverged (pg_rewind says when none is needed), then follows the remote. The
    /// leader key stays ours: the cluster keeps its leader, which is now a standby leader.
    pub(super) async fn demote_to_standby(&mut self, view: &ClusterView) -> Result<(), HaError> {
        let Some(remote) = view.config.standby_cluster.clone() else {
            return Ok(());
        };
        if self.pg.postmaster_pid().is_some() {
            tracing::warn!(
                event = "demote_cluster",
                remote = %remote.describe(),
                "demote-cluster: immediate stop of the primary (client sessions are terminated), then follow the remote"
            );
            crate::metrics::ha::HA.fencings.inc();
            self.pg
                .stop(StopMode::Immediate, Duration::from_secs(10))
                .await
                .step("stopping PostgreSQL")?;
            self.hooks_after_stop();
        }
        self.session.disarm_fence()?;
        self.supervision.expect_running = false;
        self.supervision.following = None;
        self.supervision.standby_of = None;
        let before = self.supervision.last_status.take();
        if let Some((host, port)) = remote.remote() {
            tracing::info!(event = "rewind", source = %format!("{host}:{port}"), "rewinding from the remote primary");
            crate::metrics::ha::HA.rewinds.inc();
            self.pg
                .rewind(&host, port, self.settings.start_timeout)
                .await
                .step("pg_rewind from the remote primary (retrying)")?;
        }
        self.clear_rewind_marker();
        self.follow_remote(&remote).await?;
        let entry = HistoryEntry {
            timeline: before.as_ref().map(|s| s.timeline).unwrap_or(0),
            lsn: before
                .as_ref()
                .map(crate::postgres::PgStatus::wal_position)
                .unwrap_or(0),
            reason: format!("demote-cluster: now a standby cluster of {}", remote.describe()),
            unix_ms: unix_ms(),
            new_leader: self.settings.name.clone(),
        };
        if let Err(e) = self.store().append_history(entry).await {
            tracing::warn!("recording the demotion in the history failed: {e}");
        }
        Ok(())
    }
}
