//! Mutual TLS for every gRPC connection: credential loading/validation and a TLS accept stream.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use time::OffsetDateTime;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

/// A peer gets this long to complete its handshake before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Cap on concurrent in-flight handshakes, so a connection flood cannot exhaust memory.
const MAX_PENDING_HANDSHAKES: usize = 256;
/// Pause after a failed accept (e.g. EMFILE) so the loop does not spin at 100% CPU.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Errors from loading and validating TLS credentials.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file is missing or unreadable.
    #[error("cannot read {}: {source}", .path.display())]
    Read { path: PathBuf, source: io::Error },
    /// The file contains no PEM `CERTIFICATE` block.
    #[error("no PEM certificate found in {}", .path.display())]
    NoCertificate { path: PathBuf },
    /// The PEM or the DER inside it could not be parsed.
    #[error("malformed PEM/DER in {}: {reason}", .path.display())]
    Malformed { path: PathBuf, reason: String },
    /// The key file contains no PEM private key.
    #[error("no private key found in {}", .path.display())]
    NoPrivateKey { path: PathBuf },
    /// The node certificate has expired.
    #[error("certificate in {} expired at {not_after}", .path.display())]
    Expired { path: PathBuf, not_after: OffsetDateTime },
    /// The node certificate's validity period has not started yet (check the clock).
    #[error("certificate in {} is not valid before {not_before}", .path.display())]
    NotYetValid { path: PathBuf, not_before: OffsetDateTime },
    /// The node certificate was not issued by the configured CA.
    #[error("certificate in {} is not signed by the CA in {} ({reason})", .cert.display(), .ca.display())]
    NotSignedByCa { cert: PathBuf, ca: PathBuf, reason: String },
    /// The CA accepted the signature but rejected the certificate for another reason.
    #[error("certificate in {} rejected against the CA in {}: {reason}", .cert.display(), .ca.display())]
    Rejected { cert: PathBuf, ca: PathBuf, reason: String },
    /// The private key does not belong to the certificate.
    #[error("private key in {} does not match the certificate in {}", .key.display(), .cert.display())]
    KeyMismatch { key: PathBuf, cert: PathBuf },
    /// rustls refused to build a configuration from already validated credentials.
    #[error("building TLS configuration failed: {0}")]
    Config(#[source] rustls::Error),
}

/// Paths of the PEM files making up a node's TLS identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Cluster CA certificate(s); several may be concatenated during CA rotation.
    pub ca: PathBuf,
    /// Node certificate, optionally followed by intermediates.
    pub cert: PathBuf,
    /// Node private key.
    pub key: PathBuf,
}

/// Loaded and validated node credentials.
pub struct NodeTls {
    files: TlsFiles,
    ca_pem: Vec<u8>,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    not_after: OffsetDateTime,
}

// Hand-written so that the private key can never end up in a log line.
impl fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeTls")
            .field("files", &self.files)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// Installs rustls' ring crypto provider as the process default; a second call is a no-op.
