//! A running DCS member, wired in one readable sequence: store, Raft, gRPC server, start-up plan, lease expiry.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::{Config as RaftConfig, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::{ClientTlsConfig, Server};

use super::core::DcsCore;
use super::disk::{RaftDisk, SledDisk};
use super::log_store::LogStore;
use super::network::Network;
use super::service::{DcsService, RaftService};
use super::state_machine::StateMachineStore;
use super::types::{node_id, PghaNode, Raft};
use super::{admin::AdminService, bootstrap, lease_expiry};
use crate::proto::{admin_server::AdminServer, dcs_server::DcsServer, raft_internal_server::RaftInternalServer};

use super::limits::{raft_message_limit, Limits, SNAPSHOT_CHUNK_BYTES};

/// TLS material of a member: serves mutual TLS and dials peers with its certificate.
#[derive(Clone)]
pub struct MemberTls {
    pub server: Arc<rustls::ServerConfig>,
    pub client: ClientTlsConfig,
    /// The rule for peer certificates without a role (`tls.legacy_certificates`).
    pub legacy: crate::identity::LegacyCertificates,
}

/// Everything a member needs to start (built from the config at the binary's edge).
#[derive(Clone)]
pub struct MemberSettings {
    pub cluster: String,
    pub name: String,
    /// Address peers and clients dial (`host:port`).
    pub advertise: String,
    /// Address the gRPC server binds.
    pub listen: String,
    /// The member keeps its Raft store under `data_dir/dcs`.
    pub data_dir: PathBuf,
    /// Initial voters (name, addr), used only when no cluster exists yet.
    pub peers: Vec<(String, String)>,
    pub heartbeat: Duration,
    pub election_timeout: (Duration, Duration),
    pub snapshot_logs: u64,
    pub request_timeout: Duration,
    /// `[dcs.limits]`: request and state limits.
    pub limits: Limits,
    /// None = plaintext (explicitly configured).
    pub tls: Option<MemberTls>,
    /// The role's `Ha` service (the db role's WAL positions for the leader race); None for witnesses. The DCS
    /// mounts it behind the fault gate and the `WalPosition` authorization rule without knowing its implementation.
    pub ha: Option<Arc<dyn HaRpc>>,
}

/// Why a member could not start.
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error(transparent)]
    Disk(#[from] super::disk::DiskError),
    #[error("cannot open the DCS state: {0}")]
    Storage(String),
    #[error("invalid Raft settings: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("Raft failed to start: {0}")]
    Raft(String),
}

/// Why a member's Raft core stopped on its own (see [`Member::fatal`]).
#[derive(Clone, Debug, thiserror::Error)]
#[error("the DCS member's Raft core stopped for good: {cause}")]
pub struct DcsFatal {
    /// openraft's error, e.g. the storage operation that failed and the I/O error.
    pub cause: String,
}

