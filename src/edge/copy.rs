//! Copies a session both ways with a clean half-close, counting bytes per chunk and telling which side failed; the
//! backend's first messages of a plaintext session are shown to the cancel-key scanner on the way.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::hello::CancelKey;
use super::keyscan::{KeyScanner, Scan};

/// Buffer per direction: PostgreSQL messages are small; 16 KiB keeps a thousand sessions at ~32 MB.
const BUF: usize = 16 * 1024;

/// The side of a session whose socket failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client,
    Backend,
}

/// Looks at chunks before they are written on; returns false once it wants no more.
pub type Tap<'a> = &'a mut (dyn FnMut(&[u8]) -> bool + Send);

/// Copies `from` to `to` until EOF, then shuts `to`'s write side down (half-close). Errors name their side. Each
/// chunk is shown to `tap` (while it wants them) before it is written, so what the tap learns is known before the
/// other side can act on it.
pub async fn copy_half<R, W>(
    mut from: R,
    mut to: W,
    from_side: Side,
    to_side: Side,
    counter: &AtomicU64,
    mut tap: Option<Tap<'_>>,
) -> Result<(), (Side, io::Error)>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUF];
    loop {
        let n = from.read(&mut buf).await.map_err(|e| (from_side, e))?;
        if n == 0 {
            return to.shutdown().await.map_err(|e| (to_side, e));
        }
        if let Some(t) = &mut tap {
            if !t(&buf[..n]) {
                tap = None;
            }
        }
        to.write_all(&buf[..n]).await.map_err(|e| (to_side, e))?;
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Runs a session: client -> backend counted in `bytes_in`, backend -> client in `bytes_out`. Ends when both
/// directions reached EOF, or at the first error (the other direction is dropped, closing both sockets). With
/// `key`, the backend's messages are scanned for BackendKeyData, stored there when found.
pub async fn pump(
    mut client: TcpStream,
    mut server: TcpStream,
    bytes_in: &AtomicU64,
    bytes_out: &AtomicU64,
    key: Option<&OnceLock<CancelKey>>,
) -> Result<(), (Side, io::Error)> {
    let (cr, cw) = client.split();
    let (sr, sw) = server.split();
    let mut scanner = KeyScanner::new();
    let mut scan = |chunk: &[u8]| match scanner.feed(chunk) {
        Scan::More => true,
        Scan::Found(found) => {
            if let Some(slot) = key {
                let _ = slot.set(found);
            }
            false
        }
        Scan::Done => false,
    };
    let tap: Option<Tap<'_>> = match key {
        Some(_) => Some(&mut scan),
        None => None,
    };
    let client_done = AtomicBool::new(false);
    let up = async {
        copy_half(cr, sw, Side::Client, Side::Backend, bytes_in, None).await?;
        client_done.store(true, Ordering::Relaxed);
        Ok(())
    };
    let down = async {
        match copy_half(sr, cw, Side::Backend, Side::Client, bytes_out, tap).await {
            Err(e) if ended_normally(client_done.load(Ordering::Relaxed), &e) => Ok(()),
            other => other,
        }
    };
    tokio::try_join!(up, down).map(|_| ())
}

/// Whether `error` on the way back is only how the session ended: once the client has finished (its EOF passed on
/// as a half-close), a backend that resets is one that exited with bytes it never read, typically a TLS client's
/// close_notify sent after its Terminate (PostgreSQL exits on the Terminate); everything the client sent got there.
pub fn ended_normally(client_done: bool, error: &(Side, io::Error)) -> bool {
    client_done
        && error.0 == Side::Backend
        && matches!(
            error.1.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backend_reset_after_the_client_finished_is_a_normal_end() {
        let e = |side, kind| (side, io::Error::from(kind));
        use io::ErrorKind::{BrokenPipe, ConnectionReset, TimedOut};
        for (client_done, error, want) in [
            (true, e(Side::Backend, ConnectionReset), true),
            (true, e(Side::Backend, BrokenPipe), true),
            // The client still talking: the backend went away under it.
            (false, e(Side::Backend, ConnectionReset), false),
            (true, e(Side::Backend, TimedOut), false),
            (true, e(Side::Client, ConnectionReset), false),
        ] {
            assert_eq!(ended_normally(client_done, &error), want, "{client_done} {error:?}");
        }
    }

    #[tokio::test]
    async fn copies_counts_and_half_closes() {
        let (mut client, proxy_in) = tokio::io::duplex(64);
        let (proxy_out, mut backend) = tokio::io::duplex(64);
        let counter = AtomicU64::new(0);
        let mut chunks = 0;
        let mut tap = |_: &[u8]| {
            chunks += 1;
            false
        };
        let copy = copy_half(
            proxy_in,
            proxy_out,
            Side::Client,
            Side::Backend,
            &counter,
            Some(&mut tap),
        );
        let write = async {
            client.write_all(&[7u8; 1000]).await.expect("write");
            client.shutdown().await.expect("shutdown");
        };
        let read = async {
            let mut got = Vec::new();
            backend
                .read_to_end(&mut got)
                .await
                .expect("read to EOF: the half-close was forwarded");
            got
        };
        let (result, (), got) = tokio::join!(copy, write, read);
        assert!(result.is_ok());
        assert_eq!(got, vec![7u8; 1000]);
        assert_eq!(counter.load(Ordering::Relaxed), 1000);
        assert_eq!(chunks, 1, "a tap that wants no more is not called again");
    }

    #[tokio::test]
    async fn a_failed_write_names_the_destination_side() {
        let (mut client, proxy_in) = tokio::io::duplex(64);
        let (proxy_out, backend) = tokio::io::duplex(64);
        drop(backend);
        let counter = AtomicU64::new(0);
        client.write_all(b"hello").await.expect("write");
        let result = copy_half(proxy_in, proxy_out, Side::Client, Side::Backend, &counter, None).await;
        assert_eq!(result.map_err(|(side, _)| side), Err(Side::Backend));
        assert_eq!(counter.load(Ordering::Relaxed), 0);
    }
}
