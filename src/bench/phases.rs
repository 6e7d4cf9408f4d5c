//! Per-phase failover timings read from the hosts' JSON logs: when the DCS declared the old leader gone (detect),
//! the new leader took the key (elect), PostgreSQL accepted writes (promote), an edge routed to it (route) and an
//! edge took the VIP (vip).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// One log line of one host: its `event` field and the other fields it carries (the message among them).
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub host: String,
    pub at: SystemTime,
    /// The line's `event` field; empty when it has none.
    pub event: String,
    /// Every field as text (`message` too), from the record's `fields`.
    pub fields: BTreeMap<String, String>,
}

impl LogLine {
    /// The text of field `name`, if the line has it.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// Log lines of `host` from pgha's JSON log output (`log.format = "json"`); lines that are not JSON log records
/// (PostgreSQL's own output, say) are skipped.
pub fn parse_json_log(host: &str, text: &str) -> Vec<LogLine> {
    text.lines()
        .filter_map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            let at = OffsetDateTime::parse(v.get("timestamp")?.as_str()?, &Rfc3339).ok()?;
            let fields: BTreeMap<String, String> = v
                .get("fields")?
                .as_object()?
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string)))
                .collect();
            Some(LogLine {
                host: host.to_string(),
                at: SystemTime::from(at),
                event: fields.get("event").cloned().unwrap_or_default(),
                fields,
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

impl Phases {
    /// Each phase's name and time, in the order they happen in a failover.
    pub fn named(&self) -> [(&'static str, Option<f64>); 5] {
        [
            ("detect", self.detect_ms),
            ("elect", self.elect_ms),
            ("promote", self.promote_ms),
            ("route", self.route_ms),
            ("VIP", self.vip_ms),
        ]
    }
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

/// The `event` values of each phase (set where the product logs them: src/dcs/lease_expiry.rs, src/ha/actions.rs,
/// src/edge/proxy.rs, src/edge/vip/holding.rs). A dead or frozen holder's lease expires through the Raft log; a
/// planned hand-over releases the key.
const DETECT: &[&str] = &["leases_expired", "leader_key_released"];
const ELECT: &[&str] = &["race_won", "leader_key_taken"];
const PROMOTE: &str = "promote";
const ROUTE: &str = "edge_route_changed";
const VIP: &str = "vip_acquired";

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
        l.event == ROUTE
            && l.field("port") == Some("primary")
            && run.new_leader.is_some_and(|n| l.field("to") == Some(n))
    };
    Phases {
        detect_ms: first(&|l| DETECT.contains(&l.event.as_str())),
        elect_ms: first(&|l| on_leader(l) && ELECT.contains(&l.event.as_str())),
        promote_ms: first(&|l| on_leader(l) && l.event == PROMOTE),
        route_ms: first(&|l| on_edge(l) && routed(l)),
        vip_ms: first(&|l| on_edge(l) && l.event == VIP),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line with `event` and the extra `fields`.
    fn line(host: &str, ms: u64, event: &str, fields: &[(&str, &str)]) -> LogLine {
        let mut f: BTreeMap<String, String> = fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        f.insert("event".into(), event.into());
        LogLine {
            host: host.into(),
            at: SystemTime::UNIX_EPOCH + Duration::from_millis(ms),
            event: event.into(),
            fields: f,
        }
    }

    fn route(host: &str, ms: u64, port: &str, to: &str) -> LogLine {
        line(host, ms, "edge_route_changed", &[("port", port), ("to", to)])
    }

    #[test]
    fn reads_tracing_json_records_and_skips_the_rest() {
        let text = concat!(
            r#"{"timestamp":"2026-11-30T21:00:00.250000Z","level":"INFO","fields":{"message":"won the leader race","event":"race_won","lsn":"0/3000060","n":3}}"#,
            "\n2026-11-30 21:00:00.300 UTC [123] LOG:  database system is ready\n",
            r#"{"timestamp":"not a time","level":"INFO","fields":{"message":"x"}}"#,
            "\n",
            r#"{"timestamp":"2026-11-30T21:00:00.400000Z","level":"INFO","fields":{"message":"no event here"}}"#,
            "\n"
        );
        let lines = parse_json_log("db2", text);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].event, "race_won");
        assert_eq!(lines[0].field("message"), Some("won the leader race"));
        assert_eq!(lines[0].field("lsn"), Some("0/3000060"));
        // Non-string fields are kept as their JSON text.
        assert_eq!(lines[0].field("n"), Some("3"));
        assert_eq!(lines[0].host, "db2");
        let at = lines[0]
            .at
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after the epoch");
        assert_eq!(at.as_millis() % 1000, 250);
        assert_eq!(lines[1].event, "");
    }

    #[test]
    fn phases_of_a_failover() {
        let edges = ["edge1", "edge2"];
        let lines = vec![
            // Before the fault: ignored.
            line("db1", 900, "leases_expired", &[]),
            line("db2", 2100, "leases_expired", &[]),
            line("db3", 2150, "race_won", &[]),
            line("db2", 2160, "race_won", &[]),
            line("db2", 2300, "promote", &[("timeline", "2")]),
            route("edge2", 2350, "primary", "db2"),
            route("edge1", 2340, "primary", "none"),
            route("edge1", 2400, "primary", "db2"),
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
            line("db1", 1050, "leader_key_released", &[("candidate", "db2")]),
            line("db2", 1080, "leader_key_taken", &[]),
            line("db2", 1200, "promote", &[]),
            line("edge2", 1900, "vip_acquired", &[]),
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

    /// One line at 1100 ms (100 ms after the fault) and the phases it makes when db2 is the new leader.
    #[test]
    fn which_lines_make_which_phase() {
        let edges = ["edge1"];
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_millis(1000);
        let cases: Vec<(&str, LogLine, Phases)> = vec![
            (
                "a lease expiry on any host detects",
                line("db3", 1100, "leases_expired", &[]),
                Phases {
                    detect_ms: Some(100.0),
                    ..Phases::default()
                },
            ),
            (
                "a clean release detects",
                line("db1", 1100, "leader_key_released", &[]),
                Phases {
                    detect_ms: Some(100.0),
                    ..Phases::default()
                },
            ),
            (
                "the new leader taking the key elects",
                line("db2", 1100, "leader_key_taken", &[]),
                Phases {
                    elect_ms: Some(100.0),
                    ..Phases::default()
                },
            ),
            (
                "another member's race does not",
                line("db3", 1100, "race_won", &[]),
                Phases::default(),
            ),
            (
                "the new leader's promotion",
                line("db2", 1100, "promote", &[]),
                Phases {
                    promote_ms: Some(100.0),
                    ..Phases::default()
                },
            ),
            (
                "a promotion elsewhere does not",
                line("db3", 1100, "promote", &[]),
                Phases::default(),
            ),
            (
                "an edge routing the primary port to the new leader",
                route("edge1", 1100, "primary", "db2"),
                Phases {
                    route_ms: Some(100.0),
                    ..Phases::default()
                },
            ),
            (
                "a primary route to nobody does not",
                route("edge1", 1100, "primary", "none"),
                Phases::default(),
            ),
            (
                "a replica route does not",
                route("edge1", 1100, "replica", "db2"),
                Phases::default(),
            ),
            (
                "a route change logged by a db host does not",
                route("db2", 1100, "primary", "db2"),
                Phases::default(),
            ),
            (
                "an edge acquiring the VIP",
                line("edge1", 1100, "vip_acquired", &[]),
                Phases {
                    vip_ms: Some(100.0),
                    ..Phases::default()
                },
            ),
            (
                "a db host's line with the VIP event does not",
                line("db1", 1100, "vip_acquired", &[]),
                Phases::default(),
            ),
            (
                "a line before the fault does not",
                line("db2", 999, "promote", &[]),
                Phases::default(),
            ),
            (
                "the text does not matter, only the event",
                line(
                    "db2",
                    1100,
                    "",
                    &[("message", "promoted to primary: won the leader race")],
                ),
                Phases::default(),
            ),
        ];
        for (name, l, want) in cases {
            let got = phases(
                &[l],
                &Outcome {
                    t0,
                    new_leader: Some("db2"),
                    edges: &edges,
                },
            );
            assert_eq!(got, want, "{name}");
        }
    }
}
