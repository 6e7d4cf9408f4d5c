//! The witness's HTTP endpoint (`witness.http_listen`): `/metrics`, `/health`, `/readiness` (a witness has no other
//! HTTP server).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use openraft::RaftMetrics;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use anyhow::Context;

use crate::config::Config;
use crate::dcs::types::PghaNode;
use crate::metrics::{text_response, Metrics};

/// The witness's HTTP endpoint (`witness.http_listen`): a configured address must bind; the default one is
/// skipped with an error line when it cannot (e.g. another witness of a test cluster on the same host).
pub fn listener(config: &Config) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    let configured = config.witness.http_listen.as_deref();
    let addr = configured.unwrap_or(crate::config::WitnessSection::DEFAULT_HTTP_LISTEN);
    if addr.is_empty() {
        return Ok(None);
    }
    let bound = std::net::TcpListener::bind(addr).and_then(|l| {
        l.set_nonblocking(true)?;
        tokio::net::TcpListener::from_std(l)
    });
    match (bound, configured) {
        (Ok(listener), _) => {
            tracing::info!(listen = %addr, "witness HTTP endpoint: /metrics, /health, /readiness");
            Ok(Some(listener))
        }
        (Err(e), Some(_)) => Err(e).with_context(|| format!("witness.http_listen {addr}")),
        (Err(e), None) => {
            tracing::error!(
                listen = %addr,
                "witness HTTP endpoint not started: binding the default witness.http_listen failed: {e} \
                 (set witness.http_listen to another address, or \"\" to turn it off)"
            );
            Ok(None)
        }
    }
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
