//! gRPC channels to DCS members: one way to dial, used by the Raft network, write forwarding and clients.

use std::time::Duration;

use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use super::limits::{client_reply_limit, raft_message_limit};
use crate::proto::dcs_client::DcsClient;
use crate::proto::raft_internal_client::RaftInternalClient;

/// A Raft client (AppendEntries, snapshots, forwarded writes) with the message limit every member's server uses
/// in both directions: a message too large for a peer is refused here, before it is sent.
pub fn raft_client(channel: Channel) -> RaftInternalClient<Channel> {
    RaftInternalClient::new(channel)
        .max_decoding_message_size(raft_message_limit())
        .max_encoding_message_size(raft_message_limit())
}

/// A client of the DCS API that accepts any reply a member may send (tonic's default of 4 MiB would make reads
/// of a large key space fail while the member happily sends them).
pub fn dcs_client(channel: Channel) -> DcsClient<Channel> {
    DcsClient::new(channel).max_decoding_message_size(client_reply_limit())
}

/// How long a TCP connect may take before the member counts as unreachable (a LAN answers in well under this).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// A lazily connected channel to `addr` (`host:port`) without a per-request timeout and with faster keepalives, for
/// long-lived watch streams.
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

/// One lazily connected channel per member address, shared by every caller (HTTP/2 multiplexes them): a request
/// never pays a fresh TCP and TLS handshake, which matters most for the leader's read-index heartbeats, whose
/// whole budget is one heartbeat interval.
pub struct ChannelPool {
    tls: Option<ClientTlsConfig>,
    timeout: Option<Duration>,
    channels: std::sync::Mutex<std::collections::HashMap<String, Channel>>,
}

impl ChannelPool {
    /// Channels that bound every request by `timeout` (None: only by each request's own deadline).
    pub fn new(tls: Option<ClientTlsConfig>, timeout: Option<Duration>) -> ChannelPool {
        ChannelPool {
            tls,
            timeout,
            channels: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// The channel to `addr`, created on first use.
    pub fn get(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        // A poisoned lock only means another caller panicked mid-insert; the map itself is still usable.
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = channels.get(addr) {
            return Ok(c.clone());
        }
        let c = build(addr, self.tls.as_ref(), self.timeout, Duration::from_secs(1))?;
        channels.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    /// The client TLS these channels use (None in plaintext mode).
    pub fn tls(&self) -> Option<&ClientTlsConfig> {
        self.tls.as_ref()
    }
}
