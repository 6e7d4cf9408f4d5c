//! Helpers of the authorization tests: certificates of any role from a cluster's CA, and every RPC made by hand.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::{SnapshotMeta, StoredMembership, Vote};
use pgha::dcs::types::{Command, TypeConfig};
use pgha::identity::{Caller, CertRole};
use pgha::local::LocalCluster;
use pgha::proto;
use pgha::proto::admin_client::AdminClient;
use pgha::proto::dcs_client::DcsClient;
use pgha::proto::ha_client::HaClient;
use pgha::proto::raft_internal_client::RaftInternalClient;
use pgha::tls::{NodeTls, TlsFiles};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Status};

/// Issues a certificate (`role` None: one without a role, as before roles) from `cluster`'s CA, in `dir` (a copy of
/// the CA, so the cluster's own files stay untouched); returns the client TLS settings presenting it.
pub fn identity(cluster: &LocalCluster, dir: &Path, role: Option<CertRole>, name: &str) -> ClientTlsConfig {
    let certs = cluster.dir.join("certs");
    for file in ["ca.pem", "ca-key.pem"] {
        std::fs::copy(certs.join(file), dir.join(file)).expect("copying the CA");
    }
    let localhost = [std::net::IpAddr::from([127, 0, 0, 1])];
    let spec = pgha::cert::IssueSpec {
        role,
        ips: &localhost,
        ..pgha::cert::IssueSpec::new(CertRole::Admin, name)
    };
    let paths = pgha::cert::issue_spec(dir, &spec, 1).expect("issuing a test certificate");
    let files = TlsFiles {
        ca: dir.join("ca.pem"),
        cert: paths.cert,
        key: paths.key,
    };
    NodeTls::load(&files).expect("loading it").client_config()
}

/// One peer: a certificate dialling one member.
#[derive(Clone)]
pub struct Peer {
    pub caller: Caller,
    ch: Channel,
}

/// True when `r` is a refusal by the authorization rules.
pub fn denied<T>(r: &Result<T, Status>) -> bool {
    matches!(r, Err(s) if s.code() == Code::PermissionDenied && s.message().starts_with("permission denied"))
}

fn raft_bytes<T: serde::Serialize>(value: &T) -> proto::RaftBytes {
    proto::RaftBytes {
        data: serde_json::to_vec(value).expect("serializable"),
    }
}

impl Peer {
    /// `caller`'s certificate `tls` dialling the member at `addr`.
    pub fn new(caller: Caller, tls: ClientTlsConfig, addr: &str) -> Peer {
        let ch = Endpoint::from_shared(format!("https://{addr}"))
            .expect("an endpoint")
            .timeout(Duration::from_secs(10))
            .tls_config(tls)
            .expect("TLS settings")
            .connect_lazy();
        Peer { caller, ch }
    }

    pub async fn append_entries(&self, term: u64, from: u64) -> Result<(), Status> {
        let req: AppendEntriesRequest<TypeConfig> = AppendEntriesRequest {
            vote: Vote::new_committed(term, from),
            prev_log_id: None,
            entries: vec![],
            leader_commit: None,
        };
        RaftInternalClient::new(self.ch.clone())
            .append_entries(raft_bytes(&req))
            .await
            .map(drop)
    }

    pub async fn vote(&self, term: u64, from: u64) -> Result<(), Status> {
        let req: VoteRequest<u64> = VoteRequest {
            vote: Vote::new(term, from),
            last_log_id: None,
        };
        RaftInternalClient::new(self.ch.clone())
            .vote(raft_bytes(&req))
            .await
            .map(drop)
    }

    /// A snapshot chunk at a huge offset (openraft would seek a buffer there if it got it).
    pub async fn install_snapshot(&self, term: u64, from: u64, offset: u64) -> Result<(), Status> {
        let req: InstallSnapshotRequest<TypeConfig> = InstallSnapshotRequest {
            vote: Vote::new_committed(term, from),
            meta: SnapshotMeta {
                last_log_id: None,
                last_membership: StoredMembership::default(),
                snapshot_id: "bogus".into(),
            },
            offset,
            data: b"x".to_vec(),
            done: false,
        };
        RaftInternalClient::new(self.ch.clone())
            .install_snapshot(raft_bytes(&req))
            .await
            .map(drop)
    }

    pub async fn read_index(&self) -> Result<(), Status> {
        RaftInternalClient::new(self.ch.clone())
            .read_index(raft_bytes(&()))
            .await
            .map(drop)
    }

    pub async fn forward(&self, cmd: &Command) -> Result<(), Status> {
        RaftInternalClient::new(self.ch.clone())
            .forward_write(raft_bytes(cmd))
            .await
            .map(drop)
    }

