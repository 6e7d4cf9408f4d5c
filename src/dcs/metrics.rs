//! The embedded DCS's metrics (the set an etcd operator alerts on): sampled at scrape time from openraft's metrics
//! channel, plus the log flush histogram, snapshot size and leader-change counter the DCS shell updates.

use std::fmt;
use std::future::Future;
use std::sync::LazyLock;
use std::time::Instant;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{RaftMetrics, ServerState};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use tokio::sync::watch;
use tokio::time::error::Elapsed;

use super::types::PghaNode;
use crate::metrics::{flag, gauge, Labels};

/// Upper bounds of the log flush histogram (seconds), etcd's `wal_fsync_duration_seconds` range.
const FLUSH_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096,
];

/// The DCS shell's handles.
#[derive(Debug)]
pub struct DcsMetrics {
    /// One Raft log append made durable (sled flush) before it is acknowledged.
    pub log_flush: Histogram,
    /// Size of the last snapshot written (built or installed).
    pub snapshot_bytes: Gauge,
    /// Raft leader (or term) changes this member has seen.
    pub leader_changes: Counter,
    /// Writes this member proposed as the Raft leader that were committed.
    pub proposals_committed: Counter,
    /// Writes this member proposed as the Raft leader that failed (no quorum in time, storage, membership).
    pub proposals_failed: Counter,
}

/// The process's DCS metrics.
pub static DCS: LazyLock<DcsMetrics> = LazyLock::new(|| DcsMetrics {
    log_flush: Histogram::new(FLUSH_BUCKETS),
    snapshot_bytes: Gauge::default(),
    leader_changes: Counter::default(),
    proposals_committed: Counter::default(),
    proposals_failed: Counter::default(),
});

/// The outcome of one `client_write` bounded by a timeout.
type Proposal<T> = Result<Result<T, RaftError<u64, ClientWriteError<u64, PghaNode>>>, Elapsed>;

impl DcsMetrics {
    /// Runs `flush` (the durable write of appended entries) and observes how long it took.
    pub fn timed_flush<T>(&self, flush: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let result = flush();
        self.log_flush.observe(start.elapsed().as_secs_f64());
        result
    }

    /// Awaits a `client_write` (bounded by a timeout) and counts it: committed, failed, or not a proposal at all
    /// (this member is not the leader: the write is forwarded).
    pub async fn proposal<T>(&self, write: impl Future<Output = Proposal<T>>) -> Proposal<T> {
        let outcome = write.await;
        match &outcome {
            Ok(Ok(_)) => {
                self.proposals_committed.inc();
            }
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {}
            _ => {
                self.proposals_failed.inc();
            }
        }
        outcome
    }

    /// Records the size of a snapshot just written.
    pub fn snapshot_written(&self, bytes: usize) {
        self.snapshot_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}

/// Samples openraft's metrics on every scrape.
pub struct RaftCollector {
    metrics: watch::Receiver<RaftMetrics<u64, PghaNode>>,
}

impl fmt::Debug for RaftCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RaftCollector")
    }
}

/// What one scrape reports about Raft (pure, from one `RaftMetrics`).
#[derive(Clone, Debug, PartialEq)]
pub struct RaftSample {
    pub has_leader: bool,
    pub is_leader: bool,
    pub term: u64,
    pub last_log_index: u64,
    pub applied_index: u64,
    pub snapshot_index: u64,
    pub voters: usize,
    pub members: usize,
}

impl RaftSample {
    /// Reads the fields an operator alerts on.
    pub fn of(m: &RaftMetrics<u64, PghaNode>) -> RaftSample {
        let membership = m.membership_config.membership();
        RaftSample {
            has_leader: m.current_leader.is_some(),
            is_leader: m.state == ServerState::Leader,
            term: m.current_term,
            last_log_index: m.last_log_index.unwrap_or(0),
            applied_index: m.last_applied.map_or(0, |l| l.index),
            snapshot_index: m.snapshot.map_or(0, |l| l.index),
            voters: membership.voter_ids().count(),
            members: membership.nodes().count(),
        }
    }

    /// Entries in the log not applied yet (committed or about to be).
    pub fn apply_lag(&self) -> u64 {
        self.last_log_index.saturating_sub(self.applied_index)
    }
}

impl Collector for RaftCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let s = RaftSample::of(&self.metrics.borrow());
        let one = |v: i64| [(Labels::new(), v)];
        let u = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        gauge(
            &mut enc,
            "dcs_has_leader",
            "1 while this member knows a Raft leader",
            &one(flag(s.has_leader)),
        )?;
        gauge(
            &mut enc,
            "dcs_is_leader",
            "1 while this member is the Raft leader",
            &one(flag(s.is_leader)),
        )?;
        gauge(&mut enc, "dcs_current_term", "Current Raft term", &one(u(s.term)))?;
        gauge(
            &mut enc,
            "dcs_last_log_index",
            "Index of the last entry in this member's log",
            &one(u(s.last_log_index)),
        )?;
        gauge(
            &mut enc,
            "dcs_applied_index",
            "Index of the last entry applied to the state machine",
            &one(u(s.applied_index)),
        )?;
        gauge(
            &mut enc,
            "dcs_apply_lag_entries",
            "Log entries not applied yet (last log index - applied index)",
            &one(u(s.apply_lag())),
        )?;
        gauge(
            &mut enc,
            "dcs_snapshot_index",
            "Last log index covered by the current snapshot",
            &one(u(s.snapshot_index)),
        )?;
        gauge(
            &mut enc,
            "dcs_voters",
            "Voting members in the Raft membership",
            &one(u(s.voters as u64)),
        )?;
        gauge(
            &mut enc,
            "dcs_members",
            "Members (voters and learners) in the Raft membership",
            &one(u(s.members as u64)),
        )
    }
}

/// Adds the DCS families of a member (db or witness) to `r`.
pub fn register(r: &mut Registry, metrics: watch::Receiver<RaftMetrics<u64, PghaNode>>) {
    r.register_with_unit(
        "dcs_log_flush_duration",
        "Time to make appended Raft log entries durable (sled flush) before acknowledging them",
        Unit::Seconds,
        DCS.log_flush.clone(),
    );
    r.register_with_unit(
        "dcs_snapshot_size",
        "Size of the last Raft snapshot this member wrote or restored at start",
        Unit::Bytes,
        DCS.snapshot_bytes.clone(),
    );
    r.register(
        "dcs_leader_changes",
        "Raft leader changes seen by this member",
        DCS.leader_changes.clone(),
    );
    r.register(
        "dcs_proposals_committed",
        "Writes this member proposed as the Raft leader that were committed",
        DCS.proposals_committed.clone(),
    );
    r.register(
        "dcs_proposals_failed",
        "Writes this member proposed as the Raft leader that failed (no quorum in time, storage, membership)",
        DCS.proposals_failed.clone(),
    );
    r.register_collector(Box::new(RaftCollector { metrics }));
}
