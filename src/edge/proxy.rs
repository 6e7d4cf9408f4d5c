//! The TCP proxy: one accept loop per client port, one task per session copying both directions, and the registry
//! of live sessions that closes every session to a backend the moment it loses its role.
//!
//! Hazards handled here: a session is registered under the same lock that installs a new routing table, checked
//! against that table, so no session can slip through to a backend that has just lost its role; the session cap is
//! a semaphore acquired before `accept`, so excess clients wait in the listen backlog (backpressure).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::copy::{pump, Side};
use super::routing::{describe_changes, sessions_to_close, Backend, Port, RoutingTable};
use crate::retry::{log_transition, Backoff, FailureLog};

/// How long one backend connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between attempts while a primary-port client waits for a primary; also the first pause after a failed
/// accept.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Longest pause between failed accepts (the listen backlog holds clients meanwhile).
const ACCEPT_RETRY_CAP: Duration = Duration::from_secs(1);

/// Counters of one port.
#[derive(Debug, Default)]
pub struct PortCounters {
    /// Sessions forwarded to a backend.
    pub connects: AtomicU64,
    /// Clients closed without a backend (none routable, or none answered in time).
    pub refused: AtomicU64,
    /// Sessions closed because their backend lost its role.
    pub cut: AtomicU64,
    /// Bytes from clients to backends.
    pub bytes_in: AtomicU64,
    /// Bytes from backends to clients.
    pub bytes_out: AtomicU64,
}

/// A live session as shown on the status page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRow {
    pub id: u64,
    pub port: Port,
    pub client: SocketAddr,
    pub backend: String,
    pub age: Duration,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

struct Live {
    port: Port,
    client: SocketAddr,
    /// The address the client connected to (the VIP or the edge's own).
    local: Option<std::net::IpAddr>,
    backend: String,
    started: Instant,
    cancel: CancellationToken,
    bytes: Arc<(AtomicU64, AtomicU64)>,
}

struct Registry {
    table: Arc<RoutingTable>,
    sessions: HashMap<u64, Live>,
}

impl Registry {
    /// Cancels every session `close` picks (each ends on its own and unregisters); returns how many.
    fn close_where(&self, close: impl Fn(&Live) -> bool) -> u64 {
        let mut closed = 0;
        for live in self.sessions.values().filter(|l| close(l)) {
            live.cancel.cancel();
            closed += 1;
        }
        closed
    }
}

/// The proxy's shared state.
pub struct Proxy {
    registry: Mutex<Registry>,
    /// The current table, for sessions waiting for a route.
    table_tx: watch::Sender<Arc<RoutingTable>>,
    round_robin: AtomicUsize,
    next_id: AtomicU64,
    /// Caps concurrent sessions over all ports.
    limit: Arc<Semaphore>,
    primary_wait: Duration,
    counters: BTreeMap<Port, PortCounters>,
}

fn configure(stream: &TcpStream) {
    // Small PostgreSQL messages must not wait for Nagle; keepalive finds dead peers of idle sessions.
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(30))
        .with_interval(Duration::from_secs(10));
    let _ = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive);
}

impl Proxy {
    /// A proxy with routing closed, at most `max_sessions` concurrent sessions.
    pub fn new(max_sessions: usize, primary_wait: Duration) -> Arc<Proxy> {
        let closed = Arc::new(RoutingTable::closed());
        Arc::new(Proxy {
            registry: Mutex::new(Registry {
                table: closed.clone(),
                sessions: HashMap::new(),
            }),
            table_tx: watch::channel(closed).0,
            round_robin: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            limit: Arc::new(Semaphore::new(max_sessions)),
            primary_wait,
            counters: Port::ALL.iter().map(|p| (*p, PortCounters::default())).collect(),
        })
    }

    /// The counters of `port`.
    pub fn counters(&self, port: Port) -> &PortCounters {
        // Every port has an entry (made in `new`).
        &self.counters[&port]
    }

    /// The routing table in force.
    pub fn table(&self) -> Arc<RoutingTable> {
        self.table_tx.borrow().clone()
    }

