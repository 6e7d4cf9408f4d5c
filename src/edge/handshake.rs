//! A session's opening, before bytes are spliced: the client's first message within the hello timeout, then the
//! SSL/GSS negotiation with the backend, followed just far enough to know whether the session stays plaintext (its
//! cancel key can then be seen) and whether a refused encryption request is followed by a CancelRequest.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::copy::Side;
use super::hello::{message_len, parse, CancelKey, Hello, HelloError, PREFIX_LEN};

/// A client's first message: what it is and its bytes (forwarded as they came).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opening {
    pub hello: Hello,
    pub bytes: Vec<u8>,
}

/// Why a client was closed before it sent a usable first message.
#[derive(Debug, thiserror::Error)]
pub enum HelloFailure {
    #[error("no complete first message within {0} ms")]
    Timeout(u128),
    #[error("closed before its first message")]
    Closed,
    #[error("reading its first message: {0}")]
    Io(io::Error),
    #[error("not a PostgreSQL client: {0}")]
    Invalid(#[from] HelloError),
}

/// Reads one first message (SSLRequest, GSSENCRequest, StartupMessage, CancelRequest or a TLS record header)
/// within `within`. Never reads past it: what follows belongs to the backend.
pub async fn read_hello<S>(stream: &mut S, within: Duration) -> Result<Opening, HelloFailure>
where
    S: AsyncRead + Unpin,
{
    let read = async {
        let mut prefix = [0u8; PREFIX_LEN];
        stream.read_exact(&mut prefix).await.map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => HelloFailure::Closed,
            _ => HelloFailure::Io(e),
        })?;
        // The length is checked before anything is allocated for it.
        let len = message_len(&prefix)?;
        let mut bytes = prefix.to_vec();
        bytes.resize(len, 0);
        stream
            .read_exact(&mut bytes[PREFIX_LEN..])
            .await
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => HelloFailure::Closed,
                _ => HelloFailure::Io(e),
            })?;
        Ok(Opening {
            hello: parse(&bytes)?,
            bytes,
        })
    };
    tokio::time::timeout(within, read)
        .await
        .map_err(|_| HelloFailure::Timeout(within.as_millis()))?
}

/// How the opening ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Negotiated {
    /// A StartupMessage went through in the clear: the backend's BackendKeyData will be readable.
    Plain,
    /// Encryption was accepted (or the backend answered with an error): the rest is opaque to the edge.
    Opaque,
    /// After a refused encryption request the client sent a CancelRequest (libpq's cancel connection with
    /// `sslmode=prefer`): not a session.
    Cancel(CancelKey, Vec<u8>),
}

