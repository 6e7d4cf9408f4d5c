//! Cluster CA and node certificate generation (replaces the hand-run openssl recipe).

use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::identity::role::{ca_uri, valid_name, SCHEME};
use crate::identity::{Caller, CertRole, Identity};

/// File name of the CA certificate inside the certificate directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key inside the certificate directory.
pub const CA_KEY_FILE: &str = "ca-key.pem";

/// Backdating of `not_before`, so a peer whose clock runs slightly behind accepts a fresh cert.
const CLOCK_SKEW: Duration = Duration::hours(1);

/// Errors from CA initialisation and certificate issuance.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A CA already exists and `force` was not given.
    #[error("refusing to overwrite existing {} (pass force to replace the CA)", .path.display())]
    Exists { path: PathBuf },
    /// The CA certificate or key needed for issuing does not exist.
    #[error("CA file {} not found (initialise the CA first)", .path.display())]
    MissingCa { path: PathBuf },
    /// The CA certificate or key could not be parsed or is unusable.
    #[error("malformed CA file {}: {reason}", .path.display())]
    MalformedCa { path: PathBuf, reason: String },
    /// Reading or writing a file or directory failed.
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },
    /// The node name is empty or contains characters outside `[A-Za-z0-9._-]`.
    #[error("invalid node name {name:?}: must be non-empty and only contain A-Z a-z 0-9 . _ -")]
    InvalidName { name: String },
    /// The cluster name is empty or contains characters outside `[A-Za-z0-9._-]`.
    #[error("invalid cluster name {name:?}: must be non-empty and only contain A-Z a-z 0-9 . _ -")]
    InvalidCluster { name: String },
    /// A role certificate needs its cluster, and the CA does not name one.
    #[error(
        "the CA {} does not name its cluster (it was not made by `pgha cert init`): pass --cluster",
        .path.display()
    )]
    NoCluster { path: PathBuf },
    /// A certificate to show could not be read as one.
    #[error("{}: not a PEM certificate ({reason})", .path.display())]
    NotACertificate { path: PathBuf, reason: String },
    /// A DNS subject alternative name is not plain ASCII.
    #[error("invalid DNS name {name:?}: must be ASCII")]
    InvalidDnsName { name: String },
    /// The requested validity period is empty.
    #[error("invalid validity: {reason}")]
    InvalidValidity { reason: String },
    /// Key generation or certificate signing failed inside rcgen.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Locations of the CA certificate and key written by [`init_ca`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaPaths {
    /// `DIR/ca.pem`.
    pub cert: PathBuf,
    /// `DIR/ca-key.pem`.
    pub key: PathBuf,
}

/// Locations of a node certificate and key written by [`issue`], and what they replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePaths {
    /// `DIR/<name>.pem`.
    pub cert: PathBuf,
    /// `DIR/<name>-key.pem`.
    pub key: PathBuf,
    /// The identity URI SAN written (`pgha://<cluster>/<role>/<name>`); None for a certificate without a role.
    pub identity: Option<String>,
    /// The file replaced held a certificate without a role (issued before roles).
    pub replaced_legacy: bool,
}

/// What to put in a node (or client) certificate.
#[derive(Debug, Clone, Copy)]
pub struct IssueSpec<'a> {
    /// The role carried in the identity SAN. None writes a certificate without one, as issued before roles (only
    /// to test the rule for such certificates: `tls.legacy_certificates`).
    pub role: Option<CertRole>,
    pub name: &'a str,
    pub ips: &'a [IpAddr],
    pub dns: &'a [String],
    /// The cluster in the identity; None = the one the CA names (`pgha cert init --cluster`).
    pub cluster: Option<&'a str>,
}

