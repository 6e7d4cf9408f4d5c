//! The edge's metrics: per-port sessions and counters and the VIP, computed at scrape time from the status
//! snapshot (the names the edge always had), plus the backend dial histogram and the VIP move counter.

use std::fmt;
use std::future::Future;
use std::sync::LazyLock;
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::routing::Port;
use super::state::EdgeState;
use super::status::{PortStats, StatusSnapshot};
use crate::metrics::{counter, flag, gauge, Labels};

/// Upper bounds of the backend dial histogram (seconds): loopback is sub-millisecond, a lost host 3 s (the timeout).
const DIAL_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 3.0,
];

/// The edge's handles.
#[derive(Debug)]
pub struct EdgeMetrics {
    /// Time to open the TCP connection to the backend of a session, per port.
    pub connect: Family<Labels, Histogram, fn() -> Histogram>,
    /// The VIP went from one edge to another (as this edge saw the `vip` key).
    pub vip_moves: Counter,
}

fn dial_histogram() -> Histogram {
    Histogram::new(DIAL_BUCKETS)
}

/// The process's edge metrics.
pub static EDGE: LazyLock<EdgeMetrics> = LazyLock::new(|| EdgeMetrics {
    connect: Family::new_with_constructor(dial_histogram as fn() -> Histogram),
    vip_moves: Counter::default(),
});

impl EdgeMetrics {
    /// Awaits a backend dial (`timeout(connect)`) and observes its duration when it connected.
    pub async fn timed_dial<T, E, X>(
        &self,
        port: Port,
        dial: impl Future<Output = Result<Result<T, E>, X>>,
    ) -> Result<Result<T, E>, X> {
        let start = Instant::now();
        let result = dial.await;
        if matches!(result, Ok(Ok(_))) {
            let labels = vec![("port", port.to_string())];
            self.connect
                .get_or_create(&labels)
                .observe(start.elapsed().as_secs_f64());
        }
        result
    }
}

/// The edge's collector.
pub struct EdgeCollector(pub EdgeState);

impl fmt::Debug for EdgeCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EdgeCollector")
    }
}

impl Collector for EdgeCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        encode(&mut enc, &self.0.snapshot())
    }
}

/// Adds the edge's families to `r`.
pub fn register(r: &mut Registry, state: EdgeState) {
    r.register_with_unit(
        "edge_backend_connect_duration",
        "Time to open the TCP connection to a session's backend",
        Unit::Seconds,
        EDGE.connect.clone(),
    );
    r.register(
        "edge_vip_moves",
        "Times the VIP went from one edge to another",
        EDGE.vip_moves.clone(),
    );
    r.register_collector(Box::new(EdgeCollector(state)));
}

/// Writes the families of one status snapshot (pure).
pub fn encode(enc: &mut DescriptorEncoder, s: &StatusSnapshot) -> fmt::Result {
    let edge: Labels = vec![("edge", s.name.clone())];
    let one = |v: i64| [(edge.clone(), v)];
    gauge(
        enc,
        "edge_healthy",
        "1 when listeners are up and the DCS view is fresh",
        &one(flag(s.healthy)),
    )?;
    let age = s.view_age.map_or(f64::NAN, |d| d.as_secs_f64());
    gauge(
        enc,
        "edge_view_age_seconds",
        "Age of the DCS view",
        &[(edge.clone(), age)],
    )?;
    gauge(
        enc,
        "edge_primary_routed",
        "1 while the primary port has a backend",
        &one(flag(s.table.primary.is_some())),
    )?;
    let holder = s.vip_holder.as_deref() == Some(s.name.as_str());
    gauge(
        enc,
        "edge_vip_configured",
        "1 when this edge is configured to hold a VIP",
        &one(flag(s.vip.is_some())),
    )?;
    gauge(
        enc,
        "edge_vip_holder",
        "1 while this edge holds the VIP",
        &one(flag(holder)),
    )?;
    let per_port = |f: &dyn Fn(&PortStats) -> u64| -> Vec<(Labels, u64)> {
        s.ports
            .iter()
            .map(|p| {
                let mut l = edge.clone();
                l.push(("port", p.port.to_string()));
                (l, f(p))
            })
            .collect()
    };
    let gauges = |v: Vec<(Labels, u64)>| -> Vec<(Labels, i64)> {
        v.into_iter()
            .map(|(l, x)| (l, i64::try_from(x).unwrap_or(i64::MAX)))
            .collect()
    };
    gauge(
        enc,
        "edge_sessions",
        "Live client sessions",
        &gauges(per_port(&|p| p.active)),
    )?;
    let backends = per_port(&|p| s.table.targets(p.port).len() as u64);
    gauge(enc, "edge_backends", "Backends taking new sessions", &gauges(backends))?;
    gauge(
        enc,
        "edge_max_sessions",
        "Connection cap of the port",
        &gauges(per_port(&|p| p.cap)),
    )?;
    counter(enc, "edge_connects", "Sessions forwarded", &per_port(&|p| p.connects))?;
    counter(
        enc,
        "edge_refused",
        "Clients closed without a backend",
        &per_port(&|p| p.refused),
    )?;
    counter(
        enc,
        "edge_full",
        "Clients refused at the port's cap",
        &per_port(&|p| p.full),
    )?;
    counter(
        enc,
        "edge_no_hello",
        "Clients closed before a usable first message",
        &per_port(&|p| p.no_hello),
    )?;
    counter(
        enc,
        "edge_cancels",
        "Cancel requests delivered",
        &per_port(&|p| p.cancels),
    )?;
    counter(
        enc,
        "edge_cut",
        "Sessions closed on a role change",
        &per_port(&|p| p.cut),
    )?;
    counter(enc, "edge_bytes_in", "Bytes from clients", &per_port(&|p| p.bytes_in))?;
    counter(enc, "edge_bytes_out", "Bytes to clients", &per_port(&|p| p.bytes_out))
}

#[cfg(test)]
mod tests {
    use prometheus_client::registry::Registry;

    #[derive(Debug)]
    struct Fixed;

    impl prometheus_client::collector::Collector for Fixed {
        fn encode(&self, mut enc: prometheus_client::encoding::DescriptorEncoder) -> std::fmt::Result {
            super::encode(&mut enc, &crate::edge::status::tests::snapshot())
        }
    }

    #[test]
    fn the_edge_names_as_they_were() {
        let mut r = Registry::with_prefix("pgha");
        r.register_collector(Box::new(Fixed));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &r).expect("encode");
        for needle in [
            "pgha_edge_healthy{edge=\"edge<1>\"} 1\n",
            "pgha_edge_view_age_seconds{edge=\"edge<1>\"} 0.3\n",
            "pgha_edge_primary_routed{edge=\"edge<1>\"} 1\n",
            "pgha_edge_vip_holder{edge=\"edge<1>\"} 0\n",
            "pgha_edge_vip_configured{edge=\"edge<1>\"} 1\n",
            "pgha_edge_sessions{edge=\"edge<1>\",port=\"primary\"} 1\n",
            "pgha_edge_connects_total{edge=\"edge<1>\",port=\"primary\"} 7\n",
            "pgha_edge_bytes_out_total{edge=\"edge<1>\",port=\"primary\"} 2000\n",
            "pgha_edge_max_sessions{edge=\"edge<1>\",port=\"primary\"} 334\n",
            "pgha_edge_full_total{edge=\"edge<1>\",port=\"primary\"} 3\n",
            "pgha_edge_cancels_total{edge=\"edge<1>\",port=\"primary\"} 5\n",
            "# TYPE pgha_edge_cut_total counter\n",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }
}
