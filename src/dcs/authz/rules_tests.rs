//! The role x RPC table (docs/security.md shows the same table): every RPC, every role, allowed exactly where listed.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::dcs::authz::rest::RestWrite;
use crate::dcs::types::{Compare, CompareTarget, ExpiredLease, Op, Txn};
use crate::identity::role::Caller;
use CertRole::{Admin, Edge, Member, Monitor, Witness};

const ROOT: &str = "/pgha/main/";
const VOTERS: &[CertRole] = &[Member, Witness];
const NOBODY: &[CertRole] = &[];
const ADMIN: &[CertRole] = &[Admin];
const EVERYONE: &[CertRole] = &[Member, Witness, Edge, Admin, Monitor];
const LEASE_USERS: &[CertRole] = &[Member, Edge, Admin];

/// The certificate used for each role in the table.
fn caller(role: CertRole) -> Caller {
    let name = match role {
        Member => "db1",
        Witness => "w1",
        Edge => "edge1",
        Admin => "ops",
        Monitor => "mon",
    };
    Caller::new(role, name)
}

/// An owned request, built for a caller (its own name where a row says "own").
enum Req {
    Append { from: Option<u64> },
    Vote { from: Option<u64> },
    Install { from: Option<u64> },
    ReadIndex,
    Forward(Command),
    Range,
    Watch,
    Txn(Txn),
    Grant,
    KeepAlive(i64),
    Revoke(i64),
    Refresh(i64),
    ExpiryVote,
    Status,
    Add(String),
    Remove(String),
    Wal,
    Rest(crate::dcs::authz::rest::RestWrite),
}

impl Req {
    fn rpc(&self) -> Rpc<'_> {
        match self {
            Req::Append { from } => Rpc::AppendEntries { leader: *from },
            Req::Vote { from } => Rpc::Vote { candidate: *from },
            Req::Install { from } => Rpc::InstallSnapshot { leader: *from },
            Req::ReadIndex => Rpc::ReadIndex,
            Req::Forward(cmd) => Rpc::ForwardWrite(cmd),
            Req::Range => Rpc::Range,
            Req::Watch => Rpc::Watch,
            Req::Txn(txn) => Rpc::Txn(txn),
            Req::Grant => Rpc::LeaseGrant,
            Req::KeepAlive(id) => Rpc::LeaseKeepAlive(*id),
            Req::Revoke(id) => Rpc::LeaseRevoke(*id),
            Req::Refresh(id) => Rpc::LeaseRefresh(*id),
            Req::ExpiryVote => Rpc::LeaseExpiryVote,
            Req::Status => Rpc::Status,
            Req::Add(n) => Rpc::AddMember(n),
            Req::Remove(n) => Rpc::RemoveMember(n),
            Req::Wal => Rpc::WalPosition,
            Req::Rest(w) => Rpc::RestWrite(*w),
        }
    }
}

fn put(key: &str, value: &str, lease: i64) -> Op {
    Op::Put {
        key: format!("{ROOT}{key}").into_bytes(),
        value: value.as_bytes().to_vec(),
        lease,
    }
}

fn del(key: &str, prefix: bool) -> Op {
    Op::Delete {
        key: format!("{ROOT}{key}").into_bytes(),
        prefix,
    }
}

fn txn(ops: Vec<Op>) -> Req {
    Req::Txn(Txn {
        success: ops,
        ..Txn::default()
    })
}

fn config_if_absent(in_success: bool) -> Req {
    let op = put("config", "{}", 0);
    let (success, failure) = if in_success {
        (vec![op], vec![])
    } else {
        (vec![], vec![op])
    };
    Req::Txn(Txn {
        compares: vec![Compare {
            key: format!("{ROOT}config").into_bytes(),
            target: CompareTarget::Absent,
        }],
        success,
        failure,
    })
}

fn id_of(c: &Caller) -> Option<u64> {
    Some(node_id(&c.name))
}

