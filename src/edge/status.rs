//! The edge's status page (HTML, like HAProxy's stats page, refreshing itself) and `/status.json`, rendered from one
//! snapshot (pure). `/metrics` is rendered from the same snapshot by `super::metrics` (edge/metrics.rs).

use std::fmt::Write;
use std::time::Duration;

use super::changes::{Change, ChangeKind};
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
    /// The last routing changes and VIP moves, newest first.
    pub changes: Vec<Change>,
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

/// Seconds between the page's own reloads.
pub const REFRESH_S: u32 = 5;

fn kind(k: ChangeKind) -> &'static str {
    match k {
        ChangeKind::Route => "routing",
        ChangeKind::Vip => "VIP",
    }
}

/// `2026-01-02 03:04:05.678` of a time in milliseconds since the epoch.
fn utc(unix_ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000);
    match t {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        ),
        Err(_) => unix_ms.to_string(),
    }
}

/// `/status.json`: what the page shows, for scripts.
pub fn render_json(s: &StatusSnapshot) -> serde_json::Value {
    let backend = |b: &super::routing::Backend| serde_json::json!({ "name": b.name, "addr": b.addr });
    serde_json::json!({
        "name": s.name,
        "cluster": s.cluster,
        "healthy": s.healthy,
        "view_age_seconds": s.view_age.map(|d| d.as_secs_f64()),
        "routing": {
            "open": s.table.open,
            "leader": s.table.leader,
            "primary": s.table.primary.as_ref().map(backend),
            "primary_reason": s.table.primary_reason,
            "replicas": s.table.replicas.iter().map(backend).collect::<Vec<_>>(),
            "any": s.table.any.iter().map(backend).collect::<Vec<_>>(),
        },
        "vip": { "address": s.vip, "holder": s.vip_holder },
        "ports": s.ports.iter().map(|p| serde_json::json!({
            "port": p.port.as_str(), "listen": p.listen, "sessions": p.active, "cap": p.cap,
            "connects": p.connects, "refused": p.refused, "full": p.full, "no_hello": p.no_hello,
            "cancels": p.cancels, "cut": p.cut, "bytes_in": p.bytes_in, "bytes_out": p.bytes_out,
        })).collect::<Vec<_>>(),
        "backends": s.backends.iter().map(|b| serde_json::json!({
            "name": b.name, "addr": b.addr, "published": b.published,
            "ports": b.ports.iter().map(|p| p.as_str()).collect::<Vec<_>>(), "sessions": b.sessions,
        })).collect::<Vec<_>>(),
        "sessions": s.sessions.iter().map(|x| serde_json::json!({
            "id": x.id, "port": x.port.as_str(), "client": x.client.to_string(), "backend": x.backend,
            "age_seconds": x.age.as_secs_f64(), "bytes_in": x.bytes_in, "bytes_out": x.bytes_out,
        })).collect::<Vec<_>>(),
        "changes": s.changes.iter().map(|c| serde_json::json!({
            "unix_ms": c.unix_ms, "time": utc(c.unix_ms), "kind": c.kind, "text": c.text,
        })).collect::<Vec<_>>(),
    })
}

/// The HTML status page.
pub fn render_html(s: &StatusSnapshot) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"{REFRESH_S}\"><title>pgha edge {name}</title>\n\
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
    let changes: Vec<Vec<String>> = s
        .changes
        .iter()
        .map(|c| vec![utc(c.unix_ms), kind(c.kind).to_string(), c.text.clone()])
        .collect();
    table_html(&mut out, "Last changes", &["Time (UTC)", "What", "Change"], &changes);
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::edge::routing::Backend;

    /// An edge routing the primary port to db1, the VIP held by edge2, one session and one change.
    pub(crate) fn snapshot() -> StatusSnapshot {
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
            changes: vec![Change {
                unix_ms: 1_767_323_045_678,
                kind: ChangeKind::Vip,
                text: "VIP now held by edge2 (last held by edge1)".into(),
            }],
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
            "<meta http-equiv=\"refresh\" content=\"5\">",
            "<td>2026-01-02 03:04:05.678</td><td>VIP</td><td>VIP now held by edge2 (last held by edge1)</td>",
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
    fn json_has_routing_vip_ports_and_changes() {
        let j = render_json(&snapshot());
        assert_eq!(j["routing"]["primary"]["name"], "db1");
        assert_eq!(j["vip"]["holder"], "edge2");
        assert_eq!(j["ports"][0]["connects"], 7);
        assert_eq!(j["changes"][0]["kind"], "vip");
        assert_eq!(j["changes"][0]["time"], "2026-01-02 03:04:05.678");
        assert_eq!(j["sessions"][0]["client"], "10.0.0.9:40000");
    }
}
