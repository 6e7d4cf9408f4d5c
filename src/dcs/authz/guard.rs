//! The shell around [`authorize`]: a request's caller from its TLS certificate (once per request), the member's
//! membership and lease owners as context, `PermissionDenied` and one log line per peer and reason.

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::sync::Mutex;

use tonic::{Request, Status};

use super::principal::{self, ON_BEHALF_HEADER};
use super::rules::{authorize, touched_leases, Ctx, Denial, Membership, Principal, Rpc};
use crate::dcs::core::DcsCore;
use crate::identity::peer::{self, CertIdentity};
use crate::identity::role::Caller;
use crate::identity::LegacyCertificates;

/// Distinct (peer, reason) pairs remembered for logging; beyond it refusals are no longer logged one by one (the
/// peers are certificates the CA issued, so this is not reached in practice).
const REMEMBERED: usize = 4096;

/// How a member authorizes: without TLS nothing can be, with TLS by role certificates.
#[derive(Debug)]
pub struct Access {
    /// None = plaintext (`tls.plaintext = true`: no identity, everything allowed, warned at start).
    legacy: Option<LegacyCertificates>,
    logged: Mutex<HashSet<(String, &'static str)>>,
}

impl Access {
    /// Plaintext: allow-all (only an internal command from the network is refused).
    pub fn plaintext() -> Access {
        Access {
            legacy: None,
            logged: Mutex::new(HashSet::new()),
        }
    }

    /// Mutual TLS with role certificates; `legacy` = the rule for certificates without a role.
    pub fn tls(legacy: LegacyCertificates) -> Access {
        Access {
            legacy: Some(legacy),
            ..Access::plaintext()
        }
    }

    /// True the first time `(peer, kind)` is seen: the caller logs only then.
    fn first(&self, peer: &str, kind: &'static str) -> bool {
        let Ok(mut logged) = self.logged.lock() else {
            return true;
        };
        if logged.len() >= REMEMBERED {
            return false;
        }
        logged.insert((peer.to_string(), kind))
    }
}

/// The caller of one request.
#[derive(Clone, Debug)]
pub struct Who {
    pub principal: Principal,
    /// For log lines: the certificate's identity (and the forwarding member's).
    label: String,
    remote: Option<SocketAddr>,
}

impl Who {
    /// The role certificate's caller; None when unrestricted (its commands are not wrapped).
    pub fn caller(&self) -> Option<&Caller> {
        match &self.principal {
            Principal::Cert(c) => Some(c),
            Principal::Unrestricted => None,
        }
    }

    /// `req` to forward to another member, naming this caller (see [`principal::forwarded`]).
    pub fn forward<T>(&self, message: T) -> Request<T> {
        let mut req = Request::new(message);
        if let Ok(value) = principal::header_value(&self.principal).parse() {
            req.metadata_mut().insert(ON_BEHALF_HEADER, value);
        }
        req
    }
}

/// Identifies the caller of `req` from its client certificate (the first of `peer_certs`).
pub fn identify<T>(core: &DcsCore, req: &Request<T>) -> Result<Who, Status> {
    let remote = req.remote_addr();
    let Some(legacy) = core.access.legacy else {
        let label = remote.map_or_else(|| "plaintext peer".to_string(), |a| format!("plaintext {a}"));
        return Ok(Who {
            principal: Principal::Unrestricted,
            label,
            remote,
        });
    };
    let cert = match req.peer_certs() {
        Some(certs) => certs.first().map_or_else(
            || CertIdentity::Invalid("no client certificate".into()),
            |der| peer::of_der(der),
        ),
        None => CertIdentity::Invalid("no client certificate".into()),
    };
    let label = match &cert {
        CertIdentity::Role(id) => id.uri(),
        CertIdentity::Legacy { cn } => format!("legacy certificate CN={cn}"),
        CertIdentity::Invalid(_) => remote.map_or_else(|| "unknown peer".into(), |a| a.to_string()),
    };
    let direct = match principal::of_cert(&cert, &core.cluster, legacy) {
        Ok((principal, warn)) => {
            if warn && core.access.first(&label, "legacy_certificate") {
                tracing::warn!(
                    event = "legacy_certificate",
                    peer = %label,
                    remote = ?remote,
                    "a peer uses a certificate without a pgha role: it keeps full rights while \
                     tls.legacy_certificates = \"allow\"; re-issue it with `pgha cert issue --role` \
                     (docs/security.md; logged once per peer)"
                );
            }
            Who {
                principal,
                label,
                remote,
            }
        }
        Err(denial) => return Err(refuse(core, &label, remote, "TLS peer", denial)),
    };
    let Some(value) = req.metadata().get(ON_BEHALF_HEADER) else {
        return Ok(direct);
    };
    let value = value.to_str().unwrap_or("");
    match principal::forwarded(&direct.principal, value, &membership(core), legacy) {
        Ok(principal) => Ok(Who {
            label: format!("{value} via {}", direct.label),
            principal,
            remote,
        }),
        Err(denial) => Err(refuse(core, &direct.label, remote, "forwarded request", denial)),
    }
}

/// Decides `rpc` for `who` on this member: Ok, or `PermissionDenied` with the reason (logged once per peer and kind).
pub fn check(core: &DcsCore, who: &Who, rpc: Rpc<'_>) -> Result<(), Status> {
    let root = super::keys::cluster_root(&core.cluster);
    let members = membership(core);
    let leases = core.sm.lease_owners(&touched_leases(rpc));
    let ctx = Ctx {
        root: &root,
        members: &members,
        leases: &leases,
        legacy: core.access.legacy.unwrap_or_default(),
    };
    authorize(&who.principal, rpc, &ctx).map_err(|denial| refuse(core, &who.label, who.remote, rpc.name(), denial))
}

/// A tonic interceptor for services whose RPC needs no payload to decide (`Ha/WalPosition`).
pub fn intercept(core: &DcsCore, req: Request<()>, rpc: Rpc<'static>) -> Result<Request<()>, Status> {
    let who = identify(core, &req)?;
    check(core, &who, rpc)?;
    Ok(req)
}

fn refuse(core: &DcsCore, label: &str, remote: Option<SocketAddr>, what: &str, denial: Denial) -> Status {
    if core.access.first(label, denial.kind) {
        tracing::warn!(
            event = "rpc_refused",
            peer = %label,
            remote = ?remote,
            rpc = what,
            kind = denial.kind,
            "refused {what} from {label}: {} (repeats from this peer for this reason are not logged)",
            denial.reason
        );
    }
    Status::permission_denied(format!("permission denied: {}", denial.reason))
}

/// The effective membership (latest configuration in the log, possibly uncommitted, voters and learners).
fn membership(core: &DcsCore) -> Membership {
    let config = core.raft.metrics().borrow().membership_config.clone();
    let names: BTreeSet<String> = config.membership().nodes().map(|(_, n)| n.name.clone()).collect();
    if names.is_empty() {
        Membership::Unknown
    } else {
        Membership::Names(names)
    }
}
