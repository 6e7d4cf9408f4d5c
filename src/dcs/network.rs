//! Raft transport over gRPC: each openraft message travels serde-encoded in an opaque `RaftBytes`.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::channel::ChannelPool;
use super::types::{PghaNode, TypeConfig};
use crate::proto::raft_internal_client::RaftInternalClient;
use crate::proto::RaftBytes;

/// Hands out connections to Raft peers over one shared channel per peer (openraft asks for a new client for every
/// read-index round, and a fresh TLS handshake would eat its one-heartbeat budget).
#[derive(Clone)]
pub struct Network {
    /// Channels to peers; client TLS None only in explicit plaintext mode.
    pub channels: Arc<ChannelPool>,
    /// Test-only partition switch.
    pub fault: super::fault::FaultSwitch,
}

/// A connection to one peer.
pub struct PeerConnection {
    target: u64,
    node: PghaNode,
    channels: Arc<ChannelPool>,
    fault: super::fault::FaultSwitch,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct WireError(String);

type RpcResult<T, E = openraft::error::Infallible> = Result<T, RPCError<u64, PghaNode, RaftError<u64, E>>>;

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: u64, node: &PghaNode) -> PeerConnection {
        PeerConnection {
            target,
            node: node.clone(),
            channels: self.channels.clone(),
            fault: self.fault.clone(),
        }
    }
}

enum Rpc {
    Append,
    Vote,
    Snapshot,
}

impl PeerConnection {
    async fn call<Req, Resp, E>(&mut self, rpc: Rpc, req: &Req, timeout: Duration) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        if self.fault.partitioned() {
            return Err(RPCError::Unreachable(Unreachable::new(&WireError(
                "fault injection: partitioned".into(),
            ))));
        }
        let data = serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let channel = self
            .channels
            .get(&self.node.addr)
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let mut client = RaftInternalClient::new(channel);
        let mut request = tonic::Request::new(RaftBytes { data });
        request.set_timeout(timeout);
        let reply = match rpc {
            Rpc::Append => client.append_entries(request).await,
            Rpc::Vote => client.vote(request).await,
            Rpc::Snapshot => client.install_snapshot(request).await,
        };
        let reply = reply.map_err(|status| match status.code() {
            tonic::Code::Unavailable | tonic::Code::Cancelled => {
                RPCError::Unreachable(Unreachable::new(&WireError(status.message().to_string())))
            }
            _ => RPCError::Network(NetworkError::new(&WireError(format!(
                "{}: {}",
                status.code(),
                status.message()
            )))),
        })?;
        let decoded: Result<Resp, RaftError<u64, E>> =
            serde_json::from_slice(&reply.into_inner().data).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        decoded.map_err(|e| RPCError::RemoteError(RemoteError::new_with_node(self.target, self.node.clone(), e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>> {
        self.call(Rpc::Append, &rpc, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, InstallSnapshotError> {
        self.call(Rpc::Snapshot, &rpc, option.hard_ttl()).await
    }

    async fn vote(&mut self, rpc: VoteRequest<u64>, option: RPCOption) -> RpcResult<VoteResponse<u64>> {
        self.call(Rpc::Vote, &rpc, option.hard_ttl()).await
    }

    fn backoff(&self) -> openraft::network::Backoff {
        // A restarted peer should catch up quickly; openraft's default waits 500 ms between attempts.
        openraft::network::Backoff::new(std::iter::repeat(Duration::from_millis(100)))
    }
}
