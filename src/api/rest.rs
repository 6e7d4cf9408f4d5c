//! The Patroni-compatible REST server of a db node (axum): GET/HEAD/OPTIONS on the health endpoints (with Patroni's
//! `?lag=` and `?tag_key=value` filters), JSON views, `/metrics`, open as configured. Patroni's writes (`POST
//! /switchover`, `/failover`, `/restart`, `/reload`, `/reinitialize`, `DELETE /switchover`, `PATCH|PUT /config`:
//! rest_write.rs) only over
//! HTTPS with an admin client certificate (`authz::authorize`, `Rpc::RestWrite`); anything else gets 403 and the
//! reason. A write runs what `pgha ctl` runs, authorized in the DCS as the admin who called.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use axum::Router;
use tokio_util::sync::CancellationToken;

use super::health::{status_code, NodeSnapshot};
use super::rest_write::{self, Writes};
use crate::dcs::authz::rest::{RestWrite, Transport};
use crate::dcs::authz::rules::{Ctx, Membership};
use crate::metrics::Metrics;

/// The latest snapshot published by the HA loop.
pub type SharedSnapshot = Arc<RwLock<Option<NodeSnapshot>>>;

#[derive(Clone)]
struct AppState {
    cluster: String,
    snapshot: SharedSnapshot,
    metrics: Metrics,
    /// None: this server takes no writes (no DCS client given).
    writes: Option<Arc<Writes>>,
    /// (peer, kind) of refusals already logged: each is logged once.
    refused: Arc<Mutex<HashSet<(String, &'static str)>>>,
}

/// Who is on the other end of a REST connection.
#[derive(Clone, Debug)]
pub struct RestPeer {
    pub addr: SocketAddr,
    pub transport: Transport,
}

impl Connected<IncomingStream<'_, tokio::net::TcpListener>> for RestPeer {
    fn connect_info(stream: IncomingStream<'_, tokio::net::TcpListener>) -> RestPeer {
        RestPeer {
            addr: *stream.remote_addr(),
            transport: Transport::PlainHttp,
        }
    }
}

impl Connected<IncomingStream<'_, super::tls_listener::TlsListener>> for RestPeer {
    fn connect_info(stream: IncomingStream<'_, super::tls_listener::TlsListener>) -> RestPeer {
        // The handshake verified the certificate against the cluster CA; only its identity is read here.
        let cert = stream
            .io()
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .map(|der| crate::identity::peer::of_der(der));
        RestPeer {
            addr: *stream.remote_addr(),
            transport: Transport::Https(cert),
        }
    }
}

fn body(path: &str, state: &AppState, snap: Option<&NodeSnapshot>) -> Response {
    if path == "/metrics" {
        return crate::metrics::text_response(&state.metrics);
    }
    let json = match (path, snap) {
        ("/cluster", Some(s)) => serde_json::json!({
            "members": s.view.members.values().collect::<Vec<_>>(),
            "leader": s.view.leader.as_ref().map(|l| l.name.clone()),
            "paused": s.view.config.paused,
        }),
        ("/config", Some(s)) => serde_json::to_value(&s.view.config).unwrap_or_default(),
        ("/history", Some(s)) => serde_json::to_value(&s.view.history).unwrap_or_default(),
        (_, Some(s)) => serde_json::json!({
            "name": s.name,
            "state": if s.status.is_some() { "running" } else { "stopped" },
            "role": match s.status.as_ref() {
                Some(st) if !st.in_recovery && s.holds_leader => "primary",
                Some(st) if st.in_recovery => "replica",
                _ => "unknown",
            },
            "timeline": s.status.as_ref().map(|st| st.timeline),
            "xlog": s.status.as_ref().map(|st| st.wal_position()),
            "replication_lag_bytes": s.lag_bytes(),
            "pause": s.view.config.paused,
            "cluster": state.cluster,
            "tags": s.tags,
        }),
        (_, None) => serde_json::json!({ "state": "starting" }),
    };
    axum::Json(json).into_response()
}

