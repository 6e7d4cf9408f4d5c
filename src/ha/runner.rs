//! The db role's HA loop: every `loop_wait` (and at once on any DCS change) it reads the cluster, looks at the local
//! PostgreSQL, asks `decide` for one action, applies it, and publishes this member's status.
//!
//! Hazards: actions can be slow (basebackup, restart), so the lease is renewed by `session::keep`, not here; the
//! loop also wakes at the lease's step-down instant so a leader that cannot renew demotes on time, and steps down by
//! its own clock even when the DCS cannot be read. A failing loop waits `loop_wait` with backoff (DCS events do not
//! wake it early) and logs each kind of failure once, not once per attempt.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::decide::{decide, Action, LocalData, LocalPg, LocalState};
use super::session::{self, Session};
use crate::cluster::keys::Keys;
use crate::cluster::model::{ClusterView, DynamicConfig, MemberInfo, PgRole, PgState};
use crate::cluster::store::Store;
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
    /// Deadline file of the fencing process.
    pub fence_file: PathBuf,
    /// The pgha binary (to start `pgha fence`).
    pub exe: PathBuf,
    /// `[postgresql.callbacks]` and `pre_promote` (argv split, timeouts).
    pub hooks: Arc<super::hooks::HookSettings>,
    /// Set when our `pre_promote` vetoes a promotion; shared with the `Ha` service, which then answers racing peers
    /// that this node is not a candidate.
    pub promotion_hold: Arc<super::hooks::PromotionHold>,
}

/// A db node's HA state.
pub struct DbNode {
    pub(super) s: DbSettings,
    pub(super) keys: Keys,
    pub(super) dcs: Arc<DcsClient>,
    pub(super) pg: Arc<Postgres>,
    pub(super) session: Arc<Session>,
    pub(super) timing: Arc<Mutex<(Duration, Duration)>>,
    pub(super) config: DynamicConfig,
    /// Last WAL position the leader published while alive (for maximum_lag_on_failover).
    pub(super) last_leader_lsn: Option<u64>,
    /// Where our replica currently streams from, as configured by us.
    pub(super) following: Option<(String, u16)>,
    /// PostgreSQL was running under this pgha (so "not running" now means crashed).
    pub(super) expect_running: bool,
    pub(super) crashed_since: Option<Instant>,
    /// Since when the postmaster runs without accepting connections.
    pub(super) starting_since: Option<Instant>,
    /// Since when this standby has not streamed while a serving leader exists (see `decide::STALL_TTLS`).
    pub(super) stalled_since: Option<Instant>,
    /// A rewind was tried during the current stall.
    pub(super) stall_rewound: bool,
    /// Why the last leader races were not won (logged once per reason, forgotten once there is no race).
    pub(super) race_log: FailureLog,
    /// The replication slots this node created (the only ones it ever drops).
    pub(super) owned_slots: super::slots::OwnedSlots,
    /// When each other member was last in the view (its slot is kept `member_slots_ttl_ms` after).
    pub(super) member_seen: BTreeMap<String, Instant>,
    /// When each member whose `replicatefrom` names this standby was last seen (its slot here is kept as long as
    /// the primary keeps a member's).
    pub(super) downstream_seen: BTreeMap<String, Instant>,
    /// Failures managing the slots of cascading replicas (logged once per state change).
    pub(super) cascade_slot_log: FailureLog,
    /// Slots already warned about for their retained WAL.
    pub(super) slots_warned: std::collections::BTreeSet<String>,
    /// Failures to create the permanent logical slots (logged once per state change).
    pub(super) logical_slot_log: FailureLog,
    /// The logical slot being created beside the loop (see `ensure_logical_slots`).
    #[allow(clippy::type_complexity)]
    pub(super) logical_create: Option<tokio::task::JoinHandle<(String, Result<(), crate::postgres::PgError>)>>,
    /// The leader's slots as last read, published in its member key.
    pub(super) published_slots: Vec<crate::cluster::model::PublishedSlot>,
    /// Set while a long action runs, for the published state.
    pub(super) activity: Option<PgState>,
    pub(super) last_status: Option<PgStatus>,
    pub(super) fencer: Option<tokio::process::Child>,
    /// The `synchronous_standby_names` spec PostgreSQL runs with (None: not known yet).
    pub(super) sync_applied: Option<super::sync::SyncSpec>,
    /// WAL position once the current spec took effect (the new set must pass it before the key shrinks); None once
    /// the key matches the applied set.
    pub(super) sync_switch_lsn: Option<u64>,
    /// The CHECKPOINT started after this node's promotion (pg_rewind of former primaries waits for it).
    pub(super) checkpoint_after_promote: Option<tokio::task::JoinHandle<Result<(), crate::postgres::PgError>>>,
    /// Since when each standby streams, as the leader sees it (`settled_streaming`).
    pub(super) streaming_since: BTreeMap<String, Instant>,
    /// The highest WAL position this standby's receiver flushed during the current stall clock (`track_stall`).
    pub(super) stall_high_lsn: Option<u64>,
    /// Since when the leader has seen no streaming standby it could name.
    pub(super) no_sync_candidate_since: Option<Instant>,
    /// Runs the `on_*` callbacks in the background.
    pub(super) callbacks: super::hook_exec::Callbacks,
    /// The role the callbacks were last told about at a start or promotion (a start in another role is
    /// `on_role_change`).
    pub(super) announced_role: Option<super::hooks::HookRole>,
    /// When this process first held a DCS session.
    first_session_at: Option<Instant>,
    pub(super) last_reason: String,
    /// Published for the REST API after every loop.
    rest: crate::api::rest::SharedSnapshot,
}

