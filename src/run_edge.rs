//! Edge role wiring: config -> DCS client, listeners, follower, router, proxy, status page, publisher, VIP keeper;
//! and the SIGTERM sequence (stop accepting, release the VIP, close sessions, leave the DCS).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::ClientTlsConfig;

use crate::cluster::keys::Keys;
use crate::config::{parse_vip_address, port_caps, Config, EdgeSection};
use crate::dcs::client::DcsClient;
use crate::edge::info::{EdgeInfo, EdgePorts};
use crate::edge::proxy::{Proxy, ProxySettings};
use crate::edge::routing::{Port, RoutingOpts};
use crate::edge::state::EdgeState;
use crate::edge::vip::{self, VipSettings};
use crate::edge::{follow, http, publish, updater};

async fn bind(key: &str, addr: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("{key}: cannot listen on {addr}"))
}

fn vip_settings(config: &Config) -> anyhow::Result<Option<VipSettings>> {
    let Some(v) = &config.edge.vip else { return Ok(None) };
    let (address, prefix_len) = parse_vip_address(&v.address).map_err(|e| anyhow::anyhow!("edge.vip.address: {e}"))?;
    Ok(Some(VipSettings {
        address,
        prefix_len,
        interface: v.interface.clone(),
        priority: v.priority,
        preempt: v.preempt,
        ttl: Duration::from_millis(v.ttl_ms.unwrap_or(crate::cluster::timing::DEFAULT_VIP_TTL_MS)),
    }))
}

/// Runs the edge until SIGTERM or SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let edge = start(&config).await?;
    crate::node::signals::wait_for_stop_signal().await?;
    edge.shutdown().await;
    Ok(())
}

