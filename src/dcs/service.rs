//! gRPC services of a member: Raft transport (RaftInternal) and the etcd-like client API (Dcs).

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};

use super::convert;
use super::core::{DcsCore, DcsError};
use super::types::{Command, CommandResult, Txn, TypeConfig};
use super::watch::{self, WatchFilter};
use crate::dcs::authz::{self, Rpc};
use crate::proto;

/// Requests arrive in `codec`'s format (or JSON from an older member).
fn decode<T: DeserializeOwned>(req: Request<proto::RaftBytes>) -> Result<T, Status> {
    super::codec::decode(&req.into_inner().data).map_err(|e| Status::invalid_argument(format!("bad payload: {e}")))
}

/// Replies stay JSON: they are small (no entries, no snapshot data), and an older member can read them.
fn encode<T: Serialize>(value: &T) -> Result<Response<proto::RaftBytes>, Status> {
    let data = serde_json::to_vec(value).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(proto::RaftBytes { data }))
}

/// Raft transport between members.
pub struct RaftService(pub Arc<DcsCore>);

#[tonic::async_trait]
impl proto::raft_internal_server::RaftInternal for RaftService {
    async fn append_entries(&self, req: Request<proto::RaftBytes>) -> Result<Response<proto::RaftBytes>, Status> {
        let who = authz::identify(&self.0, &req)?;
        let rpc: AppendEntriesRequest<TypeConfig> = decode(req)?;
        let leader = rpc.vote.leader_id().voted_for();
        authz::check(&self.0, &who, Rpc::AppendEntries { leader })?;
        encode(&self.0.raft.append_entries(rpc).await)
    }

    async fn vote(&self, req: Request<proto::RaftBytes>) -> Result<Response<proto::RaftBytes>, Status> {
        let who = authz::identify(&self.0, &req)?;
        let rpc: VoteRequest<u64> = decode(req)?;
        let candidate = rpc.vote.leader_id().voted_for();
        authz::check(&self.0, &who, Rpc::Vote { candidate })?;
        encode(&self.0.raft.vote(rpc).await)
    }

    async fn install_snapshot(&self, req: Request<proto::RaftBytes>) -> Result<Response<proto::RaftBytes>, Status> {
        let who = authz::identify(&self.0, &req)?;
        let rpc: InstallSnapshotRequest<TypeConfig> = decode(req)?;
        let leader = rpc.vote.leader_id().voted_for();
        authz::check(&self.0, &who, Rpc::InstallSnapshot { leader })?;
        // After authorization: the guard tracks the snapshot being received, which only a member may move.
        if let Some(reply) = self.0.check_snapshot_chunk(&rpc)? {
            return encode(&reply);
        }
        encode(&self.0.raft.install_snapshot(rpc).await)
    }

    async fn forward_write(&self, req: Request<proto::RaftBytes>) -> Result<Response<proto::RaftBytes>, Status> {
        let who = authz::identify(&self.0, &req)?;
        let cmd: Command = decode(req)?;
        authz::check(&self.0, &who, Rpc::ForwardWrite(&cmd))?;
        encode(&self.0.write_here(cmd).await)
    }

    async fn read_index(&self, req: Request<proto::RaftBytes>) -> Result<Response<proto::RaftBytes>, Status> {
        let who = authz::identify(&self.0, &req)?;
        authz::check(&self.0, &who, Rpc::ReadIndex)?;
        encode(&self.0.read_index_here().await)
    }

    async fn lease_expiry_vote(&self, req: Request<proto::RaftBytes>) -> Result<Response<proto::RaftBytes>, Status> {
        let who = authz::identify(&self.0, &req)?;
        authz::check(&self.0, &who, Rpc::LeaseExpiryVote)?;
        let vote: super::lease_votes::ExpiryVoteRequest = decode(req)?;
        encode(&self.0.answer_expiry_vote(&vote))
    }
}

/// The DCS client API.
pub struct DcsService(pub Arc<DcsCore>);

fn unexpected(result: CommandResult) -> Status {
    match result {
        CommandResult::Rejected(msg) => DcsError::Rejected(msg).into(),
        CommandResult::Denied(msg) => Status::permission_denied(format!("permission denied: {msg}")),
        other => Status::internal(format!("unexpected command result {other:?}")),
    }
}

