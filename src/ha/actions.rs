//! Applying the HA decisions to PostgreSQL and the DCS: one method per action, each logging what it changed.

use super::error::{HaError, Step};
use std::time::Duration;

use super::decide::Action;
use super::hooks::HookRole;
use super::race::{should_take_leader, Candidate};
use super::runner::DbNode;
use super::sync;
use crate::cluster::model::{ClusterView, HistoryEntry, NodeCommand, PgState};
use crate::cluster::store::unix_ms;
use crate::postgres::{slot_name, ConfRole, StopMode};
use crate::proto::ha_client::HaClient;
use crate::proto::WalPositionRequest;

/// Budget of one peer's answer in the leader race.
const RACE_RPC_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a start waits for PostgreSQL to accept connections before the loop moves on (it then sees it starting).
const START_WAIT: Duration = Duration::from_secs(2);

impl DbNode {
    /// Applies one action.
    pub(super) async fn apply(&mut self, action: Action, view: &ClusterView) -> Result<(), HaError> {
        match action {
            Action::Wait => Ok(()),
            Action::RefuseForeignData { expected, found } => {
                if !self.settings.allow_wipe_foreign_data {
                    return Err(HaError::Refused(format!(
                        "refusing to use {}: it holds system {found}, the cluster is system {expected} \
                         (set postgresql.allow_wipe_foreign_data = true to replace it with a clone)",
                        self.pg.data_dir().display()
                    )));
                }
                tracing::warn!("wiping a data directory of another cluster (postgresql.allow_wipe_foreign_data)");
                self.pg.wipe_data_dir().await.step("wiping the foreign data directory")
            }
            Action::Initialize => match self.bootstrap_standby(view) {
                Some(remote) => self.initialize_standby(&remote).await,
                None => self.initialize().await,
            },
            Action::FollowRemote { remote } => self.follow_remote(&remote).await,
            Action::LeadStandby => self.lead_standby(view).await,
            Action::DemoteToStandby => self.demote_to_standby(view).await,
            Action::PromoteCluster => {
                self.promote(view, "promote-cluster: the standby cluster became a primary cluster")
                    .await
            }
            Action::Clone { host, port } => self.clone_from(&host, port, view).await,
            Action::RestoreWithoutLeader => self.restore_without_leader(view).await,
            Action::StartReplica { upstream } => {
                let former_primary = matches!(
                    self.pg.data_state().await?,
                    crate::postgres::DataState::Initialized {
                        standby_signal: false,
                        ..
                    }
                );
                if upstream.is_none() && former_primary {
                    // Standing by to race, it may be outrun by a replica whose history forks from ours.
                    std::fs::write(self.rewind_marker(), b"").step("marking the rewind as pending")?;
                }
                self.start_replica(upstream).await
            }
            Action::StartPrimary => self.start_primary().await,
            Action::Follow { host, port } => self.follow(&host, port, view).await,
            Action::Rewind { host, port } => self.rewind(&host, port).await,
            Action::Race => self.race(view).await,
            Action::TakeLeader => {
                let lease = self.session.lease().step("no session")?;
                if self.store().take_leader(&self.settings.name, lease).await? {
                    tracing::info!(
                        event = "leader_key_taken",
                        "took the leader key for the running primary"
                    );
                    self.guard_primary().await?;
                }
                Ok(())
            }
            Action::ReclaimLeader { mod_revision } => {
                let lease = self.session.lease().step("no session")?;
                if self
                    .store()
                    .reclaim_leader(&self.settings.name, lease, mod_revision)
                    .await?
                {
                    tracing::info!("reclaimed our leader key for this session");
                }
                Ok(())
            }
            Action::Lead => self.lead(view).await,
            Action::HandOver { candidate } => self.hand_over(&candidate).await,
            Action::TakeOver => {
                let lease = self.session.lease().step("no DCS session")?;
                let handed_over = view.switchover.as_ref().is_some_and(|sw| sw.leader.is_some());
                if !handed_over && view.sync_members().is_some() {
                    // A manual failover with no leader handing over: in synchronous mode the candidate must know
                    // it holds every acknowledged commit, like a race winner.
                    if let Err(why) = self.may_take_leader(view).await? {
                        self.note_race_lost("failover candidate, but not taking the leader key", &why);
                        return Ok(());
                    }
                }
                if self.take_leader_key(view, lease).await? {
                    tracing::info!(
                        event = "leader_key_taken",
                        "took the leader key as the switchover/failover candidate"
                    );
                    self.promote(view, "switchover/failover candidate").await?;
                }
                Ok(())
            }
            Action::Promote => self.promote(view, "won the leader race").await,
            Action::Demote => self.demote().await,
            Action::StepDown => self.step_down().await,
            Action::Reclone { host, port } => {
                tracing::warn!(event = "reclone", source = %format!("{host}:{port}"), "re-cloning a standby that cannot rejoin");
                crate::metrics::ha::HA.reclones.inc();
                if self.pg.postmaster_pid().is_some() {
                    self.pg.stop(StopMode::Immediate, self.settings.start_timeout).await?;
                    self.hooks_after_stop();
                }
                self.supervision.expect_running = false;
                self.supervision.following = None;
                self.pg
                    .wipe_data_dir()
                    .await
                    .step("wiping the data directory for a re-clone")?;
                self.clear_rewind_marker();
                self.restart_stall_clock();
                Ok(())
            }
            Action::UpgradeStop => self.upgrade_stop().await,
            Action::UpgradeSetAside { bin_dir } => self.upgrade_set_aside(&bin_dir, view).await,
            Action::NeedsReinit => {
                self.supervision.activity = Some(PgState::NeedsReinit);
                Ok(())
            }
            Action::RunCommand { command, mod_revision } => {
                match self.execute(&command, view).await {
                    Ok(what) => {
                        tracing::info!(event = "command_done", command = ?command, "operator command done: {what}")
                    }
                    Err(e) => {
                        tracing::warn!(event = "command_failed", command = ?command, "operator command failed: {}", e.chain())
                    }
                }
                // Done or failed, the command is consumed: a bad one must not run again on every loop.
                self.store().complete_command(&self.settings.name, mod_revision).await?;
                Ok(())
            }
            Action::DropCommand { mod_revision, why } => {
                tracing::info!(event = "command_dropped", "operator command not carried out: {why}");
                self.store().complete_command(&self.settings.name, mod_revision).await?;
                Ok(())
            }
            Action::ReleaseLeader => {
                self.store().delete_leader(&self.settings.name, None).await?;
                self.session.disarm_fence()?;
                self.supervision.expect_running = false;
                tracing::warn!("released the leader key: another member may be promoted now");
                Ok(())
            }
            Action::DeleteStaleLeader { mod_revision } => {
                self.store()
                    .delete_leader(&self.settings.name, Some(mod_revision))
                    .await?;
                Ok(())
            }
        }
    }

