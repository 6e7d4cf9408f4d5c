//! A member's side of leases that survive leader changes (`lease_quorum.rs`): the membership it reports (resetting
//! its lease deadlines when that changes), its answer to an expiry vote, and the leader's vote round before it
//! proposes a `LeaseExpire`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::channel::raft_client;
use super::core::DcsCore;
use super::lease_quorum;
use crate::proto::RaftBytes;

/// How long the leader waits for one voter's expiry vote: a silent voter must not hold back an expiry that the
/// others already agree on, and the round repeats anyway.
const VOTE_TIMEOUT: Duration = Duration::from_millis(200);

/// A member's effective membership (the latest in its log, committed or not, as Raft uses it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipView {
    /// Its log id as text; `none` before the first membership.
    pub id: String,
    pub voters: Vec<BTreeSet<u64>>,
    /// Every node's id and address (voters and learners).
    pub nodes: Vec<(u64, String)>,
}

/// The leader asks: which of `leases` passed their deadline on your clock, under `membership`?
#[derive(Debug, Serialize, Deserialize)]
pub struct ExpiryVoteRequest {
    pub membership: String,
    pub leases: Vec<i64>,
}

/// A voter's answer; `expired` is empty when it holds another membership than the leader's.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExpiryVoteResponse {
    pub node_id: u64,
    pub membership: String,
    pub expired: Vec<i64>,
}

impl DcsCore {
    /// This member's membership now. The first time it sees a new one, every lease gets a full TTL from now
    /// (`LeaseClock::extend_all`) before anything is answered under it: the reset and the answers are ordered by
    /// the same lock.
    pub fn membership_now(&self) -> MembershipView {
        let stored = self.raft.metrics().borrow().membership_config.clone();
        let id = stored.log_id().map_or_else(|| "none".to_string(), |l| l.to_string());
        let mut seen = self.membership_seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.as_deref() != Some(id.as_str()) {
            self.sm.extend_leases(Instant::now());
            *seen = Some(id.clone());
        }
        MembershipView {
            id,
            voters: stored.membership().get_joint_config().clone(),
            nodes: stored.nodes().map(|(id, node)| (*id, node.addr.clone())).collect(),
        }
    }

    /// Answers the leader's expiry vote from this member's own clock.
    pub fn answer_expiry_vote(&self, req: &ExpiryVoteRequest) -> ExpiryVoteResponse {
        let membership = self.membership_now();
        let expired = if membership.id == req.membership {
            self.expired_among(&req.leases)
        } else {
            Vec::new()
        };
        ExpiryVoteResponse {
            node_id: self.node_id,
            membership: membership.id,
            expired,
        }
    }

    fn expired_among(&self, leases: &[i64]) -> Vec<i64> {
        let wanted: BTreeSet<i64> = leases.iter().copied().collect();
        self.sm
            .expired_leases(Instant::now())
            .into_iter()
            .map(|l| l.id)
            .filter(|id| wanted.contains(id))
            .collect()
    }

    /// Of `candidates` (expired on the leader's clock), those a quorum of every voter set also found expired.
    pub async fn expiry_quorum(&self, candidates: &[i64]) -> Vec<i64> {
        let membership = self.membership_now();
        let mut votes: BTreeMap<u64, BTreeSet<i64>> = BTreeMap::new();
        votes.insert(self.node_id, self.expired_among(candidates).into_iter().collect());
        let voters: BTreeSet<u64> = membership.voters.iter().flatten().copied().collect();
        let asks = membership
            .nodes
            .iter()
            .filter(|(id, _)| *id != self.node_id && voters.contains(id))
            .map(|(_, addr)| self.ask_expiry_vote(addr, &membership.id, candidates));
        // Done as soon as every candidate has its quorum: a dead voter (often the holder's own host) must not
        // delay the expiry by the vote timeout.
        let mut pending: futures::stream::FuturesUnordered<_> = asks.collect();
        let mut agreed = lease_quorum::expiry_quorum(&membership.voters, &votes, candidates);
        while agreed.len() < candidates.len() {
            let Some(answer) = futures::StreamExt::next(&mut pending).await else {
                break;
            };
            let Some(answer) = answer else { continue };
            if answer.membership == membership.id && voters.contains(&answer.node_id) {
                votes.insert(answer.node_id, answer.expired.into_iter().collect());
                agreed = lease_quorum::expiry_quorum(&membership.voters, &votes, candidates);
            }
        }
        agreed
    }

    async fn ask_expiry_vote(&self, addr: &str, membership: &str, leases: &[i64]) -> Option<ExpiryVoteResponse> {
        if self.fault.partitioned() {
            return None;
        }
        let req = ExpiryVoteRequest {
            membership: membership.to_string(),
            leases: leases.to_vec(),
        };
        let data = super::codec::encode(&req).ok()?;
        let mut request = tonic::Request::new(RaftBytes { data });
        request.set_timeout(VOTE_TIMEOUT);
        let mut client = raft_client(self.channel(addr).ok()?);
        let reply = tokio::time::timeout(VOTE_TIMEOUT, client.lease_expiry_vote(request))
            .await
            .ok()?
            .ok()?;
        super::codec::decode(&reply.into_inner().data).ok()
    }
}