impl<'a> IssueSpec<'a> {
    /// A role certificate for `name` with no extra SANs.
    pub fn new(role: CertRole, name: &'a str) -> IssueSpec<'a> {
        IssueSpec {
            role: Some(role),
            name,
            ips: &[],
            dns: &[],
            cluster: None,
        }
    }
}

/// Creates a self-signed cluster CA valid for `days` days in `dir` (created 0700 if missing).
///
/// Writes `ca.pem` (0644) and `ca-key.pem` (0600). An existing CA is only replaced when
/// `force` is set, because replacing it invalidates every node certificate already issued.
pub fn init_ca(dir: &Path, cluster: &str, days: u32, force: bool) -> Result<CaPaths, CertError> {
    let (not_before, not_after) = validity_from_days(days)?;
    let paths = CaPaths {
        cert: dir.join(CA_CERT_FILE),
        key: dir.join(CA_KEY_FILE),
    };
    if !force {
        for path in [&paths.cert, &paths.key] {
            // symlink_metadata so that even a dangling symlink counts as "exists".
            if fs::symlink_metadata(path).is_ok() {
                return Err(CertError::Exists { path: path.clone() });
            }
        }
    }
    if !valid_name(cluster) {
        return Err(CertError::InvalidCluster {
            name: cluster.to_owned(),
        });
    }
    ensure_dir(dir)?;

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("{CA_CN_PREFIX}{cluster}"));
    params.distinguished_name = dn;
    // The cluster, for `pgha cert issue` to put into role certificates without being told again.
    params.subject_alt_names = vec![uri_san(&ca_uri(cluster))?];
    // Path length 0: the CA may sign node certs but no intermediate CAs.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params.self_signed(&key)?;

    // Key first: a cert without its key is useless, while the reverse is just retried.
    write_file(&paths.key, key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&paths.cert, cert.pem().as_bytes(), 0o644)?;
    Ok(paths)
}

/// CN prefix of a CA made by [`init_ca`] (`pgha CA <cluster>`).
const CA_CN_PREFIX: &str = "pgha CA ";

/// Issues a role certificate `<name>.pem` / `<name>-key.pem` in `dir`, signed by the CA there.
///
/// The certificate is valid for `days` days (backdated one hour for clock skew), carries
/// CN = `name`, SANs `name` + `dns` + `ips` and the identity URI `pgha://<cluster>/<role>/<name>`
/// (the cluster the CA names), and is usable both as TLS server and client.
/// Existing node files are replaced, so this doubles as renewal.
pub fn issue(
    dir: &Path,
    role: CertRole,
    name: &str,
    ips: &[IpAddr],
    dns: &[String],
    days: u32,
) -> Result<NodePaths, CertError> {
    let spec = IssueSpec {
        ips,
        dns,
        ..IssueSpec::new(role, name)
    };
    issue_spec(dir, &spec, days)
}

/// Issues what `spec` describes, valid for `days` days.
pub fn issue_spec(dir: &Path, spec: &IssueSpec<'_>, days: u32) -> Result<NodePaths, CertError> {
    let (not_before, not_after) = validity_from_days(days)?;
    issue_with_validity(dir, spec, not_before, not_after)
}