    /// Bootstraps the cluster, or resumes a bootstrap of ours that stopped half-way (every step is idempotent):
    /// a failure between the claim and its completion must not leave the cluster waiting forever.
    async fn initialize(&mut self) -> Result<(), HaError> {
        if !self.store().claim_initialize(&self.settings.name).await? {
            return Ok(()); // another member won the race
        }
        let lease = self.session.lease().step("no DCS session")?;
        self.supervision.activity = Some(PgState::Initializing);
        self.bootstrap_sync_spec();
        let mut restored = false;
        if matches!(self.pg.data_state().await?, crate::postgres::DataState::Missing) {
            if let Some(restore) = self.pg.settings().creation.bootstrap.clone() {
                tracing::info!(method = %restore.method, "won the initialize race: restoring a backup");
                self.pg
                    .restore_bootstrap(&restore, self.settings.start_timeout)
                    .await
                    .step("bootstrap from a backup")?;
                restored = true;
            } else {
                tracing::info!("won the initialize race: running initdb");
                self.pg.initdb().await.step("initdb")?;
            }
        } else {
            tracing::info!("taking over the existing data directory (an interrupted bootstrap, or adoption)");
        }
        self.pg
            .write_config(&ConfRole::Primary)
            .await
            .step("writing the primary configuration")?;
        if self.pg.postmaster_pid().is_none() {
            // Bootstrap needs the server ready (roles, the system identifier), and no other primary can exist yet.
            self.supervision.activity = Some(PgState::Starting);
            self.pg
                .start(self.settings.start_timeout)
                .await
                .step("starting PostgreSQL")?;
            self.supervision.expect_running = true;
            self.hooks_after_start(HookRole::Primary, false);
        } else if restored {
            self.supervision.expect_running = true;
            self.hooks_after_start(HookRole::Primary, false);
        } else {
            // Adopting a running instance: apply pgha's configuration without interrupting it; parameters that
            // need a restart show up as pending_restart (`pgha ctl restart --pending`).
            self.pg.reload().await.step("reloading the adopted PostgreSQL")?;
            self.supervision.expect_running = true;
            self.hooks.announced_role = Some(HookRole::Primary);
            self.hooks_after_reload();
        }
        self.pg.create_roles().await.step("creating the replication role")?;
        self.take_bootstrap_leader(lease).await?;
        self.guard_primary().await?;
        let status = self.pg.status().await?;
        self.store()
            .complete_initialize(status.system_identifier, &self.settings.bootstrap_config)
            .await?;
        tracing::info!(
            system_identifier = status.system_identifier,
            "cluster initialized: this node is the primary"
        );
        Ok(())
    }

    /// A bootstrap's leader key for our session (already ours when a resumed bootstrap took it before).
    pub(super) async fn take_bootstrap_leader(&mut self, lease: i64) -> Result<(), HaError> {
        let view = self.store().view().await?;
        let ours = view
            .leader
            .as_ref()
            .is_some_and(|l| l.name == self.settings.name && l.lease == lease);
        if !ours && !self.store().take_leader(&self.settings.name, lease).await? {
            return Err(HaError::Refused("the leader key was taken during bootstrap".into()));
        }
        Ok(())
    }

