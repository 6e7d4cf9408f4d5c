//! Least privilege on real processes over real mutual TLS: one certificate per role against every RPC of a 3-member
//! cluster, allowed exactly where docs/security.md's table says; refused calls change nothing and are logged once
//! per peer and reason; certificates without a role follow `tls.legacy_certificates`.

mod common;
#[path = "common/roles.rs"]
mod roles;

use std::time::Duration;

use pgha::dcs::types::{node_id, Command, ExpiredLease, Op, Txn};
use pgha::harness::local::LocalCluster;
use pgha::identity::{Caller, CertRole};
use tonic::Status;

use common::{leader, put_acked, start_cluster_tls};
use roles::{denied, identity, refusals, Peer};
use CertRole::{Admin, Edge, Member, Monitor, Witness};

const EVERYONE: &[CertRole] = &[Member, Witness, Edge, Admin, Monitor];
const VOTERS: &[CertRole] = &[Member, Witness];

/// The calls of the table (payloads that would change the cluster if they got through, or harmless ones where
/// the call is allowed: Raft messages at term 0 are answered with the member's higher vote and change nothing).
#[derive(Clone, Copy, Debug)]
enum Call {
    AppendEntries,
    Vote,
    InstallSnapshot,
    ReadIndex,
    LeaseExpiryVote,
    ForwardEdgeWrite,
    ForwardLeaseExpire,
    ForwardEdgeConfig,
    Range,
    Watch,
    PutOwnKey,
    PutConfig,
    PutOtherMember,
    LeaseGrant,
    KeepAliveNode1Lease,
    RefreshNode1Lease,
    RevokeNode1Lease,
    Status,
    AddItself,
    AddNode3,
    RemoveMember,
}

/// (call, roles allowed to make it): the integration half of src/authz/rules_tests.rs.
const TABLE: &[(Call, &[CertRole])] = &[
    (Call::AppendEntries, VOTERS),
    (Call::Vote, VOTERS),
    (Call::InstallSnapshot, VOTERS),
    (Call::ReadIndex, VOTERS),
    (Call::LeaseExpiryVote, VOTERS),
    (Call::ForwardEdgeWrite, VOTERS),
    (Call::ForwardLeaseExpire, &[]),
    (Call::ForwardEdgeConfig, &[]),
    (Call::Range, EVERYONE),
    (Call::Watch, EVERYONE),
    (Call::PutOwnKey, &[Member, Edge, Admin]),
    (Call::PutConfig, &[Admin]),
    (Call::PutOtherMember, &[Admin]),
    (Call::LeaseGrant, &[Member, Edge, Admin]),
    (Call::KeepAliveNode1Lease, &[Member, Admin]),
    (Call::RefreshNode1Lease, &[Member, Admin]),
    // Last of the writes: an allowed revoke ends the lease (later revokes find nothing, which is not a refusal).
    (Call::RevokeNode1Lease, &[Member, Admin]),
    (Call::Status, EVERYONE),
    (Call::AddItself, &[Member, Witness, Admin]),
    (Call::AddNode3, &[Admin]),
    (Call::RemoveMember, &[Admin]),
];

fn root(key: &str) -> String {
    format!("/pgha/demo/{key}")
}

async fn make(p: &Peer, call: Call, node1_lease: i64) -> Result<(), Status> {
    let me = &p.caller;
    let own_id = node_id(&me.name);
    let edge1 = Caller::new(Edge, "edge1");
    let txn = |ops: Vec<Op>| {
        Command::Txn(Txn {
            success: ops,
            ..Txn::default()
        })
    };
    let put = |key: &str| Op::Put {
        key: root(key).into_bytes(),
        value: b"x".to_vec(),
        lease: 0,
    };
    match call {
        Call::AppendEntries => p.append_entries(0, own_id).await,
        Call::Vote => p.vote(0, own_id).await,
        Call::InstallSnapshot => p.install_snapshot(0, own_id, 0).await,
        Call::ReadIndex => p.read_index().await,
        Call::LeaseExpiryVote => p.expiry_vote(node1_lease).await,
        Call::ForwardEdgeWrite => {
            p.forward(&Command::by(Some(&edge1), txn(vec![put("edges/edge1")])))
                .await
        }
        Call::ForwardLeaseExpire => {
            let expire = Command::LeaseExpire {
                leases: vec![ExpiredLease {
                    id: node1_lease,
                    refreshed_index: 1,
                }],
            };
            p.forward(&expire).await
        }
        Call::ForwardEdgeConfig => p.forward(&Command::by(Some(&edge1), txn(vec![put("config")]))).await,
        Call::Range => p.get(&root("leader")).await.map(drop),
        Call::Watch => p.watch(&root("")).await,
        Call::PutOwnKey => {
            let key = match me.role {
                Member | Witness => format!("members/{}", me.name),
                Edge | Monitor => format!("edges/{}", me.name),
                Admin => "anything".to_string(),
            };
            p.put(&root(&key), "{}", 0).await
        }
        Call::PutConfig => p.put(&root("config"), "{}", 0).await,
        Call::PutOtherMember => p.put(&root("members/node2"), "{}", 0).await,
        Call::LeaseGrant => p.grant(60_000).await.map(drop),
        Call::KeepAliveNode1Lease => p.keepalive(node1_lease).await.map(drop),
        Call::RefreshNode1Lease => p.refresh(node1_lease).await.map(drop),
        Call::RevokeNode1Lease => p.revoke(node1_lease).await.map(drop),
        Call::Status => p.status().await.map(drop),
        // node1..3 are voters already: an allowed request is then turned down as such, not as a refusal.
        Call::AddItself if me.role == Admin => p.add_member("node1", "127.0.0.1:1").await,
        Call::AddItself => p.add_member(&me.name, "127.0.0.1:1").await,
        Call::AddNode3 => p.add_member("node3", "127.0.0.1:1").await,
        Call::RemoveMember if me.role == Admin => p.remove_member("nosuch").await,
        Call::RemoveMember => p.remove_member("node3").await,
    }
}

