//! An axum [`Listener`] that yields TLS connections (`ha.rest_tls`): the handshakes run in `tls::tls_incoming`,
//! which times them out and logs every refused one, so a bad client never blocks the REST API.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::Listener;
use futures::{Stream, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

/// TLS connections accepted on a TCP listener.
pub struct TlsListener {
    local: SocketAddr,
    incoming: std::pin::Pin<Box<dyn Stream<Item = std::io::Result<TlsStream<TcpStream>>> + Send>>,
}

impl TlsListener {
    /// Starts accepting (and handshaking) on `listener` with `config`.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        Ok(TlsListener {
            local,
            incoming: Box::pin(crate::tls::tls_incoming(listener, config)),
        })
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.incoming.next().await {
                Some(Ok(stream)) => {
                    let peer = stream.get_ref().0.peer_addr().unwrap_or(self.local);
                    return (stream, peer);
                }
                // tls_incoming only yields established streams; keep the arm for the type's sake.
                Some(Err(e)) => tracing::debug!("REST TLS accept: {e}"),
                // The accept task ended (cannot happen while we hold the stream): wait for shutdown.
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
