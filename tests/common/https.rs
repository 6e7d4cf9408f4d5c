//! HTTPS requests to a db node's REST API trusting only the cluster CA, with or without a client certificate.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pgha::config::Role;
use pgha::harness::local::{Layout, LocalCluster};

/// A client certificate and key.
pub struct Identity {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// One HTTPS request trusting only the cluster CA, with `identity` as client certificate: (status, body).
pub async fn https(
    ca: &Path,
    identity: Option<&Identity>,
    port: u16,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pem = |p: &Path| std::fs::read(p);
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &pem(ca)?[..]) {
        roots.add(cert?).map_err(std::io::Error::other)?;
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let chain = rustls_pemfile::certs(&mut &pem(&id.cert)?[..]).collect::<Result<Vec<_>, _>>()?;
            let key = rustls_pemfile::private_key(&mut &pem(&id.key)?[..])?
                .ok_or_else(|| std::io::Error::other("no key in the key file"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(std::io::Error::other)?
        }
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let name = rustls_pki_types::ServerName::try_from("localhost").map_err(std::io::Error::other)?;
    let mut tls = tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
        .await
        .map_err(std::io::Error::other)??;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    // The server may close without close_notify after the body; what was read is the answer. A switchover answers
    // once it is done: allow for it.
    let _ = tokio::time::timeout(Duration::from_secs(90), tls.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response).into_owned();
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {response:?}")))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

/// A 3-node PostgreSQL cluster with mutual TLS, the REST API over HTTPS, and PostgreSQL itself without TLS (the
/// probes connect in plain text).
pub fn start_tls_cluster() -> LocalCluster {
    pgha::tls::install_crypto_provider();
    let layout = Layout {
        pg_lines: "tls = false\n".into(),
        ha_lines: format!("{}rest_tls = true\n", super::db::HA),
        ..Layout::default()
    };
    let mut cluster =
        LocalCluster::create_with(&super::common::exe(), None, 3, Role::Db, true, layout).expect("laying out");
    cluster.start_all().expect("starting");
    cluster
}
