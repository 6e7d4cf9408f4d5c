//! gRPC channels to DCS members: one way to dial, used by the Raft network, write forwarding and clients.

use std::time::Duration;

use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// How long a TCP connect may take before the member counts as unreachable (a LAN answers in well under this).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// A lazily connected channel to `addr` (`host:port`), over TLS when `tls` is given; every request is bounded by
/// `timeout`.
pub fn lazy_channel(
    addr: &str,
    tls: Option<&ClientTlsConfig>,
    timeout: Duration,
) -> Result<Channel, tonic::transport::Error> {
    build(addr, tls, Some(timeout), Duration::from_secs(1))
}

/// Like [`lazy_channel`] but without a per-request timeout and with faster keepalives (long-lived watch streams).
pub fn lazy_stream_channel(addr: &str, tls: Option<&ClientTlsConfig>) -> Result<Channel, tonic::transport::Error> {
    build(addr, tls, None, Duration::from_millis(500))
}

fn build(
    addr: &str,
    tls: Option<&ClientTlsConfig>,
    timeout: Option<Duration>,
    keepalive: Duration,
) -> Result<Channel, tonic::transport::Error> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))?
        .connect_timeout(timeout.map_or(CONNECT_TIMEOUT, |t| CONNECT_TIMEOUT.min(t)))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(keepalive)
        .keep_alive_timeout(keepalive * 2)
        .keep_alive_while_idle(true);
    if let Some(timeout) = timeout {
        endpoint = endpoint.timeout(timeout);
    }
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls.clone())?;
    }
    Ok(endpoint.connect_lazy())
}
