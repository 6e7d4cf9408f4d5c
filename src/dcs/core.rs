//! The member's DCS core: writes go through Raft (forwarded to the leader from a follower) and linearizable reads
//! wait for a read index confirmed by the leader. Shared by the gRPC services.

use std::time::{Duration, Instant};

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::ServerState;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tonic::transport::{Channel, ClientTlsConfig};

use super::channel::{raft_client, ChannelPool};
use super::limits::{LimitError, Limits};
use super::quota::InFlight;
use super::snapshot_guard::{ChunkGuard, ChunkVerdict};
use super::state_machine::StateMachineStore;
use super::types::{Command, CommandResult, PghaNode, Raft, TypeConfig};
use crate::proto::RaftBytes;

/// Pause between attempts while a leader is being elected or a forward target went away.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// Why a DCS operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DcsError {
    #[error("no Raft leader within {0:?} (is a majority of members up?)")]
    NoLeader(Duration),
    #[error("the member is shutting down: {0}")]
    Stopped(String),
    #[error("rejected: {0}")]
    Rejected(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Over a `dcs.limits` limit (the message names it and the value).
    #[error(transparent)]
    Limit(#[from] LimitError),
}

impl From<DcsError> for tonic::Status {
    fn from(e: DcsError) -> tonic::Status {
        let msg = e.to_string();
        match e {
            DcsError::NoLeader(_) => tonic::Status::unavailable(msg),
            DcsError::Stopped(_) => tonic::Status::unavailable(msg),
            DcsError::Rejected(_) => tonic::Status::failed_precondition(msg),
            DcsError::NotFound(_) => tonic::Status::not_found(msg),
            DcsError::Invalid(_) => tonic::Status::invalid_argument(msg),
            DcsError::Limit(e) => e.into(),
        }
    }
}

/// Answer of the leader to a forwarded request.
#[derive(Debug, Serialize, Deserialize)]
pub enum Forwarded<T> {
    Ok(T),
    /// The receiver is not (or no longer) the leader: the sender retries.
    NotLeader,
    Failed(String),
    /// Over one of the leader's `dcs.limits` (kept apart from `Failed` so the client gets the same code).
    Refused(LimitError),
}

/// One member's DCS: its Raft handle, state machine and the means to reach the leader.
pub struct DcsCore {
    pub raft: Raft,
    pub sm: StateMachineStore,
    pub node_id: u64,
    pub node: PghaNode,
    pub cluster: String,
    /// Budget of a client request, including leader elections in between.
    pub timeout: Duration,
    /// Test-only partition switch.
    pub fault: super::fault::FaultSwitch,
    /// Who may call what (src/authz); set by `Member::start` from the TLS settings.
    pub access: crate::dcs::authz::Access,
    /// Request and state limits, checked where a write enters and again on the leader before it proposes.
    pub limits: Limits,
    /// State growth this member admitted as leader and has not applied yet (`dcs.limits.max_state_bytes`).
    in_flight: InFlight,
    /// The InstallSnapshot stream being received, checked before openraft allocates for a chunk.
    snapshot_chunks: std::sync::Mutex<ChunkGuard>,
    /// Channels to other members (client TLS None in explicit plaintext mode).
    channels: ChannelPool,
    /// The membership log id this member last answered lease refreshes and votes under (`lease_votes.rs`).
    pub(super) membership_seen: std::sync::Mutex<Option<String>>,
}

impl DcsCore {
    /// Wires a core; `raft` and `sm` must belong together.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        raft: Raft,
        sm: StateMachineStore,
        node: PghaNode,
        cluster: String,
        tls: Option<ClientTlsConfig>,
        timeout: Duration,
        fault: super::fault::FaultSwitch,
        limits: Limits,
    ) -> DcsCore {
        let node_id = super::types::node_id(&node.name);
        DcsCore {
            raft,
            sm,
            node_id,
            node,
            cluster,
            timeout,
            fault,
            access: match tls {
                Some(_) => crate::dcs::authz::Access::tls(Default::default()),
                None => crate::dcs::authz::Access::plaintext(),
            },
            limits,
            in_flight: InFlight::default(),
            snapshot_chunks: std::sync::Mutex::new(ChunkGuard::default()),
            channels: ChannelPool::new(tls, Some(timeout)),
            membership_seen: std::sync::Mutex::new(None),
        }
    }

    /// A channel to another member, created once per address.
    pub fn channel(&self, addr: &str) -> Result<Channel, DcsError> {
        self.channels.get(addr).map_err(|e| DcsError::Invalid(e.to_string()))
    }

    /// The current leader as this member knows it.
    pub fn leader(&self) -> Option<(u64, PghaNode)> {
        let m = self.raft.metrics().borrow().clone();
        let id = m.current_leader?;
        let node = m.membership_config.membership().get_node(&id)?.clone();
        Some((id, node))
    }

    /// True when this member is the Raft leader.
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    /// Commits `cmd` through Raft, forwarding to the leader when needed, retrying across leader changes until the
    /// request budget is spent.
    pub async fn write(&self, cmd: Command) -> Result<CommandResult, DcsError> {
        // Checked where the write enters, so an oversized one is refused before it travels; the leader checks again.
        self.limits.check_command(&cmd)?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            // The quota is counted by the member that proposes: when this one is not the leader, openraft says so at
            // once and the admitted bytes are released.
            let admitted = self.admit(&cmd)?;
            // A leader without a quorum never answers: bound the wait (the write may still commit later, as in etcd).
            let write = tokio::time::timeout(remaining, self.raft.client_write(cmd.clone()));
            let outcome = super::metrics::DCS.proposal(write).await;
            drop(admitted);
            let Ok(outcome) = outcome else {
                return Err(DcsError::NoLeader(self.timeout));
            };
            match outcome {
                Ok(resp) => return Ok(resp.data),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                    if let Some(node) = f.leader_node {
                        match self
                            .forward::<_, CommandResult>(&node.addr, ForwardKind::Write, &cmd)
                            .await
                        {
                            Ok(Forwarded::Ok(result)) => return Ok(result),
                            Ok(Forwarded::Failed(msg)) => return Err(DcsError::Rejected(msg)),
                            Ok(Forwarded::Refused(e)) => return Err(DcsError::Limit(e)),
                            Ok(Forwarded::NotLeader) | Err(_) => {}
                        }
                    }
                }
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                    return Err(DcsError::Rejected(e.to_string()))
                }
                Err(RaftError::Fatal(e)) => return Err(DcsError::Stopped(e.to_string())),
            }
            self.pause_until(deadline).await?;
        }
    }

    /// Waits until this member's state machine reflects every write committed before the call (a linearizable read
    /// point), asking the leader for its read index when this member is a follower.
    pub async fn barrier(&self) -> Result<(), DcsError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let Ok(outcome) = tokio::time::timeout(remaining, self.raft.ensure_linearizable()).await else {
                return Err(DcsError::NoLeader(self.timeout));
            };
            let index = match outcome {
                Ok(log_id) => return self.wait_applied(log_id.map(|l| l.index), deadline).await,
                Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => match f.leader_node {
                    Some(node) => match self
                        .forward::<_, Option<u64>>(&node.addr, ForwardKind::ReadIndex, &())
                        .await
                    {
                        Ok(Forwarded::Ok(index)) => Some(index),
                        _ => None,
                    },
                    None => None,
                },
                Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => None,
                Err(RaftError::Fatal(e)) => return Err(DcsError::Stopped(e.to_string())),
            };
            if let Some(index) = index {
                return self.wait_applied(index, deadline).await;
            }
            self.pause_until(deadline).await?;
        }
    }

    async fn wait_applied(&self, index: Option<u64>, deadline: Instant) -> Result<(), DcsError> {
        let Some(index) = index else { return Ok(()) };
        let remaining = deadline.saturating_duration_since(Instant::now());
        self.raft
            .wait(Some(remaining))
            .applied_index_at_least(Some(index), "linearizable read")
            .await
            .map(|_| ())
            .map_err(|_| DcsError::NoLeader(self.timeout))
    }

    async fn pause_until(&self, deadline: Instant) -> Result<(), DcsError> {
        if Instant::now() + RETRY_PAUSE >= deadline {
            return Err(DcsError::NoLeader(self.timeout));
        }
        tokio::time::sleep(RETRY_PAUSE).await;
        Ok(())
    }

    async fn forward<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: &str,
        kind: ForwardKind,
        req: &Req,
    ) -> Result<Forwarded<Resp>, DcsError> {
        if self.fault.partitioned() {
            return Err(DcsError::Stopped("fault injection: partitioned".into()));
        }
        let data = super::codec::encode(req).map_err(|e| DcsError::Invalid(e.to_string()))?;
        let mut client = raft_client(self.channel(addr)?);
        let request = tonic::Request::new(RaftBytes { data });
        let reply = match kind {
            ForwardKind::Write => client.forward_write(request).await,
            ForwardKind::ReadIndex => client.read_index(request).await,
        };
        let reply = reply.map_err(|s| DcsError::Stopped(s.message().to_string()))?;
        super::codec::decode(&reply.into_inner().data).map_err(|e| DcsError::Invalid(e.to_string()))
    }

    /// Admits `cmd`'s growth of the state against the quota, counting this member's writes in flight.
    fn admit(&self, cmd: &Command) -> Result<super::quota::Admitted<'_>, LimitError> {
        // A follower's state may lag the leader's (a delete the leader applied but this member has not yet), so
        // only the leader counts: a follower's proposal is refused by openraft and forwarded to the leader, which
        // checks it there (CI: a put right after a large delete was refused by a lagging follower).
        if !self.is_leader() {
            return Ok(self.in_flight.nothing());
        }
        let (state, growth) = self.sm.quota_view(cmd);
        self.in_flight.admit(&self.limits, state, growth)
    }

    /// Checks an InstallSnapshot chunk before openraft allocates for it: `Ok(None)` hands it on, `Ok(Some(reply))`
    /// is the answer to send instead (a mismatch, so a real leader starts the snapshot again from offset 0), `Err`
    /// refuses a snapshot larger than any leader may send.
    #[allow(clippy::type_complexity)]
    pub fn check_snapshot_chunk(
        &self,
        rpc: &openraft::raft::InstallSnapshotRequest<TypeConfig>,
    ) -> Result<
        Option<
            Result<openraft::raft::InstallSnapshotResponse<u64>, RaftError<u64, openraft::error::InstallSnapshotError>>,
        >,
        tonic::Status,
    > {
        let id = &rpc.meta.snapshot_id;
        let max = super::limits::max_snapshot_bytes();
        let len = rpc.data.len() as u64;
        let verdict = {
            let mut chunks = self.snapshot_chunks.lock().unwrap_or_else(|p| p.into_inner());
            chunks.check(id, rpc.offset, len, max)
        };
        match verdict {
            ChunkVerdict::Accept => Ok(None),
            ChunkVerdict::Restart => {
                tracing::warn!(snapshot = %id, offset = rpc.offset, "snapshot chunk past the bytes received: asking for a restart");
                let segment = |offset| openraft::SnapshotSegmentId { id: id.clone(), offset };
                let mismatch = openraft::error::SnapshotMismatch {
                    expect: segment(0),
                    got: segment(rpc.offset),
                };
                Ok(Some(Err(RaftError::APIError(
                    openraft::error::InstallSnapshotError::SnapshotMismatch(mismatch),
                ))))
            }
            ChunkVerdict::TooLarge { end, max } => Err(tonic::Status::resource_exhausted(format!(
                "snapshot {id}: a chunk ending at byte {end} is past the largest snapshot any member may send ({max} bytes)"
            ))),
        }
    }

    /// Leader side of a forwarded write: apply locally, never forward again (no loops).
    pub async fn write_here(&self, cmd: Command) -> Forwarded<CommandResult> {
        // The leader's own limits decide what enters the log, whatever the forwarding member's config said.
        if let Err(e) = self.limits.check_command(&cmd) {
            return Forwarded::Refused(e);
        }
        let _admitted = match self.admit(&cmd) {
            Ok(admitted) => admitted,
            Err(e) => return Forwarded::Refused(e),
        };
        let write = tokio::time::timeout(self.timeout, self.raft.client_write(cmd));
        let Ok(outcome) = super::metrics::DCS.proposal(write).await else {
            return Forwarded::Failed(format!("no quorum within {:?}", self.timeout));
        };
        match outcome {
            Ok(resp) => Forwarded::Ok(resp.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => Forwarded::NotLeader,
            Err(e) => Forwarded::Failed(e.to_string()),
        }
    }

    /// Leader side of a read index request.
    pub async fn read_index_here(&self) -> Forwarded<Option<u64>> {
        let Ok(outcome) = tokio::time::timeout(self.timeout, self.raft.ensure_linearizable()).await else {
            return Forwarded::NotLeader;
        };
        match outcome {
            Ok(log_id) => Forwarded::Ok(log_id.map(|l| l.index)),
            Err(RaftError::APIError(_)) => Forwarded::NotLeader,
            Err(e) => Forwarded::Failed(e.to_string()),
        }
    }
}

enum ForwardKind {
    Write,
    ReadIndex,
}
