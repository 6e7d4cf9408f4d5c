//! What the HA loop reads and writes in the DCS (member status, leader, dynamic config, history) and what it knows
//! about the local PostgreSQL. Plain data, serialized as JSON in the DCS.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Role of a member's PostgreSQL as published.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PgRole {
    Primary,
    Replica,
    Unknown,
}

/// State of a member's PostgreSQL as published (the words of `patronictl list`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PgState {
    Running,
    Streaming,
    Starting,
    Stopped,
    StartFailed,
    CreatingReplica,
    Crashed,
    Initializing,
    /// A standby that could not rejoin by re-pointing or rewinding: `ctl reinit` (or rewind_fallback_reinit) needed.
    NeedsReinit,
}

impl PgState {
    /// Text shown in `ctl list`.
    pub fn label(self) -> &'static str {
        match self {
            PgState::Running => "running",
            PgState::Streaming => "streaming",
            PgState::Starting => "starting",
            PgState::Stopped => "stopped",
            PgState::StartFailed => "start failed",
            PgState::CreatingReplica => "creating replica",
            PgState::Crashed => "crashed",
            PgState::Initializing => "initializing",
            PgState::NeedsReinit => "needs reinit",
        }
    }
}

/// A member's status, refreshed every loop under its session lease (`members/<name>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub name: String,
    /// gRPC address of the member (DCS + HA service).
    pub api_addr: String,
    pub pg_host: String,
    pub pg_port: u16,
    pub role: PgRole,
    pub state: PgState,
    pub timeline: u32,
    /// Timeline of the last checkpoint; behind `timeline` right after a promotion (0: unknown, older pgha).
    #[serde(default)]
    pub checkpoint_timeline: u32,
    /// Received (replica) or current (primary) WAL position.
    pub receive_lsn: u64,
    pub replay_lsn: u64,
    pub pending_restart: bool,
    pub nofailover: bool,
    pub failover_priority: i32,
    pub noloadbalance: bool,
    pub tags: BTreeMap<String, String>,
    pub system_identifier: u64,
    /// The member's HA loop has seen maintenance mode on (what `ctl pause --wait` waits for).
    #[serde(default)]
    pub paused: bool,
    /// pgha version of the member (empty when published by an older pgha).
    #[serde(default)]
    pub version: String,
    /// Why the member is in its state, when an operator must act (e.g. `needs reinit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The leader's replication slots (`ctl list --slots`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slots: Vec<PublishedSlot>,
    /// The member this replica streams from, as configured by it (the leader, or its `replicatefrom` member; None:
    /// not a replica, no upstream, or an older pgha): `ctl topology` nests it there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Its part in a major upgrade (`ctl upgrade`), while one runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<super::upgrade::UpgradeReport>,
    /// The replica creation running now (method, bytes, seconds), republished every few seconds while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone: Option<crate::postgres::clone_progress::CloneProgress>,
}

/// A replication slot as the leader publishes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedSlot {
    pub name: String,
    /// `physical` or `logical`.
    pub kind: String,
    pub active: bool,
    /// Created (and so droppable) by pgha.
    pub owned: bool,
    /// WAL it retains, rounded down to 16 MiB (one WAL segment) so the member key does not change on every write.
    pub retained_bytes: u64,
}

impl MemberInfo {
    /// Whether tag `key` is set to a true word (`true`, `yes`, `on`, `1`), as Patroni's boolean tags are.
    pub fn tag_set(&self, key: &str) -> bool {
        self.tags
            .get(key)
            .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "yes" | "on" | "1"))
    }

    /// May be named in `synchronous_standby_names`: promotable (not `nofailover`) and not tagged `nosync`.
    pub fn may_be_synchronous(&self) -> bool {
        !self.nofailover && !self.tag_set("nosync")
    }
}