/// A running edge: every task it spawned, and the tokens that stop them in order.
struct RunningEdge {
    proxy: Arc<Proxy>,
    /// Accept loops first: no new sessions.
    accept: CancellationToken,
    accept_loops: Vec<JoinHandle<()>>,
    /// Then the VIP keeper releases the address.
    vip_stop: CancellationToken,
    keeper: Option<JoinHandle<()>>,
    /// Then the sessions close.
    sessions: TaskTracker,
    /// Then the rest: follower, router, publisher, status page, VIP session closer.
    background: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningEdge {
    /// Stops everything in order, waiting (5 s at most each) for every task spawned.
    async fn shutdown(self) {
        tracing::info!(
            event = "edge_stopping",
            "stop requested: no new sessions, releasing the VIP, closing sessions"
        );
        self.accept.cancel();
        for a in self.accept_loops {
            let _ = a.await;
        }
        self.vip_stop.cancel();
        if let Some(k) = self.keeper {
            if tokio::time::timeout(Duration::from_secs(5), k).await.is_err() {
                tracing::warn!("the VIP keeper did not stop within 5 s");
            }
        }
        self.proxy.close_all("edge stopping");
        self.sessions.close();
        if tokio::time::timeout(Duration::from_secs(5), self.sessions.wait())
            .await
            .is_err()
        {
            tracing::warn!("some sessions did not end within 5 s");
        }
        self.background.cancel();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        tracing::info!(event = "edge_stopped", "edge stopped");
    }
}

/// Binds the client ports that are configured, and the status page's.
#[allow(clippy::type_complexity)]
async fn bind_ports(e: &EdgeSection) -> anyhow::Result<(Vec<(Port, String, TcpListener)>, Option<TcpListener>)> {
    let mut listeners = Vec::new();
    for (port, key, addr) in [
        (Port::Primary, "edge.primary_listen", &e.primary_listen),
        (Port::Replica, "edge.replica_listen", &e.replica_listen),
        (Port::Any, "edge.any_listen", &e.any_listen),
    ] {
        if !addr.is_empty() {
            listeners.push((port, addr.clone(), bind(key, addr).await?));
        }
    }
    let status_listener = match e.status_listen.as_str() {
        "" => None,
        addr => Some(bind("edge.status_listen", addr).await?),
    };
    Ok((listeners, status_listener))
}

/// The proxy with its per-port session caps and timeouts.
fn new_proxy(e: &EdgeSection) -> anyhow::Result<Arc<Proxy>> {
    let caps = port_caps(e).context("edge.max_sessions")?;
    let slots = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = usize::try_from(e.session_threads).unwrap_or(usize::MAX);
    Proxy::new(ProxySettings {
        caps: [
            (Port::Primary, slots(caps.primary)),
            (Port::Replica, slots(caps.replica)),
            (Port::Any, slots(caps.any)),
        ]
        .into(),
        primary_wait: Duration::from_millis(e.primary_wait_ms),
        hello_timeout: Duration::from_millis(e.client_hello_timeout_ms),
        session_threads: crate::edge::workers::worker_count(threads, cores),
    })
    .context("starting the session threads")
}

/// Binds the ports and starts every task of the edge.
async fn start(config: &Config) -> anyhow::Result<RunningEdge> {
    let e = &config.edge;
    let name = config.node.name.clone();
    let vip = vip_settings(config)?;
    if let Some(v) = &vip {
        vip::check_capabilities(v).context("edge.vip")?;
    }
    let tls = if config.tls.plaintext {
        tracing::warn!("tls.plaintext = true: DCS traffic is neither encrypted nor authenticated (demo/test use only)");
        None
    } else {
        Some(crate::node::tls::load_node_tls(config)?.client_config())
    };
    let timeout = Duration::from_millis(config.dcs.request_timeout_ms);
    // The VIP keeper makes its own client on its own thread (`edge::vip::thread`) from the same settings.
    let keeper_dcs = (config.client_endpoints(), tls.clone(), timeout);
    let dcs = Arc::new(DcsClient::new(config.client_endpoints(), tls, timeout).context("dcs.endpoints")?);
    let keys = Keys::new(&config.cluster.name);

    let (listeners, status_listener) = bind_ports(e).await?;
    let proxy = new_proxy(e)?;
    let (followed_tx, followed_rx) = watch::channel(None);
    let (healthy_tx, healthy_rx) = watch::channel(false);
    let (ttl_tx, ttl_rx) = watch::channel(Duration::from_secs(2));
    let (holder_tx, holder_rx) = watch::channel(None::<String>);
    let state = EdgeState {
        name: name.clone(),
        cluster: config.cluster.name.clone(),
        listens: listeners.iter().map(|(p, a, _)| (*p, a.clone())).collect(),
        vip: e.vip.as_ref().map(|v| v.address.clone()),
        proxy: proxy.clone(),
        followed: followed_rx.clone(),
        healthy: healthy_rx.clone(),
        vip_holder: holder_rx.clone(),
    };

    // Tokens in shutdown order: accept loops, VIP keeper, sessions, the rest (follower, router, publisher, page).
    let (accept, vip_stop, sessions, background) = (
        CancellationToken::new(),
        CancellationToken::new(),
        TaskTracker::new(),
        CancellationToken::new(),
    );
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(follow::run(
        dcs.clone(),
        keys.clone(),
        followed_tx,
        background.clone(),
    )));
    let opts = RoutingOpts {
        max_lag_bytes: e.replica_max_lag_bytes,
    };
    tasks.push(tokio::spawn(updater::run(
        proxy.clone(),
        followed_rx.clone(),
        opts,
        healthy_tx,
        ttl_tx,
        background.clone(),
    )));
    let mut accept_loops = Vec::new();
    for (port, addr, listener) in listeners {
        tracing::info!(
            "{port} port listening on {addr} (at most {} connections, {} session thread(s))",
            proxy.cap(port),
            proxy.session_threads()
        );
        accept_loops.push(tokio::spawn(proxy.clone().serve(
            port,
            listener,
            accept.clone(),
            sessions.clone(),
        )));
    }
    if let Some(listener) = status_listener {
        tracing::info!("status page on http://{}/", e.status_listen);
        let metrics = crate::metrics::Metrics::new("edge");
        metrics.register(|r| {
            r.register_collector(Box::new(crate::metrics::cert::CertCollector));
            crate::edge::metrics::register(r, state.clone());
        });
        tasks.push(tokio::spawn(http::serve(
            listener,
            state.clone(),
            metrics,
            background.clone(),
        )));
    }
    tasks.push(tokio::spawn(crate::edge::idle::run(proxy.idle(), background.clone())));
    tasks.push(tokio::spawn(crate::edge::changes::follow_vip(
        holder_rx.clone(),
        background.clone(),
    )));
    let info = EdgeInfo {
        name: name.clone(),
        status_addr: e.status_listen.clone(),
        ports: EdgePorts {
            primary: e.primary_listen.clone(),
            replica: e.replica_listen.clone(),
            any: e.any_listen.clone(),
        },
        healthy: false,
        vip_priority: e.vip.as_ref().map(|v| v.priority),
        vip_holder: false,
    };
    let (info_tx, info_rx) = watch::channel(info);
    tasks.push(tokio::spawn(publish::run(
        dcs.clone(),
        keys.clone(),
        info_rx,
        ttl_rx.clone(),
        background.clone(),
    )));
    tasks.push(tokio::spawn(mirror_info(
        name.clone(),
        healthy_rx.clone(),
        holder_rx.clone(),
        info_tx,
        background.clone(),
    )));
    if let Some(address) = vip.as_ref().map(|v| v.address) {
        tasks.push(tokio::spawn(close_sessions_when_the_vip_leaves(
            proxy.clone(),
            address.into(),
            name.clone(),
            holder_rx.clone(),
            background.clone(),
        )));
    }
    let keeper = match vip {
        Some(v) => {
            let watches = (healthy_rx.clone(), followed_rx.clone(), holder_tx);
            let spawned = spawn_vip_keeper(v, name.clone(), keeper_dcs, keys.clone(), watches, vip_stop.clone());
            Some(spawned.context("starting the VIP keeper's thread")?)
        }
        None => None,
    };
    tracing::info!(event = "edge_running", name = %name, "edge running");
    // No session yet: what start-up touched (config, TLS, clap) can go.
    proxy.idle().notify_one();
    Ok(RunningEdge {
        proxy,
        accept,
        accept_loops,
        vip_stop,
        keeper,
        sessions,
        background,
        tasks,
    })
}

