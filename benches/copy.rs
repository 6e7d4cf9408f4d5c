//! The edge's copy loop (src/edge/copy.rs `pump`) between two loopback TCP connections, as a session runs it:
//! client -> [pump] -> backend, the backend echoing. Round trips of a small message (a query and its answer) and
//! bulk transfer (COPY-like).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A connected pair on loopback: (the side that connected, the side that accepted).
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = listener.local_addr().expect("local address");
    let (connected, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (connected, (accepted, _)) = (connected.expect("connect"), accepted.expect("accept"));
    // As the edge sets its sockets (and as libpq does).
    connected.set_nodelay(true).expect("nodelay");
    accepted.set_nodelay(true).expect("nodelay");
    (connected, accepted)
}

/// The client's end of a session through `pump` to a backend that echoes everything.
async fn session() -> TcpStream {
    let (client, proxy_front) = pair().await;
    let (proxy_back, mut backend) = pair().await;
    tokio::spawn(async move {
        let counters = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        let _ = pgha::edge::copy::pump(proxy_front, proxy_back, &counters.0, &counters.1, None).await;
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match backend.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if backend.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    client
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut client = rt.block_on(session());
    let mut g = c.benchmark_group("copy");

    let query = [b'Q'; 64];
    let mut answer = [0u8; 64];
    g.throughput(Throughput::Elements(1));
    g.bench_function("round_trip_64B", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    client.write_all(&query).await.expect("write");
                    client.read_exact(&mut answer).await.expect("read");
                }
                start.elapsed()
            })
        })
    });

    const BULK: usize = 1024 * 1024;
    let data = vec![b'd'; BULK];
    let mut back = vec![0u8; BULK];
    g.throughput(Throughput::Bytes(BULK as u64));
    g.bench_function("echo_1MiB", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let (mut r, mut w) = client.split();
                    let (sent, got) = tokio::join!(w.write_all(&data), r.read_exact(&mut back));
                    sent.expect("write");
                    got.expect("read");
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