async fn handle(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<RestPeer>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    request_body: Bytes,
) -> Response {
    let path = uri.path().trim_end_matches('/');
    let path = if path.is_empty() { "/patroni" } else { path };
    if let Some(write) = RestWrite::of(method.as_str(), path) {
        return write_request(&state, &peer, write, &request_body).await;
    }
    let snap = state.snapshot.read().ok().and_then(|s| s.clone());
    let code = status_code(path, &query, snap.as_ref(), Instant::now());
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    match method {
        Method::GET => (status, body(path, &state, snap.as_ref())).into_response(),
        // HEAD and OPTIONS: the status alone, as load balancer checks use them.
        Method::HEAD | Method::OPTIONS => status.into_response(),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            "not a REST endpoint of pgha: writes are POST /switchover, /failover, /restart, /reload, /reinitialize, \
             DELETE /switchover and PATCH|PUT /config",
        )
            .into_response(),
    }
}

/// A REST write: the caller is authorized (admin certificate over HTTPS), then the write runs. Refusals are 403
/// with the reason, logged once per peer and reason; every write carried out is logged with its caller and outcome.
async fn write_request(state: &AppState, peer: &RestPeer, write: RestWrite, body: &[u8]) -> Response {
    let keys = crate::cluster::keys::Keys::new(&state.cluster);
    let leases = Default::default();
    let ctx = Ctx {
        root: keys.root(),
        members: &Membership::Unknown,
        leases: &leases,
        legacy: crate::identity::LegacyCertificates::Deny,
    };
    let decision = crate::dcs::authz::rest::caller(&peer.transport, &state.cluster).and_then(|who| {
        crate::dcs::authz::authorize(&who, crate::dcs::authz::Rpc::RestWrite(write), &ctx).map(|()| who)
    });
    let who = match decision {
        Ok(who) => who,
        Err(denial) => {
            let first = state
                .refused
                .lock()
                .map(|mut seen| seen.len() < 4096 && seen.insert((peer.addr.ip().to_string(), denial.kind)))
                .unwrap_or(false);
            if first {
                tracing::warn!(
                    event = "rest_write_refused",
                    remote = %peer.addr,
                    write = write.name(),
                    kind = denial.kind,
                    "refused {} from {}: {} (repeats from this address for this reason are not logged)",
                    write.name(),
                    peer.addr,
                    denial.reason
                );
            }
            return (StatusCode::FORBIDDEN, format!("permission denied: {}", denial.reason)).into_response();
        }
    };
    let Some(writes) = state.writes.as_deref() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "this REST server takes no writes").into_response();
    };
    let answer = rest_write::perform(writes, write, &who, body).await;
    let caller = crate::dcs::authz::principal::header_value(&who);
    tracing::info!(
        event = "rest_write",
        write = write.name(),
        caller = %caller,
        remote = %peer.addr,
        status = answer.status.as_u16(),
        "{} by {caller}: {}",
        write.name(),
        answer.status
    );
    match answer.body {
        rest_write::Body::Text(text) => (answer.status, text).into_response(),
        rest_write::Body::Json(json) => (answer.status, axum::Json(json)).into_response(),
    }
}

/// Serves the REST API on `listener` (plain TCP, or [`super::tls_listener::TlsListener`]) until `token` is
/// cancelled; `writes` enables the REST writes (refused without HTTPS and an admin certificate anyway).
pub async fn serve<L>(
    listener: L,
    cluster: String,
    snapshot: SharedSnapshot,
    metrics: Metrics,
    writes: Option<Arc<Writes>>,
    token: CancellationToken,
) where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
    for<'a> RestPeer: Connected<IncomingStream<'a, L>>,
{
    let app = Router::new().fallback(handle).with_state(AppState {
        cluster,
        snapshot,
        metrics,
        writes,
        refused: Default::default(),
    });
    let shutdown = async move { token.cancelled().await };
    let service = app.into_make_service_with_connect_info::<RestPeer>();
    if let Err(e) = axum::serve(listener, service).with_graceful_shutdown(shutdown).await {
        tracing::error!("REST API stopped: {e}");
    }
}
