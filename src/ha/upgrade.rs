//! A db node's part in a major upgrade (`ctl upgrade`): the checks, the leader's stop / `pg_upgrade` / start on the
//! new binaries with the automatic way back on a failure, a replica's stop and the old data set aside; each step
//! reported in the member key (and so in `ctl list` and ctl's progress) and logged once.

use std::path::Path;

use super::error::{HaError, Step};
use super::hooks::HookRole;
use super::runner::DbNode;
use crate::cluster::model::ClusterView;
use crate::cluster::upgrade::{Outcome, Step as UpgradeStep, TransferMode, UpgradeReport};
use crate::postgres::upgrade::check_new_binaries;
use crate::postgres::{ConfRole, StopMode};

impl DbNode {
    /// Publishes our upgrade step at once (the loop is busy in a long action) and logs it.
    async fn report(
        &mut self,
        (id, step): (u64, UpgradeStep),
        what: String,
        outcome: Outcome,
        system_identifier: Option<u64>,
    ) {
        match &outcome {
            Outcome::Running => tracing::info!(event = "upgrade_step", step = %what, "major upgrade: {what}"),
            Outcome::Done => tracing::info!(event = "upgrade_step_done", step = %what, "major upgrade: {what}"),
            Outcome::Failed { reason, rolled_back } => tracing::error!(event = "upgrade_failed", step = %what,
                rolled_back, "major upgrade failed at {what}: {reason}"),
        }
        self.supervision.upgrade = Some(UpgradeReport {
            id,
            step,
            what,
            outcome,
            system_identifier,
        });
        match self.store().view().await {
            Ok(view) => self.publish(&view).await,
            Err(e) => tracing::debug!("reading the cluster to publish the upgrade step failed: {e}"),
        }
    }