fn check_ttl(ttl_ms: i64) -> Result<(), DcsError> {
    if !(super::kv::MIN_TTL_MS..=super::kv::MAX_TTL_MS).contains(&ttl_ms) {
        return Err(DcsError::Invalid(format!(
            "lease ttl {ttl_ms} ms is outside {}..={} ms",
            super::kv::MIN_TTL_MS,
            super::kv::MAX_TTL_MS
        )));
    }
    Ok(())
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<proto::WatchResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl proto::dcs_server::Dcs for DcsService {
    async fn range(&self, req: Request<proto::RangeRequest>) -> Result<Response<proto::RangeResponse>, Status> {
        let who = authz::identify(&self.0, &req)?;
        authz::check(&self.0, &who, Rpc::Range)?;
        let req = req.into_inner();
        convert::range_key(&req.key, req.prefix, &self.0.limits)?;
        if !req.serializable {
            self.0.barrier().await?;
        }
        let (kvs, revision) = self.0.sm.range(&req.key, req.prefix);
        Ok(Response::new(proto::RangeResponse {
            kvs: kvs.into_iter().map(Into::into).collect(),
            revision,
        }))
    }

    async fn txn(&self, req: Request<proto::TxnRequest>) -> Result<Response<proto::TxnResponse>, Status> {
        let who = authz::identify(&self.0, &req)?;
        let txn: Txn = convert::txn_from(req.into_inner())?;
        authz::check(&self.0, &who, Rpc::Txn(&txn))?;
        match self.0.write(Command::by(who.caller(), Command::Txn(txn))).await? {
            CommandResult::Txn {
                succeeded,
                revision,
                deleted,
            } => Ok(Response::new(proto::TxnResponse {
                succeeded,
                revision,
                deleted,
            })),
            other => Err(unexpected(other)),
        }
    }

    async fn lease_grant(
        &self,
        req: Request<proto::LeaseGrantRequest>,
    ) -> Result<Response<proto::LeaseGrantResponse>, Status> {
        let who = authz::identify(&self.0, &req)?;
        authz::check(&self.0, &who, Rpc::LeaseGrant)?;
        let ttl_ms = req.into_inner().ttl_ms;
        check_ttl(ttl_ms)?;
        match self
            .0
            .write(Command::by(who.caller(), Command::LeaseGrant { ttl_ms }))
            .await?
        {
            CommandResult::Lease { id, ttl_ms, .. } => Ok(Response::new(proto::LeaseGrantResponse { id, ttl_ms })),
            other => Err(unexpected(other)),
        }
    }

    async fn lease_keep_alive(
        &self,
        req: Request<proto::LeaseKeepAliveRequest>,
    ) -> Result<Response<proto::LeaseKeepAliveResponse>, Status> {
        let who = authz::identify(&self.0, &req)?;
        let id = req.into_inner().id;
        authz::check(&self.0, &who, Rpc::LeaseKeepAlive(id))?;
        match self
            .0
            .write(Command::by(who.caller(), Command::LeaseKeepAlive { id }))
            .await?
        {
            CommandResult::Lease { id, ttl_ms, found } => {
                Ok(Response::new(proto::LeaseKeepAliveResponse { id, ttl_ms, found }))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn lease_refresh(
        &self,
        req: Request<proto::LeaseRefreshRequest>,
    ) -> Result<Response<proto::LeaseRefreshResponse>, Status> {
        let who = authz::identify(&self.0, &req)?;
        let id = req.into_inner().id;
        authz::check(&self.0, &who, Rpc::LeaseRefresh(id))?;
        // The membership first: a change resets the deadlines before this refresh is answered under it.
        let membership = self.0.membership_now();
        let ttl = self.0.sm.refresh_lease_directly(id, std::time::Instant::now());
        Ok(Response::new(proto::LeaseRefreshResponse {
            id,
            found: ttl.is_some(),
            ttl_ms: ttl.map_or(0, |t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX)),
            node_id: self.0.node_id,
            membership: membership.id,
            voters: membership
                .voters
                .into_iter()
                .map(|set| proto::VoterSet {
                    ids: set.into_iter().collect(),
                })
                .collect(),
        }))
    }

    async fn lease_revoke(
        &self,
        req: Request<proto::LeaseRevokeRequest>,
    ) -> Result<Response<proto::LeaseRevokeResponse>, Status> {
        let who = authz::identify(&self.0, &req)?;
        let id = req.into_inner().id;
        authz::check(&self.0, &who, Rpc::LeaseRevoke(id))?;
        match self
            .0
            .write(Command::by(who.caller(), Command::LeaseRevoke { id }))
            .await?
        {
            CommandResult::Lease { found, .. } => Ok(Response::new(proto::LeaseRevokeResponse { found })),
            other => Err(unexpected(other)),
        }
    }

    type WatchStream = WatchStream;

    async fn watch(&self, req: Request<proto::WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let who = authz::identify(&self.0, &req)?;
        authz::check(&self.0, &who, Rpc::Watch)?;
        let req = req.into_inner();
        convert::range_key(&req.key, req.prefix, &self.0.limits)?;
        let filter = WatchFilter {
            key: req.key,
            prefix: req.prefix,
        };
        let stream = watch::start(self.0.sm.clone(), filter, req.start_revision);
        Ok(Response::new(Box::pin(stream)))
    }
}
