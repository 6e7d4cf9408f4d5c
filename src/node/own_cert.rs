//! A node's check of its own certificate at start: the role fits the run role, the name and cluster are its own.
//!
//! A mismatch would only show later as every peer refusing the node; stopping at start names the file and the fix.

use anyhow::bail;

use crate::config::{Config, Role};
use crate::identity::peer::{self, CertIdentity};
use crate::identity::role::CertRole;
use crate::identity::LegacyCertificates;
use crate::tls::{NodeTls, TlsFiles};

/// The certificate role a run role needs.
pub fn needed(role: Role) -> CertRole {
    match role {
        Role::Db => CertRole::Member,
        Role::Witness => CertRole::Witness,
        Role::Edge => CertRole::Edge,
    }
}

/// Ok(Some(warning)) for a certificate without a role that is still allowed; Err(why) when the node must not start.
pub fn judge(
    cert: &CertIdentity,
    role: Role,
    cluster: &str,
    name: &str,
    legacy: LegacyCertificates,
) -> Result<Option<String>, String> {
    let want = needed(role);
    let reissue = format!("re-issue it with `pgha cert issue --role {want} --name {name} ...`");
    match cert {
        CertIdentity::Invalid(e) => Err(format!("its identity is unreadable ({e})")),
        CertIdentity::Role(id) if id.caller.role != want => Err(format!(
            "it is a {} certificate; a {role} node needs role {want}: {reissue}",
            id.caller.role
        )),
        CertIdentity::Role(id) if id.caller.name != name => Err(format!(
            "it names {:?} but node.name is {name:?} (peers check that a node speaks for itself): {reissue}",
            id.caller.name
        )),
        CertIdentity::Role(id) if id.cluster != cluster => Err(format!(
            "it is for cluster {:?} but cluster.name is {cluster:?}",
            id.cluster
        )),
        CertIdentity::Role(_) => Ok(None),
        // An edge is only a client: whether its certificate is accepted is the members' rule.
        CertIdentity::Legacy { .. } if legacy == LegacyCertificates::Deny && role != Role::Edge => Err(format!(
            "it has no pgha role and tls.legacy_certificates = \"deny\": {reissue}"
        )),
        CertIdentity::Legacy { .. } => Ok(Some(format!(
            "it has no pgha role (issued before roles): it keeps full rights only while the members' \
             tls.legacy_certificates = \"allow\"; {reissue} (docs/security.md)"
        ))),
    }
}

/// Checks the node certificate named in `[tls]` for `role` (nothing in plaintext mode). The files are loaded
/// first, so a missing, garbled, expired or foreign one is reported as such.
pub fn check(config: &Config, role: Role) -> anyhow::Result<()> {
    let tls = &config.tls;
    let (false, Some(ca), Some(path), Some(key)) = (tls.plaintext, &tls.ca, &tls.cert, &tls.key) else {
        return Ok(());
    };
    let files = TlsFiles {
        ca: ca.clone(),
        cert: path.clone(),
        key: key.clone(),
    };
    let cert = peer::of_der(NodeTls::load(&files)?.leaf_der());
    match judge(
        &cert,
        role,
        &config.cluster.name,
        &config.node.name,
        tls.legacy_certificates,
    ) {
        Ok(None) => Ok(()),
        Ok(Some(warning)) => {
            tracing::warn!(event = "legacy_certificate", cert = %path.display(), "this node's certificate: {warning}");
            Ok(())
        }
        Err(why) => bail!("tls.cert {}: {why}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Caller, Identity};

    fn cert(role: CertRole, name: &str, cluster: &str) -> CertIdentity {
        CertIdentity::Role(Identity {
            cluster: cluster.into(),
            caller: Caller::new(role, name),
        })
    }

    #[test]
    fn own_certificate_table() {
        use CertRole::*;
        use LegacyCertificates::{Allow, Deny};
        let legacy = CertIdentity::Legacy { cn: "db1".into() };
        // (certificate, run role, legacy rule, starts?, warns?)
        let cases = [
            (cert(Member, "db1", "main"), Role::Db, Deny, true, false),
            (cert(Witness, "db1", "main"), Role::Witness, Deny, true, false),
            (cert(Edge, "db1", "main"), Role::Edge, Deny, true, false),
            (cert(Member, "db1", "main"), Role::Witness, Allow, false, false),
            (cert(Edge, "db1", "main"), Role::Db, Allow, false, false),
            (cert(Admin, "db1", "main"), Role::Db, Allow, false, false),
            (cert(Member, "db2", "main"), Role::Db, Allow, false, false),
            (cert(Member, "db1", "other"), Role::Db, Allow, false, false),
            (legacy.clone(), Role::Db, Allow, true, true),
            (legacy.clone(), Role::Db, Deny, false, false),
            (legacy.clone(), Role::Edge, Deny, true, true),
            (CertIdentity::Invalid("x".into()), Role::Db, Allow, false, false),
        ];
        for (cert, role, rule, starts, warns) in cases {
            let got = judge(&cert, role, "main", "db1", rule);
            assert_eq!(got.is_ok(), starts, "{cert:?} as {role} ({rule:?}): {got:?}");
            assert_eq!(matches!(got, Ok(Some(_))), warns, "{cert:?} as {role}: {got:?}");
            if let Err(why) = got {
                assert!(!why.is_empty());
            }
        }
    }
}
