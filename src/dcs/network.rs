//! Raft transport over gRPC: each openraft message travels encoded by `codec` (postcard) in an opaque `RaftBytes`.
//!
//! Message size: the leader reads at most `limits::RAFT_BATCH_BYTES` of entries per AppendEntries (log_store.rs),
//! an entry is at most the largest request any leader accepts, and snapshot chunks are 256 KiB, so every message
//! fits `limits::raft_message_limit()`, the limit every member's server uses whatever its config. Should one still
//! not fit (entries written before that bound), it is split: openraft retries with fewer entries on PayloadTooLarge.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::de::DeserializeOwned;

use super::channel::{raft_client, ChannelPool};
use super::types::{PghaNode, TypeConfig};
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
    async fn call<Resp, E>(&mut self, rpc: Rpc, data: Vec<u8>, timeout: Duration) -> RpcResult<Resp, E>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        if self.fault.partitioned() {
            return Err(RPCError::Unreachable(Unreachable::new(&WireError(
                "fault injection: partitioned".into(),
            ))));
        }
        let channel = self
            .channels
            .get(&self.node.addr)
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let mut client = raft_client(channel);
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
            super::codec::decode(&reply.into_inner().data).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        decoded.map_err(|e| RPCError::RemoteError(RemoteError::new_with_node(self.target, self.node.clone(), e)))
    }
}

// openraft's RPCError is large by design; this helper only shares its type.
#[allow(clippy::result_large_err)]
fn encode<T: serde::Serialize, E: std::error::Error>(value: &T) -> RpcResult<Vec<u8>, E> {
    super::codec::encode(value).map_err(|e| RPCError::Network(NetworkError::new(&e)))
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>> {
        let entries = rpc.entries.len();
        let data = encode(&rpc)?;
        let limit = super::limits::raft_message_limit();
        if data.len() > limit {
            let error = WireError(format!(
                "AppendEntries of {entries} entries is {} bytes, over the Raft message limit of {limit}",
                data.len()
            ));
            if entries > 1 {
                let hint = u64::try_from(entries / 2).unwrap_or(1).max(1);
                return Err(RPCError::PayloadTooLarge(
                    PayloadTooLarge::new_entries_hint(hint).with_source_error(&error),
                ));
            }
            // One entry that no member would take: only possible for entries written before the limits existed.
            return Err(RPCError::Network(NetworkError::new(&error)));
        }
        self.call(Rpc::Append, data, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, InstallSnapshotError> {
        self.call(Rpc::Snapshot, encode(&rpc)?, option.hard_ttl()).await
    }

    async fn vote(&mut self, rpc: VoteRequest<u64>, option: RPCOption) -> RpcResult<VoteResponse<u64>> {
        self.call(Rpc::Vote, encode(&rpc)?, option.hard_ttl()).await
    }

    fn backoff(&self) -> openraft::network::Backoff {
        // A restarted peer should catch up quickly; openraft's default waits 500 ms between attempts.
        openraft::network::Backoff::new(std::iter::repeat(Duration::from_millis(100)))
    }
}
