//! The TCP proxy: one accept loop per client port, one task per session copying both directions, and the registry
//! of live sessions that closes every session to a backend the moment it loses its role.
//!
//! Hazards handled here: a session is registered under the same lock that installs a new routing table, checked
//! against that table, so no session can slip through to a backend that has just lost its role. Each port has its
//! own cap (a connection holds a slot from accept, before it has said anything), so a flood on one port cannot lock
//! out another, and a client over the cap is refused at once rather than queued. No backend is dialled before the
//! client's first message, read within the hello timeout: silent or garbage connections never fork a backend.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::cancel::{self, CancelRoute, SessionKey};
use super::copy::{pump, Side};
use super::handshake::{negotiate, read_hello, Negotiated, Opening};
use super::hello::{CancelKey, Hello};
use super::refuse::{close_with, error_response, TOO_MANY_CONNECTIONS};
use super::routing::{describe_changes, sessions_to_close, Backend, Port, RoutingTable};
use super::workers::Workers;
use crate::retry::{log_transition, Backoff, FailureLog, LogNow};

/// How long one backend connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between attempts while a primary-port client waits for a primary; also the first pause after a failed
/// accept.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Longest pause between failed accepts (the listen backlog holds clients meanwhile).
const ACCEPT_RETRY_CAP: Duration = Duration::from_secs(1);
/// How long a client over its port's cap has to send its first message (a CancelRequest is still delivered: a full
/// port is when runaway queries need cancelling most), and to read the refusal before the socket is closed.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);
/// Refusals lingering at once, over all ports; beyond it a client over the cap is closed without a word.
const MAX_LINGERING_REFUSALS: usize = 128;
/// The message a client over its port's cap reads.
pub const PORT_FULL: &str = "too many connections through this edge port";
/// SQLSTATE of the primary port's refusal in a standby cluster (read_only_sql_transaction).
pub const STANDBY_CLUSTER_STATE: &str = "25006";

/// The primary port's refusal in a standby cluster (the edge's own words: no backend was asked).
pub fn standby_refusal(remote: &str) -> String {
    format!(
        "this cluster is a standby cluster following {remote}: its primary port takes no connections \
         (write to the remote primary, or promote this cluster with pgha ctl promote-cluster)"
    )
}

/// What the proxy needs from `[edge]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxySettings {
    /// Connections each client port takes at once (sessions and clients yet to send their first message).
    pub caps: BTreeMap<Port, usize>,
    /// How long a primary-port client waits for a primary.
    pub primary_wait: Duration,
    /// How long a new client has to send its first message.
    pub hello_timeout: Duration,
    /// Session worker threads (each its own event loop); 0 runs sessions on the caller's runtime.
    pub session_threads: usize,
}

