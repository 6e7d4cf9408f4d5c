//! The edge's status page (HTML, like HAProxy's stats page) and `/metrics` (Prometheus text), rendered from one
//! snapshot (pure).

use std::fmt::Write;
use std::time::Duration;

use super::proxy::SessionRow;
use super::routing::{Port, RoutingTable};
use crate::cluster::model::ClusterView;

/// Totals of one client port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortStats {
    pub port: Port,
    /// The listen address.
    pub listen: String,
    pub active: u64,
    pub connects: u64,
    pub refused: u64,
    /// The port's connection cap.
    pub cap: u64,
    /// Clients refused at the cap.
    pub full: u64,
    /// Clients closed before a usable first message.
    pub no_hello: u64,
    /// CancelRequests delivered.
    pub cancels: u64,
    pub cut: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// One backend (cluster member) and the roles the edge gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendRow {
    pub name: String,
    pub addr: String,
    /// Role and state as the member published them, e.g. "primary, running".
    pub published: String,
    /// Ports routing new sessions to it.
    pub ports: Vec<Port>,
    pub sessions: usize,
}

/// Everything the page shows.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusSnapshot {
    pub name: String,
    pub cluster: String,
    pub healthy: bool,
    pub table: RoutingTable,
    pub ports: Vec<PortStats>,
    pub backends: Vec<BackendRow>,
    pub sessions: Vec<SessionRow>,
    /// The configured VIP (None = no VIP on this edge).
    pub vip: Option<String>,
    /// Name of the edge holding the VIP, if known.
    pub vip_holder: Option<String>,
    /// Age of the DCS view (None before the first read).
    pub view_age: Option<Duration>,
}