    async fn clone_from(&mut self, host: &str, port: u16, view: &ClusterView) -> Result<(), HaError> {
        self.supervision.activity = Some(PgState::CreatingReplica);
        self.clear_rewind_marker();
        let method = self
            .publishing_clone_progress(view, self.pg.create_replica(host, port))
            .await
            .step("creating the replica")?;
        tracing::info!(event = "replica_created", method = %method, source = %format!("{host}:{port}"), "replica data directory created");
        self.pg
            .follow_data_dir_version()
            .step("PostgreSQL binaries for the cloned data directory")?;
        self.stall.rewound = false;
        self.start_replica(Some((host.to_string(), port))).await
    }

    /// No leader and no data: restore by a `no_leader` method, then start as a replica without a leader (it races).
    async fn restore_without_leader(&mut self, view: &ClusterView) -> Result<(), HaError> {
        self.supervision.activity = Some(PgState::CreatingReplica);
        self.clear_rewind_marker();
        let method = self
            .publishing_clone_progress(view, self.pg.create_replica_without_leader())
            .await
            .step("creating the replica without a leader")?;
        tracing::info!(event = "replica_created", method = %method, source = "no leader", "replica data directory created without a leader");
        self.pg
            .follow_data_dir_version()
            .step("PostgreSQL binaries for the restored data directory")?;
        self.stall.rewound = false;
        // The lag rule of the race compares with the lost leader's last position: the archive holds all that is
        // left of it, and a restore that ends short of it (the last, unarchived WAL) must still be able to lead.
        self.last_leader_lsn = None;
        self.start_replica(None).await
    }

    fn replica_role(&self, upstream: &Option<(String, u16)>) -> ConfRole {
        match upstream {
            Some((host, port)) => ConfRole::Replica {
                primary_host: host.clone(),
                primary_port: *port,
                slot: Some(slot_name(&self.settings.name)),
            },
            None => ConfRole::Standby,
        }
    }

    /// Starts PostgreSQL, waiting at most [`START_WAIT`] for it to accept connections: a standby that cannot become
    /// consistent must not hold the loop, which re-points, rewinds or re-clones it.
    /// `role` and `restart` choose the callback (`on_start`, `on_restart`, `on_role_change`).
    pub(super) async fn start(&mut self, role: HookRole, restart: bool) -> Result<(), HaError> {
        self.supervision.activity = Some(PgState::Starting);
        let result = self.pg.start_bounded(START_WAIT).await;
        if let Err(e) = &result {
            self.supervision.activity = Some(PgState::StartFailed);
            tracing::error!(event = "pg_start_failed", "PostgreSQL failed to start: {e}");
        }
        result.step("starting PostgreSQL")?;
        self.supervision.expect_running = true;
        self.supervision.crashed_since = None;
        self.restart_stall_clock();
        self.hooks_after_start(role, restart);
        Ok(())
    }

    async fn start_replica(&mut self, upstream: Option<(String, u16)>) -> Result<(), HaError> {
        self.pg
            .write_config(&self.replica_role(&upstream))
            .await
            .step("writing the replica configuration")?;
        self.start(HookRole::Replica, false).await?;
        tracing::info!(event = "start_replica", upstream = ?upstream, "PostgreSQL started as a replica");
        self.supervision.following = upstream;
        self.supervision.standby_of = None;
        Ok(())
    }

    async fn start_primary(&mut self) -> Result<(), HaError> {
        self.pg
            .write_config(&ConfRole::Primary)
            .await
            .step("writing the primary configuration")?;
        // Armed before the postmaster exists: it must never accept a write unguarded.
        self.guard_primary().await?;
        self.start(HookRole::Primary, false).await?;
        self.supervision.following = None;
        self.supervision.standby_of = None;
        tracing::info!(event = "start_primary", "PostgreSQL started as the primary");
        Ok(())
    }

    /// Re-points this standby at `host:port` (the leader, or the `replicatefrom` member); the log line carries the
    /// decision's reason (why this upstream: the leader, the tag, or why the tag's member cannot serve).
    async fn follow(&mut self, host: &str, port: u16, view: &ClusterView) -> Result<(), HaError> {
        let upstream = Some((host.to_string(), port));
        if self.pg.write_config(&self.replica_role(&upstream)).await? {
            // primary_conninfo is reloadable since PostgreSQL 13: no restart.
            self.pg.reload().await.step("reloading PostgreSQL")?;
            self.hooks_after_reload();
        }
        self.supervision.following = upstream;
        self.supervision.standby_of = None;
        let member = self.upstream_name(view).unwrap_or_else(|| "?".into());
        let leader = view.leader.as_ref().is_some_and(|l| l.name == member);
        tracing::info!(
            event = "follow",
            upstream = %format!("{host}:{port}"),
            member = %member,
            cascading = !leader,
            reason = %self.last_reason,
            "replica now streams from {member}{}",
            if leader { " (the leader)" } else { "" }
        );
        self.restart_stall_clock();
        Ok(())
    }