fn forward(by: Caller, cmd: Command) -> Req {
    Req::Forward(Command::by(Some(&by), cmd))
}

/// Lease 7 is the caller's own, 8 is db2's, 9 was granted without a role certificate; others are unknown here.
fn leases(c: &Caller) -> BTreeMap<i64, Option<Caller>> {
    BTreeMap::from([(7, Some(c.clone())), (8, Some(Caller::new(Member, "db2"))), (9, None)])
}

fn members() -> Membership {
    Membership::Names(["db1", "db2", "w1"].map(String::from).into())
}

type Build = Box<dyn Fn(&Caller) -> Req>;

fn table() -> Vec<(&'static str, Build, &'static [CertRole])> {
    let edge_put = || {
        Command::Txn(Txn {
            success: vec![put("edges/edge1", "{}", 0)],
            ..Txn::default()
        })
    };
    let config_put = || {
        Command::Txn(Txn {
            success: vec![put("config", "{}", 0)],
            ..Txn::default()
        })
    };
    vec![
        // RaftInternal
        (
            "AppendEntries as itself",
            Box::new(|c| Req::Append { from: id_of(c) }),
            VOTERS,
        ),
        (
            "AppendEntries as another node",
            Box::new(|_| Req::Append {
                from: Some(node_id("db2")),
            }),
            NOBODY,
        ),
        ("Vote as itself", Box::new(|c| Req::Vote { from: id_of(c) }), VOTERS),
        (
            "Vote as another node",
            Box::new(|_| Req::Vote {
                from: Some(node_id("db2")),
            }),
            NOBODY,
        ),
        (
            "InstallSnapshot as itself",
            Box::new(|c| Req::Install { from: id_of(c) }),
            VOTERS,
        ),
        ("ReadIndex", Box::new(|_| Req::ReadIndex), VOTERS),
        ("LeaseExpiryVote", Box::new(|_| Req::ExpiryVote), VOTERS),
        (
            "ForwardWrite of an edge's own key",
            Box::new(move |_| forward(caller(Edge), edge_put())),
            VOTERS,
        ),
        (
            "ForwardWrite of an admin's config",
            Box::new(move |_| forward(caller(Admin), config_put())),
            VOTERS,
        ),
        (
            "ForwardWrite of an edge's config",
            Box::new(move |_| forward(caller(Edge), config_put())),
            NOBODY,
        ),
        (
            "ForwardWrite of an edge renewing db2's lease",
            Box::new(|_| forward(caller(Edge), Command::LeaseKeepAlive { id: 8 })),
            NOBODY,
        ),
        (
            "ForwardWrite unattributed (legacy caller)",
            Box::new(move |_| Req::Forward(edge_put())),
            VOTERS,
        ),
        (
            "ForwardWrite of LeaseExpire",
            Box::new(|_| {
                Req::Forward(Command::LeaseExpire {
                    leases: vec![ExpiredLease {
                        id: 8,
                        refreshed_index: 1,
                    }],
                })
            }),
            NOBODY,
        ),
        (
            "ForwardWrite of LeaseExpire made by an admin",
            Box::new(|_| forward(caller(Admin), Command::LeaseExpire { leases: vec![] })),
            NOBODY,
        ),
        (
            "ForwardWrite nested",
            Box::new(move |_| forward(caller(Admin), Command::by(Some(&caller(Admin)), edge_put()))),
            NOBODY,
        ),
        // Dcs reads
        ("Range", Box::new(|_| Req::Range), EVERYONE),
        ("Watch", Box::new(|_| Req::Watch), EVERYONE),
        // Dcs writes, by key
        (
            "put members/<own>",
            Box::new(|c| txn(vec![put(&format!("members/{}", c.name), "{}", 0)])),
            &[Member, Admin],
        ),
        (
            "put members/db2",
            Box::new(|_| txn(vec![put("members/db2", "{}", 0)])),
            ADMIN,
        ),
        (
            "delete members/<own> by prefix",
            Box::new(|c| txn(vec![del(&format!("members/{}", c.name), true)])),
            ADMIN,
        ),
        (
            "put leader naming itself",
            Box::new(|c| txn(vec![put("leader", &c.name, 0)])),
            &[Member, Admin],
        ),
        (
            "put leader naming db2",
            Box::new(|_| txn(vec![put("leader", "db2", 0)])),
            ADMIN,
        ),
        (
            "delete leader",
            Box::new(|_| txn(vec![del("leader", false)])),
            &[Member, Admin],
        ),
        (
            "put sync",
            Box::new(|_| txn(vec![put("sync", "{}", 0)])),
            &[Member, Admin],
        ),
        (
            "delete sync",
            Box::new(|_| txn(vec![del("sync", false)])),
            &[Member, Admin],
        ),
        (
            "put history",
            Box::new(|_| txn(vec![put("history", "[]", 0)])),
            &[Member, Admin],
        ),
        ("delete history", Box::new(|_| txn(vec![del("history", false)])), ADMIN),
        (
            "put initialize",
            Box::new(|_| txn(vec![put("initialize", "1", 0)])),
            &[Member, Admin],
        ),
        (
            "put switchover",
            Box::new(|_| txn(vec![put("switchover", "{}", 0)])),
            ADMIN,
        ),
        (
            "delete switchover",
            Box::new(|_| txn(vec![del("switchover", false)])),
            &[Member, Admin],
        ),
        (
            "put commands/<own>",
            Box::new(|c| txn(vec![put(&format!("commands/{}", c.name), "{}", 0)])),
            ADMIN,
        ),
        (
            "delete commands/<own>",
            Box::new(|c| txn(vec![del(&format!("commands/{}", c.name), false)])),
            &[Member, Admin],
        ),
        (
            "delete commands/db2",
            Box::new(|_| txn(vec![del("commands/db2", false)])),
            ADMIN,
        ),
        ("put config", Box::new(|_| txn(vec![put("config", "{}", 0)])), ADMIN),
        (
            "put config if absent (bootstrap)",
            Box::new(|_| config_if_absent(true)),
            &[Member, Admin],
        ),
        (
            "put config if present (failure branch)",
            Box::new(|_| config_if_absent(false)),
            ADMIN,
        ),
        (
            "put edges/<own>",
            Box::new(|c| txn(vec![put(&format!("edges/{}", c.name), "{}", 0)])),
            &[Edge, Admin],
        ),
        (
            "put edges/edge2",
            Box::new(|_| txn(vec![put("edges/edge2", "{}", 0)])),
            ADMIN,
        ),
        (
            "put vip naming itself",
            Box::new(|c| txn(vec![put("vip", &c.name, 0)])),
            &[Edge, Admin],
        ),
        (
            "put vip naming edge2",
            Box::new(|_| txn(vec![put("vip", "edge2", 0)])),
            ADMIN,
        ),
        ("delete vip", Box::new(|_| txn(vec![del("vip", false)])), ADMIN),
        (
            "put outside the cluster",
            Box::new(|_| {
                Req::Txn(Txn {
                    success: vec![Op::Put {
                        key: b"/pgha/other/leader".to_vec(),
                        value: vec![],
                        lease: 0,
                    }],
                    ..Txn::default()
                })
            }),
            ADMIN,
        ),
        (
            "delete members/ by prefix",
            Box::new(|_| txn(vec![del("members/", true)])),
            ADMIN,
        ),
        // Dcs leases
        ("LeaseGrant", Box::new(|_| Req::Grant), LEASE_USERS),
        ("LeaseKeepAlive own lease", Box::new(|_| Req::KeepAlive(7)), LEASE_USERS),
        ("LeaseKeepAlive db2's lease", Box::new(|_| Req::KeepAlive(8)), ADMIN),
        (
            "LeaseKeepAlive of a lease without owner",
            Box::new(|_| Req::KeepAlive(9)),
            ADMIN,
        ),
        (
            "LeaseKeepAlive unknown here (state machine decides)",
            Box::new(|_| Req::KeepAlive(99)),
            LEASE_USERS,
        ),
        ("LeaseRevoke own lease", Box::new(|_| Req::Revoke(7)), LEASE_USERS),
        ("LeaseRefresh own lease", Box::new(|_| Req::Refresh(7)), LEASE_USERS),
        ("LeaseRefresh db2's lease", Box::new(|_| Req::Refresh(8)), ADMIN),
        (
            "LeaseRefresh unknown here (nothing to refresh)",
            Box::new(|_| Req::Refresh(99)),
            LEASE_USERS,
        ),
        ("LeaseRevoke db2's lease", Box::new(|_| Req::Revoke(8)), ADMIN),
        (
            "put own key bound to own lease",
            Box::new(|c| {
                txn(vec![
                    put(&format!("members/{}", c.name), "{}", 7),
                    put(&format!("edges/{}", c.name), "{}", 7),
                ])
            }),
            ADMIN,
        ),
        (
            "put members/<own> bound to own lease",
            Box::new(|c| txn(vec![put(&format!("members/{}", c.name), "{}", 7)])),
            &[Member, Admin],
        ),
        (
            "put members/<own> bound to db2's lease",
            Box::new(|c| txn(vec![put(&format!("members/{}", c.name), "{}", 8)])),
            ADMIN,
        ),
        (
            "put edges/<own> bound to db2's lease",
            Box::new(|c| txn(vec![put(&format!("edges/{}", c.name), "{}", 8)])),
            ADMIN,
        ),
        // Admin
        ("Status", Box::new(|_| Req::Status), EVERYONE),
        (
            "AddMember itself",
            Box::new(|c| Req::Add(c.name.clone())),
            &[Member, Witness, Admin],
        ),
        ("AddMember db9", Box::new(|_| Req::Add("db9".into())), ADMIN),
        ("RemoveMember itself", Box::new(|c| Req::Remove(c.name.clone())), ADMIN),
        ("RemoveMember db2", Box::new(|_| Req::Remove("db2".into())), ADMIN),
        // Ha
        ("WalPosition", Box::new(|_| Req::Wal), VOTERS),
        // REST writes of a db node (Patroni's API): one row each
        ("REST POST /switchover", rest(RestWrite::Switchover), ADMIN),
        ("REST DELETE /switchover", rest(RestWrite::CancelSwitchover), ADMIN),
        ("REST POST /failover", rest(RestWrite::Failover), ADMIN),
        ("REST POST /restart", rest(RestWrite::Restart), ADMIN),
        ("REST POST /reload", rest(RestWrite::Reload), ADMIN),
        ("REST POST /reinitialize", rest(RestWrite::Reinitialize), ADMIN),
        ("REST PATCH /config", rest(RestWrite::PatchConfig), ADMIN),
        ("REST PUT /config", rest(RestWrite::PutConfig), ADMIN),
    ]
}

