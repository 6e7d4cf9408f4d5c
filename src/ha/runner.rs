//! The db role's HA loop: every `loop_wait` (and at once on any DCS change) it reads the cluster, looks at the local
//! PostgreSQL, asks `decide` for one action, applies it, and publishes this member's status.
//!
//! Hazards: actions can be slow (basebackup, restart), so the lease is renewed by `session::keep`, not here; the
//! loop also wakes at the lease's step-down instant so a leader that cannot renew demotes on time, and steps down by
//! its own clock even when the DCS cannot be read. A failing loop waits `loop_wait` with backoff (DCS events do not
//! wake it early) and logs each kind of failure once, not once per attempt.

use super::error::{HaError, Step};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::decide::{decide, Action, LocalData, LocalPg, LocalState};
use super::node_parts::{Fence, HookState, SlotKeeping, StallWatch, Supervision, SyncManagement};
use super::session::{self, Session};
use crate::cluster::keys::Keys;
use crate::cluster::model::{ClusterView, DynamicConfig, MemberInfo, PgRole, PgState};
use crate::cluster::store::Store;
use crate::cluster::timing::Timing;
use crate::dcs::client::{DcsClient, WatchMessage};
use crate::postgres::{DataState, PgStatus, Postgres};
use crate::retry::{log_transition, Backoff, FailureLog};

/// How often a leader whose commits wait for a synchronous standby looks for one.
const SYNC_PENDING_POLL: Duration = Duration::from_millis(50);
/// Longest wait between attempts of a failing loop.
const BACKOFF_CAP: Duration = Duration::from_secs(2);

/// Settings of a db node's HA loop (from the config, at the binary's edge).
#[derive(Clone, Debug)]
pub struct DbSettings {
    pub cluster: String,
    pub name: String,
    /// gRPC address of this node (DCS member + Ha service).
    pub api_addr: String,
    /// Address other nodes use to reach this PostgreSQL.
    pub pg_host: String,
    pub pg_port: u16,
    pub nofailover: bool,
    pub failover_priority: i32,
    pub noloadbalance: bool,
    pub tags: BTreeMap<String, String>,
    /// Written to the DCS by the node that initializes the cluster.
    pub bootstrap_config: DynamicConfig,
    pub rewind_fallback_reinit: bool,
    pub allow_wipe_foreign_data: bool,
    pub start_timeout: Duration,
    /// Deadline file of the fencing process (on a tmpfs: `fence::deadline_dir`).
    pub fence_file: PathBuf,
    /// This node's own files beside PostgreSQL's data directory (owned slots, the pending-rewind marker).
    pub state_dir: PathBuf,
    /// The pgha binary (to start `pgha fence`).
    pub exe: PathBuf,
    /// `[postgresql.callbacks]` and `pre_promote` (argv split, timeouts).
    pub hooks: Arc<super::hooks::HookSettings>,
    /// Set when our `pre_promote` vetoes a promotion; shared with the `Ha` service, which then answers racing peers
    /// that this node is not a candidate.
    pub promotion_hold: Arc<super::hooks::PromotionHold>,
}

/// A db node's HA state, in named parts.
pub struct DbNode {
    pub(super) settings: DbSettings,
    pub(super) keys: Keys,
    pub(super) dcs: Arc<DcsClient>,
    pub(super) pg: Arc<Postgres>,
    /// The DCS session (one lease for the member key and, while leading, the leader key).
    pub(super) session: Arc<Session>,
    /// The lease TTL and loop period in force, read by the session keeper.
    pub(super) timing: watch::Sender<Timing>,
    pub(super) config: DynamicConfig,
    /// Last WAL position the leader published while alive (for maximum_lag_on_failover).
    pub(super) last_leader_lsn: Option<u64>,
    pub(super) supervision: Supervision,
    pub(super) stall: StallWatch,
    pub(super) sync: SyncManagement,
    pub(super) slots: SlotKeeping,
    pub(super) fence: Fence,
    pub(super) hooks: HookState,
    /// Why the last leader races were not won (logged once per reason, forgotten once there is no race).
    pub(super) race_log: FailureLog,
    /// The CHECKPOINT started after this node's promotion (pg_rewind of former primaries waits for it).
    pub(super) checkpoint_after_promote: Option<tokio::task::JoinHandle<Result<(), crate::postgres::PgError>>>,
    /// When this process first held a DCS session.
    first_session_at: Option<Instant>,
    pub(super) last_reason: String,
    /// Published for the REST API after every loop.
    rest: crate::api::rest::SharedSnapshot,
}

