//! Serving `/metrics`: the text response of a registry, and the witness's own HTTP endpoint (`/metrics`, `/health`,
//! `/readiness`), which otherwise has no HTTP server.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use openraft::RaftMetrics;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Metrics;
use crate::dcs::types::PghaNode;

/// `/metrics` of any role.
pub fn text_response(metrics: &Metrics) -> Response {
    ([(header::CONTENT_TYPE, super::CONTENT_TYPE)], metrics.render()).into_response()
}

/// What the witness's `/health` and `/readiness` answer (pure): healthy while its Raft core runs, ready while it
/// also knows a leader (it then votes and stores for a cluster that commits).
pub fn witness_status(raft_running: bool, has_leader: bool, readiness: bool) -> (StatusCode, &'static str) {
    match (raft_running, has_leader || !readiness) {
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "unhealthy: the Raft core stopped\n"),
        (true, false) => (StatusCode::SERVICE_UNAVAILABLE, "not ready: no Raft leader known\n"),
        (true, true) if readiness => (StatusCode::OK, "ready\n"),
        (true, true) => (StatusCode::OK, "healthy\n"),
    }
}

#[derive(Clone)]
struct Witness {
    metrics: Metrics,
    raft: watch::Receiver<RaftMetrics<u64, PghaNode>>,
}

impl Witness {
    fn answer(&self, readiness: bool) -> Response {
        let m = self.raft.borrow();
        let (code, text) = witness_status(m.running_state.is_ok(), m.current_leader.is_some(), readiness);
        (code, [(header::CONTENT_TYPE, "text/plain")], text).into_response()
    }
}

async fn metrics_text(State(w): State<Witness>) -> Response {
    text_response(&w.metrics)
}

async fn health(State(w): State<Witness>) -> Response {
    w.answer(false)
}

async fn readiness(State(w): State<Witness>) -> Response {
    w.answer(true)
}

/// Serves the witness endpoint on `listener` until `token` is cancelled.
pub async fn serve_witness(
    listener: tokio::net::TcpListener,
    metrics: Metrics,
    raft: watch::Receiver<RaftMetrics<u64, PghaNode>>,
    token: CancellationToken,
) {
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/health", get(health))
        .route("/readiness", get(readiness))
        .with_state(Witness { metrics, raft });
    let shutdown = async move { token.cancelled().await };
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
        tracing::error!("witness HTTP endpoint stopped: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn witness_health_and_readiness() {
        let table = [
            (false, true, false, 503),
            (false, true, true, 503),
            (true, false, false, 200),
            (true, false, true, 503),
            (true, true, true, 200),
        ];
        for (running, leader, readiness, code) in table {
            assert_eq!(
                witness_status(running, leader, readiness).0.as_u16(),
                code,
                "{running} {leader} {readiness}"
            );
        }
    }
}