    /// Installs `new`: logs each route change with its reason and closes every session whose backend lost its role.
    pub fn set_table(&self, new: RoutingTable) {
        let Ok(mut reg) = self.registry.lock() else { return };
        if *reg.table == new {
            return;
        }
        for line in describe_changes(&reg.table, &new) {
            tracing::info!(event = "edge_route_changed", "{line}");
        }
        for cut in sessions_to_close(&reg.table, &new) {
            let closed = reg.close_where(|live| live.port == cut.port && live.backend == cut.backend);
            if closed > 0 {
                self.counters(cut.port).cut.fetch_add(closed, Ordering::Relaxed);
                tracing::info!(
                    event = "edge_sessions_cut",
                    "closing {closed} session(s) to {} on the {} port: {}",
                    cut.backend,
                    cut.port,
                    cut.reason
                );
            }
        }
        let new = Arc::new(new);
        reg.table = new.clone();
        self.table_tx.send_replace(new);
    }

    /// Closes the sessions clients opened to `address` (the VIP, once another edge holds it: their packets now
    /// reach that edge, so a client waiting for an answer here would hang until its own timeout).
    pub fn close_sessions_to(&self, address: std::net::IpAddr, reason: &str) {
        let Ok(reg) = self.registry.lock() else { return };
        let closed = reg.close_where(|live| live.local == Some(address));
        if closed > 0 {
            tracing::info!("closing {closed} session(s) to {address}: {reason}");
        }
    }

    /// Closes every live session (shutdown).
    pub fn close_all(&self, reason: &str) {
        let Ok(reg) = self.registry.lock() else { return };
        let closed = reg.close_where(|_| true);
        if closed > 0 {
            tracing::info!("closing {closed} session(s): {reason}");
        }
    }