impl DbNode {
    /// A node; call [`DbNode::run`].
    pub fn new(
        s: DbSettings,
        dcs: Arc<DcsClient>,
        pg: Arc<Postgres>,
        rest: crate::api::rest::SharedSnapshot,
    ) -> DbNode {
        let config = s.bootstrap_config.clone();
        let ttl = Duration::from_millis(config.ttl_ms);
        let session = Session::new(ttl, s.fence_file.clone());
        let timing = Arc::new(Mutex::new((ttl, Duration::from_millis(config.loop_wait_ms))));
        let owned_slots = super::slots::OwnedSlots::load(s.fence_file.with_file_name("slots.owned"));
        let callbacks = super::hook_exec::Callbacks::new(s.hooks.clone());
        DbNode {
            callbacks,
            announced_role: None,
            keys: Keys::new(&s.cluster),
            s,
            dcs,
            pg,
            session,
            timing,
            config,
            last_leader_lsn: None,
            following: None,
            expect_running: false,
            crashed_since: None,
            starting_since: None,
            stalled_since: None,
            streaming_since: BTreeMap::new(),
            stall_high_lsn: None,
            stall_rewound: false,
            race_log: FailureLog::default(),
            owned_slots,
            member_seen: BTreeMap::new(),
            downstream_seen: BTreeMap::new(),
            cascade_slot_log: FailureLog::default(),
            slots_warned: Default::default(),
            logical_slot_log: FailureLog::default(),
            logical_create: None,
            published_slots: Vec::new(),
            activity: None,
            last_status: None,
            fencer: None,
            sync_applied: None,
            sync_switch_lsn: None,
            checkpoint_after_promote: None,
            no_sync_candidate_since: None,
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
            self.timing.clone(),
            token.clone(),
        ));
        let mut watch = self.dcs.watch(self.keys.root().as_bytes(), true, 0);
        let mut backoff = Backoff::new(Duration::from_millis(self.config.loop_wait_ms), BACKOFF_CAP);
        let mut failures = FailureLog::default();
        loop {
            if let Err(e) = self.step_down_if_lapsed().await {
                tracing::error!(event = "step_down_failed", "stepping down failed: {e:#}");
            }
            // A leader's iteration may wait on a DCS that does not answer: it must not outlast the lease.
            let session = self.session.clone();
            let guarded = self.session.fence_armed();
            let result = tokio::select! {
                r = self.iteration() => r,
                _ = session.lapsed(), if guarded => Err(anyhow::anyhow!("the lease ran out during the HA loop")),
            };
            match result {
                Ok(()) => {
                    backoff.succeeded();
                    log_transition("HA loop", failures.succeeded());
                }
                Err(e) => {
                    backoff.failed();
                    // The outermost context names what failed; the causes below it may carry changing details.
                    log_transition("HA loop", failures.failed(&e.to_string(), &format!("{e:#}")));
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
    async fn step_down_if_lapsed(&mut self) -> anyhow::Result<()> {
        if self.session.fence_armed() && !self.session.valid(Instant::now()) {
            self.step_down().await?;
        }
        Ok(())
    }

    async fn iteration(&mut self) -> anyhow::Result<()> {
        let view = self.store().view().await.context("reading the cluster from the DCS")?;
        if view.config != self.config {
            tracing::info!(config = ?view.config, "dynamic configuration changed");
            self.config = view.config.clone();
        }
        if let Ok(mut t) = self.timing.lock() {
            *t = (
                Duration::from_millis(self.config.ttl_ms),
                Duration::from_millis(self.config.loop_wait_ms),
            );
        }
        let now = Instant::now();
        for name in view.members.keys().filter(|n| **n != self.s.name) {
            self.member_seen.insert(name.clone(), now);
        }
        if let Some(leader) = view.leader_member() {
            if leader.role == PgRole::Primary {
                self.last_leader_lsn = Some(leader.receive_lsn);
            }
        }
        let slot_sync = super::slots::slot_sync(&self.s.name, &view);
        // Both settings are always set: `|`, not `||`.
        if self.pg.set_dynamic_parameters(&self.config.postgresql_parameters) | self.pg.set_slot_sync(&slot_sync) {
            self.apply_parameters().await;
        }
        match self.follow_ttl_change(&view).await {
            Ok(true) => return Ok(()), // the view names the old lease: decide on a fresh one
            Ok(false) => {}
            Err(e) => tracing::warn!("moving the session to the new TTL failed (retrying next loop): {e:#}"),
        }
        let local = self.local_state(&view).await?;
        let leading = view
            .leader
            .as_ref()
            .is_some_and(|l| l.name == self.s.name && Some(l.lease) == local.lease);
        // Not while we bootstrap (or adopt) the cluster: its setup commits with no standby in existence.
        let bootstrapping = view.initialize.as_ref().is_none_or(|i| i.pending_by(&self.s.name));
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
        if !view.members.contains_key(&self.s.name) {
            // Publish before a possibly long action (a start that waits for WAL): the leader creates our
            // replication slot only for members it sees, and a restarted replica needs that slot to stream.
            self.publish(&view).await;
        }
        let applied = self.apply(decision.action, &view).await;
        self.activity = None;
        self.publish(&view).await;
        self.share(view);
        applied
    }

    async fn local_state(&mut self, view: &ClusterView) -> anyhow::Result<LocalState> {
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
            self.crashed_since = None;
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
                        .context("PostgreSQL accepts connections but does not answer")?,
                ),
                // No status line yet: the postmaster is just starting.
                None => self.pg.status().await.ok(),
            };
            match status {
                Some(s) => {
                    self.starting_since = None;
                    let in_recovery = s.in_recovery;
                    self.last_status = Some(s);
                    LocalPg::Running {
                        in_recovery,
                        following: self.following.clone(),
                    }
                }
                None => {
                    self.last_status = None;
                    let since = *self.starting_since.get_or_insert_with(Instant::now);
                    LocalPg::Starting {
                        following: self.following.clone(),
                        for_ms: since.elapsed().as_millis() as u64,
                    }
                }
            }
        } else {
            self.starting_since = None;
            self.last_status = None;
            if self.expect_running {
                let since = *self.crashed_since.get_or_insert_with(Instant::now);
                LocalPg::Crashed {
                    for_ms: since.elapsed().as_millis() as u64,
                }
            } else {
                LocalPg::Stopped
            }
        };
        self.track_stall(view, &pg, &data);
        Ok(LocalState {
            stalled_ms: self.stalled_since.map(|t| t.elapsed().as_millis() as u64).unwrap_or(0),
            stall_rewound: self.stall_rewound,
            allow_reinit: self.s.rewind_fallback_reinit,
            name: self.s.name.clone(),
            data,
            pg,
            lease: self.session.lease(),
            lease_valid: self.session.valid(Instant::now()),
            now_unix_ms: crate::cluster::store::unix_ms(),
            rewind_pending: self.rewind_marker().exists(),
            settled: self
                .first_session_at
                .is_some_and(|t| t.elapsed() >= Duration::from_millis(self.config.ttl_ms)),
            nofailover: self.s.nofailover,
            replicatefrom: super::cascade::replicatefrom(&self.s.tags).map(str::to_string),
            promotion_held: self.s.promotion_hold.held(Instant::now()),
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
        let leader_serves = view
            .leader_member()
            .is_some_and(|m| m.name != self.s.name && m.role == PgRole::Primary && m.state == PgState::Running);
        // A standby that is not consistent yet answers no query, but its WAL receiver's title says it streams.
        let streaming = match pg {
            LocalPg::Starting { .. } => self
                .pg
                .postmaster_pid()
                .is_some_and(crate::postgres::walreceiver_streaming),
            _ => self.last_status.as_ref().is_some_and(PgStatus::is_streaming),
        };
        let receiver = self.last_status.as_ref().and_then(|s| s.wal_receiver.as_ref());
        let (streaming, high) = super::stall::really_streaming(
            streaming,
            receiver.and_then(|w| w.received_tli),
            view.leader_member().map(|m| m.timeline),
            receiver.and_then(|w| w.flushed_lsn),
            self.stall_high_lsn,
        );
        self.stall_high_lsn = high;
        if streaming {
            self.stall_rewound = false;
        }
        if streaming || !standby || !leader_serves {
            self.stalled_since = None;
        } else {
            self.stalled_since.get_or_insert_with(Instant::now);
        }
    }

    /// A new attempt to make this standby stream starts now (re-pointed, restarted, rewound or cloned).
    pub(super) fn restart_stall_clock(&mut self) {
        self.stalled_since = None;
        self.stall_high_lsn = None;
    }

    /// Present while this node, a former primary, runs as a standby that has not been rewound from a leader yet
    /// (kept on disk: a pgha restart must not forget it).
    pub(super) fn rewind_marker(&self) -> PathBuf {
        self.s.fence_file.with_file_name("rewind.pending")
    }

    /// The member this standby is configured to stream from, found by its address in `view`.
    pub(super) fn upstream_name(&self, view: &ClusterView) -> Option<String> {
        let (host, port) = self.following.as_ref()?;
        view.members
            .values()
            .find(|m| m.name != self.s.name && m.pg_host == *host && m.pg_port == *port)
            .map(|m| m.name.clone())
    }

    /// Hands this loop's picture to the REST API.
    fn share(&self, view: ClusterView) {
        let lease = self.session.lease();
        let holds_leader = view
            .leader
            .as_ref()
            .is_some_and(|l| l.name == self.s.name && Some(l.lease) == lease);
        let snapshot = crate::api::health::NodeSnapshot {
            name: self.s.name.clone(),
            taken_at: Instant::now(),
            unix_ms: crate::cluster::store::unix_ms(),
            view,
            status: self.last_status.clone(),
            holds_leader,
            noloadbalance: self.s.noloadbalance,
            tags: self.s.tags.clone(),
        };
        if let Ok(mut slot) = self.rest.write() {
            *slot = Some(snapshot);
        }
    }

    pub(super) async fn publish(&self, view: &ClusterView) {
        let Some(lease) = self.session.lease() else { return };
        let status = self.last_status.as_ref();
        let role = match status {
            Some(s) if !s.in_recovery => PgRole::Primary,
            Some(_) => PgRole::Replica,
            None => PgRole::Unknown,
        };
        let state = match (self.activity, status) {
            (Some(a), _) => a,
            (None, Some(s)) if s.in_recovery && s.is_streaming() => PgState::Streaming,
            (None, Some(_)) => PgState::Running,
            (None, None) if self.crashed_since.is_some() => PgState::Crashed,
            (None, None) => PgState::Stopped,
        };
        let info = MemberInfo {
            name: self.s.name.clone(),
            api_addr: self.s.api_addr.clone(),
            pg_host: self.s.pg_host.clone(),
            pg_port: self.s.pg_port,
            role,
            state,
            timeline: status.map(|s| s.timeline).unwrap_or(0),
            checkpoint_timeline: status.map(|s| s.checkpoint_timeline).unwrap_or(0),
            receive_lsn: status.map(PgStatus::wal_position).unwrap_or(0),
            replay_lsn: status
                .and_then(|s| if s.in_recovery { s.replay_lsn } else { s.current_lsn })
                .unwrap_or(0),
            pending_restart: status.is_some_and(|s| s.pending_restart),
            nofailover: self.s.nofailover,
            failover_priority: self.s.failover_priority,
            noloadbalance: self.s.noloadbalance,
            tags: self.s.tags.clone(),
            system_identifier: status
                .map(|s| s.system_identifier)
                .or(view.system_identifier())
                .unwrap_or(0),
            paused: view.config.paused,
            version: env!("CARGO_PKG_VERSION").into(),
            note: (state == PgState::NeedsReinit).then(|| self.last_reason.clone()),
            slots: match role {
                PgRole::Primary => self.published_slots.clone(),
                _ => Vec::new(),
            },
            upstream: match role {
                PgRole::Replica => self.upstream_name(view),
                _ => None,
            },
        };
        if view.members.get(&self.s.name) == Some(&info) {
            return; // unchanged: the lease keeps the key alive
        }
        if let Err(e) = self.store().publish(&info, lease).await {
            tracing::debug!("publishing member status failed: {e}");
        }
    }
}