impl DbNode {
    /// A node; call [`DbNode::run`].
    pub fn new(
        settings: DbSettings,
        dcs: Arc<DcsClient>,
        pg: Arc<Postgres>,
        rest: crate::api::rest::SharedSnapshot,
    ) -> DbNode {
        let config = settings.bootstrap_config.clone();
        let timing = Timing::from_ms(config.ttl_ms, config.loop_wait_ms);
        let session = Session::new(timing.ttl, settings.fence_file.clone());
        let owned = super::slots::OwnedSlots::load(settings.state_dir.join("slots.owned"));
        DbNode {
            hooks: HookState {
                callbacks: super::hook_exec::Callbacks::new(settings.hooks.clone()),
                announced_role: None,
            },
            keys: Keys::new(&settings.cluster),
            settings,
            dcs,
            pg,
            session,
            timing: watch::Sender::new(timing),
            config,
            last_leader_lsn: None,
            supervision: Supervision::default(),
            stall: StallWatch::default(),
            sync: SyncManagement::default(),
            slots: SlotKeeping::new(owned),
            fence: Fence::default(),
            race_log: FailureLog::default(),
            checkpoint_after_promote: None,
            first_session_at: None,
            last_reason: String::new(),
            rest,
        }
    }

    pub(super) fn store(&self) -> Store<'_> {
        Store {
            dcs: &self.dcs,
            keys: &self.keys,
        }
    }

    /// Runs the loop until `token` is cancelled, then hands over cleanly.
    pub async fn run(mut self, token: CancellationToken) {
        let keeper = tokio::spawn(session::keep(
            self.session.clone(),
            self.dcs.clone(),
            self.timing.subscribe(),
            token.clone(),
        ));
        let mut watch = self.dcs.watch(self.keys.root().as_bytes(), true, 0);
        let mut backoff = Backoff::new(Duration::from_millis(self.config.loop_wait_ms), BACKOFF_CAP);
        let mut failures = FailureLog::default();
        loop {
            if let Err(e) = self.step_down_if_lapsed().await {
                tracing::error!(event = "step_down_failed", "stepping down failed: {}", e.chain());
            }
            // A leader's iteration may wait on a DCS that does not answer: it must not outlast the lease.
            let session = self.session.clone();
            let guarded = self.session.fence_armed();
            let result = tokio::select! {
                r = self.iteration() => r,
                _ = session.lapsed(), if guarded => Err(HaError::Refused("the lease ran out during the HA loop".into())),
            };
            match result {
                Ok(()) => {
                    backoff.succeeded();
                    log_transition("HA loop", failures.succeeded());
                }
                Err(e) => {
                    backoff.failed();
                    // The outermost context names what failed; the causes below it may carry changing details.
                    log_transition("HA loop", failures.failed(&e.to_string(), &e.chain()));
                }
            }
            let loop_wait = Duration::from_millis(self.config.loop_wait_ms);
            backoff.set_base(loop_wait, BACKOFF_CAP.max(loop_wait));
            let mut wake = Instant::now() + backoff.delay();
            if self.session.fence_armed() {
                if let Some(at) = self.session.step_down_at() {
                    wake = wake.min(at);
                }
                if self.sync_pending() && backoff.failures() == 0 {
                    wake = wake.min(Instant::now() + SYNC_PENDING_POLL);
                }
            }
            // After a failure only the deadline (or the step-down instant) wakes the loop: DCS events would turn a
            // failing loop into a hot one.
            let failing = backoff.failures() > 0;
            tokio::select! {
                _ = token.cancelled() => break,
                _ = tokio::time::sleep_until(wake.into()) => {}
                _ = self.session.changed(), if !failing => {}
                msg = watch.recv(), if !failing => match msg {
                    Some(WatchMessage::Events(_)) => {}
                    Some(WatchMessage::Compacted { .. }) | None => {
                        watch = self.dcs.watch(self.keys.root().as_bytes(), true, 0);
                    }
                },
            }
        }
        self.shutdown().await;
        keeper.abort();
    }

    /// Invariant 1 must not depend on reading the DCS: a leader whose lease ran out by its own clock stops now.
    async fn step_down_if_lapsed(&mut self) -> Result<(), HaError> {
        if self.session.fence_armed() && !self.session.valid(Instant::now()) {
            self.step_down().await?;
        }
        Ok(())
    }

    async fn iteration(&mut self) -> Result<(), HaError> {
        let _timer = crate::metrics::ha::HA.loop_timer();
        let view = self.store().view().await.step("reading the cluster from the DCS")?;
        if view.config != self.config {
            tracing::info!(config = ?view.config, "dynamic configuration changed");
            self.config = view.config.clone();
        }
        self.timing.send_if_modified(|t| {
            std::mem::replace(t, Timing::from_ms(self.config.ttl_ms, self.config.loop_wait_ms)) != *t
        });
        let now = Instant::now();
        for name in view.members.keys().filter(|n| **n != self.settings.name) {
            self.slots.member_seen.insert(name.clone(), now);
        }
        if let Some(leader) = view.leader_member() {
            if leader.role == PgRole::Primary {
                self.last_leader_lsn = Some(leader.receive_lsn);
            }
        }
        let slot_sync = super::slots::slot_sync(&self.settings.name, &view);
        // Both settings are always set: `|`, not `||`.
        if self.pg.set_dynamic_parameters(&self.config.postgresql_parameters) | self.pg.set_slot_sync(&slot_sync) {
            self.apply_parameters().await;
        }
        match self.follow_ttl_change(&view).await {
            Ok(true) => return Ok(()), // the view names the old lease: decide on a fresh one
            Ok(false) => {}
            Err(e) => tracing::warn!(
                "moving the session to the new TTL failed (retrying next loop): {}",
                e.chain()
            ),
        }
        let local = self.local_state(&view).await?;
        let leading = view
            .leader
            .as_ref()
            .is_some_and(|l| l.name == self.settings.name && Some(l.lease) == local.lease);
        // Not while we bootstrap (or adopt) the cluster: its setup commits with no standby in existence.
        let bootstrapping = view
            .initialize
            .as_ref()
            .is_none_or(|i| i.pending_by(&self.settings.name));
        if !leading && !bootstrapping {
            self.keep_standby_sync_spec().await;
            self.drop_stale_logical_slots().await;
            self.ensure_downstream_slots(&view).await;
        }
        let decision = decide(&view, &local);
        if !matches!(decision.action, Action::Race | Action::TakeOver) {
            self.race_log = FailureLog::default();
        }
        if decision.reason != self.last_reason {
            tracing::info!(event = "decision", action = ?decision.action, "{}", decision.reason);
            self.last_reason = decision.reason.clone();
        }
        if !view.members.contains_key(&self.settings.name) {
            // Publish before a possibly long action (a start that waits for WAL): the leader creates our
            // replication slot only for members it sees, and a restarted replica needs that slot to stream.
            self.publish(&view).await;
        }
        let applied = self.apply(decision.action, &view).await;
        self.supervision.activity = None;
        self.publish(&view).await;
        self.share(view);
        applied
    }

    async fn local_state(&mut self, view: &ClusterView) -> Result<LocalState, HaError> {
        if self.session.lease().is_some() && self.first_session_at.is_none() {
            self.first_session_at = Some(Instant::now());
        }
        let data = match self.pg.data_state().await? {
            DataState::Missing => LocalData::Missing,
            DataState::Initialized {
                system_identifier,
                standby_signal,
                ..
            } => LocalData::Present {
                system_identifier,
                standby: standby_signal,
            },
        };
        let pg = if self.pg.postmaster_pid().is_some() {
            self.supervision.crashed_since = None;
            // Ask the postmaster's own status line first: connecting to a server that is not consistent yet would
            // fork a backend (and log a FATAL line) per attempt.
            // A server that says it accepts connections but does not answer is an error of this loop (paced by
            // the backoff), not a start: an overloaded primary must not count against primary_start_timeout.
            let status = match self.pg.postmaster_state() {
                Some(s) if !s.accepts_connections() => None,
                Some(_) => Some(
                    self.pg
                        .status()
                        .await
                        .step("PostgreSQL accepts connections but does not answer")?,
                ),
                // No status line yet: the postmaster is just starting.
                None => self.pg.status().await.ok(),
            };
            match status {
                Some(s) => {
                    self.supervision.starting_since = None;
                    let in_recovery = s.in_recovery;
                    self.supervision.last_status = Some(s);
                    LocalPg::Running {
                        in_recovery,
                        following: self.supervision.following.clone(),
                    }
                }
                None => {
                    self.supervision.last_status = None;
                    let since = *self.supervision.starting_since.get_or_insert_with(Instant::now);
                    LocalPg::Starting {
                        following: self.supervision.following.clone(),
                        for_ms: since.elapsed().as_millis() as u64,
                    }
                }
            }
        } else {
            self.supervision.starting_since = None;
            self.supervision.last_status = None;
            if self.supervision.expect_running {
                let since = *self.supervision.crashed_since.get_or_insert_with(Instant::now);
                LocalPg::Crashed {
                    for_ms: since.elapsed().as_millis() as u64,
                }
            } else {
                LocalPg::Stopped
            }
        };
        self.track_stall(view, &pg, &data);
        Ok(LocalState {
            stalled_ms: self.stall.since.map(|t| t.elapsed().as_millis() as u64).unwrap_or(0),
            stall_rewound: self.stall.rewound,
            allow_reinit: self.settings.rewind_fallback_reinit,
            name: self.settings.name.clone(),
            data,
            pg,
            lease: self.session.lease(),
            lease_valid: self.session.valid(Instant::now()),
            now_unix_ms: crate::cluster::store::unix_ms(),
            rewind_pending: self.rewind_marker().exists(),
            settled: self
                .first_session_at
                .is_some_and(|t| t.elapsed() >= Duration::from_millis(self.config.ttl_ms)),
            nofailover: self.settings.nofailover,
            replicatefrom: super::cascade::replicatefrom(&self.settings.tags).map(str::to_string),
            promotion_held: self.settings.promotion_hold.held(Instant::now()),
            standby_of: self.supervision.standby_of.clone(),
            restore_without_leader: self.pg.settings().creation.any_without_leader(),
        })
    }

    /// Counts how long this standby has gone without streaming while the leader serves as primary; streaming ends
    /// the stall (and forgets the rewind tried during it).
    fn track_stall(&mut self, view: &ClusterView, pg: &LocalPg, data: &LocalData) {
        let standby = match pg {
            LocalPg::Running { in_recovery, .. } => *in_recovery,
            LocalPg::Starting { .. } => matches!(data, LocalData::Present { standby: true, .. }),
            LocalPg::Stopped | LocalPg::Crashed { .. } => false,
        };
        let leader_serves = view.leader_member().is_some_and(|m| {
            m.name != self.settings.name
                && ((m.role == PgRole::Primary && m.state == PgState::Running)
                    || super::standby_cluster::leader_serves(view))
        });
        // A standby that is not consistent yet answers no query, but its WAL receiver's title says it streams.
        let streaming = match pg {
            LocalPg::Starting { .. } => self
                .pg
                .postmaster_pid()
                .is_some_and(crate::postgres::walreceiver_streaming),
            _ => self
                .supervision
                .last_status
                .as_ref()
                .is_some_and(PgStatus::is_streaming),
        };
        let receiver = self
            .supervision
            .last_status
            .as_ref()
            .and_then(|s| s.wal_receiver.as_ref());
        let (streaming, high) = super::stall::really_streaming(
            streaming,
            receiver.and_then(|w| w.received_tli),
            view.leader_member().map(|m| m.timeline),
            receiver.and_then(|w| w.flushed_lsn),
            self.stall.high_lsn,
        );
        self.stall.high_lsn = high;
        if streaming {
            self.stall.rewound = false;
        }
        if streaming || !standby || !leader_serves {
            self.stall.since = None;
        } else {
            self.stall.since.get_or_insert_with(Instant::now);
        }
    }

    /// A new attempt to make this standby stream starts now (re-pointed, restarted, rewound or cloned).
    pub(super) fn restart_stall_clock(&mut self) {
        self.stall.since = None;
        self.stall.high_lsn = None;
    }

    /// Present while this node, a former primary, runs as a standby that has not been rewound from a leader yet
    /// (kept on disk: a pgha restart must not forget it).
    pub(super) fn rewind_marker(&self) -> PathBuf {
        self.settings.state_dir.join("rewind.pending")
    }

    /// The member this standby is configured to stream from, found by its address in `view`.
    pub(super) fn upstream_name(&self, view: &ClusterView) -> Option<String> {
        let (host, port) = self.supervision.following.as_ref()?;
        view.members
            .values()
            .find(|m| m.name != self.settings.name && m.pg_host == *host && m.pg_port == *port)
            .map(|m| m.name.clone())
    }

    /// Hands this loop's picture to the REST API.
    fn share(&self, view: ClusterView) {
        crate::metrics::ha::HA.lease_deadline(self.session.step_down_at());
        crate::metrics::ha::HA.leader_seen(view.leader.as_ref().map(|l| l.name.as_str()));
        let lease = self.session.lease();
        let holds_leader = view
            .leader
            .as_ref()
            .is_some_and(|l| l.name == self.settings.name && Some(l.lease) == lease);
        let snapshot = crate::api::health::NodeSnapshot {
            name: self.settings.name.clone(),
            taken_at: Instant::now(),
            unix_ms: crate::cluster::store::unix_ms(),
            view,
            status: self.supervision.last_status.clone(),
            holds_leader,
            noloadbalance: self.settings.noloadbalance,
            tags: self.settings.tags.clone(),
        };
        if let Ok(mut slot) = self.rest.write() {
            *slot = Some(snapshot);
        }
    }

    pub(super) async fn publish(&self, view: &ClusterView) {
        let Some(lease) = self.session.lease() else { return };
        let status = self.supervision.last_status.as_ref();
        let role = match status {
            Some(s) if !s.in_recovery => PgRole::Primary,
            Some(_) => PgRole::Replica,
            None => PgRole::Unknown,
        };
        let state = match (self.supervision.activity, status) {
            (Some(a), _) => a,
            (None, Some(s)) if s.in_recovery && s.is_streaming() => PgState::Streaming,
            (None, Some(_)) => PgState::Running,
            (None, None) if self.supervision.crashed_since.is_some() => PgState::Crashed,
            (None, None) => PgState::Stopped,
        };
        let info = MemberInfo {
            name: self.settings.name.clone(),
            api_addr: self.settings.api_addr.clone(),
            pg_host: self.settings.pg_host.clone(),
            pg_port: self.settings.pg_port,
            role,
            state,
            timeline: status.map(|s| s.timeline).unwrap_or(0),
            checkpoint_timeline: status.map(|s| s.checkpoint_timeline).unwrap_or(0),
            receive_lsn: status.map(PgStatus::wal_position).unwrap_or(0),
            replay_lsn: status
                .and_then(|s| if s.in_recovery { s.replay_lsn } else { s.current_lsn })
                .unwrap_or(0),
            pending_restart: status.is_some_and(|s| s.pending_restart),
            nofailover: self.settings.nofailover,
            failover_priority: self.settings.failover_priority,
            noloadbalance: self.settings.noloadbalance,
            tags: self.settings.tags.clone(),
            system_identifier: status
                .map(|s| s.system_identifier)
                .or(view.system_identifier())
                .unwrap_or(0),
            paused: view.config.paused,
            version: env!("CARGO_PKG_VERSION").into(),
            note: match &self.supervision.upgrade {
                _ if state == PgState::NeedsReinit => Some(self.last_reason.clone()),
                Some(r) if r.outcome != crate::cluster::upgrade::Outcome::Done => Some(format!("upgrade: {}", r.what)),
                _ => None,
            },
            slots: match role {
                PgRole::Primary => self.slots.published.clone(),
                _ => Vec::new(),
            },
            upstream: match role {
                PgRole::Replica => self.upstream_name(view),
                _ => None,
            },
            upgrade: self.supervision.upgrade.clone(),
            clone: self.pg.clone_progress(),
        };
        if view.members.get(&self.settings.name) == Some(&info) {
            return; // unchanged: the lease keeps the key alive
        }
        if let Err(e) = self.store().publish(&info, lease).await {
            tracing::debug!("publishing member status failed: {e}");
        }
    }
}
