//! The db role's wiring: PostgreSQL settings and the HA loop from the config (secrets read from their files here).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cluster::model::DynamicConfig;
use crate::config::{Config, HookCommand};
use crate::dcs::client::DcsClient;
use crate::dcs::member::MemberSettings;
use crate::ha::hooks::HookSettings;
use crate::ha::runner::{DbNode, DbSettings};
use crate::ha::wal_service::HaService;
use crate::metrics::Metrics;
use crate::postgres::bin_dir::{self, BinQuery};
use crate::postgres::{PgSettings, PgTls, Postgres};

/// A db node ready to start once its DCS member runs.
pub struct PreparedDb {
    node: DbNode,
    ha: HaService,
    rest: Option<RestServer>,
    cluster: String,
    /// What the HA loop publishes after every iteration (REST API, metrics).
    snapshot: crate::api::rest::SharedSnapshot,
}

/// The REST API's listener, ready to serve once the runtime runs the node.
struct RestServer {
    listener: tokio::net::TcpListener,
    /// HTTPS with the node certificate (`ha.rest_tls`); None = plain HTTP.
    tls: Option<Arc<rustls::ServerConfig>>,
    cluster: String,
    snapshot: crate::api::rest::SharedSnapshot,
    /// The REST writes (Patroni's `POST /switchover` etc.), made through the node's DCS client for their caller.
    writes: Arc<crate::api::rest_write::Writes>,
}

/// The running HA loop.
pub struct RunningDb {
    token: CancellationToken,
    task: JoinHandle<()>,
}