/// Forwards `first` (not a CancelRequest) to the backend and follows SSL/GSS answers: 'S' or 'G' -> opaque; 'N' ->
/// the client's next first message (a client may try GSS, then SSL, then neither). Counts forwarded bytes.
pub async fn negotiate<C, B>(
    client: &mut C,
    server: &mut B,
    first: Opening,
    within: Duration,
    bytes_in: &AtomicU64,
    bytes_out: &AtomicU64,
) -> Result<Negotiated, (Side, io::Error)>
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let mut opening = first;
    // GSSENCRequest, SSLRequest, then the startup: three messages at most.
    for _ in 0..3 {
        if let Hello::Cancel(key) = opening.hello {
            return Ok(Negotiated::Cancel(key, opening.bytes));
        }
        server.write_all(&opening.bytes).await.map_err(|e| (Side::Backend, e))?;
        bytes_in.fetch_add(opening.bytes.len() as u64, Ordering::Relaxed);
        match opening.hello {
            Hello::Startup { .. } => return Ok(Negotiated::Plain),
            Hello::DirectTls => return Ok(Negotiated::Opaque),
            Hello::Ssl | Hello::Gss | Hello::Cancel(_) => {}
        }
        let mut answer = [0u8; 1];
        match tokio::time::timeout(within, server.read_exact(&mut answer)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err((Side::Backend, e)),
            Err(_) => {
                let e = io::Error::new(io::ErrorKind::TimedOut, "no answer to the encryption request");
                return Err((Side::Backend, e));
            }
        }
        client.write_all(&answer).await.map_err(|e| (Side::Client, e))?;
        bytes_out.fetch_add(1, Ordering::Relaxed);
        if answer[0] != b'N' {
            return Ok(Negotiated::Opaque);
        }
        opening = read_hello(client, within)
            .await
            .map_err(|e| (Side::Client, io::Error::other(e)))?;
    }
    Err((Side::Client, io::Error::other("too many encryption requests")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::hello::cancel_request;

    const SSL: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    const STARTUP: &[u8] = b"\0\0\0\x10\0\x03\0\0user\0u\0\0";

    #[tokio::test]
    async fn reads_exactly_one_message_or_fails_in_time() {
        let (mut client, mut edge) = tokio::io::duplex(1024);
        client
            .write_all(&[SSL.as_slice(), b"rest"].concat())
            .await
            .expect("write");
        let got = read_hello(&mut edge, Duration::from_secs(1)).await.expect("hello");
        assert_eq!(got.hello, Hello::Ssl);
        let mut rest = [0u8; 4];
        edge.read_exact(&mut rest).await.expect("the rest is left");
        assert_eq!(&rest, b"rest");

        let silent = read_hello(&mut edge, Duration::from_millis(50)).await;
        assert!(matches!(silent, Err(HelloFailure::Timeout(50))), "{silent:?}");
        client.write_all(b"GET / HTTP/1.1\r\n").await.expect("write");
        let garbage = read_hello(&mut edge, Duration::from_secs(1)).await;
        assert!(matches!(garbage, Err(HelloFailure::Invalid(_))), "{garbage:?}");
        drop(client);
        let mut edge2 = edge;
        let closed = read_hello(&mut edge2, Duration::from_secs(1)).await;
        assert!(
            matches!(closed, Err(HelloFailure::Closed) | Err(HelloFailure::Invalid(_))),
            "{closed:?}"
        );
    }

    /// Runs `negotiate` with a scripted client and backend; returns the outcome and what the backend received.
    async fn run(client_sends: &[u8], backend_answers: &[u8]) -> (Result<Negotiated, Side>, Vec<u8>) {
        let (mut client, mut client_edge) = tokio::io::duplex(1024);
        let (mut server_edge, mut backend) = tokio::io::duplex(1024);
        client.write_all(client_sends).await.expect("client");
        backend.write_all(backend_answers).await.expect("backend");
        let first = read_hello(&mut client_edge, Duration::from_secs(1))
            .await
            .expect("first");
        let (i, o) = (AtomicU64::new(0), AtomicU64::new(0));
        let out = negotiate(
            &mut client_edge,
            &mut server_edge,
            first,
            Duration::from_millis(200),
            &i,
            &o,
        )
        .await
        .map_err(|(side, _)| side);
        drop(server_edge);
        let mut got = Vec::new();
        backend.read_to_end(&mut got).await.expect("backend read");
        (out, got)
    }

    #[tokio::test]
    async fn follows_encryption_requests() {
        let key = CancelKey {
            pid: 77,
            secret: vec![1, 2, 3, 4],
        };
        let cancel = cancel_request(&key);
        let ssl_then_startup = [SSL.as_slice(), STARTUP].concat();
        let ssl_then_cancel = [SSL.as_slice(), &cancel].concat();
        // (client sends, backend answers, outcome, what reached the backend)
        type Case<'a> = (&'a [u8], &'a [u8], Result<Negotiated, Side>, &'a [u8]);
        let cases: Vec<Case> = vec![
            (STARTUP, b"", Ok(Negotiated::Plain), STARTUP),
            (&SSL, b"S", Ok(Negotiated::Opaque), &SSL),
            (&ssl_then_startup, b"N", Ok(Negotiated::Plain), &ssl_then_startup),
            (
                &ssl_then_cancel,
                b"N",
                Ok(Negotiated::Cancel(key.clone(), cancel.clone())),
                &SSL,
            ),
            (&SSL, b"E", Ok(Negotiated::Opaque), &SSL),
            // The backend never answers; the client never follows up.
            (&SSL, b"", Err(Side::Backend), &SSL),
            (&SSL, b"N", Err(Side::Client), &SSL),
        ];
        for (sends, answers, want, forwarded) in cases {
            let (got, backend_got) = run(sends, answers).await;
            assert_eq!(got, want, "{sends:?} / {answers:?}");
            assert_eq!(backend_got, forwarded, "{sends:?} / {answers:?}");
        }
    }
}
