//! Prometheus metrics of every role: one `prometheus-client` registry per process, served as text on `/metrics`.
//!
//! Counters and histograms that code deep in the shell updates (the HA actions, the Raft log store, the edge's
//! proxy and VIP keeper) are process-wide handles (`ha::HA` here, `DCS` in dcs/metrics.rs, `EDGE` in
//! edge/metrics.rs): an increment is one line where the thing happens. Gauges that describe state are computed at
//! scrape time by collectors from what the role already shares (the HA snapshot in api/metrics.rs, openraft's metrics
//! channel, the edge's status snapshot). This module imports no other part of the crate: every role imports it.

pub mod cert;
pub mod ha;

use std::fmt;
use std::sync::{Arc, RwLock};

use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// The `Content-Type` of `/metrics`: Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Every name is `pgha_<name>`.
pub const PREFIX: &str = "pgha";

/// Label pairs of one sample.
pub type Labels = Vec<(&'static str, String)>;

/// The process's registry; cloned handles share it.
#[derive(Clone, Debug)]
pub struct Metrics(Arc<RwLock<Registry>>);

impl Metrics {
    /// A registry with `pgha_build_info{version, role}` = 1.
    pub fn new(role: &str) -> Metrics {
        let mut registry = Registry::with_prefix(PREFIX);
        let info: Family<Labels, Gauge> = Family::default();
        info.get_or_create(&vec![
            ("version", env!("CARGO_PKG_VERSION").to_string()),
            ("role", role.to_string()),
        ])
        .set(1);
        registry.register(
            "build_info",
            "pgha build: version and role of this process (always 1)",
            info,
        );
        Metrics(Arc::new(RwLock::new(registry)))
    }

    /// Adds metrics (families or a collector) to the registry.
    pub fn register(&self, add: impl FnOnce(&mut Registry)) {
        if let Ok(mut registry) = self.0.write() {
            add(&mut registry);
        }
    }

    /// The text exposition of everything registered.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Ok(registry) = self.0.read() {
            if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
                tracing::warn!("encoding the metrics failed: {e}");
            }
        }
        out
    }
}

/// `/metrics` of any role.
pub fn text_response(metrics: &Metrics) -> axum::response::Response {
    use axum::response::IntoResponse;
    ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], metrics.render()).into_response()
}

/// Writes one gauge family computed at scrape time (a collector's building block).
pub fn gauge<V: EncodeGaugeValue + Copy>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(Labels, V)],
) -> fmt::Result {
    let mut family = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        ConstGauge::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

/// Writes one counter family computed at scrape time (`name` without `_total`: the encoder appends it).
pub fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, samples: &[(Labels, u64)]) -> fmt::Result {
    let mut family = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in samples {
        ConstCounter::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

/// 1 or 0.
pub fn flag(b: bool) -> i64 {
    i64::from(b)
}