/// Builds PostgreSQL settings and the HA loop from a db config.
pub fn prepare(config: &Config, member: &MemberSettings) -> anyhow::Result<PreparedDb> {
    let pgc = &config.postgresql;
    // The data directory's version decides (a configured bin_dir still wins). While it is empty the newest installed
    // version is used: the cluster's version is not published in the DCS yet.
    // A major upgrade (`ctl upgrade`) remembers its bin directory beside the data directory: searched first.
    let mut roots: Vec<_> = crate::postgres::upgrade::remembered_bin_dir(&config.pg_data_dir())
        .into_iter()
        .collect();
    roots.extend(bin_dir::search_roots_from_env());
    let found = bin_dir::resolve(&BinQuery {
        configured: pgc.bin_dir.clone(),
        data_dir: Some(config.pg_data_dir()),
        cluster_version: None,
        extra_roots: roots.clone(),
    })
    .context("PostgreSQL binaries")?;
    tracing::info!(bin_dir = %found.dir.display(), version = ?found.major, reason = %found.reason, "PostgreSQL binaries");
    let bin_dir = found.dir;
    let (listen_host, port) = config.pg_listen();
    let (pg_host, pg_port) = config.pg_connect_address();
    let mut ps = PgSettings::new(
        &config.node.name,
        &bin_dir,
        &config.pg_data_dir(),
        &config.node.data_dir.join("run"),
        port,
    );
    ps.bin_major = found.major;
    if pgc.bin_dir.is_none() {
        ps.bin_search = Some(roots);
    }
    ps.listen_host = listen_host;
    ps.os_user = pgc.os_user.clone();
    ps.superuser = pgc.superuser.clone();
    ps.replication_user = pgc.replication_user.clone();
    if let Some(path) = &pgc.superuser_password_file {
        ps.superuser_password = Some(Config::read_secret("postgresql.superuser_password_file", path)?);
    }
    if let Some(path) = &pgc.replication_password_file {
        ps.replication_password = Some(Config::read_secret("postgresql.replication_password_file", path)?);
    }
    ps.parameters = pgc.parameters.clone();
    ps.creation = config.pg_creation();
    ps.hba = pgc.pg_hba.clone();
    if pgc.tls && !config.tls.plaintext {
        if let (Some(ca), Some(cert), Some(key)) = (&config.tls.ca, &config.tls.cert, &config.tls.key) {
            ps.tls = Some(PgTls {
                cert: cert.clone(),
                key: key.clone(),
                ca: ca.clone(),
            });
        }
    }
    let pg = Arc::new(Postgres::new(ps).context("preparing PostgreSQL")?);
    let h = &config.ha;
    let settings = DbSettings {
        cluster: config.cluster.name.clone(),
        name: config.node.name.clone(),
        api_addr: member.advertise.clone(),
        pg_host,
        pg_port,
        nofailover: h.nofailover,
        failover_priority: h.failover_priority,
        noloadbalance: h.noloadbalance,
        tags: h.tags.clone(),
        bootstrap_config: DynamicConfig {
            ttl_ms: h.ttl_ms,
            loop_wait_ms: h.loop_wait_ms,
            maximum_lag_on_failover: h.maximum_lag_on_failover,
            primary_start_timeout_ms: h.primary_start_timeout_ms,
            paused: false,
            postgresql_parameters: Default::default(),
            synchronous_mode: h.synchronous_mode,
            synchronous_mode_strict: h.synchronous_mode_strict,
            synchronous_node_count: h.synchronous_node_count,
            standby_cluster: h.standby_cluster.clone(),
            // Dynamic-only settings (`ctl edit-config --set`) start at their defaults.
            ..DynamicConfig::default()
        },
        rewind_fallback_reinit: pgc.rewind_fallback_reinit,
        allow_wipe_foreign_data: pgc.allow_wipe_foreign_data,
        start_timeout: Duration::from_millis(pgc.start_timeout_ms),
        fence_file: crate::fence::db_deadline_path(&config.node.data_dir),
        state_dir: config.node.data_dir.clone(),
        exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("pgha")),
        hooks: Arc::new(hook_settings(config)?),
        promotion_hold: Default::default(),
    };
    // Our own member first: it answers even when a peer is slow; the others are the failover path.
    let mut endpoints = vec![member.advertise.clone()];
    endpoints.extend(
        member
            .peers
            .iter()
            .filter(|(n, _)| *n != member.name)
            .map(|(_, a)| a.clone()),
    );
    let tls = member.tls.as_ref().map(|t| t.client.clone());
    let fault = crate::dcs::fault::FaultSwitch::from_env(&member.data_dir);
    let client = DcsClient::new(endpoints, tls, member.request_timeout)?;
    let dcs = Arc::new(client.with_fault(fault, member.advertise.clone()));
    let ha = HaService {
        pg: pg.clone(),
        name: settings.name.clone(),
        nofailover: settings.nofailover,
        failover_priority: settings.failover_priority,
        promotion_hold: settings.promotion_hold.clone(),
    };
    let snapshot: crate::api::rest::SharedSnapshot = Default::default();
    let rest = match config.ha.rest_listen.as_deref().filter(|a| !a.is_empty()) {
        Some(addr) => {
            let std_listener = std::net::TcpListener::bind(addr).with_context(|| format!("ha.rest_listen {addr}"))?;
            std_listener.set_nonblocking(true).context("ha.rest_listen")?;
            let listener = tokio::net::TcpListener::from_std(std_listener).context("ha.rest_listen")?;
            let tls = match config.ha.rest_tls {
                true => Some(
                    crate::node::tls::load_node_tls(config)?
                        .rest_server_config()
                        .context("ha.rest_tls: building the HTTPS configuration")?,
                ),
                false => None,
            };
            let scheme = if tls.is_some() { "https" } else { "http" };
            tracing::info!(listen = %addr, scheme, "Patroni-compatible REST API enabled");
            Some(RestServer {
                listener,
                tls,
                cluster: config.cluster.name.clone(),
                snapshot: snapshot.clone(),
                writes: Arc::new(crate::api::rest_write::Writes {
                    cluster: config.cluster.name.clone(),
                    name: config.node.name.clone(),
                    dcs: dcs.clone(),
                    snapshot: snapshot.clone(),
                }),
            })
        }
        None => None,
    };
    Ok(PreparedDb {
        node: DbNode::new(settings, dcs, pg, snapshot.clone()),
        ha,
        rest,
        cluster: config.cluster.name.clone(),
        snapshot,
    })
}

