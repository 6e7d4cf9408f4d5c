//! The edge's HTTP server (axum): `/` the HTML status page (reloads itself), `/status.json` the same as JSON,
//! `/metrics` the process's Prometheus registry, `/health` 200 while healthy.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

use super::state::EdgeState;
use super::status::{render_html, render_json};
use crate::metrics::Metrics;

#[derive(Clone)]
struct App {
    state: EdgeState,
    metrics: Metrics,
}

async fn page(State(app): State<App>) -> Html<String> {
    Html(render_html(&app.state.snapshot()))
}

async fn status_json(State(app): State<App>) -> Response {
    axum::Json(render_json(&app.state.snapshot())).into_response()
}

async fn metrics_text(State(app): State<App>) -> Response {
    crate::metrics::text_response(&app.metrics)
}

async fn health(State(app): State<App>) -> Response {
    if *app.state.healthy.borrow() {
        (StatusCode::OK, "healthy\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain")],
            "unhealthy: routing closed or DCS view stale\n",
        )
            .into_response()
    }
}

/// Serves the status page on `listener` until `token` is cancelled.
pub async fn serve(listener: tokio::net::TcpListener, state: EdgeState, metrics: Metrics, token: CancellationToken) {
    let app = Router::new()
        .route("/", get(page))
        .route("/status.json", get(status_json))
        .route("/metrics", get(metrics_text))
        .route("/health", get(health))
        .with_state(App { state, metrics });
    let shutdown = async move { token.cancelled().await };
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
        tracing::error!("edge status server stopped: {e}");
    }
}