/// Like [`issue_spec`] but with an explicit validity period (lets tests create expired certs).
pub fn issue_with_validity(
    dir: &Path,
    spec: &IssueSpec<'_>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<NodePaths, CertError> {
    let IssueSpec {
        role,
        name,
        ips,
        dns,
        cluster,
    } = *spec;
    validate_name(name)?;
    if not_after <= not_before {
        return Err(CertError::InvalidValidity {
            reason: format!("not_after {not_after} is not after not_before {not_before}"),
        });
    }
    let (issuer, ca_cluster) = load_issuer(dir)?;
    let identity = match role {
        None => None,
        Some(role) => {
            let cluster = match cluster.map(str::to_owned).or(ca_cluster) {
                Some(c) if valid_name(&c) => c,
                Some(c) => return Err(CertError::InvalidCluster { name: c }),
                None => {
                    return Err(CertError::NoCluster {
                        path: dir.join(CA_CERT_FILE),
                    })
                }
            };
            Some(Identity {
                cluster,
                caller: Caller::new(role, name),
            })
        }
    };

    let mut sans = Vec::with_capacity(2 + dns.len() + ips.len());
    for dns_name in std::iter::once(name).chain(dns.iter().map(String::as_str)) {
        let san = SanType::DnsName(dns_name.try_into().map_err(|_| CertError::InvalidDnsName {
            name: dns_name.to_owned(),
        })?);
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    for ip in ips {
        let san = SanType::IpAddress(*ip);
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    if let Some(identity) = &identity {
        sans.push(uri_san(&identity.uri())?);
    }

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    // Every node is both a gRPC server and a client of its peers.
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params.signed_by(&key, &issuer)?;

    let cert_path = dir.join(format!("{name}.pem"));
    let replaced_legacy = fs::read(&cert_path).is_ok_and(|pem| {
        let der = rustls_pemfile::certs(&mut &pem[..]).next().and_then(Result::ok);
        der.is_some_and(|der| {
            matches!(
                crate::identity::peer::of_der(&der),
                crate::identity::peer::CertIdentity::Legacy { .. }
            )
        })
    });
    let paths = NodePaths {
        cert: cert_path,
        key: dir.join(format!("{name}-key.pem")),
        identity: identity.as_ref().map(Identity::uri),
        replaced_legacy,
    };
    write_file(&paths.key, key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&paths.cert, cert.pem().as_bytes(), 0o644)?;
    Ok(paths)
}

/// Turns "valid for `days` days" into an explicit, skew-tolerant period starting now.
fn validity_from_days(days: u32) -> Result<(OffsetDateTime, OffsetDateTime), CertError> {
    if days == 0 {
        return Err(CertError::InvalidValidity {
            reason: "days must be at least 1".to_owned(),
        });
    }
    let now = OffsetDateTime::now_utc();
    Ok((now - CLOCK_SKEW, now + Duration::days(i64::from(days))))
}

/// Node names become file names, DNS SANs and identity URIs, so keep them to a safe character set ("." / ".."
/// would produce confusing file names such as "..pem").
fn validate_name(name: &str) -> Result<(), CertError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(CertError::InvalidName { name: name.to_owned() })
    }
}

fn uri_san(uri: &str) -> Result<SanType, CertError> {
    Ok(SanType::URI(uri.try_into()?))
}

/// The cluster a CA names: its `pgha://<cluster>` URI SAN, else a `pgha CA <cluster>` CN (CAs made before the SAN).
pub fn ca_cluster(x509: &x509_parser::certificate::X509Certificate<'_>) -> Option<String> {
    let from_san = x509.subject_alternative_name().ok().flatten().and_then(|ext| {
        ext.value.general_names.iter().find_map(|g| match g {
            x509_parser::extensions::GeneralName::URI(uri) => uri.strip_prefix(SCHEME).map(str::to_owned),
            _ => None,
        })
    });
    let from_cn = || {
        let cn = x509.subject().iter_common_name().next()?.as_str().ok()?;
        cn.strip_prefix(CA_CN_PREFIX).map(str::to_owned)
    };
    from_san.or_else(from_cn).filter(|c| valid_name(c))
}

/// Loads the CA from `dir` and checks that its key belongs to its certificate, since a
/// mismatch would only surface later as an opaque "bad signature" on every handshake.
/// Also returns the cluster the CA names, if any.
fn load_issuer(dir: &Path) -> Result<(Issuer<'static, KeyPair>, Option<String>), CertError> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    let cert_pem = read_ca_file(&cert_path)?;
    let key_pem = read_ca_file(&key_path)?;

    let malformed = |path: &Path, reason: String| CertError::MalformedCa {
        path: path.to_owned(),
        reason,
    };
    let key = KeyPair::from_pem(&key_pem).map_err(|e| malformed(&key_path, e.to_string()))?;

    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| malformed(&cert_path, format!("no PEM certificate: {e}")))?;
    if pem.label != "CERTIFICATE" {
        return Err(malformed(&cert_path, format!("PEM block is {:?}", pem.label)));
    }
    let x509 = pem.parse_x509().map_err(|e| malformed(&cert_path, e.to_string()))?;
    if !x509.is_ca() {
        return Err(malformed(&cert_path, "not a CA certificate".to_owned()));
    }
    if x509.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(malformed(
            &key_path,
            format!("key does not match {}", cert_path.display()),
        ));
    }
    let cluster = ca_cluster(&x509);
    let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|e| malformed(&cert_path, e.to_string()))?;
    Ok((issuer, cluster))
}

