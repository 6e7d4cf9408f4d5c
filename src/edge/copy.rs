//! Copies a session both ways with a clean half-close, counting bytes per chunk and telling which side failed.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Buffer per direction: PostgreSQL messages are small; 16 KiB keeps a thousand sessions at ~32 MB.
const BUF: usize = 16 * 1024;

/// The side of a session whose socket failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client,
    Backend,
}

/// Copies `from` to `to` until EOF, then shuts `to`'s write side down (half-close). Errors name their side.
pub async fn copy_half<R, W>(
    mut from: R,
    mut to: W,
    from_side: Side,
    to_side: Side,
    counter: &AtomicU64,
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
        to.write_all(&buf[..n]).await.map_err(|e| (to_side, e))?;
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Runs a session: client -> backend counted in `bytes_in`, backend -> client in `bytes_out`. Ends when both
/// directions reached EOF, or at the first error (the other direction is dropped, closing both sockets).
pub async fn pump(
    mut client: TcpStream,
    mut server: TcpStream,
    bytes_in: &AtomicU64,
    bytes_out: &AtomicU64,
) -> Result<(), (Side, io::Error)> {
    let (cr, cw) = client.split();
    let (sr, sw) = server.split();
    let up = copy_half(cr, sw, Side::Client, Side::Backend, bytes_in);
    let down = copy_half(sr, cw, Side::Backend, Side::Client, bytes_out);
    tokio::try_join!(up, down).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn copies_counts_and_half_closes() {
        let (mut client, proxy_in) = tokio::io::duplex(64);
        let (proxy_out, mut backend) = tokio::io::duplex(64);
        let counter = AtomicU64::new(0);
        let copy = copy_half(proxy_in, proxy_out, Side::Client, Side::Backend, &counter);
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
    }

    #[tokio::test]
    async fn a_failed_write_names_the_destination_side() {
        let (mut client, proxy_in) = tokio::io::duplex(64);
        let (proxy_out, backend) = tokio::io::duplex(64);
        drop(backend);
        let counter = AtomicU64::new(0);
        client.write_all(b"hello").await.expect("write");
        let result = copy_half(proxy_in, proxy_out, Side::Client, Side::Backend, &counter).await;
        assert_eq!(result.map_err(|(side, _)| side), Err(Side::Backend));
        assert_eq!(counter.load(Ordering::Relaxed), 0);
    }
}