/// Counters of one port.
#[derive(Debug, Default)]
pub struct PortCounters {
    /// Sessions forwarded to a backend.
    pub connects: AtomicU64,
    /// Clients closed without a backend (none routable, or none answered in time).
    pub refused: AtomicU64,
    /// Clients refused because the port was at its cap.
    pub full: AtomicU64,
    /// Clients closed before a usable first message (silent past the hello timeout, garbage, gone).
    pub no_hello: AtomicU64,
    /// CancelRequests delivered.
    pub cancels: AtomicU64,
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
    /// The backend's `host:port` (where this session's cancels go).
    addr: String,
    started: Instant,
    cancel: CancellationToken,
    bytes: Arc<(AtomicU64, AtomicU64)>,
    /// The backend's cancel key, once seen (plaintext sessions only).
    key: Arc<OnceLock<CancelKey>>,
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
    /// Each port's connection slots.
    slots: BTreeMap<Port, Arc<Semaphore>>,
    caps: BTreeMap<Port, usize>,
    /// Refusals allowed to linger (read a first message, write the error) at once.
    refusals: Arc<Semaphore>,
    primary_wait: Duration,
    hello_timeout: Duration,
    counters: BTreeMap<Port, PortCounters>,
    /// Where sessions run; None: on the runtime of the accept loop.
    workers: Option<Workers>,
    /// Notified when the last live session ends (the edge then gives memory back: `idle.rs`).
    idle: Arc<Notify>,
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
    /// A proxy with routing closed; its session threads start now.
    pub fn new(settings: ProxySettings) -> std::io::Result<Arc<Proxy>> {
        let workers = match settings.session_threads {
            0 => None,
            n => Some(Workers::start(n)?),
        };
        let closed = Arc::new(RoutingTable::closed());
        let cap = |p: &Port| settings.caps.get(p).copied().unwrap_or(0);
        Ok(Arc::new(Proxy {
            registry: Mutex::new(Registry {
                table: closed.clone(),
                sessions: HashMap::new(),
            }),
            table_tx: watch::channel(closed).0,
            round_robin: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            slots: Port::ALL
                .iter()
                .map(|p| (*p, Arc::new(Semaphore::new(cap(p)))))
                .collect(),
            caps: Port::ALL.iter().map(|p| (*p, cap(p))).collect(),
            refusals: Arc::new(Semaphore::new(MAX_LINGERING_REFUSALS)),
            primary_wait: settings.primary_wait,
            hello_timeout: settings.hello_timeout,
            counters: Port::ALL.iter().map(|p| (*p, PortCounters::default())).collect(),
            workers,
            idle: Arc::new(Notify::new()),
        }))
    }

    /// Session threads running (0: sessions run on the accept loop's runtime).
    pub fn session_threads(&self) -> usize {
        self.workers.as_ref().map_or(0, Workers::len)
    }

    /// The counters of `port`.
    pub fn counters(&self, port: Port) -> &PortCounters {
        // Every port has an entry (made in `new`).
        &self.counters[&port]
    }