fn read_ca_file(path: &Path) -> Result<String, CertError> {
    fs::read_to_string(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => CertError::MissingCa { path: path.to_owned() },
        _ => CertError::Io {
            path: path.to_owned(),
            source,
        },
    })
}

fn ensure_dir(dir: &Path) -> Result<(), CertError> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| CertError::Io {
            path: dir.to_owned(),
            source,
        })
}

/// Writes `contents` atomically and durably: a temp file created with `mode` (so a key is never readable
/// by others, not even briefly), synced, renamed over `path`, then the directory synced.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), CertError> {
    let io_err = |p: &Path| {
        let p = p.to_owned();
        move |source| CertError::Io { path: p, source }
    };
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    // A leftover from a crashed run would make create_new fail; it holds nothing of value.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&tmp)(e)),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    let result = (|| {
        // The umask may have stripped bits from `mode`; set it exactly on the open fd.
        file.set_permissions(Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(&tmp)(e));
    }
    drop(file);
    fs::rename(&tmp, path).map_err(io_err(path))?;
    // The rename is a directory entry: sync the directory too, or a crash may leave the old file (or none).
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn init_and_issue_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let cadir = dir.path().join("certs");
        let ca = init_ca(&cadir, "test", 30, false).unwrap();
        assert_eq!(fs::metadata(&cadir).unwrap().permissions().mode() & 0o777, 0o700);
        let ips = [IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))];
        let node = issue(
            &cadir,
            CertRole::Member,
            "node-1",
            &ips,
            &["db1.example".to_owned()],
            30,
        )
        .unwrap();

        let pem = fs::read(&node.cert).unwrap();
        let (_, p) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        let x = p.parse_x509().unwrap();
        assert!(x.subject().to_string().contains("CN=node-1"));
        assert!(!x.is_ca());
        let san = x.subject_alternative_name().unwrap().unwrap();
        let names: Vec<String> = san.value.general_names.iter().map(|g| g.to_string()).collect();
        assert!(names.iter().any(|n| n.contains("node-1")), "{names:?}");
        assert!(names.iter().any(|n| n.contains("db1.example")), "{names:?}");
        assert!(names.iter().any(|n| n.contains("0a:00:00:01")), "{names:?}");

        let ca_pem = fs::read(&ca.cert).unwrap();
        let (_, cp) = x509_parser::pem::parse_x509_pem(&ca_pem).unwrap();
        let cx = cp.parse_x509().unwrap();
        assert!(cx.is_ca());
        assert!(cx.subject().to_string().contains("pgha CA test"));
        x.verify_signature(Some(cx.public_key())).unwrap();
    }

    #[test]
    fn key_files_are_0600_certs_0644() {
        let dir = tempfile::tempdir().unwrap();
        let ca = init_ca(dir.path(), "t", 1, false).unwrap();
        let node = issue(dir.path(), CertRole::Member, "n1", &[], &[], 1).unwrap();
        for key in [&ca.key, &node.key] {
            let mode = fs::metadata(key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
        for cert in [&ca.cert, &node.cert] {
            let mode = fs::metadata(cert).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o644, "{}", cert.display());
        }
    }

    #[test]
    fn overwrite_refused_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let first = init_ca(dir.path(), "t", 1, false).unwrap();
        let before = fs::read(&first.cert).unwrap();
        let err = init_ca(dir.path(), "t", 1, false).unwrap_err();
        assert!(matches!(err, CertError::Exists { .. }), "{err:?}");
        assert!(err.to_string().contains("ca.pem"), "{err}");
        assert_eq!(fs::read(&first.cert).unwrap(), before);
        init_ca(dir.path(), "t", 1, true).unwrap();
        assert_ne!(fs::read(&first.cert).unwrap(), before);
    }

    #[test]
    fn issue_without_ca_names_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = issue(dir.path(), CertRole::Member, "n1", &[], &[], 1).unwrap_err();
        assert!(matches!(err, CertError::MissingCa { .. }), "{err:?}");
        let expected = dir.path().join(CA_CERT_FILE);
        assert!(err.to_string().contains(&*expected.to_string_lossy()), "{err}");
    }

    #[test]
    fn malformed_ca_names_path() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path(), "t", 1, false).unwrap();
        fs::write(dir.path().join(CA_KEY_FILE), "garbage").unwrap();
        let err = issue(dir.path(), CertRole::Member, "n1", &[], &[], 1).unwrap_err();
        assert!(matches!(err, CertError::MalformedCa { .. }), "{err:?}");
        assert!(err.to_string().contains(CA_KEY_FILE), "{err}");
    }

    #[test]
    fn bad_names_refused() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path(), "t", 1, false).unwrap();
        for name in ["", "a/b", "../x", "..", "n 1", "nö"] {
            let err = issue(dir.path(), CertRole::Member, name, &[], &[], 1).unwrap_err();
            assert!(matches!(err, CertError::InvalidName { .. }), "{name}: {err:?}");
        }
        assert!(issue(dir.path(), CertRole::Member, "pg_1.a-b", &[], &[], 1).is_ok());
    }

    fn identity_of(path: &Path) -> crate::identity::peer::CertIdentity {
        let pem = fs::read(path).unwrap();
        let der = rustls_pemfile::certs(&mut &pem[..]).next().unwrap().unwrap();
        crate::identity::peer::of_der(&der)
    }

    #[test]
    fn role_certificates_carry_their_identity() {
        use crate::identity::peer::CertIdentity;
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path(), "main", 1, false).unwrap();
        let edge = issue(dir.path(), CertRole::Edge, "edge1", &[], &[], 1).unwrap();
        assert_eq!(edge.identity.as_deref(), Some("pgha://main/edge/edge1"));
        let expected = Identity {
            cluster: "main".into(),
            caller: Caller::new(CertRole::Edge, "edge1"),
        };
        assert_eq!(identity_of(&edge.cert), CertIdentity::Role(expected));

        // Without a role, as before roles existed; re-issuing it says so.
        let legacy = IssueSpec {
            role: None,
            ..IssueSpec::new(CertRole::Member, "db1")
        };
        let old = issue_spec(dir.path(), &legacy, 1).unwrap();
        assert_eq!(old.identity, None);
        assert!(matches!(identity_of(&old.cert), CertIdentity::Legacy { .. }));
        let new = issue(dir.path(), CertRole::Member, "db1", &[], &[], 1).unwrap();
        assert!(new.replaced_legacy && !edge.replaced_legacy);

        let other = IssueSpec {
            cluster: Some("other"),
            ..IssueSpec::new(CertRole::Admin, "ops")
        };
        let ops = issue_spec(dir.path(), &other, 1).unwrap();
        assert_eq!(ops.identity.as_deref(), Some("pgha://other/admin/ops"));
        let err = init_ca(&dir.path().join("x"), "a/b", 1, false).unwrap_err();
        assert!(matches!(err, CertError::InvalidCluster { .. }), "{err:?}");
    }

    #[test]
    fn zero_days_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = init_ca(dir.path(), "t", 0, false).unwrap_err();
        assert!(matches!(err, CertError::InvalidValidity { .. }), "{err:?}");
    }
}