/// The backends of `view` with the ports that route to them and their live session counts.
pub fn backend_rows(view: Option<&ClusterView>, table: &RoutingTable, sessions: &[SessionRow]) -> Vec<BackendRow> {
    let Some(view) = view else { return Vec::new() };
    view.members
        .values()
        .map(|m| BackendRow {
            name: m.name.clone(),
            addr: format!("{}:{}", m.pg_host, m.pg_port),
            published: format!(
                "{}, {}",
                match m.role {
                    crate::cluster::model::PgRole::Primary => "primary",
                    crate::cluster::model::PgRole::Replica => "replica",
                    crate::cluster::model::PgRole::Unknown => "unknown",
                },
                m.state.label()
            ),
            ports: Port::ALL
                .into_iter()
                .filter(|p| table.targets(*p).iter().any(|b| b.name == m.name))
                .collect(),
            sessions: sessions.iter().filter(|s| s.backend == m.name).count(),
        })
        .collect()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn table_html(out: &mut String, title: &str, headers: &[&str], rows: &[Vec<String>]) {
    let _ = write!(out, "<h2>{}</h2>\n<table>\n<tr>", esc(title));
    for h in headers {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr>\n");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", esc(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

fn age(d: Option<Duration>) -> String {
    d.map_or("never read".to_string(), |d| format!("{:.1} s", d.as_secs_f64()))
}

/// The HTML status page.
pub fn render_html(s: &StatusSnapshot) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>pgha edge {name}</title>\n\
         <style>body{{font-family:sans-serif}}table{{border-collapse:collapse}}td,th{{border:1px solid #999;\
         padding:2px 8px}}th{{background:#ddd}}</style></head><body>\n\
         <h1>pgha edge {name} (cluster {cluster})</h1>\n<p>health: <b>{health}</b> &middot; DCS view age: {age} \
         &middot; routing: {routing} &middot; primary: {primary}</p>\n",
        name = esc(&s.name),
        cluster = esc(&s.cluster),
        health = if s.healthy { "healthy" } else { "UNHEALTHY" },
        age = age(s.view_age),
        routing = if s.table.open {
            "open"
        } else {
            "closed (no DCS view yet)"
        },
        primary = esc(&match &s.table.primary {
            Some(b) => format!("{} ({})", b.name, b.addr),
            None => format!("none: {}", s.table.primary_reason),
        }),
    );
    let vip = match (&s.vip, &s.vip_holder) {
        (None, _) => "not configured on this edge".to_string(),
        (Some(a), Some(h)) => format!("{a} held by {h}"),
        (Some(a), None) => format!("{a} held by nobody"),
    };
    let _ = writeln!(out, "<p>VIP: {}</p>", esc(&vip));
    let ports: Vec<Vec<String>> = s
        .ports
        .iter()
        .map(|p| {
            let targets: Vec<&str> = s.table.targets(p.port).iter().map(|b| b.name.as_str()).collect();
            vec![
                p.port.to_string(),
                p.listen.clone(),
                targets.join(", "),
                p.active.to_string(),
                p.cap.to_string(),
                p.connects.to_string(),
                p.refused.to_string(),
                p.full.to_string(),
                p.no_hello.to_string(),
                p.cancels.to_string(),
                p.cut.to_string(),
                p.bytes_in.to_string(),
                p.bytes_out.to_string(),
            ]
        })
        .collect();
    let headers = [
        "Port",
        "Listen",
        "Backends",
        "Sessions",
        "Cap",
        "Connects",
        "Refused",
        "Full",
        "No hello",
        "Cancels",
        "Cut",
        "Bytes in",
        "Bytes out",
    ];
    table_html(&mut out, "Ports", &headers, &ports);
    let backends: Vec<Vec<String>> = s
        .backends
        .iter()
        .map(|b| {
            let ports: Vec<&str> = b.ports.iter().map(|p| p.as_str()).collect();
            vec![
                b.name.clone(),
                b.addr.clone(),
                b.published.clone(),
                if ports.is_empty() {
                    "not routed".to_string()
                } else {
                    ports.join(", ")
                },
                b.sessions.to_string(),
            ]
        })
        .collect();
    table_html(
        &mut out,
        "Backends",
        &["Member", "Address", "Published", "Routed on", "Sessions"],
        &backends,
    );
    let sessions: Vec<Vec<String>> = s
        .sessions
        .iter()
        .map(|x| {
            vec![
                x.id.to_string(),
                x.port.to_string(),
                x.client.to_string(),
                x.backend.clone(),
                format!("{:.0} s", x.age.as_secs_f64()),
                x.bytes_in.to_string(),
                x.bytes_out.to_string(),
            ]
        })
        .collect();
    let headers = ["Id", "Port", "Client", "Backend", "Age", "Bytes in", "Bytes out"];
    table_html(&mut out, "Live sessions", &headers, &sessions);
    out.push_str("</body></html>\n");
    out
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, String)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

/// The Prometheus text of `/metrics`.
pub fn render_metrics(s: &StatusSnapshot) -> String {
    let mut out = String::new();
    let edge = format!("edge=\"{}\"", s.name);
    let one = |v: String| vec![(edge.clone(), v)];
    metric(
        &mut out,
        "pgha_edge_healthy",
        "gauge",
        "1 when listeners are up and the DCS view is fresh",
        &one(u8::from(s.healthy).to_string()),
    );
    let age = s
        .view_age
        .map_or("NaN".to_string(), |d| format!("{:.3}", d.as_secs_f64()));
    metric(
        &mut out,
        "pgha_edge_view_age_seconds",
        "gauge",
        "Age of the DCS view",
        &one(age),
    );
    let primary = u8::from(s.table.primary.is_some()).to_string();
    metric(
        &mut out,
        "pgha_edge_primary_routed",
        "gauge",
        "1 while the primary port has a backend",
        &one(primary),
    );
    let holder = u8::from(s.vip_holder.as_deref() == Some(s.name.as_str())).to_string();
    metric(
        &mut out,
        "pgha_edge_vip_holder",
        "gauge",
        "1 while this edge holds the VIP",
        &one(holder),
    );
    let per_port = |f: &dyn Fn(&PortStats) -> u64| -> Vec<(String, String)> {
        s.ports
            .iter()
            .map(|p| (format!("{edge},port=\"{}\"", p.port), f(p).to_string()))
            .collect()
    };
    metric(
        &mut out,
        "pgha_edge_sessions",
        "gauge",
        "Live client sessions",
        &per_port(&|p| p.active),
    );
    let backends = per_port(&|p| s.table.targets(p.port).len() as u64);
    metric(
        &mut out,
        "pgha_edge_backends",
        "gauge",
        "Backends taking new sessions",
        &backends,
    );
    metric(
        &mut out,
        "pgha_edge_connects_total",
        "counter",
        "Sessions forwarded",
        &per_port(&|p| p.connects),
    );
    metric(
        &mut out,
        "pgha_edge_refused_total",
        "counter",
        "Clients closed without a backend",
        &per_port(&|p| p.refused),
    );
    metric(
        &mut out,
        "pgha_edge_max_sessions",
        "gauge",
        "Connection cap of the port",
        &per_port(&|p| p.cap),
    );
    metric(
        &mut out,
        "pgha_edge_full_total",
        "counter",
        "Clients refused at the port's cap",
        &per_port(&|p| p.full),
    );
    metric(
        &mut out,
        "pgha_edge_no_hello_total",
        "counter",
        "Clients closed before a usable first message",
        &per_port(&|p| p.no_hello),
    );
    metric(
        &mut out,
        "pgha_edge_cancels_total",
        "counter",
        "Cancel requests delivered",
        &per_port(&|p| p.cancels),
    );
    metric(
        &mut out,
        "pgha_edge_cut_total",
        "counter",
        "Sessions closed on a role change",
        &per_port(&|p| p.cut),
    );
    metric(
        &mut out,
        "pgha_edge_bytes_in_total",
        "counter",
        "Bytes from clients",
        &per_port(&|p| p.bytes_in),
    );
    metric(
        &mut out,
        "pgha_edge_bytes_out_total",
        "counter",
        "Bytes to clients",
        &per_port(&|p| p.bytes_out),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::routing::Backend;

    fn snapshot() -> StatusSnapshot {
        let mut table = RoutingTable::closed();
        table.open = true;
        table.primary = Some(Backend {
            name: "db1".into(),
            addr: "10.0.0.1:5432".into(),
        });
        table.any = table.primary.iter().cloned().collect();
        StatusSnapshot {
            name: "edge<1>".into(),
            cluster: "main".into(),
            healthy: true,
            table,
            ports: vec![PortStats {
                port: Port::Primary,
                listen: "0.0.0.0:5432".into(),
                active: 1,
                connects: 7,
                refused: 2,
                cap: 334,
                full: 3,
                no_hello: 4,
                cancels: 5,
                cut: 1,
                bytes_in: 100,
                bytes_out: 2000,
            }],
            backends: vec![BackendRow {
                name: "db1".into(),
                addr: "10.0.0.1:5432".into(),
                published: "primary, running".into(),
                ports: vec![Port::Primary, Port::Any],
                sessions: 1,
            }],
            sessions: vec![SessionRow {
                id: 3,
                port: Port::Primary,
                client: "10.0.0.9:40000".parse().expect("addr"),
                backend: "db1".into(),
                age: Duration::from_secs(5),
                bytes_in: 10,
                bytes_out: 20,
            }],
            vip: Some("10.0.0.10/24".into()),
            vip_holder: Some("edge2".into()),
            view_age: Some(Duration::from_millis(300)),
        }
    }

    #[test]
    fn html_shows_ports_backends_sessions_vip_and_age() {
        let html = render_html(&snapshot());
        for needle in [
            "pgha edge edge&lt;1&gt;",
            "<td>primary</td><td>0.0.0.0:5432</td><td>db1</td><td>1</td><td>334</td><td>7</td><td>2</td><td>3</td><td>4</td><td>5</td><td>1</td><td>100</td><td>2000</td>",
            "<td>db1</td><td>10.0.0.1:5432</td><td>primary, running</td><td>primary, any</td><td>1</td>",
            "<td>3</td><td>primary</td><td>10.0.0.9:40000</td><td>db1</td><td>5 s</td>",
            "VIP: 10.0.0.10/24 held by edge2",
            "DCS view age: 0.3 s",
            "health: <b>healthy</b>",
        ] {
            assert!(html.contains(needle), "{needle} missing from\n{html}");
        }
        let mut closed = snapshot();
        closed.table = RoutingTable::closed();
        closed.view_age = None;
        closed.healthy = false;
        let html = render_html(&closed);
        assert!(html.contains("closed (no DCS view yet)") && html.contains("never read") && html.contains("UNHEALTHY"));
    }

    #[test]
    fn metrics_text() {
        let text = render_metrics(&snapshot());
        for needle in [
            "pgha_edge_healthy{edge=\"edge<1>\"} 1",
            "pgha_edge_view_age_seconds{edge=\"edge<1>\"} 0.300",
            "pgha_edge_primary_routed{edge=\"edge<1>\"} 1",
            "pgha_edge_vip_holder{edge=\"edge<1>\"} 0",
            "pgha_edge_connects_total{edge=\"edge<1>\",port=\"primary\"} 7",
            "pgha_edge_bytes_out_total{edge=\"edge<1>\",port=\"primary\"} 2000",
            "pgha_edge_max_sessions{edge=\"edge<1>\",port=\"primary\"} 334",
            "pgha_edge_full_total{edge=\"edge<1>\",port=\"primary\"} 3",
            "pgha_edge_cancels_total{edge=\"edge<1>\",port=\"primary\"} 5",
            "# TYPE pgha_edge_cut_total counter",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }
}