    /// The connection cap of `port`.
    pub fn cap(&self, port: Port) -> usize {
        self.caps.get(&port).copied().unwrap_or(0)
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
        for c in describe_changes(&reg.table, &new) {
            tracing::info!(event = "edge_route_changed", port = %c.port, to = %c.to, "{}", c.line);
            super::changes::record(super::changes::ChangeKind::Route, &c.line);
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
        backend: &Backend,
        client: SocketAddr,
        local: Option<std::net::IpAddr>,
    ) -> Option<Live> {
        let mut reg = self.registry.lock().ok()?;
        if !reg.table.holds(port, &backend.name) {
            return None;
        }
        let live = Live {
            port,
            client,
            local,
            backend: backend.name.clone(),
            addr: backend.addr.clone(),
            started: Instant::now(),
            cancel: CancellationToken::new(),
            bytes: Arc::new((AtomicU64::new(0), AtomicU64::new(0))),
            key: Arc::new(OnceLock::new()),
        };
        let handle = Live {
            backend: live.backend.clone(),
            addr: live.addr.clone(),
            cancel: live.cancel.clone(),
            bytes: live.bytes.clone(),
            key: live.key.clone(),
            ..live
        };
        reg.sessions.insert(id, live);
        Some(handle)
    }

    fn deregister(&self, id: u64) {
        if let Ok(mut reg) = self.registry.lock() {
            if reg.sessions.remove(&id).is_some() && reg.sessions.is_empty() {
                self.idle.notify_one();
            }
        }
    }

    /// Notified each time the last live session ends.
    pub fn idle(&self) -> Arc<Notify> {
        self.idle.clone()
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
                let dial = tokio::time::timeout(budget, TcpStream::connect(&backend.addr));
                match super::metrics::EDGE.timed_dial(port, dial).await {
                    Ok(Ok(stream)) => match self.register(id, port, backend, client, local) {
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
        // A full port: logged when it fills up and when it has room again, not per refused client.
        let mut full = FailureLog::default();
        let what = format!("{port} port");
        let slots = self.slots[&port].clone();
        loop {
            let accepted = tokio::select! {
                _ = stop.cancelled() => return,
                a = listener.accept() => a,
            };
            match accepted {
                Ok((stream, peer)) => {
                    pace.succeeded();
                    log_transition(&what, failures.succeeded());
                    let proxy = self.clone();
                    match slots.clone().try_acquire_owned() {
                        Ok(permit) => {
                            self.log_full(port, full.succeeded());
                            self.start_session(&tracker, port, stream, peer, permit);
                        }
                        Err(_) => {
                            self.counters(port).full.fetch_add(1, Ordering::Relaxed);
                            self.log_full(port, full.failed("full", ""));
                            match self.refusals.clone().try_acquire_owned() {
                                Ok(permit) => tracker.spawn(async move {
                                    proxy.refuse(port, stream).await;
                                    drop(permit);
                                }),
                                // Too many refusals at once: a flood; the client just sees the socket close.
                                Err(_) => continue,
                            };
                        }
                    }
                }
                Err(e) => {
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

    /// Runs a session on the next session thread (the socket moves to that thread's event loop), or here.
    fn start_session(
        self: &Arc<Self>,
        tracker: &TaskTracker,
        port: Port,
        stream: TcpStream,
        peer: SocketAddr,
        permit: OwnedSemaphorePermit,
    ) {
        let proxy = self.clone();
        let Some(workers) = &self.workers else {
            tracker.spawn(async move {
                proxy.session(port, stream, peer).await;
                drop(permit);
            });
            return;
        };
        // Deregistered from this runtime's poller, registered with the worker's once there.
        let std_stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(client = %peer, "{port} port: cannot hand the client to a session thread: {e}");
                return;
            }
        };
        workers.spawn(tracker.track_future(async move {
            match TcpStream::from_std(std_stream) {
                Ok(stream) => proxy.session(port, stream, peer).await,
                Err(e) => tracing::debug!(client = %peer, "{port} port: cannot take the client on: {e}"),
            }
            drop(permit);
        }));
    }

    fn log_full(&self, port: Port, now: LogNow) {
        let cap = self.cap(port);
        match now {
            LogNow::Failing { .. } => tracing::warn!(
                event = "edge_port_full",
                %port,
                cap,
                "{port} port: {cap} connections, its cap: refusing new clients (\"{PORT_FULL}\") until one ends; \
                 repeats are not logged"
            ),
            LogNow::Recovered { count, .. } => tracing::info!(
                event = "edge_port_has_room",
                %port,
                cap,
                refused = count,
                "{port} port: below its cap of {cap} again, after refusing {count} client(s)"
            ),
            LogNow::Quiet => {}
        }
    }

    /// A client over its port's cap: a CancelRequest is still delivered; anyone else reads "too many connections".
    async fn refuse(&self, port: Port, mut client: TcpStream) {
        let within = self.hello_timeout.min(REFUSAL_LINGER);
        if let Ok(Opening {
            hello: Hello::Cancel(key),
            bytes,
        }) = read_hello(&mut client, within).await
        {
            self.forward_cancel(port, &key, &bytes).await;
            return;
        }
        close_with(client, &error_response(TOO_MANY_CONNECTIONS, PORT_FULL), REFUSAL_LINGER).await;
    }

    /// Refuses a primary-port client of a standby cluster with an ErrorResponse it can show: an SSL or GSS request
    /// is declined ('N') first, so libpq reads the error after its StartupMessage (two requests at most).
    async fn refuse_standby(&self, mut client: TcpStream, mut hello: Hello, remote: &str) {
        use tokio::io::AsyncWriteExt;
        for _ in 0..2 {
            if !matches!(hello, Hello::Ssl | Hello::Gss) {
                break;
            }
            if client.write_all(b"N").await.is_err() {
                return;
            }
            match read_hello(&mut client, self.hello_timeout).await {
                Ok(next) => hello = next.hello,
                Err(_) => return,
            }
        }
        let reply = super::refuse::error_response(STANDBY_CLUSTER_STATE, &standby_refusal(remote));
        close_with(client, &reply, REFUSAL_LINGER).await;
    }

    /// What the registry knows of each live session's backend and key.
    fn session_keys(&self) -> Vec<SessionKey> {
        match self.registry.lock() {
            Ok(reg) => reg
                .sessions
                .values()
                .map(|l| SessionKey {
                    port: l.port,
                    addr: l.addr.clone(),
                    key: l.key.get().cloned(),
                })
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Delivers a CancelRequest that came in on `port` to the backend holding the key, else to every candidate.
    async fn forward_cancel(&self, port: Port, key: &CancelKey, request: &[u8]) {
        self.counters(port).cancels.fetch_add(1, Ordering::Relaxed);
        let targets: Vec<String> = self.table().targets(port).iter().map(|b| b.addr.clone()).collect();
        match cancel::route(key, port, &self.session_keys(), &targets) {
            CancelRoute::Session(addr) => {
                let sent = cancel::deliver(&addr, request, CONNECT_TIMEOUT).await;
                tracing::debug!(
                    pid = key.pid,
                    sent,
                    "{port} port: cancel request -> its session's backend {addr}"
                );
            }
            CancelRoute::Broadcast(all) => {
                let sends = all.iter().map(|addr| cancel::deliver(addr, request, CONNECT_TIMEOUT));
                let sent = futures::future::join_all(sends).await;
                let sent = sent.iter().filter(|s| **s).count();
                tracing::debug!(
                    pid = key.pid,
                    "{port} port: cancel request for a key not seen (TLS or ended) -> all {} backend(s), {sent} reached",
                    all.len()
                );
            }
        }
    }

    async fn session(&self, port: Port, mut client: TcpStream, peer: SocketAddr) {
        configure(&client);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let counters = self.counters(port);
        // Nothing is dialled before the client has said what it wants.
        let first = match read_hello(&mut client, self.hello_timeout).await {
            Ok(first) => first,
            Err(e) => {
                counters.no_hello.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(session = id, client = %peer, "{port} port: closing the client: {e}");
                return;
            }
        };
        if let Hello::Cancel(key) = &first.hello {
            self.forward_cancel(port, key, &first.bytes).await;
            return;
        }
        let local = client.local_addr().ok().map(|a| a.ip());
        if let Some(remote) = self.table().standby_of.clone().filter(|_| port == Port::Primary) {
            // A standby cluster has nothing writable: say so at once rather than hold the client for primary_wait.
            counters.refused.fetch_add(1, Ordering::Relaxed);
            tracing::info!(session = id, client = %peer, "{port} port: refusing the client: a standby cluster");
            self.refuse_standby(client, first.hello, &remote).await;
            return;
        }
        let Some((backend, mut server, live)) = self.connect(id, port, peer, local).await else {
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
        let (bytes_in, bytes_out) = (&live.bytes.0, &live.bytes.1);
        let run = async {
            let within = self.hello_timeout;
            match negotiate(&mut client, &mut server, first, within, bytes_in, bytes_out).await? {
                Negotiated::Cancel(key, request) => Ok(Some((key, request))),
                Negotiated::Plain => pump(client, server, bytes_in, bytes_out, Some(&live.key))
                    .await
                    .map(|()| None),
                Negotiated::Opaque => pump(client, server, bytes_in, bytes_out, None).await.map(|()| None),
            }
        };
        let outcome = tokio::select! {
            r = run => Some(r),
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
            Some(Ok(Some((key, request)))) => {
                // libpq's cancel connection with sslmode=prefer: the backend dialled for it is let go.
                counters.connects.fetch_sub(1, Ordering::Relaxed);
                self.forward_cancel(port, &key, &request).await;
            }
            Some(Ok(None)) => tracing::debug!(session = id, bytes_in, bytes_out, "session ended"),
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