fn rest(write: RestWrite) -> Build {
    Box::new(move |_| Req::Rest(write))
}

fn decide(who: &Principal, req: &Req, members: &Membership, legacy: LegacyCertificates) -> Result<(), Denial> {
    let owners = match who {
        Principal::Cert(c) => leases(c),
        Principal::Unrestricted => leases(&caller(Admin)),
    };
    let ctx = Ctx {
        root: ROOT,
        members,
        leases: &owners,
        legacy,
    };
    authorize(who, req.rpc(), &ctx)
}

#[test]
fn every_rpc_for_every_role() {
    let members = members();
    let mut covered = BTreeSet::new();
    for (what, build, allowed) in table() {
        for role in CertRole::ALL {
            let c = caller(role);
            let req = build(&c);
            covered.insert(req.rpc().name());
            let got = decide(&Principal::Cert(c.clone()), &req, &members, LegacyCertificates::Allow);
            assert_eq!(got.is_ok(), allowed.contains(&role), "{what} by {c}: {got:?}");
            if let Err(d) = got {
                assert!(d.reason.len() > 10 && !d.kind.is_empty(), "{what} by {c}: {d:?}");
            }
        }
    }
    // Every RPC of proto/pgha.proto and every REST write is in the table.
    assert_eq!(covered.len(), 17 + RestWrite::ALL.len(), "{covered:?}");
}

