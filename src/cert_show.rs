//! `pgha cert show FILE` (what a certificate is, for whom, with what role, until when) and what `cert issue` prints.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use crate::cert::{ca_cluster, CertError, NodePaths};
use crate::identity::peer::{self, CertIdentity};

/// What `pgha cert issue` prints: the files, the identity, and how certificates without a role are re-issued.
pub fn issued(paths: &NodePaths) -> String {
    let mut out = format!(
        "certificate: {}\nkey:         {} (mode 0600)\nidentity:    {}\n",
        paths.cert.display(),
        paths.key.display(),
        paths.identity.as_deref().unwrap_or("none (no role)")
    );
    if paths.replaced_legacy {
        out.push_str("replaced:    a certificate without a role (issued before roles); install the new files and restart the node\n");
    }
    out.push_str(
        "To renew, run the same command again. Certificates issued before roles (no pgha:// identity, see `pgha cert \
         show FILE`) keep full rights only while tls.legacy_certificates = \"allow\": re-issue each with \
         `pgha cert issue --role ROLE --name NODE_NAME` (same --ip/--dns), then set \"deny\" \
         (docs/security.md, \"Moving to role certificates\").\n",
    );
    out
}

/// The description of the first certificate in the PEM file at `path`.
pub fn show(path: &Path) -> Result<String, CertError> {
    let pem = std::fs::read(path).map_err(|source| CertError::Io {
        path: path.to_owned(),
        source,
    })?;
    let not_a_cert = |reason: String| CertError::NotACertificate {
        path: path.to_owned(),
        reason,
    };
    let der = rustls_pemfile::certs(&mut &pem[..])
        .next()
        .ok_or_else(|| not_a_cert("no CERTIFICATE block".into()))?
        .map_err(|e| not_a_cert(e.to_string()))?;
    let (_, x509) = x509_parser::parse_x509_certificate(&der).map_err(|e| not_a_cert(e.to_string()))?;
    Ok(describe(&x509, &der, OffsetDateTime::now_utc()))
}

/// The description of a parsed certificate at time `now` (pure).
pub fn describe(x509: &X509Certificate<'_>, der: &[u8], now: OffsetDateTime) -> String {
    let mut out = String::new();
    let validity = x509.validity();
    let (from, until) = (validity.not_before.to_datetime(), validity.not_after.to_datetime());
    let state = if now > until {
        "EXPIRED"
    } else if now < from {
        "NOT YET VALID"
    } else {
        "valid"
    };
    let sans = match x509.subject_alternative_name() {
        Ok(Some(ext)) => ext.value.general_names.iter().map(san).collect::<Vec<_>>().join(", "),
        _ => "none".to_string(),
    };
    let line = |out: &mut String, k: &str, v: &dyn std::fmt::Display| {
        let _ = writeln!(out, "{k:<12}{v}");
    };
    line(&mut out, "subject:", &x509.subject());
    line(&mut out, "issuer:", &x509.issuer());
    line(&mut out, "SANs:", &sans);
    line(&mut out, "not before:", &from);
    line(&mut out, "not after:", &format!("{until} ({state})"));
    if x509.is_ca() {
        let cluster = ca_cluster(x509).unwrap_or_else(|| "not named (pass --cluster to cert issue)".into());
        line(&mut out, "role:", &"CA (signs the cluster's certificates)");
        line(&mut out, "cluster:", &cluster);
        return out;
    }
    match peer::of_der(der) {
        CertIdentity::Role(id) => {
            line(&mut out, "cluster:", &id.cluster);
            line(&mut out, "role:", &id.caller.role);
            line(&mut out, "name:", &id.caller.name);
        }
        CertIdentity::Legacy { cn } => {
            line(
                &mut out,
                "role:",
                &"none (issued before roles): full rights while the members' tls.legacy_certificates = \"allow\", \
                  refused when \"deny\"",
            );
            line(&mut out, "name:", &cn);
            line(
                &mut out,
                "re-issue:",
                &format!("pgha cert issue --dir <CA dir> --role <member|witness|edge|admin|monitor> --name {cn} ..."),
            );
        }
        CertIdentity::Invalid(e) => line(&mut out, "role:", &format!("INVALID: {e} (members refuse it)")),
    }
    out
}

fn san(name: &GeneralName<'_>) -> String {
    match name {
        GeneralName::DNSName(d) => format!("DNS:{d}"),
        GeneralName::URI(u) => format!("URI:{u}"),
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => <[u8; 4]>::try_from(*bytes).map_or("IP:?".into(), |b| format!("IP:{}", IpAddr::from(b))),
            16 => <[u8; 16]>::try_from(*bytes).map_or("IP:?".into(), |b| format!("IP:{}", IpAddr::from(b))),
            _ => "IP:?".into(),
        },
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::{init_ca, issue, issue_spec, IssueSpec};
    use crate::identity::CertRole;

    #[test]
    fn shows_role_name_sans_and_validity() {
        let dir = tempfile::tempdir().unwrap();
        let ca = init_ca(dir.path(), "main", 1, false).unwrap();
        let ip = [IpAddr::from([10, 0, 0, 1])];
        let db1 = issue(dir.path(), CertRole::Member, "db1", &ip, &[], 1).unwrap();
        let text = show(&db1.cert).unwrap();
        for want in [
            "CN=db1",
            "DNS:db1",
            "IP:10.0.0.1",
            "URI:pgha://main/member/db1",
            "role:       member",
            "name:       db1",
            "cluster:    main",
            "(valid)",
        ] {
            assert!(text.contains(want), "{want:?} missing:\n{text}");
        }
        let legacy = IssueSpec {
            role: None,
            ..IssueSpec::new(CertRole::Member, "old")
        };
        let old = issue_spec(dir.path(), &legacy, 1).unwrap();
        let text = show(&old.cert).unwrap();
        assert!(
            text.contains("none (issued before roles)") && text.contains("--name old"),
            "{text}"
        );
        let text = show(&ca.cert).unwrap();
        assert!(
            text.contains("CA (signs") && text.contains("cluster:    main"),
            "{text}"
        );
        let err = show(&ca.key).unwrap_err();
        assert!(err.to_string().contains("not a PEM certificate"), "{err}");
    }
}
