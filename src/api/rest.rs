//! The Patroni-compatible REST server of a db node (axum): GET/HEAD/OPTIONS on the health endpoints, JSON views,
//! `/metrics`. Read-only by design: state changes go through `pgha ctl` over mutual TLS, never plain HTTP.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio_util::sync::CancellationToken;

use super::health::{status_code, NodeSnapshot};
use crate::metrics::Metrics;

/// The latest snapshot published by the HA loop.
pub type SharedSnapshot = Arc<RwLock<Option<NodeSnapshot>>>;

#[derive(Clone)]
struct AppState {
    cluster: String,
    snapshot: SharedSnapshot,
    metrics: Metrics,
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
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let snap = state.snapshot.read().ok().and_then(|s| s.clone());
    let path = uri.path().trim_end_matches('/');
    let path = if path.is_empty() { "/patroni" } else { path };
    let code = status_code(path, &query, snap.as_ref(), Instant::now());
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    match method {
        Method::GET => (status, body(path, &state, snap.as_ref())).into_response(),
        // HEAD and OPTIONS: the status alone, as load balancer checks use them.
        Method::HEAD | Method::OPTIONS => status.into_response(),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            "the REST API is read-only: use pgha ctl",
        )
            .into_response(),
    }
}

/// Serves the REST API on `listener` (plain TCP, or [`super::tls_listener::TlsListener`]) until `token` is
/// cancelled.
pub async fn serve<L>(
    listener: L,
    cluster: String,
    snapshot: SharedSnapshot,
    metrics: Metrics,
    token: CancellationToken,
) where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let app = Router::new().fallback(handle).with_state(AppState {
        cluster,
        snapshot,
        metrics,
    });
    let shutdown = async move { token.cancelled().await };
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
        tracing::error!("REST API stopped: {e}");
    }
}
