//! A db node's state metrics, computed at scrape time from the snapshot the HA loop publishes: the Patroni-compatible
//! names (`pgha_primary{scope,name}`, ... dashboards depend on them), the HA role and lease, PostgreSQL's slots.

use std::fmt;
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::health::NodeSnapshot;
use super::rest::SharedSnapshot;
use crate::metrics::ha::HA;
use crate::metrics::{flag, gauge, Labels};
use crate::postgres::SlotReport;

/// The db node's collector.
#[derive(Debug)]
pub struct DbCollector {
    pub cluster: String,
    pub snapshot: SharedSnapshot,
}

impl Collector for DbCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let snap = self.snapshot.read().ok().and_then(|s| s.clone());
        let now = Instant::now();
        encode(
            &mut enc,
            &self.cluster,
            snap.as_ref(),
            now,
            HA.lease_remaining(now),
            &HA.slots(),
        )
    }
}

/// The role label of `pgha_ha_role`.
pub fn role(s: Option<&NodeSnapshot>) -> &'static str {
    match s.and_then(|s| s.status.as_ref().map(|st| (s.holds_leader, st.in_recovery))) {
        None => "stopped",
        Some((true, false)) => "primary",
        Some((_, true)) => "replica",
        // Running writable without the leader key: being demoted or fenced.
        Some((false, false)) => "demoting",
    }
}

const ROLES: [&str; 4] = ["primary", "replica", "demoting", "stopped"];

