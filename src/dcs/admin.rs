//! Admin service: member status (what `etcdctl endpoint status` shows) and safe membership changes.

use std::collections::BTreeSet;
use std::sync::Arc;

use std::time::{Duration, Instant};

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{ChangeMembers, RaftMetrics};
use tonic::{Request, Response, Status};

use super::core::{DcsCore, DcsError};
use super::types::{node_id, PghaNode};
use crate::dcs::authz::{self, Rpc};
use crate::proto;
use crate::proto::admin_client::AdminClient;

/// The Admin gRPC service.
pub struct AdminService(pub Arc<DcsCore>);

/// Members of the current membership, with the leader's replication progress when this member leads.
pub fn members(m: &RaftMetrics<u64, PghaNode>) -> Vec<proto::Member> {
    let membership = m.membership_config.membership();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let mut list = membership
        .nodes()
        .map(|(id, node)| {
            let matched = m.replication.as_ref().and_then(|r| r.get(id).cloned().flatten());
            let matched = if *id == m.id {
                m.last_log_index
            } else {
                matched.map(|l| l.index)
            };
            proto::Member {
                id: *id,
                name: node.name.clone(),
                addr: node.addr.clone(),
                voter: voters.contains(id),
                matched_index: matched.unwrap_or(0),
                matched_known: matched.is_some(),
            }
        })
        .collect::<Vec<_>>();
    // Name order, as every listing shows them.
    list.sort_by(|a, b| a.name.cmp(&b.name));
    list
}

impl AdminService {
    fn status(&self) -> proto::StatusResponse {
        let core = &self.0;
        let m = core.raft.metrics().borrow().clone();
        let initialized = m.membership_config.membership().nodes().next().is_some();
        proto::StatusResponse {
            id: core.node_id,
            name: core.node.name.clone(),
            addr: core.node.addr.clone(),
            state: format!("{:?}", m.state),
            term: m.current_term,
            leader_id: m.current_leader.unwrap_or(0),
            has_leader: m.current_leader.is_some(),
            last_log_index: m.last_log_index.unwrap_or(0),
            applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
            snapshot_index: m.snapshot.map(|l| l.index).unwrap_or(0),
            revision: core.sm.revision(),
            members: members(&m),
            db_size_bytes: core.sm.disk_size(),
            millis_since_quorum_ack: m.millis_since_quorum_ack.unwrap_or(0),
            initialized,
            cluster: core.cluster.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// The leader's Admin client when this member is not the leader.
    fn leader_client(&self) -> Result<Option<AdminClient<tonic::transport::Channel>>, DcsError> {
        if self.0.is_leader() {
            return Ok(None);
        }
        let (_, leader) = self.0.leader().ok_or(DcsError::NoLeader(self.0.timeout))?;
        Ok(Some(AdminClient::new(self.0.channel(&leader.addr)?)))
    }

    fn membership_response(&self) -> Response<proto::MembershipResponse> {
        let m = self.0.raft.metrics().borrow().clone();
        Response::new(proto::MembershipResponse { members: members(&m) })
    }
}

fn validate_member(name: &str, addr: &str) -> Result<(), DcsError> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
        return Err(DcsError::Invalid(format!(
            "member name {name:?} must be non-empty [A-Za-z0-9._-]"
        )));
    }
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => Ok(()),
        _ => Err(DcsError::Invalid(format!("member address {addr:?} must be host:port"))),
    }
}

fn change_error(e: impl std::fmt::Display) -> Status {
    DcsError::Rejected(e.to_string()).into()
}

impl AdminService {
    /// Applies a membership change, waiting (within the request budget) while a previous change is still being
    /// committed: openraft refuses overlapping changes, and an operator's second command should simply follow.
    async fn change(&self, changes: ChangeMembers<u64, PghaNode>) -> Result<(), Status> {
        let deadline = Instant::now() + self.0.timeout;
        loop {
            match self.0.raft.change_membership(changes.clone(), false).await {
                Ok(_) => return Ok(()),
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                    ChangeMembershipError::InProgress(e),
                ))) if Instant::now() < deadline => {
                    tracing::debug!("membership change waits for the previous one: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(change_error(e)),
            }
        }
    }
}

#[tonic::async_trait]
impl proto::admin_server::Admin for AdminService {
    async fn status(&self, req: Request<proto::StatusRequest>) -> Result<Response<proto::StatusResponse>, Status> {
        let who = authz::identify(&self.0, &req)?;
        authz::check(&self.0, &who, Rpc::Status)?;
        Ok(Response::new(self.status()))
    }

    async fn add_member(
        &self,
        req: Request<proto::AddMemberRequest>,
    ) -> Result<Response<proto::MembershipResponse>, Status> {
        let who = authz::identify(&self.0, &req)?;
        let req = req.into_inner();
        authz::check(&self.0, &who, Rpc::AddMember(&req.name))?;
        validate_member(&req.name, &req.addr)?;
        // The leader judges the original caller again: the forwarding member names it (authz::principal).
        if let Some(mut leader) = self.leader_client()? {
            return leader.add_member(who.forward(req)).await;
        }
        let id = node_id(&req.name);
        let m = self.0.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        if membership.voter_ids().any(|v| v == id) {
            return Err(DcsError::Rejected(format!("{} is already a voter", req.name)).into());
        }
        if let Some((other, _)) = membership.nodes().find(|(i, n)| n.addr == req.addr && **i != id) {
            return Err(
                DcsError::Rejected(format!("address {} is already used by member id {other}", req.addr)).into(),
            );
        }
        let node = PghaNode {
            name: req.name.clone(),
            addr: req.addr.clone(),
        };
        // Learner first: it catches up without counting toward quorums, then becomes a voter.
        tracing::info!(member = %node, "adding member: as learner first, then as voter");
        self.0.raft.add_learner(id, node, true).await.map_err(change_error)?;
        self.change(ChangeMembers::AddVoterIds(BTreeSet::from([id]))).await?;
        tracing::info!(member = %req.name, "member added as voter");
        Ok(self.membership_response())
    }

    async fn remove_member(
        &self,
        req: Request<proto::RemoveMemberRequest>,
    ) -> Result<Response<proto::MembershipResponse>, Status> {
        let who = authz::identify(&self.0, &req)?;
        let req = req.into_inner();
        authz::check(&self.0, &who, Rpc::RemoveMember(&req.name))?;
        if let Some(mut leader) = self.leader_client()? {
            return leader.remove_member(who.forward(req)).await;
        }
        let id = node_id(&req.name);
        let m = self.0.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        if membership.get_node(&id).is_none() {
            return Err(DcsError::NotFound(format!("no member named {}", req.name)).into());
        }
        if voters.contains(&id) {
            if voters.len() == 1 {
                return Err(DcsError::Rejected("cannot remove the last voter".into()).into());
            }
            tracing::info!(member = %req.name, "removing voter");
            self.change(ChangeMembers::RemoveVoters(BTreeSet::from([id]))).await?;
        } else {
            tracing::info!(member = %req.name, "removing learner");
            self.change(ChangeMembers::RemoveNodes(BTreeSet::from([id]))).await?;
        }
        Ok(self.membership_response())
    }
}
