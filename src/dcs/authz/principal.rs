//! From a presented certificate (or a forwarding member's word) to the [`Principal`] the rules judge (pure).

use super::rules::{Denial, Membership, Principal};
use crate::identity::peer::CertIdentity;
use crate::identity::role::{Caller, Identity};
use crate::identity::LegacyCertificates;

/// gRPC metadata a member adds when it forwards an Admin request to the Raft leader: the original caller.
pub const ON_BEHALF_HEADER: &str = "pgha-on-behalf-of";
/// Header value for an original caller without a role (a legacy certificate).
const UNRESTRICTED: &str = "unrestricted";

/// The principal of a TLS peer, by the rule for certificates without a role. `Ok((_, true))`: a legacy certificate
/// let through (the caller warns once per peer).
pub fn of_cert(cert: &CertIdentity, cluster: &str, legacy: LegacyCertificates) -> Result<(Principal, bool), Denial> {
    match cert {
        CertIdentity::Role(Identity { cluster: c, caller }) if c == cluster => {
            Ok((Principal::Cert(caller.clone()), false))
        }
        CertIdentity::Role(id) => Err(Denial {
            kind: "wrong_cluster",
            reason: format!(
                "certificate {} is for cluster {:?}, this is {cluster:?}",
                id.uri(),
                id.cluster
            ),
        }),
        CertIdentity::Legacy { .. } => match legacy {
            LegacyCertificates::Allow => Ok((Principal::Unrestricted, true)),
            LegacyCertificates::Deny => Err(Denial {
                kind: "legacy_certificate",
                reason: "certificate has no pgha role (issued before roles) and tls.legacy_certificates = \"deny\": \
                         re-issue it with `pgha cert issue --role ...`"
                    .to_string(),
            }),
        },
        CertIdentity::Invalid(e) => Err(Denial {
            kind: "bad_identity",
            reason: format!("certificate identity refused: {e}"),
        }),
    }
}

/// Header value naming `who` for the member the request is forwarded to.
pub fn header_value(who: &Principal) -> String {
    match who {
        Principal::Unrestricted => UNRESTRICTED.to_string(),
        Principal::Cert(c) => c.to_string(),
    }
}

/// The original caller of a forwarded Admin request. Only a voter (member or witness certificate in the membership,
/// or an unrestricted one) forwards; the original caller is judged by this member's own legacy rule.
pub fn forwarded(
    direct: &Principal,
    value: &str,
    members: &Membership,
    legacy: LegacyCertificates,
) -> Result<Principal, Denial> {
    if let Principal::Cert(c) = direct {
        if !c.role.is_voter() || !members.contains(&c.name) {
            return Err(Denial {
                kind: "forward_not_voter",
                reason: format!(
                    "{c} may not forward requests of others (members and witnesses in the membership only)"
                ),
            });
        }
    }
    if value == UNRESTRICTED {
        return match legacy {
            LegacyCertificates::Allow => Ok(Principal::Unrestricted),
            LegacyCertificates::Deny => Err(Denial {
                kind: "legacy_forwarded",
                reason: "a forwarded request of a caller without a role certificate while \
                         tls.legacy_certificates = \"deny\""
                    .to_string(),
            }),
        };
    }
    let parsed = value.split_once('/').and_then(|(role, name)| {
        let role = role.parse().ok()?;
        crate::identity::role::valid_name(name).then(|| Caller::new(role, name))
    });
    parsed.map(Principal::Cert).ok_or_else(|| Denial {
        kind: "bad_forward",
        reason: format!("unreadable {ON_BEHALF_HEADER} value {value:?}"),
    })
}
