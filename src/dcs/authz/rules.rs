//! The one decision: may this caller make this RPC with this payload? (pure; the table is in rules_tests.rs)

use std::collections::{BTreeMap, BTreeSet};

use super::keys;
use crate::dcs::types::{node_id, Command, Op, Txn};
use crate::identity::role::{Caller, CertRole};
use crate::identity::LegacyCertificates;

/// Who the rules are applied to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// No restriction: plaintext mode (no identity at all), or a certificate without a role while
    /// `tls.legacy_certificates = "allow"` (it keeps the full rights it had before roles existed).
    Unrestricted,
    /// A role certificate.
    Cert(Caller),
}

/// Every RPC of proto/pgha.proto, with what the rules need from its payload.
#[derive(Clone, Copy, Debug)]
pub enum Rpc<'a> {
    /// `leader`: the node id the request's vote names (the sender must be that node).
    AppendEntries {
        leader: Option<u64>,
    },
    Vote {
        candidate: Option<u64>,
    },
    InstallSnapshot {
        leader: Option<u64>,
    },
    ReadIndex,
    /// A write a member received from a client and forwards to the Raft leader.
    ForwardWrite(&'a Command),
    Range,
    Watch,
    Txn(&'a Txn),
    LeaseGrant,
    LeaseKeepAlive(i64),
    LeaseRevoke(i64),
    /// A holder refreshes its lease on one voter's clock (no log entry).
    LeaseRefresh(i64),
    /// The Raft leader asks a voter whether leases expired on its clock.
    LeaseExpiryVote,
    Status,
    AddMember(&'a str),
    RemoveMember(&'a str),
    WalPosition,
    /// A write of the db node's REST API (Patroni's `POST /switchover`, `PATCH /config`, ...).
    RestWrite(super::rest::RestWrite),
}

impl Rpc<'_> {
    /// The RPC's name in log lines and messages.
    pub fn name(&self) -> &'static str {
        match self {
            Rpc::AppendEntries { .. } => "AppendEntries",
            Rpc::Vote { .. } => "Vote",
            Rpc::InstallSnapshot { .. } => "InstallSnapshot",
            Rpc::ReadIndex => "ReadIndex",
            Rpc::ForwardWrite(_) => "ForwardWrite",
            Rpc::Range => "Range",
            Rpc::Watch => "Watch",
            Rpc::Txn(_) => "Txn",
            Rpc::LeaseGrant => "LeaseGrant",
            Rpc::LeaseKeepAlive(_) => "LeaseKeepAlive",
            Rpc::LeaseRevoke(_) => "LeaseRevoke",
            Rpc::LeaseRefresh(_) => "LeaseRefresh",
            Rpc::LeaseExpiryVote => "LeaseExpiryVote",
            Rpc::Status => "Status",
            Rpc::AddMember(_) => "AddMember",
            Rpc::RemoveMember(_) => "RemoveMember",
            Rpc::WalPosition => "WalPosition",
            Rpc::RestWrite(w) => w.name(),
        }
    }
}

/// The Raft membership as the deciding member knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Membership {
    /// Empty storage: a member waiting to be initialized, replicated to or added accepts any voter certificate
    /// (it cannot know the cluster yet, and refusing would keep it from ever joining).
    Unknown,
    /// Names of every voter and learner of the effective (latest, possibly uncommitted) configuration.
    Names(BTreeSet<String>),
}

impl Membership {
    /// Whether `name` may speak as a voter here.
    pub fn contains(&self, name: &str) -> bool {
        match self {
            Membership::Unknown => true,
            Membership::Names(names) => names.contains(name),
        }
    }
}

/// What the decision depends on besides the caller and the request.
#[derive(Clone, Debug)]
pub struct Ctx<'a> {
    /// Key prefix of this cluster: `/pgha/<cluster>/`.
    pub root: &'a str,
    pub members: &'a Membership,
    /// Owners of the leases the request touches, for the leases this member knows (see [`touched_leases`]);
    /// `None` = granted without a role certificate. A lease missing here is left to the state machine.
    pub leases: &'a BTreeMap<i64, Option<Caller>>,
    /// This member's rule for certificates without a role (a forwarded write of such a caller carries none).
    pub legacy: LegacyCertificates,
}