    /// `UpgradeCheck`: the new binaries on this member; on the leader also `pg_upgrade --check` against its data.
    pub(super) async fn upgrade_check(
        &mut self,
        id: u64,
        bin_dir: &Path,
        view: &ClusterView,
    ) -> Result<&'static str, HaError> {
        let leading = view.leader.as_ref().is_some_and(|l| l.name == self.settings.name);
        let mode = view.upgrade.as_ref().map(|(s, _)| s.mode).unwrap_or_default();
        let run = (id, UpgradeStep::Check);
        let what = match leading {
            true => format!("pg_upgrade --check with {}", bin_dir.display()),
            false => format!("checking the binaries in {}", bin_dir.display()),
        };
        self.report(run, what.clone(), Outcome::Running, None).await;
        let result = match leading {
            true => self.pg.upgrade_check(bin_dir, mode, id).await,
            false => check_new_binaries(bin_dir, self.pg.data_major()),
        };
        match result {
            Ok(major) => {
                self.report(run, format!("PostgreSQL {major} binaries ok"), Outcome::Done, None)
                    .await;
                Ok("upgrade check passed")
            }
            Err(e) => {
                let failed = Outcome::Failed {
                    reason: e.to_string(),
                    rolled_back: true,
                };
                self.report(run, what, failed, None).await;
                Err(e).step("upgrade check")
            }
        }
    }

    /// `Upgrade` on the leader: a clean stop (no switchover: maintenance mode is on), `pg_upgrade` into a new data
    /// directory in place of the old (kept beside it), the cluster identity moved to the new system identifier,
    /// start on the new binaries. Until the new server starts, any failure puts the old data back and starts it.
    pub(super) async fn upgrade_leader(
        &mut self,
        id: u64,
        bin_dir: &Path,
        mode: TransferMode,
    ) -> Result<&'static str, HaError> {
        let run = (id, UpgradeStep::UpgradeLeader);
        let fail = |reason: String, rolled_back| Outcome::Failed { reason, rolled_back };
        let staging = format!("preparing the new cluster (initdb with {})", bin_dir.display());
        self.report(run, staging.clone(), Outcome::Running, None).await;
        let staged = match self.pg.stage_upgrade(bin_dir, id).await {
            Ok(staged) => staged,
            Err(e) => {
                self.report(run, staging, fail(e.to_string(), true), None).await;
                return Err(e).step("preparing the new cluster");
            }
        };
        let stopping = "stopping the leader cleanly (checkpoint, fast shutdown)".to_string();
        self.report(run, stopping.clone(), Outcome::Running, None).await;
        if let Err(e) = self.pg.checkpoint().await {
            tracing::warn!("checkpoint before the upgrade failed (continuing): {e}");
        }
        if let Err(e) = self.pg.stop(StopMode::Fast, self.settings.start_timeout).await {
            self.pg.discard_staged(&staged).await;
            self.report(run, stopping, fail(e.to_string(), false), None).await;
            return Err(e).step("stopping PostgreSQL for the upgrade");
        }
        self.hooks_after_stop();
        self.supervision.expect_running = false;
        let what = format!("pg_upgrade {} to {}", mode.flag(), bin_dir.display());
        self.report(run, what.clone(), Outcome::Running, None).await;
        let upgraded = match self.pg.upgrade_data_dir(&staged, bin_dir, mode, id).await {
            Ok(u) => u,
            Err(e) => {
                let back = self.restart_old().await;
                self.report(run, what, fail(e.to_string(), back.is_ok()), None).await;
                back?;
                return Err(e).step("pg_upgrade");
            }
        };
        let system = match self.pg.data_state().await {
            Ok(crate::postgres::DataState::Initialized { system_identifier, .. }) => system_identifier,
            other => {
                let reason = format!("reading the new system identifier: {other:?}");
                return self.undo(run, &upgraded.old_data_dir, what, reason).await;
            }
        };
        if let Err(e) = self.store().move_initialize(system).await {
            return self
                .undo(
                    run,
                    &upgraded.old_data_dir,
                    what,
                    format!("moving the initialize key: {e}"),
                )
                .await;
        }
        tracing::info!(event = "upgrade_identity_moved", system_identifier = system,
            old_data_dir = %upgraded.old_data_dir.display(),
            "the cluster is now system {system}; the old data directory is kept at {}", upgraded.old_data_dir.display());
        if let Err(e) = self.pg.use_bin_dir(bin_dir, upgraded.major) {
            tracing::warn!("remembering the new bin directory failed (set postgresql.bin_dir): {e}");
        }
        let starting = format!("starting the leader on PostgreSQL {}", upgraded.major);
        self.report(run, starting.clone(), Outcome::Running, Some(system)).await;
        let started = async {
            self.pg
                .write_config(&ConfRole::Primary)
                .await
                .step("writing the primary configuration")?;
            self.guard_primary().await?;
            self.start(HookRole::Primary, true).await
        }
        .await;
        if let Err(e) = started {
            // No write can have happened: the way back is still open (docs/operations.md), but it is the operator's.
            self.report(run, starting, fail(e.chain(), false), Some(system)).await;
            return Err(e);
        }
        self.report(
            run,
            format!("running on PostgreSQL {} as system {system}", upgraded.major),
            Outcome::Done,
            Some(system),
        )
        .await;
        Ok("upgraded")
    }

    /// After the upgrade succeeded on disk but before the new server started: the old data back, the old server
    /// started, and the failure reported.
    async fn undo(
        &mut self,
        run: (u64, UpgradeStep),
        aside: &Path,
        what: String,
        reason: String,
    ) -> Result<&'static str, HaError> {
        let back = match self.pg.roll_back_upgrade(aside).await {
            Ok(()) => self.restart_old().await,
            Err(e) => Err(e).step("putting the old data directory back"),
        };
        let outcome = Outcome::Failed {
            reason: reason.clone(),
            rolled_back: back.is_ok(),
        };
        self.report(run, what, outcome, None).await;
        back?;
        Err(HaError::Refused(format!("major upgrade failed: {reason}")))
    }

    /// Starts the old version again after a failed upgrade (the leader key is still ours, maintenance mode on).
    async fn restart_old(&mut self) -> Result<(), HaError> {
        if let Some(sys) = self.store().view().await?.upgrade.as_ref().map(|(s, _)| s.from_system) {
            // The identity may have moved already: put it back with the data.
            self.store().move_initialize(sys).await?;
        }
        self.guard_primary().await?;
        self.start(HookRole::Primary, true).await
    }

    /// A replica stops (fast) and stays stopped while the leader's data is upgraded.
    pub(super) async fn upgrade_stop(&mut self) -> Result<(), HaError> {
        tracing::info!(event = "upgrade_replica_stop", "major upgrade: stopping this replica");
        if self.pg.postmaster_pid().is_some() {
            self.pg
                .stop(StopMode::Fast, self.settings.start_timeout)
                .await
                .step("stopping PostgreSQL for the upgrade")?;
            self.hooks_after_stop();
        }
        self.supervision.expect_running = false;
        self.supervision.following = None;
        Ok(())
    }

    /// A replica of the old system: its data set aside (kept), the new binaries in use; the next loop creates it
    /// again from the upgraded leader with them.
    pub(super) async fn upgrade_set_aside(&mut self, bin_dir: &Path, view: &ClusterView) -> Result<(), HaError> {
        let id = view
            .upgrade
            .as_ref()
            .map(|(s, _)| s.id)
            .unwrap_or_else(crate::cluster::store::unix_ms);
        self.upgrade_stop().await?;
        let major = check_new_binaries(bin_dir, None).step("the upgrade's binaries on this replica")?;
        self.pg
            .set_aside(id)
            .await
            .step("setting the old data directory aside")?;
        self.pg
            .use_bin_dir(bin_dir, major)
            .step("switching to the upgrade's binaries")?;
        self.clear_rewind_marker();
        self.restart_stall_clock();
        self.supervision.upgrade = Some(UpgradeReport {
            id,
            step: UpgradeStep::RecreateReplicas,
            what: format!("old data set aside; creating the replica again on PostgreSQL {major}"),
            outcome: Outcome::Done,
            system_identifier: None,
        });
        Ok(())
    }
}
