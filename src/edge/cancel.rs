//! Where a CancelRequest goes, and its delivery. A plaintext session's key was seen in its BackendKeyData, so its
//! cancel goes to that session's backend only. A key the edge never saw (the session runs inside TLS or GSSAPI
//! encryption, or it already ended) goes to every backend of the port it came in on: PostgreSQL ignores a key it did
//! not issue, so the right backend acts and the others do nothing.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::hello::CancelKey;
use super::routing::Port;

/// What the edge knows of one live session, for routing cancels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionKey {
    pub port: Port,
    /// The backend's `host:port`.
    pub addr: String,
    /// Its BackendKeyData, if the edge saw it.
    pub key: Option<CancelKey>,
}

/// Where a cancel goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CancelRoute {
    /// The backend of the session that holds the key.
    Session(String),
    /// No session is known by this key: every backend the port routes to, and every backend of the port's
    /// sessions whose key the edge could not see.
    Broadcast(Vec<String>),
}

/// Picks the backends a CancelRequest for `key`, received on `port`, goes to (pure).
pub fn route(key: &CancelKey, port: Port, sessions: &[SessionKey], port_targets: &[String]) -> CancelRoute {
    // A key is the backend's: a match on another port (a client that cancels through another port) is still right.
    if let Some(s) = sessions.iter().find(|s| s.key.as_ref() == Some(key)) {
        return CancelRoute::Session(s.addr.clone());
    }
    let hidden = sessions
        .iter()
        .filter(|s| s.port == port && s.key.is_none())
        .map(|s| &s.addr);
    let mut all: Vec<String> = Vec::new();
    for addr in port_targets.iter().chain(hidden) {
        if !all.contains(addr) {
            all.push(addr.clone());
        }
    }
    CancelRoute::Broadcast(all)
}

/// Sends `request` to `addr` and waits until the server closes the connection (it does once it has acted, which
/// is what a client's own cancel waits for too). False if it could not be sent within `within`.
pub async fn deliver(addr: &str, request: &[u8], within: Duration) -> bool {
    let send = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(request).await?;
        let mut sink = [0u8; 64];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    };
    matches!(tokio::time::timeout(within, send).await, Ok(Ok(())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pid: u32) -> CancelKey {
        CancelKey {
            pid,
            secret: vec![1, 2, 3, 4],
        }
    }

    fn s(port: Port, addr: &str, k: Option<u32>) -> SessionKey {
        SessionKey {
            port,
            addr: addr.into(),
            key: k.map(key),
        }
    }

    #[test]
    fn routes_to_the_session_else_to_every_candidate() {
        let targets = vec!["r1:5432".to_string(), "r2:5432".to_string()];
        let sessions = vec![
            s(Port::Replica, "r1:5432", Some(10)),
            s(Port::Replica, "r2:5432", Some(20)),
            s(Port::Replica, "r3:5432", None),
            s(Port::Any, "p:5432", None),
            s(Port::Primary, "p:5432", Some(30)),
        ];
        let b = |v: &[&str]| CancelRoute::Broadcast(v.iter().map(|a| a.to_string()).collect());
        let cases: Vec<(CancelKey, Port, &[SessionKey], CancelRoute)> = vec![
            (
                key(20),
                Port::Replica,
                &sessions,
                CancelRoute::Session("r2:5432".into()),
            ),
            (
                key(10),
                Port::Replica,
                &sessions,
                CancelRoute::Session("r1:5432".into()),
            ),
            (key(30), Port::Replica, &sessions, CancelRoute::Session("p:5432".into())),
            // Same pid, other secret: not that session's key.
            (
                CancelKey {
                    pid: 20,
                    secret: vec![9; 4],
                },
                Port::Replica,
                &sessions,
                b(&["r1:5432", "r2:5432", "r3:5432"]),
            ),
            (key(99), Port::Replica, &sessions, b(&["r1:5432", "r2:5432", "r3:5432"])),
            (key(99), Port::Any, &sessions, b(&["r1:5432", "r2:5432", "p:5432"])),
            (key(99), Port::Replica, &[], b(&["r1:5432", "r2:5432"])),
        ];
        for (k, port, sessions, want) in cases {
            assert_eq!(route(&k, port, sessions, &targets), want, "{k:?} on {port}");
        }
    }
}