/// The hook commands (already validated: an error here names the key anyway) and their timeouts.
fn hook_settings(config: &Config) -> anyhow::Result<HookSettings> {
    let pgc = &config.postgresql;
    let split = |key: &str, command: &Option<HookCommand>| -> anyhow::Result<Option<Vec<String>>> {
        let Some(command) = command else { return Ok(None) };
        let argv = command.argv().map_err(|e| anyhow::anyhow!("{key} {e}"))?;
        if let Some(program) = argv.first().filter(|p| p.contains('/')) {
            if !std::path::Path::new(program).is_file() {
                tracing::warn!(key, program = %program, "hook program not found (yet): it fails when it runs");
            }
        }
        Ok(Some(argv))
    };
    let cb = &pgc.callbacks;
    Ok(HookSettings {
        on_start: split("postgresql.callbacks.on_start", &cb.on_start)?,
        on_stop: split("postgresql.callbacks.on_stop", &cb.on_stop)?,
        on_restart: split("postgresql.callbacks.on_restart", &cb.on_restart)?,
        on_reload: split("postgresql.callbacks.on_reload", &cb.on_reload)?,
        on_role_change: split("postgresql.callbacks.on_role_change", &cb.on_role_change)?,
        pre_promote: split("postgresql.pre_promote", &pgc.pre_promote)?,
        pre_promote_timeout: Duration::from_millis(pgc.pre_promote_timeout_ms),
        pre_promote_on_timeout: pgc.pre_promote_on_timeout,
        callback_timeout: Duration::from_millis(pgc.callback_timeout_ms),
        cluster: config.cluster.name.clone(),
        node: config.node.name.clone(),
    })
}

impl PreparedDb {
    /// The gRPC `Ha` service to serve beside the DCS member.
    pub fn ha_service(&self) -> std::sync::Arc<dyn crate::dcs::member::HaRpc> {
        std::sync::Arc::new(self.ha.clone())
    }

    /// Adds the db node's families (HA counters, the Patroni-compatible and HA state gauges) to `metrics`.
    pub fn register_metrics(&self, metrics: &Metrics) {
        let collector = crate::api::metrics::DbCollector {
            cluster: self.cluster.clone(),
            snapshot: self.snapshot.clone(),
        };
        metrics.register(|r| {
            crate::metrics::ha::HA.register(r);
            r.register_collector(Box::new(collector));
        });
    }

    /// Starts the HA loop (and the REST API, serving `metrics` on `/metrics`).
    pub fn spawn(self, metrics: Metrics) -> RunningDb {
        let token = CancellationToken::new();
        if let Some(rest) = self.rest {
            let (cluster, snapshot, token) = (rest.cluster, rest.snapshot, token.clone());
            let writes = Some(rest.writes);
            match rest.tls {
                None => {
                    tokio::spawn(crate::api::rest::serve(
                        rest.listener,
                        cluster,
                        snapshot,
                        metrics,
                        writes,
                        token,
                    ));
                }
                Some(tls) => match crate::api::tls_listener::TlsListener::new(rest.listener, tls) {
                    Ok(listener) => {
                        tokio::spawn(crate::api::rest::serve(
                            listener, cluster, snapshot, metrics, writes, token,
                        ));
                    }
                    Err(e) => tracing::error!("REST API over TLS not started: {e}"),
                },
            }
        }
        let task = tokio::spawn(self.node.run(token.clone()));
        RunningDb { token, task }
    }
}

impl RunningDb {
    /// Stops the loop with a clean handover (primary: checkpoint, stop, release the leader key).
    pub async fn stop(self) {
        self.token.cancel();
        if let Err(e) = self.task.await {
            tracing::error!("HA loop ended abnormally: {e}");
        }
    }
}