/// The cluster's revision and voters, as the admin reads them.
async fn state(admin: &Peer) -> (i64, Vec<String>) {
    let (_, revision) = admin.get(&root("leader")).await.expect("a read");
    let status = admin.status().await.expect("a status");
    (revision, status.members.into_iter().map(|m| m.name).collect())
}

fn peers(cluster: &LocalCluster, dir: &std::path::Path, node: usize) -> Vec<Peer> {
    // Member and witness certificates named as members of the cluster (their names are checked against it).
    let certs = [
        (Member, "node1"),
        (Witness, "node2"),
        (Edge, "edge1"),
        (Admin, "ops"),
        (Monitor, "mon"),
    ];
    certs
        .into_iter()
        .map(|(role, name)| {
            let sub = dir.join(name);
            std::fs::create_dir_all(&sub).expect("a cert dir");
            let tls = identity(cluster, &sub, Some(role), name);
            Peer::new(Caller::new(role, name), tls, &cluster.nodes[node].dcs_addr)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_against_every_rpc() {
    let cluster = start_cluster_tls(3, true, "");
    let lead = leader(&cluster).await;
    // Ask a follower: its answers include forwarding to the leader (writes, admin requests) with the caller's name.
    let node = (lead + 1) % 3;
    let dir = tempfile::tempdir().expect("a temp dir");
    let peers = peers(&cluster, dir.path(), node);
    let (member, admin) = (&peers[0], &peers[3]);
    let own = cluster.client(Duration::from_secs(10)).expect("the ctl client");
    put_acked(&own, "/authz/seed", "x", Duration::from_secs(20)).await;
    let node1_lease = member.grant(60_000).await.expect("node1 holds a lease");

    let before = state(admin).await;
    for (call, allowed) in TABLE {
        for p in peers.iter().filter(|p| !allowed.contains(&p.caller.role)) {
            let got = make(p, *call, node1_lease).await;
            assert!(
                denied(&got),
                "{call:?} by {}: expected a refusal, got {got:?}",
                p.caller
            );
        }
    }
    assert_eq!(
        state(admin).await,
        before,
        "refused calls changed the revision or the membership"
    );
    assert_eq!(
        member.keepalive(node1_lease).await.ok(),
        Some(true),
        "node1's lease survived"
    );

    for (call, allowed) in TABLE {
        for p in peers.iter().filter(|p| allowed.contains(&p.caller.role)) {
            let got = make(p, *call, node1_lease).await;
            assert!(!denied(&got), "{call:?} by {}: refused: {got:?}", p.caller);
        }
    }
    assert_eq!(state(admin).await.1, before.1, "the membership did not change");

    // Refusals are logged once per peer and reason, however often they repeat.
    let edge = &peers[2];
    for _ in 0..5 {
        assert!(denied(&edge.put(&root("config"), "{}", 0).await));
    }
    let lines = refusals(&cluster.nodes[node].log);
    let edge_lines: Vec<_> = lines.iter().filter(|(peer, _)| peer.ends_with("/edge/edge1")).collect();
    assert!(!edge_lines.is_empty(), "the edge's refusals are logged: {lines:?}");
    let mut seen = std::collections::BTreeSet::new();
    for line in &lines {
        assert!(seen.insert(line.clone()), "logged twice: {line:?} in {lines:?}");
    }
    // The cluster's own members and its ctl were never refused.
    assert!(
        !lines
            .iter()
            .any(|(peer, _)| peer.ends_with("/witness/node3") || peer.ends_with("/admin/ctl")),
        "{lines:?}"
    );
}

/// Writes `legacy_certificates = VALUE` into every node's `[tls]` section.
fn set_legacy_rule(cluster: &LocalCluster, value: &str) {
    for node in &cluster.nodes {
        let text = std::fs::read_to_string(&node.config).expect("a node config");
        let text = text.replace("legacy_certificates = \"allow\"\n", "");
        let text = text.replace("[tls]\n", &format!("[tls]\nlegacy_certificates = \"{value}\"\n"));
        std::fs::write(&node.config, text).expect("writing the node config");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_without_a_role_follow_the_legacy_rule() {
    let mut cluster = start_cluster_tls(3, true, "");
    leader(&cluster).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let old_tls = identity(&cluster, dir.path(), None, "old-ops");
    let old = Peer::new(Caller::new(Admin, "old-ops"), old_tls, &cluster.nodes[0].dcs_addr);

    // Default "allow": full rights, as before roles (even the configuration), and a warning once per peer.
    for i in 0..3 {
        common::wait_until(Duration::from_secs(20), "a write with a legacy certificate", || async {
            old.put(&root("config"), &format!("{{\"try\":{i}}}"), 0).await.is_ok()
        })
        .await;
    }
    let log = roles::strip_ansi(&std::fs::read_to_string(&cluster.nodes[0].log).expect("the node log"));
    let warnings = log
        .lines()
        .filter(|l| l.contains("legacy_certificate") && l.contains("CN=old-ops"))
        .count();
    assert_eq!(warnings, 1, "one warning for the legacy peer:\n{log}");

    // "deny": refused with the reason, nothing written.
    cluster.stop_all(Duration::from_secs(10));
    set_legacy_rule(&cluster, "deny");
    cluster.start_all().expect("restarting");
    leader(&cluster).await;
    std::fs::create_dir_all(dir.path().join("ops")).expect("a cert dir");
    let admin_tls = identity(&cluster, &dir.path().join("ops"), Some(Admin), "ops");
    let admin = Peer::new(Caller::new(Admin, "ops"), admin_tls, &cluster.nodes[0].dcs_addr);
    let before = common::wait_for(Duration::from_secs(20), "a read", || async {
        admin.get(&root("config")).await.ok()
    })
    .await;
    for _ in 0..3 {
        let got = old.put(&root("config"), "{}", 0).await;
        assert!(denied(&got), "a legacy certificate under deny: {got:?}");
        let message = got.err().map(|s| s.message().to_string()).unwrap_or_default();
        assert!(message.contains("pgha cert issue --role"), "{message}");
        assert!(denied(&old.get(&root("config")).await), "reads are refused too");
    }
    assert_eq!(admin.get(&root("config")).await.ok(), Some(before), "nothing changed");
    // The role certificates of the cluster itself keep working.
    let own = cluster.client(Duration::from_secs(10)).expect("the ctl client");
    put_acked(&own, "/authz/after", "x", Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_member_joins_with_its_own_certificate_and_admin_removes_it_through_a_follower() {
    let mut cluster = start_cluster_tls(3, true, "");
    let lead = leader(&cluster).await;
    let own = cluster.client(Duration::from_secs(10)).expect("the ctl client");
    // node4 asks to be added under its own name (AddMember from a witness certificate, forwarded by a follower to
    // the leader with node4 named as the caller).
    let fourth = cluster.add_node().expect("laying out node4");
    cluster.start(fourth).expect("starting node4");
    let four: Vec<String> = (1..=4).map(|i| format!("node{i}")).collect();
    common::wait_until(Duration::from_secs(30), "4 voters", || async {
        common::voters(&own).await.as_ref() == Some(&four)
    })
    .await;
    common::wait_file_contains(
        &cluster.nodes[fourth].log,
        "joined the existing DCS cluster",
        Duration::from_secs(30),
    )
    .await;

    let follower = (lead + 1) % 3;
    let dir = tempfile::tempdir().expect("a temp dir");
    let admin = Peer::new(
        Caller::new(Admin, "ops"),
        identity(&cluster, dir.path(), Some(Admin), "ops"),
        &cluster.nodes[follower].dcs_addr,
    );
    common::wait_until(Duration::from_secs(30), "node4 removed", || async {
        admin.remove_member("node4").await.is_ok()
    })
    .await;
    let three: Vec<String> = (1..=3).map(|i| format!("node{i}")).collect();
    // The removal is acknowledged once committed; the member `own` asks may apply it a moment later.
    common::wait_until(Duration::from_secs(10), "three voters left", || async {
        common::voters(&own).await.as_ref() == Some(&three)
    })
    .await;
    for node in &cluster.nodes {
        assert_eq!(refusals(&node.log), vec![], "{}", node.name);
    }
}