pub fn install_crypto_provider() {
    // Err only means a provider is already installed, which is exactly what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The provider used for everything here, independent of the process-wide default.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl NodeTls {
    /// Reads and validates CA, certificate and key: parseable, currently valid, issued by
    /// the CA, and key matching the certificate. Every error names the offending file.
    pub fn load(files: &TlsFiles) -> Result<NodeTls, TlsError> {
        let (ca_pem, cert_pem, key_pem) = (read(&files.ca)?, read(&files.cert)?, read(&files.key)?);
        warn_if_key_readable(&files.key);

        let mut roots = RootCertStore::empty();
        for der in parse_certs(&files.ca, &ca_pem)? {
            roots.add(der).map_err(|e| malformed(&files.ca, e))?;
        }
        let roots = Arc::new(roots);
        let chain = parse_certs(&files.cert, &cert_pem)?;
        let not_after = check_validity(&files.cert, &chain[0])?;

        // The same verifier the server uses for peers, so "loads" implies "peers accept it".
        let verifier = client_verifier(&roots, &files.ca)?;
        if let Err(e) = verifier.verify_client_cert(&chain[0], &chain[1..], UnixTime::now()) {
            let (cert, ca) = (files.cert.clone(), files.ca.clone());
            return Err(match e {
                rustls::Error::InvalidCertificate(
                    ce @ (CertificateError::UnknownIssuer | CertificateError::BadSignature),
                ) => TlsError::NotSignedByCa {
                    cert,
                    ca,
                    reason: format!("{ce:?}"),
                },
                other => TlsError::Rejected {
                    cert,
                    ca,
                    reason: other.to_string(),
                },
            });
        }
        let key = load_key(files, &key_pem, &chain)?;
        Ok(NodeTls {
            files: files.clone(),
            ca_pem,
            cert_pem,
            key_pem,
            roots,
            chain,
            key,
            not_after,
        })
    }

    /// tonic client TLS settings: trust only the cluster CA and present this node's cert.
    pub fn client_config(&self) -> tonic::transport::ClientTlsConfig {
        tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&self.ca_pem))
            .identity(tonic::transport::Identity::from_pem(&self.cert_pem, &self.key_pem))
    }

    /// Server config for [`tls_incoming`]: requires a client certificate issued by the
    /// cluster CA and negotiates ALPN "h2" (gRPC).
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        self.server_config_with(client_verifier(&self.roots, &self.files.ca)?, b"h2")
    }

    /// Server config for the read-only REST API over HTTPS: this node's certificate, HTTP/1.1; a client
    /// certificate is optional (load balancers' health checks rarely have one) but must be CA-signed if presented.
    pub fn rest_server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| malformed(&self.files.ca, e))?;
        self.server_config_with(verifier, b"http/1.1")
    }

    /// This node's certificate with a client verifier and one ALPN protocol.
    fn server_config_with(
        &self,
        verifier: Arc<dyn ClientCertVerifier>,
        alpn: &[u8],
    ) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(TlsError::Config)?;
        config.alpn_protocols = vec![alpn.to_vec()];
        Ok(Arc::new(config))
    }

    /// End of the node certificate's validity period (for expiry warnings/metrics).
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// The node's own certificate (DER), e.g. to read the identity it carries.
    pub fn leaf_der(&self) -> &[u8] {
        &self.chain[0]
    }

    /// The files these credentials were loaded from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

fn malformed(path: &Path, reason: impl fmt::Display) -> TlsError {
    TlsError::Malformed {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Verifier accepting only client certificates issued by one of `roots`.
fn client_verifier(roots: &Arc<RootCertStore>, ca: &Path) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
        .build()
        .map_err(|e| malformed(ca, e))
}

/// Parses the private key and checks that it belongs to the end-entity certificate.
fn load_key(
    files: &TlsFiles,
    pem: &[u8],
    chain: &[CertificateDer<'static>],
) -> Result<PrivateKeyDer<'static>, TlsError> {
    let key = rustls_pemfile::private_key(&mut &pem[..])
        .map_err(|e| malformed(&files.key, e))?
        .ok_or_else(|| TlsError::NoPrivateKey {
            path: files.key.clone(),
        })?;
    let signing_key = provider()
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| malformed(&files.key, e))?;
    // InconsistentKeys::Unknown (key type cannot expose its public half) is left to the handshake.
    let matched = CertifiedKey::new(chain.to_vec(), signing_key).keys_match();
    if let Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) = matched {
        return Err(TlsError::KeyMismatch {
            key: files.key.clone(),
            cert: files.cert.clone(),
        });
    }
    Ok(key)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// A key readable by group/others is not fatal (ops may use ACLs) but deserves a warning.
fn warn_if_key_readable(path: &Path) {
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "private key is accessible by group/others");
        }
    }
}

/// All certificates in a PEM file, each checked to be parseable X.509.
fn parse_certs(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| malformed(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_owned() });
    }
    for der in &certs {
        x509_parser::parse_x509_certificate(der).map_err(|e| malformed(path, e))?;
    }
    Ok(certs)
}