/// A refusal: `kind` is stable (log once per peer and kind), `reason` is for the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    pub kind: &'static str,
    pub reason: String,
}

fn deny(kind: &'static str, reason: impl Into<String>) -> Result<(), Denial> {
    Err(Denial {
        kind,
        reason: reason.into(),
    })
}

/// The decision. Unrestricted principals pass everything but an internal command from the network.
pub fn authorize(who: &Principal, rpc: Rpc<'_>, ctx: &Ctx<'_>) -> Result<(), Denial> {
    if let Rpc::ForwardWrite(cmd) = rpc {
        // Never from the network, whoever sends it: the leader makes it from its own clock.
        if is_internal(cmd) {
            return deny(
                "internal_command",
                "LeaseExpire is made by the Raft leader itself, never accepted",
            );
        }
    }
    if let Rpc::RestWrite(write) = rpc {
        return rest_write(who, write);
    }
    let Principal::Cert(caller) = who else {
        return Ok(());
    };
    let role = caller.role;
    match rpc {
        Rpc::Range | Rpc::Watch | Rpc::Status => Ok(()),
        Rpc::AppendEntries { leader: from } | Rpc::InstallSnapshot { leader: from } | Rpc::Vote { candidate: from } => {
            voter_in_membership(caller, rpc, ctx)?;
            // The certificate must be the node the message speaks for (db1 cannot campaign as db2).
            match from {
                Some(id) if id != node_id(&caller.name) => deny(
                    "raft_impersonation",
                    format!("{caller} sent a Raft message in the name of another node (id {id})"),
                ),
                _ => Ok(()),
            }
        }
        Rpc::ReadIndex | Rpc::WalPosition | Rpc::LeaseExpiryVote => voter_in_membership(caller, rpc, ctx),
        Rpc::ForwardWrite(cmd) => {
            voter_in_membership(caller, rpc, ctx)?;
            forwarded(cmd, ctx)
        }
        Rpc::Txn(txn) => {
            keys::check_txn(ctx.root, caller, txn).map_err(|reason| Denial { kind: "key", reason })?;
            for lease in txn_leases(txn) {
                lease_known(caller, lease, ctx)?;
            }
            Ok(())
        }
        Rpc::LeaseGrant => lease_role(caller),
        Rpc::LeaseKeepAlive(id) | Rpc::LeaseRevoke(id) | Rpc::LeaseRefresh(id) => {
            lease_role(caller)?;
            lease_known(caller, id, ctx)
        }
        Rpc::AddMember(name) => match role {
            CertRole::Admin => Ok(()),
            // A new node asks to be added itself (dcs::bootstrap::join): only under its own name.
            CertRole::Member | CertRole::Witness if name == caller.name => Ok(()),
            _ => deny(
                "membership",
                format!("{caller} may not add member {name:?} (admin only)"),
            ),
        },
        Rpc::RemoveMember(name) => match role {
            CertRole::Admin => Ok(()),
            _ => deny(
                "membership",
                format!("{caller} may not remove member {name:?} (admin only)"),
            ),
        },
        Rpc::RestWrite(write) => rest_write(who, write),
    }
}

/// REST writes are operator actions: an admin role certificate only. Unlike the gRPC API, a certificate without a
/// role gets nothing here (REST writes did not exist when such certificates were issued).
fn rest_write(who: &Principal, write: super::rest::RestWrite) -> Result<(), Denial> {
    match who {
        Principal::Cert(c) if c.role == CertRole::Admin => Ok(()),
        Principal::Cert(c) => deny(
            "rest_write_role",
            format!("{c} may not call {} (admin certificates only)", write.name()),
        ),
        Principal::Unrestricted => deny(
            "rest_write_no_role",
            format!(
                "{} needs an admin role certificate; this one has no pgha role (re-issue it with `pgha cert issue --role admin`)",
                write.name()
            ),
        ),
    }
}