#[test]
fn unrestricted_callers_pass_everything_but_internal_commands() {
    let members = members();
    for (what, build, _) in table() {
        let req = build(&caller(Admin));
        let internal = what.contains("LeaseExpire") || what.contains("nested");
        // REST writes are never granted to a certificate without a role.
        let rest = what.starts_with("REST ");
        let got = decide(&Principal::Unrestricted, &req, &members, LegacyCertificates::Deny);
        assert_eq!(got.is_ok(), !internal && !rest, "{what}: {got:?}");
    }
}

#[test]
fn membership_and_the_legacy_rule_for_forwarded_writes() {
    let outsider = Principal::Cert(Caller::new(Member, "db9"));
    let append = Req::Append {
        from: Some(node_id("db9")),
    };
    let known = members();
    let got = decide(&outsider, &append, &known, LegacyCertificates::Allow);
    assert_eq!(got.map_err(|d| d.kind), Err("not_in_membership"));
    // A member with empty storage cannot know the cluster yet: it must accept its first AppendEntries.
    assert!(decide(&outsider, &append, &Membership::Unknown, LegacyCertificates::Allow).is_ok());
    assert!(decide(&outsider, &Req::Add("db9".into()), &known, LegacyCertificates::Allow).is_ok());

    let db1 = Principal::Cert(caller(Member));
    let unattributed = Req::Forward(Command::LeaseKeepAlive { id: 8 });
    assert!(decide(&db1, &unattributed, &known, LegacyCertificates::Allow).is_ok());
    let got = decide(&db1, &unattributed, &known, LegacyCertificates::Deny);
    assert_eq!(got.map_err(|d| d.kind), Err("legacy_forwarded"));
}