/// A running member.
pub struct Member {
    pub core: Arc<DcsCore>,
    /// Address the server actually bound (useful with port 0).
    pub local_addr: SocketAddr,
    token: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Member {
    /// Opens the store, starts Raft and the gRPC server, then runs the start-up plan in the background.
    pub async fn start(s: MemberSettings) -> Result<Member, MemberError> {
        let raft_config = RaftConfig {
            cluster_name: s.cluster.clone(),
            heartbeat_interval: millis(s.heartbeat),
            election_timeout_min: millis(s.election_timeout.0),
            election_timeout_max: millis(s.election_timeout.1),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(s.snapshot_logs),
            max_in_snapshot_log_to_keep: (s.snapshot_logs / 5).max(100),
            // Small chunks and a generous per-chunk timeout: openraft's 200 ms default can starve a lagging member of
            // its snapshot on a loaded machine, and without it a 2-of-3 quorum that includes that member stalls.
            snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES,
            // Up to 300 entries per AppendEntries (openraft's default) whatever their size: the log store stops a
            // batch at `limits::RAFT_BATCH_BYTES`, so the message stays within `limits::raft_message_limit()`.
            max_payload_entries: 300,
            install_snapshot_timeout: millis(s.request_timeout).max(1000),
            ..Default::default()
        }
        .validate()
        .map_err(|e| MemberError::Config(e.to_string()))?;

        let fault = super::fault::FaultSwitch::from_env(&s.data_dir);
        let disk: Arc<dyn RaftDisk> = Arc::new(SledDisk::open(&s.data_dir.join("dcs"))?);
        let disk = fault.wrap_disk(disk);
        let log_store = LogStore::new(disk.clone());
        let sm = StateMachineStore::open(disk).map_err(|e| MemberError::Storage(e.to_string()))?;
        sm.set_watch_history_bytes(usize::try_from(s.limits.watch_history_bytes).unwrap_or(usize::MAX));
        let network = Network {
            channels: Arc::new(super::channel::ChannelPool::new(
                s.tls.as_ref().map(|t| t.client.clone()),
                None,
            )),
            fault: fault.clone(),
        };
        let id = node_id(&s.name);
        let raft = Raft::new(id, Arc::new(raft_config), network, log_store, sm.clone())
            .await
            .map_err(|e| MemberError::Raft(e.to_string()))?;

        let node = PghaNode {
            name: s.name.clone(),
            addr: s.advertise.clone(),
        };
        let client_tls = s.tls.as_ref().map(|t| t.client.clone());
        let mut core = DcsCore::new(
            raft,
            sm,
            node,
            s.cluster.clone(),
            client_tls,
            s.request_timeout,
            fault,
            s.limits,
        );
        core.access = match &s.tls {
            Some(tls) => crate::dcs::authz::Access::tls(tls.legacy),
            None => crate::dcs::authz::Access::plaintext(),
        };
        let core = Arc::new(core);

        let listener = TcpListener::bind(&s.listen)
            .await
            .map_err(|source| MemberError::Listen {
                addr: s.listen.clone(),
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| MemberError::Listen {
            addr: s.listen.clone(),
            source,
        })?;
        let token = CancellationToken::new();
        let mut tasks = vec![tokio::spawn(serve(
            core.clone(),
            listener,
            s.tls.clone(),
            s.ha.clone(),
            token.clone(),
        ))];
        tasks.push(tokio::spawn(bootstrap::run(
            core.clone(),
            s.peers.clone(),
            token.clone(),
        )));
        tasks.push(tokio::spawn(lease_expiry::run(core.clone(), token.clone())));
        tasks.push(tokio::spawn(log_leader_changes(core.raft.clone(), token.clone())));
        tracing::info!(member = %core.node, id, listen = %local_addr, tls = s.tls.is_some(), "DCS member started");
        Ok(Member {
            core,
            local_addr,
            token,
            tasks,
        })
    }

    /// Resolves when this member's Raft core stops without being asked to: a storage error (openraft then stops
    /// for good, `Fatal`) or a panic. Such a member neither votes nor stores again, yet its process would keep
    /// running and its gRPC server answering; the caller must take the node down so its supervisor restarts it.
    pub fn fatal(&self) -> impl std::future::Future<Output = DcsFatal> + Send + 'static {
        let mut metrics = self.core.raft.metrics();
        async move {
            loop {
                if let Err(e) = &metrics.borrow_and_update().running_state {
                    return DcsFatal { cause: e.to_string() };
                }
                // The sender is dropped when the core task ends, which it does after reporting `Err` above unless
                // it panicked.
                if metrics.changed().await.is_err() {
                    return DcsFatal {
                        cause: "the Raft core ended without reporting why (panicked)".to_string(),
                    };
                }
            }
        }
    }

    /// Stops serving and shuts Raft down.
    pub async fn shutdown(self) {
        self.token.cancel();
        if let Err(e) = self.core.raft.shutdown().await {
            tracing::warn!("Raft shutdown: {e}");
        }
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A role's `Ha` gRPC service, mounted by the member (object-safe form of the generated trait).
pub trait HaRpc: crate::proto::ha_server::Ha {}
impl<T: crate::proto::ha_server::Ha> HaRpc for T {}

/// The generated server needs a sized service: this forwards to the role's.
struct MountedHa(Arc<dyn HaRpc>);

#[tonic::async_trait]
impl crate::proto::ha_server::Ha for MountedHa {
    async fn wal_position(
        &self,
        req: tonic::Request<crate::proto::WalPositionRequest>,
    ) -> Result<tonic::Response<crate::proto::WalPositionResponse>, tonic::Status> {
        self.0.wal_position(req).await
    }
}

async fn serve(
    core: Arc<DcsCore>,
    listener: TcpListener,
    tls: Option<MemberTls>,
    ha: Option<Arc<dyn HaRpc>>,
    token: CancellationToken,
) {
    let router = Server::builder()
        .tcp_nodelay(true)
        // openraft cancels every heartbeat and append that outlives its short timeout, and each cancel is an
        // RST_STREAM: h2's rapid-reset guard (20 pending by default) then tore down member-to-member connections on a
        // flapping link and the DCS stayed wedged (bench chaos seed 13). Peers are authenticated by mutual TLS.
        .http2_max_pending_accept_reset_streams(Some(10_000))
        // Raft messages: one limit on every member whatever its config (limits.rs), in both directions.
        .add_service({
            let fault = core.fault.clone();
            tonic::service::interceptor::InterceptedService::new(
                RaftInternalServer::new(RaftService(core.clone()))
                    .max_decoding_message_size(raft_message_limit())
                    .max_encoding_message_size(raft_message_limit()),
                move |req| super::fault::gate(&fault, req),
            )
        })
        // Client API: requests up to this member's max_request_bytes (plus protobuf framing), replies up to what
        // its quota allows (clients accept any member's replies, see channel.rs).
        .add_service(
            DcsServer::new(DcsService(core.clone()))
                .max_decoding_message_size(core.limits.grpc_request_limit())
                .max_encoding_message_size(core.limits.max_reply_bytes()),
        )
        .add_service(AdminServer::new(AdminService(core.clone())))
        .add_optional_service(ha.map(|ha| {
            let core = core.clone();
            crate::proto::ha_server::HaServer::with_interceptor(MountedHa(ha), move |req| {
                let req = super::fault::gate(&core.fault, req)?;
                crate::dcs::authz::guard::intercept(&core, req, crate::dcs::authz::Rpc::WalPosition)
            })
        }));
    let shutdown = token.clone().cancelled_owned();
    let result = match tls {
        Some(tls) => {
            router
                .serve_with_incoming_shutdown(crate::tls::tls_incoming(listener, tls.server), shutdown)
                .await
        }
        None => {
            // Streams we hand to tonic do not get its tcp_nodelay setting: without it Nagle + delayed ACK add
            // ~40 ms to some small replies.
            let incoming =
                tokio_stream::StreamExt::map(tokio_stream::wrappers::TcpListenerStream::new(listener), |s| {
                    if let Ok(stream) = &s {
                        let _ = stream.set_nodelay(true);
                    }
                    s
                });
            router.serve_with_incoming_shutdown(incoming, shutdown).await
        }
    };
    if let Err(e) = result {
        tracing::error!("gRPC server stopped: {e}");
    }
}

/// How long a member may go without a known leader before it warns (repeatedly, at this interval).
const LEADERLESS_WARNING: Duration = Duration::from_secs(10);

/// One log line per leadership change, with the term: the DCS's own state changes are visible to operators. Also
/// warns while no leader is known, the symptom of a lost quorum or of a member that was removed but keeps running.
async fn log_leader_changes(raft: Raft, token: CancellationToken) {
    let mut metrics = raft.metrics();
    let mut last = (None, 0);
    let mut leaderless_since = Some(std::time::Instant::now());
    let mut check = tokio::time::interval(Duration::from_secs(1));
    loop {
        let m = metrics.borrow_and_update().clone();
        let (leader, term) = (m.current_leader, m.current_term);
        if (leader, term) != last && leader.is_some() {
            let name = leader.and_then(|id| m.membership_config.membership().get_node(&id).map(|n| n.name.clone()));
            tracing::info!(term, leader = name.as_deref().unwrap_or("?"), state = ?m.state, "Raft leader changed");
            last = (leader, term);
        }
        match (leader, leaderless_since) {
            (Some(_), _) => leaderless_since = None,
            (None, None) => leaderless_since = Some(std::time::Instant::now()),
            (None, Some(since)) if since.elapsed() >= LEADERLESS_WARNING => {
                tracing::warn!(
                    term,
                    seconds = since.elapsed().as_secs(),
                    "no Raft leader known: is a majority of members up and reachable? (a member removed with \
                     `pgha ctl member remove` keeps campaigning until it is stopped)"
                );
                leaderless_since = Some(std::time::Instant::now());
            }
            (None, Some(_)) => {}
        }
        tokio::select! {
            _ = token.cancelled() => return,
            changed = metrics.changed() => if changed.is_err() { return },
            _ = check.tick() => {}
        }
    }
}