/// Checks the validity period ourselves so the error can show the offending date.
fn check_validity(path: &Path, der: &CertificateDer<'_>) -> Result<OffsetDateTime, TlsError> {
    let (_, x509) = x509_parser::parse_x509_certificate(der).map_err(|e| malformed(path, e))?;
    let validity = x509.validity();
    let (not_before, not_after) = (validity.not_before.to_datetime(), validity.not_after.to_datetime());
    let now = OffsetDateTime::now_utc();
    if now > not_after {
        return Err(TlsError::Expired {
            path: path.to_owned(),
            not_after,
        });
    }
    if now < not_before {
        return Err(TlsError::NotYetValid {
            path: path.to_owned(),
            not_before,
        });
    }
    Ok(not_after)
}

/// Accept loop: TLS handshakes on `listener`, each with a timeout (10 s), spawned so one slow
/// peer cannot block others.
///
/// Yields established streams; a refused handshake (foreign CA, no client cert, garbage) is
/// logged with `tracing::warn!` naming the peer address and the reason, and is not yielded.
/// Accept errors never end the stream; the background task stops once the stream is dropped.
pub fn tls_incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
) -> impl Stream<Item = Result<TlsStream<TcpStream>, io::Error>> + Send + 'static {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), tx));
    ReceiverStream::new(rx)
}

type Established = Result<TlsStream<TcpStream>, io::Error>;

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, tx: mpsc::Sender<Established>) {
    let permits = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    let refusals = Arc::new(RefusalLog::default());
    loop {
        let accepted = tokio::select! {
            _ = tx.closed() => return,
            permit = permits.clone().acquire_owned() => match permit {
                // Accept only once a handshake slot is free: backpressure instead of a pile-up.
                Ok(permit) => tokio::select! {
                    _ = tx.closed() => return,
                    r = listener.accept() => r.map(|(tcp, peer)| (tcp, peer, permit)),
                },
                Err(_) => return, // semaphore closed: cannot happen, we never close it
            },
        };
        let (tcp, peer, permit) = match accepted {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed; backing off");
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                }
            }
        };
        // gRPC is latency-sensitive request/response traffic; Nagle only adds delay.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "set TCP_NODELAY failed");
        }
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        let refusals = refusals.clone();
        tokio::spawn(async move {
            let result = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
            drop(permit);
            match result {
                Ok(Ok(stream)) => {
                    // Err only when the server is shutting down; the connection is then dropped.
                    let _ = tx.send(Ok(stream)).await;
                }
                Ok(Err(e)) => refusals.log(peer, &describe_handshake_error(&e)),
                Err(_) => refusals.log(peer, &format!("handshake timed out after {HANDSHAKE_TIMEOUT:?}")),
            }
        });
    }
}

/// Distinct (peer address, reason) pairs remembered; past it, refusals are counted, not logged.
const REMEMBERED_REFUSALS: usize = 1024;

/// Refused handshakes are logged once per peer address (not port: a client retrying comes from new ports) and
/// reason, so a misconfigured or hostile client retrying forever cannot flood the log.
#[derive(Default)]
struct RefusalLog {
    seen: std::sync::Mutex<std::collections::HashSet<(std::net::IpAddr, String)>>,
}

impl RefusalLog {
    fn log(&self, peer: SocketAddr, reason: &str) {
        let first = match self.seen.lock() {
            Ok(mut seen) if seen.len() < REMEMBERED_REFUSALS => seen.insert((peer.ip(), reason.to_string())),
            Ok(_) => false,
            Err(_) => true,
        };
        if first {
            tracing::warn!(
                event = "tls_refused",
                %peer,
                "TLS handshake refused: {reason} (repeats from this address for this reason are not logged)"
            );
        }
    }
}