    async fn rewind(&mut self, host: &str, port: u16) -> Result<(), HaError> {
        if self.pg.postmaster_pid().is_some() {
            self.pg.stop(StopMode::Fast, self.settings.start_timeout).await?;
            self.hooks_after_stop();
        }
        self.supervision.expect_running = false;
        self.stall.rewound = true;
        self.restart_stall_clock();
        tracing::info!(event = "rewind", source = %format!("{host}:{port}"), "rewinding from the leader");
        crate::metrics::ha::HA.rewinds.inc();
        match self.pg.rewind(host, port, self.settings.start_timeout).await {
            Ok(()) => {
                self.clear_rewind_marker();
                self.start_replica(Some((host.to_string(), port))).await
            }
            Err(e) if crate::postgres::replication::rewind_source_unavailable(&e.to_string()) => {
                // The leader was not reachable or not ready: retry later, never wipe for that.
                Err(e).step("pg_rewind could not reach the leader (retrying)")
            }
            Err(e) if self.settings.rewind_fallback_reinit => {
                tracing::warn!(
                    "pg_rewind failed ({e}): re-cloning from the leader (postgresql.rewind_fallback_reinit)"
                );
                crate::metrics::ha::HA.reclones.inc();
                self.pg
                    .wipe_data_dir()
                    .await
                    .step("wiping the data directory for a re-clone")?;
                self.clear_rewind_marker();
                Ok(())
            }
            Err(e) => Err(e).step("pg_rewind (no fallback configured)"),
        }
    }

    /// The WAL positions of the members that answer (running PostgreSQL only), asked live over gRPC, all at once:
    /// a cut-off peer costs one [`RACE_RPC_TIMEOUT`], not one per peer after it.
    async fn peer_positions(&self, view: &ClusterView) -> Vec<Candidate> {
        let asks = view.members.values().filter(|m| m.name != self.settings.name).filter_map(|m| {
            let channel = self.dcs.channel(&m.api_addr).ok()?;
            let peer = m.name.clone();
            Some(async move {
                let mut req = tonic::Request::new(WalPositionRequest {});
                req.set_timeout(RACE_RPC_TIMEOUT);
                match tokio::time::timeout(RACE_RPC_TIMEOUT, HaClient::new(channel).wal_position(req)).await {
                    Ok(Ok(resp)) => {
                        let r = resp.into_inner();
                        r.running.then_some(Candidate {
                            name: r.name,
                            lsn: r.lsn,
                            failover_priority: r.failover_priority,
                            nofailover: r.nofailover,
                        })
                    }
                    _ => {
                        tracing::debug!(peer = %peer, "no WAL position from peer: it does not take part in the race");
                        None
                    }
                }
            })
        });
        futures::future::join_all(asks).await.into_iter().flatten().collect()
    }

    /// Whether we may be promoted: in synchronous mode only a member of the `sync` key that heard from enough of
    /// them, and the most advanced of them; otherwise the most advanced eligible member within the lag limit.
    async fn may_take_leader(&self, view: &ClusterView) -> Result<Result<u64, String>, HaError> {
        let own = self.pg.status().await.step("reading our WAL position")?;
        let me = Candidate {
            name: self.settings.name.clone(),
            lsn: own.wal_position(),
            failover_priority: self.settings.failover_priority,
            nofailover: self.settings.nofailover,
        };
        let mut peers = self.peer_positions(view).await;
        let sync_key = view.sync_members();
        if let Some(key) = sync_key {
            let answered: Vec<&str> = peers.iter().map(|p| p.name.as_str()).collect();
            if let Err(why) = sync::may_promote(Some(key), &me.name, &answered) {
                return Ok(Err(why));
            }
            // Only the synchronous members compete: they hold every acknowledged commit, an asynchronous standby
            // that received more (unacknowledged) WAL cannot be promoted anyway.
            peers.retain(|p| key.members.contains(&p.name));
        }
        // A synchronous member holds every acknowledged commit: its lag behind unacknowledged WAL does not matter.
        let max_lag = match sync_key {
            Some(_) => u64::MAX,
            None => self.config.maximum_lag_on_failover,
        };
        Ok(should_take_leader(&me, &peers, self.last_leader_lsn, max_lag).map(|()| me.lsn))
    }

    /// Logs why this member does not take the free key, once per reason (the race runs every loop, and the reason's
    /// numbers change on every attempt).
    fn note_race_lost(&mut self, what: &str, why: &str) {
        let kind = why.split(" (").next().unwrap_or(why);
        if matches!(self.race_log.failed(kind, why), crate::retry::LogNow::Failing { .. }) {
            tracing::info!(event = "race_lost", "{what}: {why}");
        }
    }

    async fn race(&mut self, view: &ClusterView) -> Result<(), HaError> {
        let lease = self.session.lease().step("no DCS session")?;
        let lsn = match self.may_take_leader(view).await? {
            Ok(lsn) => lsn,
            Err(why) => {
                self.note_race_lost("not taking the leader key", &why);
                return Ok(());
            }
        };
        if self.take_leader_key(view, lease).await? {
            tracing::info!(event = "race_won", lsn = %crate::postgres::lsn_to_string(lsn), "won the leader race");
            self.promote(view, "won the leader race after the leader key expired")
                .await?;
        }
        Ok(())
    }