/// A forwarded command is judged as a direct request of its original caller (the `As` wrapper names it).
fn forwarded(cmd: &Command, ctx: &Ctx<'_>) -> Result<(), Denial> {
    match cmd {
        Command::As { caller, command } => match command_rpc(command) {
            Some(rpc) => authorize(&Principal::Cert(caller.clone()), rpc, ctx),
            None => deny(
                "internal_command",
                "a forwarded write holds an internal or nested command",
            ),
        },
        // Unwrapped: the original caller had no role (a legacy certificate; plaintext members never reach here).
        _ => match ctx.legacy {
            LegacyCertificates::Allow => Ok(()),
            LegacyCertificates::Deny => deny(
                "legacy_forwarded",
                "a forwarded write of a caller without a role certificate while tls.legacy_certificates = \"deny\"",
            ),
        },
    }
}

/// The client RPC a command comes from; None for commands no client may send.
pub fn command_rpc(cmd: &Command) -> Option<Rpc<'_>> {
    match cmd {
        Command::Txn(txn) => Some(Rpc::Txn(txn)),
        Command::LeaseGrant { .. } => Some(Rpc::LeaseGrant),
        Command::LeaseKeepAlive { id } => Some(Rpc::LeaseKeepAlive(*id)),
        Command::LeaseRevoke { id } => Some(Rpc::LeaseRevoke(*id)),
        Command::LeaseExpire { .. } | Command::As { .. } => None,
    }
}

fn is_internal(cmd: &Command) -> bool {
    match cmd {
        Command::LeaseExpire { .. } => true,
        Command::As { command, .. } => command_rpc(command).is_none(),
        _ => false,
    }
}

fn voter_in_membership(caller: &Caller, rpc: Rpc<'_>, ctx: &Ctx<'_>) -> Result<(), Denial> {
    if !caller.role.is_voter() {
        return deny(
            "not_a_voter",
            format!("{caller} may not call {} (members and witnesses only)", rpc.name()),
        );
    }
    if !ctx.members.contains(&caller.name) {
        return deny(
            "not_in_membership",
            format!("{caller} is not in the DCS membership ({} refused)", rpc.name()),
        );
    }
    Ok(())
}

fn lease_role(caller: &Caller) -> Result<(), Denial> {
    match caller.role {
        CertRole::Member | CertRole::Edge | CertRole::Admin => Ok(()),
        _ => deny("lease_role", format!("{caller} may not hold leases")),
    }
}

fn lease_known(caller: &Caller, id: i64, ctx: &Ctx<'_>) -> Result<(), Denial> {
    match ctx.leases.get(&id) {
        Some(owner) => lease_use(owner.as_ref(), caller, id).map_err(|reason| Denial { kind: "lease", reason }),
        None => Ok(()),
    }
}

/// May `caller` renew, revoke or bind keys to lease `id` owned by `owner`? Also applied by the state machine, in log
/// order, so a lease this member had not seen yet is judged there.
pub fn lease_use(owner: Option<&Caller>, caller: &Caller, id: i64) -> Result<(), String> {
    match owner {
        _ if caller.role == CertRole::Admin => Ok(()),
        Some(owner) if owner == caller => Ok(()),
        Some(owner) => Err(format!("lease {id} belongs to {owner}, not {caller}")),
        None => Err(format!(
            "lease {id} was granted without a role certificate; {caller} may only use its own leases"
        )),
    }
}

/// Leases named by puts of either branch.
fn txn_leases(txn: &Txn) -> impl Iterator<Item = i64> + '_ {
    txn.success.iter().chain(&txn.failure).filter_map(|op| match op {
        Op::Put { lease, .. } if *lease != 0 => Some(*lease),
        _ => None,
    })
}

/// Lease ids a request touches (the shell looks up their owners for [`Ctx::leases`]).
pub fn touched_leases(rpc: Rpc<'_>) -> Vec<i64> {
    match rpc {
        Rpc::Txn(txn) => txn_leases(txn).collect(),
        Rpc::LeaseKeepAlive(id) | Rpc::LeaseRevoke(id) | Rpc::LeaseRefresh(id) => vec![id],
        Rpc::ForwardWrite(Command::As { command, .. }) => command_rpc(command).map(touched_leases).unwrap_or_default(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