/// Human-readable reason for a failed server-side handshake.
fn describe_handshake_error(err: &io::Error) -> String {
    let Some(tls) = err.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) else {
        return match err.kind() {
            io::ErrorKind::UnexpectedEof => "peer closed the connection during the handshake".to_owned(),
            _ => err.to_string(),
        };
    };
    use CertificateError as C;
    match tls {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
            "peer certificate not signed by the cluster CA (UnknownIssuer)".to_owned()
        }
        rustls::Error::InvalidCertificate(C::BadSignature) => {
            "peer certificate signature does not verify against the cluster CA (BadSignature)".to_owned()
        }
        rustls::Error::InvalidCertificate(e @ (C::Expired | C::ExpiredContext { .. })) => {
            format!("peer certificate expired ({e})")
        }
        rustls::Error::InvalidCertificate(e @ (C::NotValidYet | C::NotValidYetContext { .. })) => {
            format!("peer certificate not yet valid, check clocks ({e})")
        }
        rustls::Error::InvalidCertificate(e) => format!("peer certificate rejected ({e})"),
        rustls::Error::NoCertificatesPresented => "peer presented no client certificate".to_owned(),
        rustls::Error::InvalidMessage(m) => {
            format!("not a TLS client or corrupt handshake ({m:?})")
        }
        rustls::Error::AlertReceived(a) => format!("peer aborted the handshake with alert {a:?}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert;
    use futures::StreamExt;
    use std::net::{IpAddr, Ipv4Addr};
    use std::pin::Pin;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::timeout;
    use tokio_rustls::TlsConnector;

    type Incoming = Pin<Box<dyn Stream<Item = Established> + Send>>;
    const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const WAIT: Duration = Duration::from_secs(10);

    /// A CA in `dir/sub` plus node cert `node` for 127.0.0.1.
    fn make(dir: &Path, sub: &str, node: &str) -> TlsFiles {
        let d = dir.join(sub);
        let ca = match cert::init_ca(&d, sub, 1, false) {
            Ok(ca) => ca.cert,
            Err(cert::CertError::Exists { .. }) => d.join(cert::CA_CERT_FILE),
            Err(e) => panic!("{e}"),
        };
        let n = cert::issue(&d, crate::identity::CertRole::Member, node, &[LOCALHOST], &[], 1).unwrap();
        TlsFiles {
            ca,
            cert: n.cert,
            key: n.key,
        }
    }

    /// Client trusting `trust`'s CA and presenting `identity` (if any).
    fn connector(trust: &TlsFiles, identity: Option<&TlsFiles>) -> TlsConnector {
        let tls = NodeTls::load(trust).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(tls.roots.clone());
        let config = match identity.map(|f| NodeTls::load(f).unwrap()) {
            Some(id) => builder
                .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        TlsConnector::from(Arc::new(config))
    }

    async fn server(files: &TlsFiles) -> (SocketAddr, Incoming) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = NodeTls::load(files).unwrap().server_config().unwrap();
        assert_eq!(config.alpn_protocols, vec![b"h2".to_vec()]);
        (addr, Box::pin(tls_incoming(listener, config)))
    }

    async fn connect(c: &TlsConnector, addr: SocketAddr) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(addr).await?;
        c.connect(LOCALHOST.into(), tcp).await
    }

    /// Connects with a trusted cert and asserts it is the next stream yielded (so nothing
    /// from an earlier, refused client was yielded before it).
    async fn assert_good_client_next(files: &TlsFiles, addr: SocketAddr, incoming: &mut Incoming) {
        let mut client = connect(&connector(files, Some(files)), addr).await.unwrap();
        let mut srv = timeout(WAIT, incoming.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(
            srv.get_ref().0.peer_addr().unwrap(),
            client.get_ref().0.local_addr().unwrap()
        );
        assert!(srv.get_ref().1.peer_certificates().is_some());
        client.write_all(b"x").await.unwrap();
        client.flush().await.unwrap();
        assert_eq!(srv.read_u8().await.unwrap(), b'x');
        srv.write_all(b"y").await.unwrap();
        srv.flush().await.unwrap();
        assert_eq!(client.read_u8().await.unwrap(), b'y');
    }

    #[tokio::test]
    async fn handshake_with_cluster_cert_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let a = make(dir.path(), "a", "n1");
        let (addr, mut incoming) = server(&a).await;
        assert_good_client_next(&a, addr, &mut incoming).await;
    }

    #[tokio::test]
    async fn foreign_missing_or_garbage_client_is_refused() {
        let _ = tracing_subscriber::fmt().with_test_writer().try_init(); // show the refusal reasons
        let dir = tempfile::tempdir().unwrap();
        let a = make(dir.path(), "a", "n1");
        let b = make(dir.path(), "b", "n1");
        let (addr, mut incoming) = server(&a).await;
        for identity in [Some(&b), None] {
            // TLS 1.3 clients finish before the server checks their cert: the refusal
            // then shows up as an alert on the first read instead of on connect.
            if let Ok(mut c) = connect(&connector(&a, identity), addr).await {
                let _ = c.write_all(b"x").await;
                let _ = c.flush().await;
                let mut buf = [0u8; 1];
                assert!(!matches!(c.read(&mut buf).await, Ok(1)), "refused client got data");
            }
        }
        let mut raw = TcpStream::connect(addr).await.unwrap();
        raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut sink = Vec::new();
        let _ = raw.read_to_end(&mut sink).await; // server closes after its alert
        assert!(timeout(Duration::from_millis(200), incoming.next()).await.is_err());
        assert_good_client_next(&a, addr, &mut incoming).await;
    }

    #[test]
    fn handshake_reasons_are_readable() {
        let e = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        assert!(describe_handshake_error(&e).contains("not signed by the cluster CA (UnknownIssuer)"));
        let e = io::Error::new(io::ErrorKind::InvalidData, rustls::Error::NoCertificatesPresented);
        assert!(describe_handshake_error(&e).contains("no client certificate"));
    }

    fn load_err(files: &TlsFiles, path: &Path) -> TlsError {
        let err = NodeTls::load(files).unwrap_err();
        assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
        err
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = make(dir.path(), "a", "n1");
        let b = make(dir.path(), "b", "n1");
        let tls = NodeTls::load(&a).unwrap();
        let left = tls.not_after() - OffsetDateTime::now_utc();
        assert!(
            left > time::Duration::hours(23) && left <= time::Duration::days(1),
            "{left}"
        );

        let missing = TlsFiles {
            cert: dir.path().join("nope.pem"),
            ..a.clone()
        };
        assert!(matches!(load_err(&missing, &missing.cert), TlsError::Read { .. }));

        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "this is not PEM").unwrap();
        let f = TlsFiles {
            ca: junk.clone(),
            ..a.clone()
        };
        assert!(matches!(load_err(&f, &junk), TlsError::NoCertificate { .. }));
        std::fs::write(&junk, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
        let f = TlsFiles {
            cert: junk.clone(),
            ..a.clone()
        };
        assert!(matches!(load_err(&f, &junk), TlsError::Malformed { .. }));
        let f = TlsFiles {
            key: a.cert.clone(),
            ..a.clone()
        };
        assert!(matches!(load_err(&f, &a.cert), TlsError::NoPrivateKey { .. }));

        let now = OffsetDateTime::now_utc();
        let old = cert::issue_with_validity(
            &dir.path().join("a"),
            &cert::IssueSpec::new(crate::identity::CertRole::Member, "old"),
            now - time::Duration::days(10),
            now - time::Duration::days(1),
        )
        .unwrap();
        let f = TlsFiles {
            cert: old.cert.clone(),
            key: old.key,
            ..a.clone()
        };
        assert!(matches!(load_err(&f, &old.cert), TlsError::Expired { .. }));

        let foreign = TlsFiles {
            ca: a.ca.clone(),
            ..b.clone()
        };
        assert!(matches!(load_err(&foreign, &b.cert), TlsError::NotSignedByCa { .. }));

        let other = make(dir.path(), "a", "n2");
        let f = TlsFiles {
            key: other.key.clone(),
            ..a.clone()
        };
        assert!(matches!(load_err(&f, &other.key), TlsError::KeyMismatch { .. }));
    }
}