    async fn promote(&mut self, view: &ClusterView, reason: &str) -> Result<(), HaError> {
        if view.config.standby_cluster.is_some() {
            // A standby cluster's leader follows the remote (next loop: `standby_cluster::decide`), never promotes.
            tracing::info!("standby cluster: took the leader key as its standby leader, not promoting");
            return Ok(());
        }
        if !self.pre_promote_allows(view).await? {
            return Ok(());
        }
        let before = self.pg.status().await.ok();
        // Replicas follow the leader key, not the promotion: with their slots here they stream at once.
        match self.pg.create_slots(&self.member_slots(view)).await {
            Ok(created) => self.record_slots(&created, &[]),
            Err(e) => tracing::warn!("creating replication slots before the promotion failed (continuing): {e}"),
        }
        self.name_promotion_standbys(view).await;
        // No WAL receiver while PostgreSQL leaves recovery (one reload, with the standbys named above): after a failed
        // connection attempt (to the old primary, stopped or dead) the startup process sleeps
        // wal_retrieve_retry_interval without looking at the promote request, and a request that lands while the WAL
        // receiver starts is seen only after that sleep (measured: ~190 ms in 3 of 5 switchovers). Every WAL record
        // the old primary sent is already flushed here (a clean stop waits for it) or lost with it.
        self.supervision.following = None;
        self.apply_parameters().await;
        // Guarded before it can accept a write, whatever happens to the promotion's polling below.
        self.guard_primary().await?;
        self.pg
            .promote(self.settings.start_timeout)
            .await
            .step("promoting PostgreSQL")?;
        self.supervision.following = None;
        self.supervision.standby_of = None;
        self.clear_rewind_marker();
        self.hooks_after_promote();
        let after = self.pg.status().await?;
        tracing::info!(
            event = "promote",
            timeline = after.timeline,
            "promoted to primary: {reason}"
        );
        crate::metrics::ha::HA.promoted(view.switchover.as_ref().is_some_and(|sw| sw.leader.is_some()));
        // Edges route to the leader once it publishes itself primary: that comes before the bookkeeping below.
        self.supervision.last_status = Some(after.clone());
        self.publish(view).await;
        self.checkpoint_new_timeline(&after).await;
        // A switchover or failover request is fulfilled (or overtaken) by any promotion.
        if let Err(e) = self.store().delete_switchover().await {
            tracing::warn!("clearing the switchover request failed: {e}");
        }
        let entry = HistoryEntry {
            timeline: after.timeline,
            lsn: before
                .as_ref()
                .map(crate::postgres::PgStatus::wal_position)
                .unwrap_or(0),
            reason: reason.to_string(),
            unix_ms: unix_ms(),
            new_leader: self.settings.name.clone(),
        };
        if let Err(e) = self.store().append_history(entry).await {
            tracing::warn!("recording the promotion in the history failed: {e}");
        }
        Ok(())
    }

    /// Until the last checkpoint is on the current timeline (right after a promotion, or after a pgha restart that
    /// interrupted it), keeps one CHECKPOINT running in the background and logs how it ended: former primaries wait
    /// for it before pg_rewind, clients do not.
    async fn checkpoint_new_timeline(&mut self, status: &crate::postgres::PgStatus) {
        if let Some(task) = self.checkpoint_after_promote.take_if(|t| t.is_finished()) {
            match task.await {
                Ok(Ok(())) => {
                    tracing::info!(
                        timeline = status.timeline,
                        "first checkpoint on the new timeline done: former primaries may pg_rewind now"
                    );
                    // `status` may predate it: look again next loop rather than start a second one.
                    return;
                }
                Ok(Err(e)) => tracing::warn!("checkpoint after the promotion failed (retrying): {e}"),
                Err(e) => tracing::warn!("checkpoint after the promotion stopped (retrying): {e}"),
            }
        }
        let behind =
            !status.in_recovery && status.checkpoint_timeline != 0 && status.checkpoint_timeline < status.timeline;
        if behind && self.checkpoint_after_promote.is_none() {
            self.checkpoint_after_promote = Some(self.pg.checkpoint_in_background());
        }
    }