/// The VIP keeper on its own thread, once the edge has read its first view of the cluster (it ranks and routes
/// from it).
fn spawn_vip_keeper(
    v: VipSettings,
    name: String,
    (endpoints, tls, timeout): (Vec<String>, Option<ClientTlsConfig>, Duration),
    keys: Keys,
    (healthy, mut followed, holder_tx): (
        watch::Receiver<bool>,
        watch::Receiver<Option<crate::edge::follow::Followed>>,
        watch::Sender<Option<String>>,
    ),
    stop: CancellationToken,
) -> std::io::Result<JoinHandle<()>> {
    vip::thread::spawn("pgha-vip", move || async move {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = followed.wait_for(|f| f.is_some()) => {}
        };
        // Made here, so its channels' tasks run on this thread's runtime.
        let dcs = match DcsClient::new(endpoints, tls, timeout) {
            Ok(c) => Arc::new(c),
            Err(e) => return tracing::error!(event = "vip_keeper_stopped", "VIP keeper: DCS client: {e}"),
        };
        if let Err(e) = vip::run_keeper(v, name, dcs, keys, healthy, holder_tx, stop).await {
            tracing::error!(event = "vip_keeper_stopped", "VIP keeper stopped: {e}");
        }
    })
}

/// Keeps the published [`EdgeInfo`] in step with health and VIP ownership.
async fn mirror_info(
    name: String,
    mut healthy: watch::Receiver<bool>,
    mut holder: watch::Receiver<Option<String>>,
    info: watch::Sender<EdgeInfo>,
    token: CancellationToken,
) {
    loop {
        let h = *healthy.borrow_and_update();
        let v = holder.borrow_and_update().as_deref() == Some(name.as_str());
        info.send_if_modified(|i| {
            let changed = i.healthy != h || i.vip_holder != v;
            i.healthy = h;
            i.vip_holder = v;
            changed
        });
        tokio::select! {
            _ = token.cancelled() => return,
            // A closed channel (no VIP keeper) just stops waking us.
            Ok(()) = healthy.changed() => {}
            Ok(()) = holder.changed() => {}
        }
    }
}

/// Once this edge no longer holds the VIP, closes the sessions clients opened to it: the clients' packets now go to
/// the new holder, so they learn at once instead of waiting on a connection nobody can answer on.
async fn close_sessions_when_the_vip_leaves(
    proxy: Arc<Proxy>,
    address: std::net::IpAddr,
    name: String,
    mut holder: watch::Receiver<Option<String>>,
    token: CancellationToken,
) {
    let mut mine = false;
    loop {
        let now_mine = holder.borrow_and_update().as_deref() == Some(name.as_str());
        if mine && !now_mine {
            proxy.close_sessions_to(address, "the VIP left this edge");
        }
        mine = now_mine;
        tokio::select! {
            _ = token.cancelled() => return,
            changed = holder.changed() => if changed.is_err() { return },
        }
    }
}
