//! Probes that live inside the six-host topology's namespaces: the client host's writer (and replica-port reader)
//! through the VIP, and a writability poller inside every db host (asking its own address, so a cut link does not
//! hide a primary that still accepts writes).
//!
//! Each is a thread that entered a namespace with setns and runs its own single-threaded tokio runtime, so every
//! socket it opens lives in that namespace (no child process to ship results back from). Dropping one stops its
//! threads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::probe::{Reader, Target, Writer};
use super::six_hosts::{SixHosts, DBS, PG_PORT};

/// (id or sequence number, time) of every acknowledged write or answered read.
pub type Acks = Vec<(i64, Instant)>;
type Acked = Arc<Mutex<Acks>>;

/// The writer (and the optional replica-port reader), on a thread inside the client host (or beside a loopback
/// cluster).
pub struct NsProbe {
    acked: Acked,
    /// Answered reads, when a reader runs.
    read: Option<Acked>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NsProbe {
    /// Starts writing ids `first`, `first + 1`, ... into `table` through `target` from namespace `ns` (None: this
    /// process's own, for the loopback cluster).
    pub fn start(
        ns: Option<String>,
        target: Target,
        table: &str,
        first: i64,
        reader: Option<Target>,
    ) -> anyhow::Result<NsProbe> {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (handle_tx, handle_rx) = std::sync::mpsc::channel::<anyhow::Result<(Acked, Option<Acked>)>>();
        let table = table.to_string();
        let thread = std::thread::spawn(move || {
            let entered = match &ns {
                Some(ns) => crate::netns::enter(ns).map_err(anyhow::Error::from),
                None => Ok(()),
            };
            let runtime =
                entered.and_then(|()| Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?));
            let runtime = match runtime {
                Ok(r) => r,
                Err(e) => {
                    let _ = handle_tx.send(Err(e));
                    return;
                }
            };
            runtime.block_on(async move {
                let writer = Writer::start(target, &table, first);
                let reader = reader.map(Reader::start);
                let _ = handle_tx.send(Ok((
                    writer.acked_handle(),
                    reader.as_ref().map(Reader::answered_handle),
                )));
                let _ = stop_rx.await;
                writer.stop().await;
                if let Some(r) = reader {
                    r.stop().await;
                }
            });
        });
        let (acked, read) = handle_rx
            .recv_timeout(Duration::from_secs(10))
            .context("the writer did not start")??;
        Ok(NsProbe {
            acked,
            read,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Every acknowledged write so far.
    pub fn snapshot(&self) -> Acks {
        self.acked.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// How many writes were acknowledged so far.
    pub fn count(&self) -> usize {
        self.acked.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// The acknowledged writes from the last one at or before `t` on (acknowledgements come in time order).
    pub fn since(&self, t: Instant) -> Acks {
        self.acked
            .lock()
            .map(|v| {
                let first = v.partition_point(|(_, at)| *at <= t).saturating_sub(1);
                v[first..].to_vec()
            })
            .unwrap_or_default()
    }

    /// Stops; the acknowledged writes and the answered reads (None without a reader).
    pub fn stop(mut self) -> (Acks, Option<Acks>) {
        self.halt();
        let read = self
            .read
            .as_ref()
            .map(|r| r.lock().map(|v| v.clone()).unwrap_or_default());
        (self.snapshot(), read)
    }

    fn halt(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for NsProbe {
    fn drop(&mut self) {
        self.halt();
    }
}

/// One answer of a db host's poller.
#[derive(Clone, Copy, Debug)]
pub struct PollSample {
    pub at: Instant,
    /// Connection number on that host.
    pub conn: u64,
    /// The server's clock (epoch seconds); 0 when the host did not answer.
    pub server_s: f64,
    /// Not in recovery and not read-only; false when the host did not answer.
    pub writable: bool,
}

type Samples = Arc<Mutex<Vec<PollSample>>>;

/// Per db host: a poller asking `pg_is_in_recovery()` and `default_transaction_read_only` every 20 ms on a kept
/// connection, inside that host.
pub struct Writability {
    samples: Vec<Samples>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

const WRITABLE_SQL: &str = "SELECT NOT pg_is_in_recovery() AND current_setting('default_transaction_read_only') = \
                            'off', extract(epoch from clock_timestamp())::float8";

/// One poll on the kept connection (a new one, numbered, when it is gone).
async fn poll_once(
    config: &tokio_postgres::Config,
    client: &mut Option<tokio_postgres::Client>,
    conn: &mut u64,
) -> PollSample {
    if client.as_ref().is_none_or(|c| c.is_closed()) {
        *client = None;
        if let Ok(Ok((c, connection))) =
            tokio::time::timeout(Duration::from_millis(300), config.connect(tokio_postgres::NoTls)).await
        {
            tokio::spawn(connection);
            *client = Some(c);
            *conn += 1;
        }
    }
    let mut sample = PollSample {
        at: Instant::now(),
        conn: *conn,
        server_s: 0.0,
        writable: false,
    };
    let Some(c) = client.as_ref() else { return sample };
    match tokio::time::timeout(Duration::from_millis(300), c.query_one(WRITABLE_SQL, &[])).await {
        Ok(Ok(row)) => {
            sample.writable = row.get(0);
            sample.server_s = row.get(1);
            sample.at = Instant::now();
        }
        _ => *client = None,
    }
    sample
}

impl Writability {
    /// Starts one poller per db host.
    pub fn start(six: &SixHosts) -> anyhow::Result<Writability> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut samples = Vec::new();
        let mut threads = Vec::new();
        for d in DBS {
            let ns = six.ns(d)?;
            let mut config = tokio_postgres::Config::new();
            config
                .host(six.ip(d)?.to_string())
                .port(PG_PORT)
                .user("postgres")
                .password(six.password.as_str())
                .dbname("postgres")
                .connect_timeout(Duration::from_millis(300));
            let out = Arc::new(Mutex::new(Vec::new()));
            samples.push(out.clone());
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || {
                if crate::netns::enter(&ns).is_err() {
                    return;
                }
                let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                    return;
                };
                rt.block_on(async move {
                    let (mut client, mut conn) = (None, 0);
                    while !stop.load(Ordering::Relaxed) {
                        let s = poll_once(&config, &mut client, &mut conn).await;
                        if let Ok(mut v) = out.lock() {
                            v.push(s);
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                });
            }));
        }
        Ok(Writability { samples, stop, threads })
    }

    /// (time, writable) samples since `from`, per host.
    pub fn since(&self, from: Instant) -> Vec<Vec<(Instant, bool)>> {
        self.samples
            .iter()
            .map(|s| {
                s.lock()
                    .map(|v| v.iter().filter(|p| p.at >= from).map(|p| (p.at, p.writable)).collect())
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Takes every sample so far, per host (a long run keeps only what its checks derive from them).
    pub fn drain(&self) -> Vec<Vec<PollSample>> {
        self.samples
            .iter()
            .map(|s| s.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default())
            .collect()
    }
}

impl Drop for Writability {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