    /// Linearizable read of one key: (value, lease) and the revision.
    pub async fn get(&self, key: &str) -> Result<(Option<(Vec<u8>, i64)>, i64), Status> {
        let req = proto::RangeRequest {
            key: key.as_bytes().to_vec(),
            ..Default::default()
        };
        let resp = DcsClient::new(self.ch.clone()).range(req).await?.into_inner();
        let kv = resp.kvs.into_iter().next().map(|kv| (kv.value, kv.lease));
        Ok((kv, resp.revision))
    }

    /// Opens a watch and waits for its first message.
    pub async fn watch(&self, key: &str) -> Result<(), Status> {
        let req = proto::WatchRequest {
            key: key.as_bytes().to_vec(),
            prefix: true,
            ..Default::default()
        };
        let mut stream = DcsClient::new(self.ch.clone()).watch(req).await?.into_inner();
        stream.message().await.map(drop)
    }

    pub async fn txn(&self, ops: Vec<proto::Op>) -> Result<(), Status> {
        let req = proto::TxnRequest {
            success: ops,
            ..Default::default()
        };
        DcsClient::new(self.ch.clone()).txn(req).await.map(drop)
    }

    pub async fn put(&self, key: &str, value: &str, lease: i64) -> Result<(), Status> {
        self.txn(vec![put_op(key, value, lease)]).await
    }

    pub async fn delete(&self, key: &str) -> Result<(), Status> {
        let op = proto::Op {
            op: Some(proto::op::Op::Delete(proto::DeleteOp {
                key: key.as_bytes().to_vec(),
                prefix: false,
            })),
        };
        self.txn(vec![op]).await
    }

    pub async fn grant(&self, ttl_ms: i64) -> Result<i64, Status> {
        let req = proto::LeaseGrantRequest { ttl_ms };
        Ok(DcsClient::new(self.ch.clone()).lease_grant(req).await?.into_inner().id)
    }

    pub async fn keepalive(&self, id: i64) -> Result<bool, Status> {
        let req = proto::LeaseKeepAliveRequest { id };
        Ok(DcsClient::new(self.ch.clone())
            .lease_keep_alive(req)
            .await?
            .into_inner()
            .found)
    }

    pub async fn refresh(&self, id: i64) -> Result<bool, Status> {
        let req = proto::LeaseRefreshRequest { id };
        Ok(DcsClient::new(self.ch.clone())
            .lease_refresh(req)
            .await?
            .into_inner()
            .found)
    }

    /// Asks for an expiry vote on `id` (read-only on the answering member).
    pub async fn expiry_vote(&self, id: i64) -> Result<(), Status> {
        let req = pgha::dcs::lease_votes::ExpiryVoteRequest {
            membership: String::new(),
            leases: vec![id],
        };
        RaftInternalClient::new(self.ch.clone())
            .lease_expiry_vote(raft_bytes(&req))
            .await
            .map(drop)
    }

    pub async fn revoke(&self, id: i64) -> Result<bool, Status> {
        let req = proto::LeaseRevokeRequest { id };
        Ok(DcsClient::new(self.ch.clone())
            .lease_revoke(req)
            .await?
            .into_inner()
            .found)
    }

    pub async fn status(&self) -> Result<proto::StatusResponse, Status> {
        Ok(AdminClient::new(self.ch.clone())
            .status(proto::StatusRequest {})
            .await?
            .into_inner())
    }

    pub async fn add_member(&self, name: &str, addr: &str) -> Result<(), Status> {
        let req = proto::AddMemberRequest {
            name: name.into(),
            addr: addr.into(),
        };
        AdminClient::new(self.ch.clone()).add_member(req).await.map(drop)
    }

    pub async fn remove_member(&self, name: &str) -> Result<(), Status> {
        let req = proto::RemoveMemberRequest { name: name.into() };
        AdminClient::new(self.ch.clone()).remove_member(req).await.map(drop)
    }

    pub async fn wal_position(&self) -> Result<(), Status> {
        HaClient::new(self.ch.clone())
            .wal_position(proto::WalPositionRequest {})
            .await
            .map(drop)
    }
}

pub fn put_op(key: &str, value: &str, lease: i64) -> proto::Op {
    proto::Op {
        op: Some(proto::op::Op::Put(proto::PutOp {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            lease,
        })),
    }
}

/// `text` without ANSI colour sequences (the human log format colours field names).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The refusal lines of a node log: (peer label, kind) of each `rpc_refused` line.
pub fn refusals(log: &Path) -> Vec<(String, String)> {
    let text = strip_ansi(&std::fs::read_to_string(log).unwrap_or_default());
    text.lines()
        .filter(|l| l.contains("rpc_refused"))
        .map(|l| (field(l, "peer"), field(l, "kind")))
        .collect()
}

fn field(line: &str, name: &str) -> String {
    let Some(start) = line.find(&format!(" {name}=")) else {
        return String::new();
    };
    let rest = &line[start + name.len() + 2..];
    rest.split_whitespace()
        .next()
        .unwrap_or("")
        .trim_matches('"')
        .to_string()
}
