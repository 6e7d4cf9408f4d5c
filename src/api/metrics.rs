//! Prometheus text exposition of a db node's state (pure), named like Patroni's metrics with a `pgha_` prefix.

use std::fmt::Write;

use super::health::NodeSnapshot;

fn gauge(out: &mut String, name: &str, help: &str, scope: &str, member: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    let _ = writeln!(out, "{name}{{scope=\"{scope}\",name=\"{member}\"}} {value}");
}

/// Renders the metrics of `snap` (a node that has not looped yet reports only `pgha_up 0`).
pub fn render(cluster: &str, snap: Option<&NodeSnapshot>) -> String {
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
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn no_snapshot_reports_down() {
        assert!(super::render("main", None).contains("pgha_up 0"));
    }
}
