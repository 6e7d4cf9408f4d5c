//! The node's TLS identity, loaded from the `[tls]` files its config names.

use anyhow::bail;

use crate::config::Config;
use crate::tls::{NodeTls, TlsFiles};

/// Loads and checks the certificate files named in `[tls]`.
pub fn load_node_tls(config: &Config) -> anyhow::Result<NodeTls> {
    let (Some(ca), Some(cert), Some(key)) = (&config.tls.ca, &config.tls.cert, &config.tls.key) else {
        bail!("tls.ca, tls.cert and tls.key are required unless tls.plaintext = true");
    };
    let files = TlsFiles {
        ca: ca.clone(),
        cert: cert.clone(),
        key: key.clone(),
    };
    let tls = NodeTls::load(&files)?;
    tracing::info!(cert = %cert.display(), not_after = %tls.not_after(), "TLS identity loaded");
    Ok(tls)
}