    pub(super) fn clear_rewind_marker(&self) {
        if let Err(e) = std::fs::remove_file(self.rewind_marker()) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("removing the rewind marker failed: {e}");
            }
        }
    }

    /// Makes sure the fencing process guards this primary (or the primary about to start or be promoted) and the
    /// fence deadline follows our lease. If the fence cannot be armed, PostgreSQL is stopped: a primary never runs
    /// on the HA loop alone.
    pub(super) async fn guard_primary(&mut self) -> Result<(), HaError> {
        let Err(e) = self.arm_fencer() else {
            return Ok(());
        };
        if self.pg.postmaster_pid().is_some() {
            tracing::error!(
                event = "fence_failed",
                "cannot arm the fence ({}): stopping PostgreSQL",
                e.chain()
            );
            match self.pg.stop(StopMode::Immediate, self.settings.start_timeout).await {
                Ok(()) => self.hooks_after_stop(),
                Err(stop) => tracing::error!("stopping the unguarded PostgreSQL failed: {stop}"),
            }
        }
        // It should run and does not: `decide` counts that against primary_start_timeout, then hands the key over.
        self.supervision.expect_running = true;
        let _ = self.session.disarm_fence();
        Err(e).step("cannot arm the fence, so PostgreSQL may not run as the primary")
    }

    /// Writes the deadline, then (re)starts the fencer if it is not running: it exits when it finds no file.
    fn arm_fencer(&mut self) -> Result<(), HaError> {
        self.session.arm_fence().step("writing the fence deadline")?;
        let running = match self.fence.process.as_mut().map(|child| child.try_wait()) {
            Some(Ok(None)) => true,
            Some(Ok(Some(status))) => {
                // It exits by itself when it fenced or its postmaster stopped; otherwise someone killed it.
                tracing::info!(event = "fencer_exited", %status, "the fencing process has exited: starting a new one");
                false
            }
            Some(Err(e)) => {
                tracing::warn!("cannot check the fencing process ({e}): starting a new one");
                false
            }
            None => false,
        };
        if !running {
            let child = tokio::process::Command::new(&self.settings.exe)
                .arg("fence")
                .arg("--deadline-file")
                .arg(&self.settings.fence_file)
                .arg("--pgdata")
                .arg(self.pg.data_dir())
                .process_group(0) // not stopped or killed together with pgha
                .kill_on_drop(false)
                .spawn()
                .step("starting the fencing process")?;
            tracing::info!(event = "fencer_started", pid = child.id(), "fencing process started");
            self.fence.process = Some(child);
        }
        Ok(())
    }

    async fn lead(&mut self, view: &ClusterView) -> Result<(), HaError> {
        self.guard_primary().await?;
        if let Some(status) = self.supervision.last_status.clone() {
            self.checkpoint_new_timeline(&status).await;
        }
        self.ensure_member_slots(view).await?;
        self.manage_sync(view).await.step("synchronous replication")
    }

    /// One physical replication slot per other member, kept `member_slots_ttl_ms` after the member's key is gone;
    /// only slots pgha created are dropped; a slot retaining too much WAL is warned about once.
    pub(super) async fn ensure_member_slots(&mut self, view: &ClusterView) -> Result<(), HaError> {
        if let Err(e) = self.slots.owned.adopt_if_unknown(&self.member_slots(view)) {
            tracing::warn!("cannot write the slot record: {e}");
        }
        let mut wanted = super::slots::kept_member_slots(
            &self.settings.name,
            view.members.keys().map(String::as_str),
            &self.slots.member_seen,
            std::time::Instant::now(),
            Duration::from_millis(self.config.member_slots_ttl_ms),
        );
        wanted.extend(self.config.physical_slots());
        wanted.sort();
        wanted.dedup();
        let changes = self
            .pg
            .ensure_slots(&wanted, &self.slots.owned.names())
            .await
            .step("managing replication slots")?;
        self.record_slots(&changes.created, &changes.dropped);
        self.advance_cascade_slots(view).await;
        self.ensure_logical_slots().await;
        let threshold = self.config.slot_retained_warn_bytes;
        if let Ok(report) = self.pg.slot_report().await {
            crate::metrics::ha::HA.slots_seen(&report);
            self.slots.published = super::slots::published(&report, &self.slots.owned.names());
            for (slot, bytes) in super::slots::newly_over(&report, threshold, &mut self.slots.warned) {
                tracing::warn!(
                    event = "slot_retains_wal",
                    slot,
                    retained_bytes = bytes,
                    "replication slot {slot} retains {} MiB of WAL (slot_retained_warn_bytes {} MiB): its consumer \
                     is away or behind; drop the slot or lower member_slots_ttl_ms if it will not come back",
                    bytes >> 20,
                    threshold >> 20
                );
            }
        }
        Ok(())
    }

    /// The dynamic config's logical slots on this primary. Creating one waits for the transactions running at the
    /// time, so it runs in a task beside the HA loop, one slot at a time; a slot that cannot be made is logged once
    /// per state change, never failing the loop (the physical slots and the lease matter more).
    async fn ensure_logical_slots(&mut self) {
        let wanted = self.config.logical_slots();
        if let Some(done) = self.slots.logical_create.take_if(|t| t.is_finished()) {
            let outcome = match done.await {
                Ok((slot, Ok(()))) => {
                    self.record_slots(std::slice::from_ref(&slot), &[]);
                    self.slots.logical_log.succeeded()
                }
                Ok((slot, Err(e))) => self
                    .slots
                    .logical_log
                    .failed(&format!("creating {slot}"), &format!("logical slot {slot}: {e}")),
                Err(e) => self
                    .slots
                    .logical_log
                    .failed("task", &format!("the slot creation task failed: {e}")),
            };
            crate::retry::log_transition("permanent logical slots", outcome);
        }
        let plan = match self.pg.logical_slot_plan(&wanted, &self.slots.owned.names()).await {
            Ok(plan) => plan,
            Err(e) => {
                return crate::retry::log_transition(
                    "permanent logical slots",
                    self.slots.logical_log.failed("reading", &e.to_string()),
                )
            }
        };
        // A configured slot that exists as configured is pgha's to drop once it leaves the config (it may have been
        // synchronized here from the previous primary rather than created).
        let managed: Vec<String> = wanted
            .iter()
            .map(|w| w.name.clone())
            .filter(|n| !plan.create.iter().any(|c| c.name == *n) && !plan.conflicts.iter().any(|(c, _)| c == n))
            .collect();
        let (dropped, drop_failed) = self.pg.drop_logical_slots(&plan.drop).await;
        self.record_slots(&managed, &dropped);
        let outcome = match plan.conflicts.first().or(drop_failed.first()) {
            Some((slot, why)) => self
                .slots
                .logical_log
                .failed(&format!("slot {slot}"), &format!("logical slot {slot}: {why}")),
            None if plan.create.is_empty() => self.slots.logical_log.succeeded(),
            None => crate::retry::LogNow::Quiet,
        };
        crate::retry::log_transition("permanent logical slots", outcome);
        if let (None, Some(slot)) = (&self.slots.logical_create, plan.create.first().cloned()) {
            let pg = self.pg.clone();
            self.slots.logical_create = Some(tokio::spawn(async move {
                let result = pg.create_logical_slot(&slot).await;
                (slot.name, result)
            }));
        }
    }

    /// On a standby: drops the permanent logical slots this node kept from its time as primary (see
    /// `Postgres::drop_stale_logical_slots`); failures are left for a later loop.
    pub(super) async fn drop_stale_logical_slots(&mut self) {
        let names: Vec<String> = self.config.logical_slots().into_iter().map(|s| s.name).collect();
        if names.is_empty() || self.pg.postmaster_pid().is_none() {
            return;
        }
        match self.pg.drop_stale_logical_slots(&names).await {
            Ok(dropped) => self.record_slots(&[], &dropped),
            Err(e) => tracing::debug!("former primary's logical slots not dropped yet: {e}"),
        }
    }

    pub(super) fn record_slots(&mut self, created: &[String], dropped: &[String]) {
        if let Err(e) = self.slots.owned.record(created, dropped) {
            tracing::warn!("cannot write the slot record: {e}");
        }
    }

    fn member_slots(&self, view: &ClusterView) -> Vec<String> {
        view.members
            .keys()
            .filter(|n| **n != self.settings.name)
            .map(|n| slot_name(n))
            .collect()
    }

    /// Runs an operator command (`ctl restart | reload | reinit`); returns what was done.
    pub(super) async fn execute(&mut self, command: &NodeCommand, view: &ClusterView) -> Result<&'static str, HaError> {
        let running = self.pg.postmaster_pid().is_some();
        match command {
            NodeCommand::Reload if running => {
                self.pg.reload().await.step("reloading PostgreSQL")?;
                self.hooks_after_reload();
                Ok("configuration reloaded")
            }
            NodeCommand::Reload => Ok("PostgreSQL is not running: nothing to reload"),
            NodeCommand::Restart { pending_only: true }
                if !self.supervision.last_status.as_ref().is_some_and(|s| s.pending_restart) =>
            {
                Ok("no parameter change pending: not restarted")
            }
            NodeCommand::Restart { .. } => {
                let primary = self.supervision.last_status.as_ref().is_some_and(|s| !s.in_recovery);
                if running {
                    self.pg
                        .stop(StopMode::Fast, self.settings.start_timeout)
                        .await
                        .step("stopping PostgreSQL")?;
                }
                if primary {
                    // `decide` let this restart through only with a valid lease; the fencer exited with the old
                    // postmaster, so a new one waits for the new postmaster before it starts.
                    self.guard_primary().await?;
                }
                self.start(HookRole::from_recovery(!primary), true).await?;
                Ok("PostgreSQL restarted")
            }
            NodeCommand::Reinit => {
                if view.leader.as_ref().is_some_and(|l| l.name == self.settings.name) {
                    return Err(HaError::Refused("refusing to reinit the leader".into()));
                }
                if running {
                    self.pg
                        .stop(StopMode::Immediate, self.settings.start_timeout)
                        .await
                        .step("stopping PostgreSQL")?;
                    self.hooks_after_stop();
                }
                self.supervision.expect_running = false;
                self.supervision.following = None;
                self.pg.wipe_data_dir().await.step("wiping the data directory")?;
                Ok("data directory wiped: the replica is cloned again from the leader")
            }
            NodeCommand::UpgradeCheck { id, bin_dir } => self.upgrade_check(*id, bin_dir, view).await,
            NodeCommand::Upgrade { id, bin_dir, mode } => self.upgrade_leader(*id, bin_dir, *mode).await,
        }
    }

    /// Rewrites the configuration of a running PostgreSQL after the dynamic parameters changed, and reloads it;
    /// parameters that need a restart then show up as `pending_restart`.
    pub(super) async fn apply_parameters(&mut self) {
        let Some(status) = self
            .supervision
            .last_status
            .as_ref()
            .filter(|_| self.pg.postmaster_pid().is_some())
        else {
            return;
        };
        let role = if status.in_recovery {
            self.replica_role(&self.supervision.following)
        } else {
            ConfRole::Primary
        };
        match self.pg.write_config(&role).await {
            Ok(true) => match self.pg.reload().await {
                Ok(()) => {
                    tracing::info!("dynamic PostgreSQL parameters applied (configuration reloaded)");
                    self.hooks_after_reload();
                }
                Err(e) => tracing::warn!("reloading after a parameter change failed: {e}"),
            },
            Ok(false) => {}
            Err(e) => tracing::warn!("writing the configuration after a parameter change failed: {e}"),
        }
    }

    /// Planned switchover: the primary checkpoints while still serving (so the shutdown checkpoint is quick), stops
    /// fast (walsenders ship everything to the connected replicas), and releases the key for the candidate.
    async fn hand_over(&mut self, candidate: &str) -> Result<(), HaError> {
        tracing::info!(
            event = "hand_over",
            candidate,
            "switchover: checkpoint, clean stop, hand the leader key over"
        );
        match self.pg.checkpoint().await {
            Ok(()) => tracing::info!(
                event = "hand_over_checkpointed",
                "checkpoint before the switchover done"
            ),
            Err(e) => tracing::warn!("checkpoint before the switchover failed (continuing): {e}"),
        }
        self.pg
            .stop(StopMode::Fast, self.settings.start_timeout)
            .await
            .step("stopping PostgreSQL for the switchover")?;
        tracing::info!(event = "hand_over_stopped", "PostgreSQL stopped for the switchover");
        self.hooks_after_stop();
        self.session.disarm_fence()?;
        self.supervision.expect_running = false;
        self.supervision.following = None;
        self.store().delete_leader(&self.settings.name, None).await?;
        tracing::info!(
            event = "leader_key_released",
            candidate,
            "leader key released for the switchover"
        );
        Ok(())
    }

    /// Our lease ran out by our own clock: nobody can have been promoted yet, so drain first (fast shutdown: the
    /// connected standbys receive every WAL record) and escalate to an immediate stop at the fence instant, like the
    /// fencer would.
    pub(super) async fn step_down(&mut self) -> Result<(), HaError> {
        let drain = self
            .session
            .fence_at()
            .map(|at| at.saturating_duration_since(std::time::Instant::now()))
            .unwrap_or_default();
        tracing::warn!(
            event = "step_down",
            drain_ms = drain.as_millis() as u64,
            "stepping down: fast shutdown (standbys receive all WAL), immediate if not done by the fence instant"
        );
        crate::metrics::ha::HA.fencings.inc();
        self.pg.stop_draining(drain).await.step("stopping PostgreSQL")?;
        self.hooks_after_stop();
        self.stopped_leading().await
    }

    /// After PostgreSQL stopped: disarm the fence, forget the upstream, release the leader key if we can.
    async fn stopped_leading(&mut self) -> Result<(), HaError> {
        self.session.disarm_fence()?;
        self.supervision.expect_running = false;
        self.supervision.following = None;
        if let Err(e) = self.store().delete_leader(&self.settings.name, None).await {
            tracing::debug!("leader key not released (it expires with the lease): {e}");
        }
        Ok(())
    }

    async fn demote(&mut self) -> Result<(), HaError> {
        tracing::warn!(
            event = "demote",
            "demoting: immediate stop (client sessions are terminated), then rejoin as a replica"
        );
        crate::metrics::ha::HA.fencings.inc();
        self.pg
            .stop(StopMode::Immediate, Duration::from_secs(10))
            .await
            .step("stopping PostgreSQL")?;
        self.hooks_after_stop();
        self.stopped_leading().await
    }

    /// Clean stop (SIGTERM): a primary checkpoints, stops fast (replicas receive everything), and releases the
    /// leader key at once so a replica takes over without waiting for the TTL.
    pub(super) async fn shutdown(&mut self) {
        let leading = self.session.fence_armed();
        if self.pg.postmaster_pid().is_some() {
            if leading {
                if let Err(e) = self.pg.checkpoint().await {
                    tracing::warn!("checkpoint before stopping failed: {e}");
                }
            }
            match self.pg.stop(StopMode::Fast, self.settings.start_timeout).await {
                Ok(()) => {
                    tracing::info!("PostgreSQL stopped (pgha is shutting down)");
                    self.hooks_after_stop();
                }
                Err(e) => tracing::error!("stopping PostgreSQL failed: {e}"),
            }
        }
        if leading {
            if let Err(e) = self.store().delete_leader(&self.settings.name, None).await {
                tracing::warn!("releasing the leader key failed (it expires with the lease): {e}");
            } else {
                tracing::info!(
                    event = "leader_key_released",
                    "leader key released: a replica takes over now"
                );
            }
        }
        let _ = self.session.disarm_fence();
        self.session.revoke(&self.dcs).await;
        // on_stop (or any callback still running) may end, within callback_timeout_ms.
        self.hooks.callbacks.finish().await;
    }
}
