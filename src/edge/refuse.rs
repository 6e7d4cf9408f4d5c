//! Turning a client away with a PostgreSQL error it can show, as the postmaster does when it cannot fork: an
//! ErrorResponse (pure), then a lingering close so the client reads it instead of a connection reset.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// SQLSTATE too_many_connections.
pub const TOO_MANY_CONNECTIONS: &str = "53300";

/// A FATAL ErrorResponse with `sqlstate` and `message`.
pub fn error_response(sqlstate: &str, message: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (field, value) in [(b'S', "FATAL"), (b'V', "FATAL"), (b'C', sqlstate), (b'M', message)] {
        body.push(field);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = vec![b'E'];
    msg.extend_from_slice(&((4 + body.len()) as u32).to_be_bytes());
    msg.extend_from_slice(&body);
    msg
}

/// Writes `reply`, half-closes, and reads until the client closes or `linger` passes: closing a socket with unread
/// input sends a reset, which can destroy the reply before the client reads it.
pub async fn close_with(mut stream: TcpStream, reply: &[u8], linger: Duration) {
    let _ = tokio::time::timeout(linger, async {
        stream.write_all(reply).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 512];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_response_layout() {
        let msg = error_response(TOO_MANY_CONNECTIONS, "full");
        let body = b"SFATAL\0VFATAL\0C53300\0Mfull\0\0";
        assert_eq!(msg[0], b'E');
        assert_eq!(
            u32::from_be_bytes([msg[1], msg[2], msg[3], msg[4]]) as usize,
            4 + body.len()
        );
        assert_eq!(&msg[5..], body);
    }
}
