//! Cluster formation without an `initial-cluster-state` flag: resume, initialize exactly once, or join.
//!
//! A member with Raft state resumes. A member with empty storage asks its configured peers first: if any of them is
//! part of an initialized cluster, it waits to be replicated to (when the membership already lists it) or asks to be
//! added (learner, then voter); only when no peer knows a cluster does it initialize with the configured voter set.
//! Several empty members initializing at once is safe: they propose the identical membership at log index 0.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::core::DcsCore;
use super::types::{node_id, PghaNode};
use crate::proto::admin_client::AdminClient;
use crate::proto::{AddMemberRequest, StatusRequest};

/// What a peer said about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerProbe {
    Unreachable,
    Uninitialized,
    /// Member of a cluster whose membership holds these names.
    Initialized {
        members: Vec<String>,
    },
}

/// What this member does at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Local Raft state exists: just run.
    Resume,
    /// No cluster anywhere: initialize with the configured voters.
    Initialize,
    /// The cluster lists this member already: the leader will send it the log or a snapshot.
    AwaitReplication,
    /// The cluster does not know this member: ask it to add us.
    Join,
}

/// The pure start-up decision.
pub fn plan(has_local_state: bool, self_name: &str, probes: &[PeerProbe]) -> Plan {
    if has_local_state {
        return Plan::Resume;
    }
    let mut known_cluster = false;
    for probe in probes {
        if let PeerProbe::Initialized { members } = probe {
            if members.iter().any(|m| m == self_name) {
                return Plan::AwaitReplication;
            }
            known_cluster = true;
        }
    }
    if known_cluster {
        Plan::Join
    } else {
        Plan::Initialize
    }
}

async fn probe(core: &DcsCore, addr: &str) -> PeerProbe {
    let Ok(channel) = core.channel(addr) else {
        return PeerProbe::Unreachable;
    };
    let mut client = AdminClient::new(channel);
    let mut req = tonic::Request::new(StatusRequest {});
    req.set_timeout(Duration::from_millis(500));
    match client.status(req).await {
        Ok(s) if s.get_ref().initialized => PeerProbe::Initialized {
            members: s.into_inner().members.into_iter().map(|m| m.name).collect(),
        },
        Ok(_) => PeerProbe::Uninitialized,
        Err(_) => PeerProbe::Unreachable,
    }
}

/// Runs the start-up decision and acts on it. `peers` are (name, addr) of the configured initial voters.
pub async fn run(core: Arc<DcsCore>, peers: Vec<(String, String)>, token: CancellationToken) {
    let has_state = core.raft.is_initialized().await.unwrap_or(true);
    let others: Vec<&(String, String)> = peers.iter().filter(|(n, _)| *n != core.node.name).collect();
    let mut probes = Vec::new();
    if !has_state {
        for (_, addr) in &others {
            probes.push(probe(&core, addr).await);
        }
    }
    let decision = plan(has_state, &core.node.name, &probes);
    tracing::info!(plan = ?decision, "DCS start-up");
    match decision {
        Plan::Resume | Plan::AwaitReplication => {}
        Plan::Initialize => {
            let members: BTreeMap<u64, PghaNode> = peers
                .iter()
                .map(|(name, addr)| {
                    (
                        node_id(name),
                        PghaNode {
                            name: name.clone(),
                            addr: addr.clone(),
                        },
                    )
                })
                .collect();
            match core.raft.initialize(members).await {
                Ok(()) => tracing::info!(voters = peers.len(), "initialized a new DCS cluster"),
                Err(e) => tracing::info!("cluster already initialized ({e})"),
            }
        }
        Plan::Join => join(&core, &others, &token).await,
    }
}

/// Asks the cluster to add this member, retrying (with a capped backoff) until it is a member or we shut down.
async fn join(core: &DcsCore, others: &[&(String, String)], token: &CancellationToken) {
    let mut pause = Duration::from_millis(200);
    loop {
        for (_, addr) in others {
            let Ok(channel) = core.channel(addr) else { continue };
            let req = AddMemberRequest {
                name: core.node.name.clone(),
                addr: core.node.addr.clone(),
            };
            match AdminClient::new(channel).add_member(req).await {
                Ok(_) => {
                    tracing::info!(via = %addr, "joined the existing DCS cluster");
                    return;
                }
                Err(e) => tracing::warn!(via = %addr, "join request failed: {}", e.message()),
            }
        }
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init(names: &[&str]) -> PeerProbe {
        PeerProbe::Initialized {
            members: names.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn plan_table() {
        use PeerProbe::*;
        let cases: Vec<(&str, bool, Vec<PeerProbe>, Plan)> = vec![
            ("restart resumes", true, vec![], Plan::Resume),
            ("restart ignores peers", true, vec![init(&["db2"])], Plan::Resume),
            (
                "first start, nobody up",
                false,
                vec![Unreachable, Unreachable],
                Plan::Initialize,
            ),
            (
                "first start together",
                false,
                vec![Uninitialized, Unreachable],
                Plan::Initialize,
            ),
            (
                "wiped member of a live cluster",
                false,
                vec![init(&["db1", "db2"]), Unreachable],
                Plan::AwaitReplication,
            ),
            (
                "new member",
                false,
                vec![Unreachable, init(&["db2", "db3"])],
                Plan::Join,
            ),
        ];
        for (name, has_state, probes, expected) in cases {
            assert_eq!(plan(has_state, "db1", &probes), expected, "{name}");
        }
    }
}