/// Writes every family of a db node (pure: the snapshot, lease and slots are parameters).
pub fn encode(
    enc: &mut DescriptorEncoder,
    cluster: &str,
    snap: Option<&NodeSnapshot>,
    now: Instant,
    lease_remaining: f64,
    slots: &[SlotReport],
) -> fmt::Result {
    let Some(s) = snap else {
        return gauge(enc, "up", "1 once the HA loop has run", &[(Labels::new(), 0i64)]);
    };
    let id: Labels = vec![("scope", cluster.to_string()), ("name", s.name.clone())];
    let one = |v: i64| [(id.clone(), v)];
    let u = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let st = s.status.as_ref();
    let in_recovery = st.is_some_and(|x| x.in_recovery);
    // Patroni's names, kept as they were.
    gauge(enc, "up", "1 once the HA loop has run", &one(1))?;
    gauge(
        enc,
        "postgres_running",
        "1 if PostgreSQL answers",
        &one(flag(st.is_some())),
    )?;
    let primary = s.holds_leader && st.is_some_and(|x| !x.in_recovery);
    gauge(
        enc,
        "primary",
        "1 if this node is the leading primary",
        &one(flag(primary)),
    )?;
    gauge(
        enc,
        "replica",
        "1 if PostgreSQL is in recovery",
        &one(flag(in_recovery)),
    )?;
    let synchronous = s.view.sync_members().is_some_and(|k| k.members.contains(&s.name));
    gauge(
        enc,
        "sync_standby",
        "1 if this replica is a synchronous (or quorum) standby: it holds every acknowledged commit",
        &one(flag(synchronous && in_recovery)),
    )?;
    gauge(
        enc,
        "postgres_timeline",
        "current timeline",
        &one(i64::from(st.map_or(0, |x| x.timeline))),
    )?;
    let lsn = |f: fn(&crate::postgres::PgStatus) -> Option<u64>| u(st.and_then(f).unwrap_or(0));
    gauge(
        enc,
        "xlog_location",
        "current WAL position (primary)",
        &one(lsn(|x| x.current_lsn)),
    )?;
    gauge(
        enc,
        "xlog_received_location",
        "received WAL position (replica)",
        &one(lsn(|x| x.receive_lsn)),
    )?;
    gauge(
        enc,
        "xlog_replayed_location",
        "replayed WAL position (replica)",
        &one(lsn(|x| x.replay_lsn)),
    )?;
    gauge(
        enc,
        "replication_lag_bytes",
        "bytes behind the leader's published position",
        &one(u(s.lag_bytes().unwrap_or(0))),
    )?;
    gauge(
        enc,
        "pending_restart",
        "1 if a parameter change needs a restart",
        &one(flag(st.is_some_and(|x| x.pending_restart))),
    )?;
    gauge(
        enc,
        "is_paused",
        "1 in maintenance mode",
        &one(flag(s.view.config.paused)),
    )?;
    gauge(
        enc,
        "dcs_last_seen",
        "epoch seconds of the last successful DCS read",
        &one(u(s.unix_ms / 1000)),
    )?;
    // The snapshot is published only by a loop whose DCS read succeeded, so its age is the time since then.
    let age = now.saturating_duration_since(s.taken_at).as_secs_f64();
    gauge(
        enc,
        "dcs_last_seen_age_seconds",
        "seconds since the HA loop last read the DCS successfully",
        &[(id.clone(), age)],
    )?;
    // pgha's own.
    let this = role(snap);
    let roles: Vec<(Labels, i64)> = ROLES
        .iter()
        .map(|r| {
            let mut l = id.clone();
            l.push(("role", r.to_string()));
            (l, flag(*r == this))
        })
        .collect();
    gauge(
        enc,
        "ha_role",
        "1 for this node's current role (primary, replica, demoting, stopped)",
        &roles,
    )?;
    gauge(
        enc,
        "ha_leader_known",
        "1 while the DCS names a leader of the cluster",
        &one(flag(s.view.leader.is_some())),
    )?;
    gauge(
        enc,
        "ha_lease_remaining_seconds",
        "Time until this node must step down unless its lease is renewed (0: no lease guards a primary here)",
        &[(id.clone(), lease_remaining)],
    )?;
    gauge(
        enc,
        "ha_members",
        "Members publishing their state in the DCS",
        &one(u(s.view.members.len() as u64)),
    )?;
    let slot = |sl: &SlotReport| {
        let mut l = id.clone();
        l.push(("slot", sl.name.clone()));
        l.push(("type", sl.kind.clone()));
        l
    };
    gauge(
        enc,
        "postgres_replication_slots",
        "Replication slots on this primary",
        &one(u(slots.len() as u64)),
    )?;
    let retained: Vec<(Labels, i64)> = slots.iter().map(|sl| (slot(sl), u(sl.retained_bytes))).collect();
    gauge(
        enc,
        "postgres_replication_slot_retained_bytes",
        "WAL a replication slot keeps on this primary",
        &retained,
    )?;
    let active: Vec<(Labels, i64)> = slots.iter().map(|sl| (slot(sl), flag(sl.active))).collect();
    gauge(
        enc,
        "postgres_replication_slot_active",
        "1 while a consumer streams from the slot",
        &active,
    )
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use prometheus_client::registry::Registry;

    use crate::api::health::NodeSnapshot;
    use crate::postgres::SlotReport;

    /// db2, a replica 1000 bytes behind the leader db1, on timeline 3 with a restart pending.
    fn replica_snapshot() -> NodeSnapshot {
        let mut snap = crate::api::health::tests::snapshot(false, 9_000, &[]);
        if let Some(st) = snap.status.as_mut() {
            st.timeline = 3;
            st.pending_restart = true;
        }
        snap
    }

    #[derive(Debug)]
    struct Fixed(Option<NodeSnapshot>, Instant, Vec<SlotReport>);

    impl prometheus_client::collector::Collector for Fixed {
        fn encode(&self, mut enc: prometheus_client::encoding::DescriptorEncoder) -> std::fmt::Result {
            super::encode(&mut enc, "main", self.0.as_ref(), self.1, 1.25, &self.2)
        }
    }

    fn render(snap: Option<NodeSnapshot>, now: Instant, slots: Vec<SlotReport>) -> String {
        let mut r = Registry::with_prefix("pgha");
        r.register_collector(Box::new(Fixed(snap, now, slots)));
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &r).expect("encode");
        out
    }

    #[test]
    fn no_snapshot_reports_down() {
        assert!(render(None, Instant::now(), Vec::new()).contains("\npgha_up 0\n"));
    }

    #[test]
    fn patroni_names_role_lease_and_slots() {
        let snap = replica_snapshot();
        let now = snap.taken_at + Duration::from_millis(1500);
        let slots = vec![SlotReport {
            name: "db3".into(),
            kind: "physical".into(),
            active: true,
            retained_bytes: 4096,
        }];
        let text = render(Some(snap), now, slots);
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
        for line in [
            "pgha_dcs_last_seen_age_seconds{scope=\"main\",name=\"db2\"} 1.5",
            "pgha_replica{scope=\"main\",name=\"db2\"} 1",
            "pgha_pending_restart{scope=\"main\",name=\"db2\"} 1",
            "pgha_postgres_timeline{scope=\"main\",name=\"db2\"} 3",
            "pgha_replication_lag_bytes{scope=\"main\",name=\"db2\"} 1000",
            "pgha_ha_role{scope=\"main\",name=\"db2\",role=\"replica\"} 1",
            "pgha_ha_role{scope=\"main\",name=\"db2\",role=\"primary\"} 0",
            "pgha_ha_lease_remaining_seconds{scope=\"main\",name=\"db2\"} 1.25",
            "pgha_postgres_replication_slot_retained_bytes{scope=\"main\",name=\"db2\",slot=\"db3\",type=\"physical\"} 4096",
        ] {
            assert!(text.contains(&format!("{line}\n")), "{line} missing:\n{text}");
        }
    }
}
