//! Prometheus text exposition of a db node's state (pure), named like Patroni's metrics with a `pgha_` prefix.

use std::fmt::Write;
use std::time::Instant;

use super::health::NodeSnapshot;

fn gauge(out: &mut String, name: &str, help: &str, scope: &str, member: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    let _ = writeln!(out, "{name}{{scope=\"{scope}\",name=\"{member}\"}} {value}");
}

/// Renders the metrics of `snap` at `now` (a node that has not looped yet reports only `pgha_up 0`).
pub fn render(cluster: &str, snap: Option<&NodeSnapshot>, now: Instant) -> String {
    let mut out = String::new();
    let Some(s) = snap else {
        let _ = writeln!(
            out,
            "# HELP pgha_up 1 once the HA loop has run\n# TYPE pgha_up gauge\npgha_up 0"
        );
        return out;
    };
    let (c, n) = (cluster, s.name.as_str());
    let st = s.status.as_ref();
    gauge(&mut out, "pgha_up", "1 once the HA loop has run", c, n, 1);
    gauge(
        &mut out,
        "pgha_postgres_running",
        "1 if PostgreSQL answers",
        c,
        n,
        u8::from(st.is_some()),
    );
    let primary = s.holds_leader && st.is_some_and(|x| !x.in_recovery);
    gauge(
        &mut out,
        "pgha_primary",
        "1 if this node is the leading primary",
        c,
        n,
        u8::from(primary),
    );
    gauge(
        &mut out,
        "pgha_replica",
        "1 if PostgreSQL is in recovery",
        c,
        n,
        u8::from(st.is_some_and(|x| x.in_recovery)),
    );
    let synchronous = s.view.sync_members().is_some_and(|k| k.members.contains(&s.name));
    gauge(
        &mut out,
        "pgha_sync_standby",
        "1 if this replica is a synchronous (or quorum) standby: it holds every acknowledged commit",
        c,
        n,
        u8::from(synchronous && st.is_some_and(|x| x.in_recovery)),
    );
    gauge(
        &mut out,
        "pgha_postgres_timeline",
        "current timeline",
        c,
        n,
        st.map(|x| x.timeline).unwrap_or(0),
    );
    gauge(
        &mut out,
        "pgha_xlog_location",
        "current WAL position (primary)",
        c,
        n,
        st.and_then(|x| x.current_lsn).unwrap_or(0),
    );
    gauge(
        &mut out,
        "pgha_xlog_received_location",
        "received WAL position (replica)",
        c,
        n,
        st.and_then(|x| x.receive_lsn).unwrap_or(0),
    );
    gauge(
        &mut out,
        "pgha_xlog_replayed_location",
        "replayed WAL position (replica)",
        c,
        n,
        st.and_then(|x| x.replay_lsn).unwrap_or(0),
    );
    gauge(
        &mut out,
        "pgha_replication_lag_bytes",
        "bytes behind the leader's published position",
        c,
        n,
        s.lag_bytes().unwrap_or(0),
    );
    gauge(
        &mut out,
        "pgha_pending_restart",
        "1 if a parameter change needs a restart",
        c,
        n,
        u8::from(st.is_some_and(|x| x.pending_restart)),
    );
    gauge(
        &mut out,
        "pgha_is_paused",
        "1 in maintenance mode",
        c,
        n,
        u8::from(s.view.config.paused),
    );
    gauge(
        &mut out,
        "pgha_dcs_last_seen",
        "epoch seconds of the last successful DCS read",
        c,
        n,
        s.unix_ms / 1000,
    );
    // The snapshot is published only by a loop whose DCS read succeeded, so its age is the time since then.
    gauge(
        &mut out,
        "pgha_dcs_last_seen_age_seconds",
        "seconds since the HA loop last read the DCS successfully",
        c,
        n,
        format!("{:.3}", now.saturating_duration_since(s.taken_at).as_secs_f64()),
    );
    out
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::api::health::NodeSnapshot;
    use crate::cluster::model::{ClusterView, LeaderKey, MemberInfo, PgRole, PgState};
    use crate::postgres::PgStatus;

    /// db2, a replica 1000 bytes behind the leader db1.
    fn replica_snapshot() -> NodeSnapshot {
        let mut view = ClusterView {
            leader: Some(LeaderKey {
                name: "db1".into(),
                lease: 1,
                mod_revision: 1,
            }),
            ..ClusterView::default()
        };
        let mut leader = MemberInfo::for_test("db1", PgRole::Primary, PgState::Running, 10_000);
        leader.timeline = 3;
        view.members.insert("db1".into(), leader);
        NodeSnapshot {
            name: "db2".into(),
            taken_at: Instant::now(),
            unix_ms: 1_700_000_000_000,
            view,
            status: Some(PgStatus {
                in_recovery: true,
                timeline: 3,
                checkpoint_timeline: 3,
                current_lsn: None,
                receive_lsn: Some(9_000),
                replay_lsn: Some(9_000),
                system_identifier: 1,
                pending_restart: true,
                synchronous_standby_names: String::new(),
                wal_receiver: None,
                replication: Vec::new(),
            }),
            holds_leader: false,
            noloadbalance: false,
            tags: Default::default(),
        }
    }

    #[test]
    fn no_snapshot_reports_down() {
        assert!(super::render("main", None, Instant::now()).contains("pgha_up 0"));
    }

    #[test]
    fn every_required_metric_is_present() {
        let snap = replica_snapshot();
        let now = snap.taken_at + Duration::from_millis(1500);
        let text = super::render("main", Some(&snap), now);
        for name in [
            "pgha_primary{",
            "pgha_replica{",
            "pgha_postgres_running{",
            "pgha_postgres_timeline{",
            "pgha_xlog_location{",
            "pgha_xlog_received_location{",
            "pgha_xlog_replayed_location{",
            "pgha_replication_lag_bytes{",
            "pgha_pending_restart{",
            "pgha_is_paused{",
            "pgha_dcs_last_seen{",
        ] {
            assert!(text.contains(name), "{name} missing:\n{text}");
        }
        assert!(
            text.contains("pgha_dcs_last_seen_age_seconds{scope=\"main\",name=\"db2\"} 1.500"),
            "{text}"
        );
        assert!(text.contains("pgha_replica{scope=\"main\",name=\"db2\"} 1"), "{text}");
        assert!(
            text.contains("pgha_pending_restart{scope=\"main\",name=\"db2\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("pgha_postgres_timeline{scope=\"main\",name=\"db2\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("pgha_replication_lag_bytes{scope=\"main\",name=\"db2\"} 1000"),
            "{text}"
        );
    }
}