#[cfg(test)]
impl MemberInfo {
    /// A member for table tests: `name` on 127.0.0.1:5432, timeline 1, both LSNs at `lsn`, no tags.
    pub(crate) fn for_test(name: &str, role: PgRole, state: PgState, lsn: u64) -> MemberInfo {
        MemberInfo {
            name: name.into(),
            api_addr: String::new(),
            pg_host: "127.0.0.1".into(),
            pg_port: 5432,
            role,
            state,
            timeline: 1,
            checkpoint_timeline: 1,
            receive_lsn: lsn,
            replay_lsn: lsn,
            pending_restart: false,
            nofailover: false,
            failover_priority: 0,
            noloadbalance: false,
            tags: BTreeMap::new(),
            system_identifier: 1,
            paused: false,
            version: String::new(),
            note: None,
            slots: Vec::new(),
            upstream: None,
            upgrade: None,
            clone: None,
        }
    }
}

/// Dynamic cluster configuration (`config` key), shared by every member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DynamicConfig {
    /// Leader lease TTL.
    pub ttl_ms: u64,
    /// Period of the HA loop (and of lease renewals).
    pub loop_wait_ms: u64,
    /// A replica further behind the last known primary position than this many bytes does not race.
    pub maximum_lag_on_failover: u64,
    /// How long a crashed primary may take to restart in place before it gives up the lease.
    pub primary_start_timeout_ms: u64,
    /// How long the primary keeps the replication slot of a member whose key is gone (a replica rebooting).
    pub member_slots_ttl_ms: u64,
    /// A slot retaining more WAL than this is warned about once per crossing (0: never).
    pub slot_retained_warn_bytes: u64,
    /// Maintenance mode: no automatic promotion or demotion.
    pub paused: bool,
    /// Cluster-wide PostgreSQL parameters (a node's local `[postgresql.parameters]` win over them).
    pub postgresql_parameters: BTreeMap<String, String>,
    /// Synchronous replication: off, on (`synchronous_node_count` named standbys must confirm every commit) or quorum
    /// (any `synchronous_node_count` of all healthy standbys).
    pub synchronous_mode: SyncMode,
    /// With no synchronous standby available, block commits rather than fall back to asynchronous replication.
    pub synchronous_mode_strict: bool,
    /// How many standbys must confirm each commit.
    pub synchronous_node_count: u32,
    /// Permanent replication slots (Patroni's `slots:`): created on the primary and kept across failovers;
    /// a logical one needs `wal_level = logical`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub slots: BTreeMap<String, PermanentSlot>,
    /// A standby cluster: the leader follows this remote primary instead of being one (`ctl promote-cluster` removes
    /// it, `ctl demote-cluster` sets it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standby_cluster: Option<super::standby::StandbyCluster>,
}

/// One permanent replication slot of the dynamic config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermanentSlot {
    /// `physical` or `logical`.
    #[serde(rename = "type")]
    pub kind: SlotKind,
    /// Output plugin of a logical slot (e.g. `pgoutput`, `test_decoding`, `wal2json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// Database of a logical slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
}

/// The kind of a replication slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotKind {
    Physical,
    Logical,
}

impl DynamicConfig {
    /// The permanent physical slots.
    pub fn physical_slots(&self) -> Vec<String> {
        self.slots
            .iter()
            .filter(|(_, s)| s.kind == SlotKind::Physical)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The permanent logical slots as `(name, plugin, database)`.
    pub fn logical_slots(&self) -> Vec<crate::postgres::LogicalSlot> {
        self.slots
            .iter()
            .filter_map(|(name, s)| match (s.kind, &s.plugin, &s.database) {
                (SlotKind::Logical, Some(plugin), Some(database)) => Some(crate::postgres::LogicalSlot {
                    name: name.clone(),
                    plugin: plugin.clone(),
                    database: database.clone(),
                }),
                _ => None,
            })
            .collect()
    }
}

/// How commits are replicated (`synchronous_mode`). Accepts `off`/`on`/`quorum` and, like Patroni, booleans.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    #[default]
    Off,
    On,
    Quorum,
}

impl SyncMode {
    /// Parses the words an operator may use (`off`, `false`, `on`, `true`, `quorum`).
    pub fn parse(text: &str) -> Option<SyncMode> {
        match text.trim().to_ascii_lowercase().as_str() {
            "off" | "false" | "no" => Some(SyncMode::Off),
            "on" | "true" | "yes" => Some(SyncMode::On),
            "quorum" => Some(SyncMode::Quorum),
            _ => None,
        }
    }

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncMode::Off => "off",
            SyncMode::On => "on",
            SyncMode::Quorum => "quorum",
        }
    }
}

