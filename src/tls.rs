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
        let ca_pem = read(&files.ca)?;
        let cert_pem = read(&files.cert)?;
        let key_pem = read(&files.key)?;
        warn_if_key_readable(&files.key);

        let ca_certs = parse_certs(&files.ca, &ca_pem)?;
        let mut roots = RootCertStore::empty();
        for der in ca_certs {
            roots.add(der).map_err(|e| TlsError::Malformed {
                path: files.ca.clone(),
                reason: e.to_string(),
            })?;
        }
        let roots = Arc::new(roots);

        let chain = parse_certs(&files.cert, &cert_pem)?;
        let not_after = check_validity(&files.cert, &chain[0])?;

        let provider = provider();
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| TlsError::Malformed {
                path: files.ca.clone(),
                reason: e.to_string(),
            })?;
        // The same verifier the server uses for peers, so "loads" implies "peers accept it".
        if let Err(e) = verifier.verify_client_cert(&chain[0], &chain[1..], UnixTime::now()) {
            let (cert, ca) = (files.cert.clone(), files.ca.clone());
            return Err(match e {
                rustls::Error::InvalidCertificate(
                    ref ce @ (CertificateError::UnknownIssuer | CertificateError::BadSignature),
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

        let key = match rustls_pemfile::private_key(&mut key_pem.as_slice()) {
            Ok(Some(key)) => key,
            Ok(None) => {
                return Err(TlsError::NoPrivateKey {
                    path: files.key.clone(),
                })
            }
            Err(e) => {
                return Err(TlsError::Malformed {
                    path: files.key.clone(),
                    reason: e.to_string(),
                })
            }
        };
        let signing_key = provider
            .key_provider
            .load_private_key(key.clone_key())
            .map_err(|e| TlsError::Malformed {
                path: files.key.clone(),
                reason: e.to_string(),
            })?;
        match CertifiedKey::new(chain.clone(), signing_key).keys_match() {
            Ok(()) => {}
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                return Err(TlsError::KeyMismatch {
                    key: files.key.clone(),
                    cert: files.cert.clone(),
                })
            }
            // Unknown: the key type cannot expose its public half; the handshake will tell.
            Err(_) => {}
        }

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
        let provider = provider();
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider.clone())
            .build()
            .map_err(|e| TlsError::Malformed {
                path: self.files.ca.clone(),
                reason: e.to_string(),
            })?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(TlsError::Config)?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    /// End of the node certificate's validity period (for expiry warnings/metrics).
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// The files these credentials were loaded from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
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
    let malformed = |reason: String| TlsError::Malformed {
        path: path.to_owned(),
        reason,
    };
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| malformed(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_owned() });
    }
    for der in &certs {
        x509_parser::parse_x509_certificate(der).map_err(|e| malformed(e.to_string()))?;
    }
    Ok(certs)
}

/// Checks the validity period ourselves so the error can show the offending date.
fn check_validity(path: &Path, der: &CertificateDer<'_>) -> Result<OffsetDateTime, TlsError> {
    let (_, x509) = x509_parser::parse_x509_certificate(der).map_err(|e| TlsError::Malformed {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
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
        tokio::spawn(async move {
            let result = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
            drop(permit);
            match result {
                Ok(Ok(stream)) => {
                    // Err only when the server is shutting down; the connection is then dropped.
                    let _ = tx.send(Ok(stream)).await;
                }
                Ok(Err(e)) => log_refused(peer, &describe_handshake_error(&e)),
                Err(_) => log_refused(peer, &format!("handshake timed out after {HANDSHAKE_TIMEOUT:?}")),
            }
        });
    }
}

fn log_refused(peer: SocketAddr, reason: &str) {
    tracing::warn!(%peer, reason, "TLS handshake refused: {reason}");
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