    /// The live sessions, oldest first.
    pub fn sessions(&self) -> Vec<SessionRow> {
        let now = Instant::now();
        let mut rows: Vec<SessionRow> = match self.registry.lock() {
            Ok(reg) => reg
                .sessions
                .iter()
                .map(|(id, l)| SessionRow {
                    id: *id,
                    port: l.port,
                    client: l.client,
                    backend: l.backend.clone(),
                    age: now.saturating_duration_since(l.started),
                    bytes_in: l.bytes.0.load(Ordering::Relaxed),
                    bytes_out: l.bytes.1.load(Ordering::Relaxed),
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        rows.sort_by_key(|r| r.id);
        rows
    }

    /// Registers a session to `backend` if it still holds the role of `port` in the table in force.
    fn register(
        &self,
        id: u64,
        port: Port,
        backend: &str,
        client: SocketAddr,
        local: Option<std::net::IpAddr>,
    ) -> Option<Live> {
        let mut reg = self.registry.lock().ok()?;
        if !reg.table.holds(port, backend) {
            return None;
        }
        let live = Live {
            port,
            client,
            local,
            backend: backend.to_string(),
            started: Instant::now(),
            cancel: CancellationToken::new(),
            bytes: Arc::new((AtomicU64::new(0), AtomicU64::new(0))),
        };
        let handle = Live {
            backend: live.backend.clone(),
            cancel: live.cancel.clone(),
            bytes: live.bytes.clone(),
            ..live
        };
        reg.sessions.insert(id, live);
        Some(handle)
    }

    fn deregister(&self, id: u64) {
        if let Ok(mut reg) = self.registry.lock() {
            reg.sessions.remove(&id);
        }
    }

    /// Connects to a backend of `port` and registers the session; a primary-port client waits up to `primary_wait`
    /// for a primary (failover, switchover), others get one round over the current targets.
    async fn connect(
        &self,
        id: u64,
        port: Port,
        client: SocketAddr,
        local: Option<std::net::IpAddr>,
    ) -> Option<(Backend, TcpStream, Live)> {
        let deadline = Instant::now()
            + if port == Port::Primary {
                self.primary_wait
            } else {
                Duration::ZERO
            };
        let mut rx = self.table_tx.subscribe();
        // A waiting client retries every 100 ms: each backend's failure is logged once per session, not per try.
        let mut logged: HashSet<(String, String)> = HashSet::new();
        loop {
            let table = rx.borrow_and_update().clone();
            let targets = table.targets(port);
            let start = self.round_robin.fetch_add(1, Ordering::Relaxed);
            for k in 0..targets.len() {
                let backend = &targets[(start + k) % targets.len()];
                let budget = CONNECT_TIMEOUT.min(deadline.saturating_duration_since(Instant::now()).max(RETRY_PAUSE));
                match tokio::time::timeout(budget, TcpStream::connect(&backend.addr)).await {
                    Ok(Ok(stream)) => match self.register(id, port, &backend.name, client, local) {
                        Some(live) => return Some((backend.clone(), stream, live)),
                        None => break, // the table changed meanwhile: look again
                    },
                    Ok(Err(e)) => {
                        if logged.insert((backend.name.clone(), e.kind().to_string())) {
                            tracing::debug!(session = id, "backend {} ({}): {e}", backend.name, backend.addr)
                        }
                    }
                    Err(_) => {
                        if logged.insert((backend.name.clone(), "timeout".into())) {
                            tracing::debug!(
                                session = id,
                                "backend {} ({}): connect timed out",
                                backend.name,
                                backend.addr
                            )
                        }
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            tokio::select! {
                _ = rx.changed() => {}
                _ = tokio::time::sleep(RETRY_PAUSE.min(deadline - now)) => {}
            }
        }
    }

    /// Serves one client port until `stop` is cancelled; sessions run on `tracker` until `sessions_stop`.
    pub async fn serve(
        self: Arc<Self>,
        port: Port,
        listener: TcpListener,
        stop: CancellationToken,
        tracker: TaskTracker,
    ) {
        // EMFILE and friends: back off instead of spinning, and log the failure once, not per attempt.
        let mut pace = Backoff::new(RETRY_PAUSE, ACCEPT_RETRY_CAP);
        let mut failures = FailureLog::default();
        let what = format!("{port} port");
        loop {
            let permit = tokio::select! {
                _ = stop.cancelled() => return,
                p = self.limit.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let accepted = tokio::select! {
                _ = stop.cancelled() => return,
                a = listener.accept() => a,
            };
            match accepted {
                Ok((stream, peer)) => {
                    pace.succeeded();
                    log_transition(&what, failures.succeeded());
                    let proxy = self.clone();
                    tracker.spawn(async move {
                        proxy.session(port, stream, peer).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    drop(permit);
                    pace.failed();
                    let kind = e
                        .raw_os_error()
                        .map_or_else(|| format!("{:?}", e.kind()), |c| c.to_string());
                    log_transition(&what, failures.failed(&kind, &format!("accept failed: {e}")));
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(pace.delay()) => {}
                    }
                }
            }
        }
    }

    async fn session(&self, port: Port, client: TcpStream, peer: SocketAddr) {
        configure(&client);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let counters = self.counters(port);
        let local = client.local_addr().ok().map(|a| a.ip());
        let Some((backend, server, live)) = self.connect(id, port, peer, local).await else {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            let table = self.table();
            let why = match port {
                Port::Primary if table.primary.is_none() => table.primary_reason.as_str(),
                _ if !table.open => "routing closed: no DCS view read yet",
                _ if table.targets(port).is_empty() => "no backend holds the role",
                _ => "no backend answered",
            };
            tracing::info!(session = id, client = %peer, "{port} port: closing the client: {why}");
            return;
        };
        configure(&server);
        counters.connects.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(session = id, client = %peer, "{port} port -> {} ({})", backend.name, backend.addr);
        let outcome = tokio::select! {
            r = pump(client, server, &live.bytes.0, &live.bytes.1) => Some(r),
            _ = live.cancel.cancelled() => None,
        };
        self.deregister(id);
        let (bytes_in, bytes_out) = (
            live.bytes.0.load(Ordering::Relaxed),
            live.bytes.1.load(Ordering::Relaxed),
        );
        counters.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        counters.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
        match outcome {
            Some(Ok(())) => tracing::debug!(session = id, bytes_in, bytes_out, "session ended"),
            Some(Err((Side::Client, e))) => {
                tracing::debug!(session = id, client = %peer, "session ended: client side failed: {e}")
            }
            Some(Err((Side::Backend, e))) => tracing::info!(
                session = id,
                client = %peer,
                "session ended: backend side ({}) failed: {e}",
                backend.name
            ),
            None => tracing::debug!(session = id, client = %peer, "session closed by the edge"),
        }
    }
}