#[test]
fn lease_use_rule() {
    let db1 = Caller::new(Member, "db1");
    let edge_db1 = Caller::new(Edge, "db1");
    let admin = Caller::new(Admin, "ops");
    assert!(lease_use(Some(&db1), &db1, 1).is_ok());
    // Same name, other role: another holder.
    assert!(lease_use(Some(&db1), &edge_db1, 1).is_err());
    assert!(lease_use(None, &db1, 1).is_err());
    assert!(lease_use(Some(&db1), &admin, 1).is_ok());
    assert!(lease_use(None, &admin, 1).is_ok());
}

#[test]
fn keys_are_classified_by_the_schema() {
    use super::keys::{classify, KeyKind};
    let cases: [(&[u8], KeyKind<'_>); 10] = [
        (b"/pgha/main/leader", KeyKind::Leader),
        (b"/pgha/main/members/db1", KeyKind::Member("db1")),
        (b"/pgha/main/members/db1/x", KeyKind::Other),
        (b"/pgha/main/members/", KeyKind::Other),
        (b"/pgha/main/commands/db2", KeyKind::Command("db2")),
        (b"/pgha/main/edges/edge1", KeyKind::Edge("edge1")),
        (b"/pgha/main/vip", KeyKind::Vip),
        (b"/pgha/main/config", KeyKind::Config),
        (b"/pgha/other/config", KeyKind::Other),
        (b"\xff/pgha/main/leader", KeyKind::Other),
    ];
    for (key, kind) in cases {
        assert_eq!(classify(ROOT, key), kind, "{}", String::from_utf8_lossy(key));
    }
}