impl<'de> Deserialize<'de> for SyncMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(SyncMode::On),
            Raw::Bool(false) => Ok(SyncMode::Off),
            Raw::Text(t) => SyncMode::parse(&t)
                .ok_or_else(|| serde::de::Error::custom(format!("synchronous_mode {t:?}: expected off, on or quorum"))),
        }
    }
}

/// The synchronous replication state (`sync` key), written by the leader BEFORE PostgreSQL relies on it: every
/// acknowledged commit is on at least `quorum` of `members`, so a failover candidate must be one of them and must
/// hear from `members.len() - quorum + 1` of them (itself included) to know it is the most advanced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    /// The leader that wrote it.
    pub leader: String,
    /// Members that may hold acknowledged commits the others lack (sorted).
    pub members: Vec<String>,
    /// How many of `members` hold each acknowledged commit (at least).
    pub quorum: u32,
}

impl Default for DynamicConfig {
    fn default() -> Self {
        DynamicConfig {
            ttl_ms: super::timing::DEFAULT_TTL_MS,
            loop_wait_ms: super::timing::DEFAULT_LOOP_WAIT_MS,
            maximum_lag_on_failover: 1 << 20,
            primary_start_timeout_ms: 10_000,
            member_slots_ttl_ms: 30 * 60 * 1000,
            slot_retained_warn_bytes: 1 << 30,
            paused: false,
            postgresql_parameters: BTreeMap::new(),
            synchronous_mode: SyncMode::Off,
            synchronous_mode_strict: false,
            synchronous_node_count: 1,
            slots: BTreeMap::new(),
            standby_cluster: None,
        }
    }
}

/// One promotion, appended to the `history` key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Timeline the new primary started.
    pub timeline: u32,
    /// WAL position at the switch (end of the old timeline as seen by the new primary).
    pub lsn: u64,
    pub reason: String,
    pub unix_ms: u64,
    pub new_leader: String,
}

/// A planned switchover (`leader` set) or a manual failover (`leader` None) to `candidate` (`switchover` key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchoverRequest {
    /// The primary that hands over; None for a failover with no live leader.
    pub leader: Option<String>,
    /// The member to promote.
    pub candidate: String,
    /// Not before this time (milliseconds since the epoch); None = now.
    pub scheduled_unix_ms: Option<u64>,
    /// When the request was made; the other members stand aside for [`SWITCHOVER_WINDOW_MS`] after it is due.
    pub created_unix_ms: u64,
}

/// How long the other replicas leave the free leader key to a switchover candidate before racing normally.
pub const SWITCHOVER_WINDOW_MS: u64 = 15_000;

impl SwitchoverRequest {
    /// The request is due at `now_ms`.
    pub fn due(&self, now_ms: u64) -> bool {
        self.scheduled_unix_ms.is_none_or(|at| now_ms >= at)
    }

    /// The candidate still has the key reserved at `now_ms`.
    pub fn reserved(&self, now_ms: u64) -> bool {
        let start = self
            .scheduled_unix_ms
            .unwrap_or(self.created_unix_ms)
            .max(self.created_unix_ms);
        now_ms < start + SWITCHOVER_WINDOW_MS
    }
}

/// What an operator asks one member to do (`commands/<name>` key); the member deletes the key when done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeCommand {
    /// Restart PostgreSQL (only if a parameter change is pending, when `pending_only`).
    Restart { pending_only: bool },
    /// Reload PostgreSQL's configuration.
    Reload,
    /// Wipe a replica's data directory and clone it again from the leader.
    Reinit,
    /// `ctl upgrade`: check the new binaries (on the leader also `pg_upgrade --check`), report in the member key.
    UpgradeCheck { id: u64, bin_dir: std::path::PathBuf },
    /// `ctl upgrade`, on the leader: stop cleanly, `pg_upgrade`, start on the new binaries (see `ha/upgrade.rs`).
    Upgrade {
        id: u64,
        bin_dir: std::path::PathBuf,
        mode: super::upgrade::TransferMode,
    },
}

