//! The edge's HTTP server (axum): `/` the HTML status page, `/metrics` Prometheus text, `/health` 200 while healthy.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

use super::state::EdgeState;
use super::status::{render_html, render_metrics};

async fn page(State(state): State<EdgeState>) -> Html<String> {
    Html(render_html(&state.snapshot()))
}

async fn metrics(State(state): State<EdgeState>) -> Response {
    let text = render_metrics(&state.snapshot());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn health(State(state): State<EdgeState>) -> Response {
    if *state.healthy.borrow() {
        (StatusCode::OK, "healthy\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "unhealthy: routing closed or DCS view stale\n",
        )
            .into_response()
    }
}

/// Serves the status page on `listener` until `token` is cancelled.
pub async fn serve(listener: tokio::net::TcpListener, state: EdgeState, token: CancellationToken) {
    let app = Router::new()
        .route("/", get(page))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .with_state(state);
    let shutdown = async move { token.cancelled().await };
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
        tracing::error!("edge status server stopped: {e}");
    }
}
