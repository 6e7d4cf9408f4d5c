//! Per-phase failover timings read from the hosts' JSON logs: when the DCS declared the old leader gone (detect),
//! the new leader took the key (elect), PostgreSQL accepted writes (promote), an edge routed to it (route) and an
//! edge took the VIP (vip).

use std::time::{Duration, SystemTime};

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// One log line of one host.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub host: String,
    pub at: SystemTime,
    pub message: String,
}

/// Log lines of `host` from pgha's JSON log output (`log.format = "json"`); lines that are not JSON log records
/// (PostgreSQL's own output, say) are skipped.
pub fn parse_json_log(host: &str, text: &str) -> Vec<LogLine> {
    text.lines()
        .filter_map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            let at = OffsetDateTime::parse(v.get("timestamp")?.as_str()?, &Rfc3339).ok()?;
            let message = v.get("fields")?.get("message")?.as_str()?.to_string();
            Some(LogLine {
                host: host.to_string(),
                at: SystemTime::from(at),
                message,
            })
        })
        .collect()
}

/// Milliseconds from the fault to each phase's first log line; None when the phase did not happen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Phases {
    pub detect_ms: Option<f64>,
    pub elect_ms: Option<f64>,
    pub promote_ms: Option<f64>,
    pub route_ms: Option<f64>,
    pub vip_ms: Option<f64>,
}

/// What a run changed, to know whose lines count.
pub struct Outcome<'a> {
    /// The fault's wall-clock instant.
    pub t0: SystemTime,
    /// The primary after the run, if it changed.
    pub new_leader: Option<&'a str>,
    /// The edge hosts.
    pub edges: &'a [&'a str],
}

fn is_detect(l: &LogLine) -> bool {
    // A dead or frozen holder: its lease expires through the Raft log; a planned hand-over: the key is released.
    l.message.starts_with("leases expired") || l.message.starts_with("leader key released")
}

fn is_elect(l: &LogLine) -> bool {
    l.message.starts_with("won the leader race") || l.message.starts_with("took the leader key")
}

/// The phases of one run from every host's lines.
pub fn phases(lines: &[LogLine], run: &Outcome) -> Phases {
    let first = |keep: &dyn Fn(&LogLine) -> bool| {
        lines
            .iter()
            .filter(|l| l.at >= run.t0 && keep(l))
            .map(|l| l.at.duration_since(run.t0).unwrap_or(Duration::ZERO))
            .min()
            .map(|d| d.as_secs_f64() * 1000.0)
    };
    let on_edge = |l: &LogLine| run.edges.contains(&l.host.as_str());
    let on_leader = |l: &LogLine| run.new_leader == Some(l.host.as_str());
    let routed = |l: &LogLine| {
        run.new_leader
            .is_some_and(|n| l.message.starts_with("primary route") && l.message.contains(&format!("-> {n}:")))
    };
    Phases {
        detect_ms: first(&is_detect),
        elect_ms: first(&|l| on_leader(l) && is_elect(l)),
        promote_ms: first(&|l| on_leader(l) && l.message.starts_with("promoted to primary")),
        route_ms: first(&|l| on_edge(l) && routed(l)),
        vip_ms: first(&|l| on_edge(l) && l.message.starts_with("VIP ") && l.message.contains(" acquired on ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(host: &str, ms: u64, message: &str) -> LogLine {
        LogLine {
            host: host.into(),
            at: SystemTime::UNIX_EPOCH + Duration::from_millis(ms),
            message: message.into(),
        }
    }

    #[test]
    fn reads_tracing_json_records_and_skips_the_rest() {
        let text = concat!(
            r#"{"timestamp":"2026-11-30T21:00:00.250000Z","level":"INFO","fields":{"message":"won the leader race","lsn":"0/3000060"}}"#,
            "\n2026-11-30 21:00:00.300 UTC [123] LOG:  database system is ready\n",
            r#"{"timestamp":"not a time","level":"INFO","fields":{"message":"x"}}"#,
            "\n"
        );
        let lines = parse_json_log("db2", text);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].message, "won the leader race");
        assert_eq!(lines[0].host, "db2");
        let at = lines[0]
            .at
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after the epoch");
        assert_eq!(at.as_millis() % 1000, 250);
    }

    #[test]
    fn phases_of_a_failover() {
        let edges = ["edge1", "edge2"];
        let lines = vec![
            // Before the fault: ignored.
            line("db1", 900, "leases expired: no keepalive within their TTL"),
            line("db2", 2100, "leases expired: no keepalive within their TTL"),
            line("db3", 2150, "won the leader race"),
            line("db2", 2160, "won the leader race"),
            line(
                "db2",
                2300,
                "promoted to primary: won the leader race after the leader key expired",
            ),
            line("edge2", 2350, "primary route db1 -> db2: leader key moved"),
            line("edge1", 2340, "primary route db1 -> none: no leader"),
            line("edge1", 2400, "primary route none -> db2: leader key moved"),
        ];
        let p = phases(
            &lines,
            &Outcome {
                t0: SystemTime::UNIX_EPOCH + Duration::from_millis(1000),
                new_leader: Some("db2"),
                edges: &edges,
            },
        );
        assert_eq!(
            p,
            Phases {
                detect_ms: Some(1100.0),
                // Only the new leader's lines count.
                elect_ms: Some(1160.0),
                promote_ms: Some(1300.0),
                route_ms: Some(1350.0),
                vip_ms: None,
            }
        );
    }

    #[test]
    fn phases_of_a_vip_move_and_a_switchover() {
        let edges = ["edge1", "edge2"];
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_millis(1000);
        let lines = vec![
            line("db1", 1050, "leader key released for the switchover"),
            line("db2", 1080, "took the leader key as the switchover/failover candidate"),
            line("db2", 1200, "promoted to primary: switchover/failover candidate"),
            line("edge2", 1900, "VIP 10.0.0.100/24 acquired on veth0: no holder"),
        ];
        let p = phases(
            &lines,
            &Outcome {
                t0,
                new_leader: Some("db2"),
                edges: &edges,
            },
        );
        assert_eq!(
            (p.detect_ms, p.elect_ms, p.promote_ms, p.route_ms, p.vip_ms),
            (Some(50.0), Some(80.0), Some(200.0), None, Some(900.0))
        );
        // No leader change: no elect/promote/route even if the lines exist.
        let p = phases(
            &lines,
            &Outcome {
                t0,
                new_leader: None,
                edges: &edges,
            },
        );
        assert_eq!((p.elect_ms, p.promote_ms, p.route_ms), (None, None, None));
    }
}