/// A command with the revision of its key (for the compare-and-delete once it is done).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingCommand {
    pub command: NodeCommand,
    pub mod_revision: i64,
}

/// The leader key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderKey {
    pub name: String,
    pub lease: i64,
    pub mod_revision: i64,
}

/// The `initialize` key: stored as `pending:<name>` while a member bootstraps, then as the system identifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Initialize {
    /// `name` claimed the bootstrap and has not finished it.
    Pending(String),
    /// The cluster's system identifier.
    System(u64),
    /// Text that is neither (kept, so the cluster still counts as initialized).
    Unreadable(String),
}

impl Initialize {
    const PENDING: &'static str = "pending:";

    /// Reads the stored text.
    pub fn parse(text: &str) -> Initialize {
        match (text.strip_prefix(Self::PENDING), text.parse()) {
            (Some(name), _) => Initialize::Pending(name.to_string()),
            (None, Ok(id)) => Initialize::System(id),
            (None, Err(_)) => Initialize::Unreadable(text.to_string()),
        }
    }

    /// The text to store.
    pub fn render(&self) -> String {
        match self {
            Initialize::Pending(name) => format!("{}{name}", Self::PENDING),
            Initialize::System(id) => id.to_string(),
            Initialize::Unreadable(text) => text.clone(),
        }
    }

    /// Whether `name` is bootstrapping the cluster.
    pub fn pending_by(&self, name: &str) -> bool {
        matches!(self, Initialize::Pending(n) if n == name)
    }
}

/// The cluster as read from the DCS in one linearizable read.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ClusterView {
    /// `None`: nobody initialized yet.
    pub initialize: Option<Initialize>,
    pub leader: Option<LeaderKey>,
    pub members: BTreeMap<String, MemberInfo>,
    pub config: DynamicConfig,
    pub switchover: Option<SwitchoverRequest>,
    /// Promotions so far (`history` key).
    pub history: Vec<HistoryEntry>,
    /// Operator commands by member name.
    pub commands: BTreeMap<String, PendingCommand>,
    /// Synchronous replication state (`sync` key), with its revision.
    pub sync: Option<(SyncState, i64)>,
    /// A major upgrade (`upgrade` key), with its revision.
    pub upgrade: Option<(super::upgrade::UpgradeState, i64)>,
    pub revision: i64,
}

impl ClusterView {
    /// The system identifier the cluster was initialized with, once known.
    pub fn system_identifier(&self) -> Option<u64> {
        match self.initialize {
            Some(Initialize::System(id)) => Some(id),
            _ => None,
        }
    }

    /// The synchronous replication state, when it restricts who may be promoted (it names at least one member).
    pub fn sync_members(&self) -> Option<&SyncState> {
        self.sync.as_ref().map(|(s, _)| s).filter(|s| !s.members.is_empty())
    }

    /// The published status of the current leader.
    pub fn leader_member(&self) -> Option<&MemberInfo> {
        self.leader.as_ref().and_then(|l| self.members.get(&l.name))
    }

    /// The leader's name when it runs as primary and at least `replicas` members stream: "the cluster is up" for
    /// the demo, the bench and the tests.
    pub fn primary_with(&self, replicas: usize) -> Option<&str> {
        let streaming = self.members.values().filter(|m| m.state == PgState::Streaming).count();
        let leader = self.leader_member()?;
        (leader.role == PgRole::Primary && streaming >= replicas).then_some(leader.name.as_str())
    }
}

#[cfg(test)]
mod initialize_tests {
    use super::Initialize;

    #[test]
    fn initialize_key_round_trip() {
        for (text, want) in [
            ("pending:db1", Initialize::Pending("db1".into())),
            ("7000000000000000001", Initialize::System(7_000_000_000_000_000_001)),
            ("garbage", Initialize::Unreadable("garbage".into())),
        ] {
            let got = Initialize::parse(text);
            assert_eq!(got, want, "{text}");
            assert_eq!(got.render(), text);
        }
        assert!(Initialize::Pending("db1".into()).pending_by("db1"));
        assert!(!Initialize::Pending("db1".into()).pending_by("db2"));
        assert!(!Initialize::System(1).pending_by("db1"));
    }
}
