//! `ctl health`: the cluster's health as a list of checks and one exit code. The verdict is pure (a cluster view and
//! what each DCS member answered in, checks and a code out); the shell reads both and prints.

use serde::Serialize;

use super::exit::{code, Exit};
use super::members::MemberRow;
use super::output;
use crate::cli::Output;
use crate::cluster::model::{ClusterView, PgRole, PgState};
use crate::dcs::client::DcsClient;

/// How bad one check is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Ok,
    Degraded,
    Critical,
}

impl Level {
    fn code(self) -> u8 {
        match self {
            Level::Ok => code::HEALTHY,
            Level::Degraded => code::DEGRADED,
            Level::Critical => code::CRITICAL,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Degraded => "DEGRADED",
            Level::Critical => "CRITICAL",
        }
    }
}

/// One check's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub level: Level,
    pub detail: String,
}

/// Every check, and the exit code (the worst level).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
    pub code: u8,
}

fn check(name: &'static str, level: Level, detail: impl Into<String>) -> Check {
    Check {
        check: name,
        level,
        detail: detail.into(),
    }
}

/// The verdict (pure): DCS quorum and members, the leader and its lease, every member's PostgreSQL, replicas
/// streaming within `maximum_lag_on_failover`.
pub fn verdict(view: &ClusterView, dcs: &[MemberRow]) -> Report {
    let mut checks = Vec::new();
    let voters: Vec<&MemberRow> = dcs.iter().filter(|m| m.voter).collect();
    let reachable = voters.iter().filter(|m| m.reachable).count();
    let raft_leader = dcs.iter().find(|m| m.reachable && m.leader);
    let quorum = reachable > voters.len() / 2 && raft_leader.is_some();
    checks.push(check(
        "dcs_quorum",
        if quorum { Level::Ok } else { Level::Critical },
        match raft_leader {
            Some(l) => format!("{reachable} of {} voters answer, Raft leader {}", voters.len(), l.name),
            None => format!("{reachable} of {} voters answer, no Raft leader", voters.len()),
        },
    ));
    let down: Vec<&str> = dcs.iter().filter(|m| !m.reachable).map(|m| m.name.as_str()).collect();
    checks.push(if down.is_empty() {
        check("dcs_members", Level::Ok, format!("all {} answer", dcs.len()))
    } else {
        check(
            "dcs_members",
            Level::Degraded,
            format!("unreachable: {}", down.join(", ")),
        )
    });
    let leader = view.leader.as_ref().map(|l| l.name.as_str());
    checks.push(match (leader, view.leader_member()) {
        (None, _) => check("leader", Level::Critical, "no member holds the leader key"),
        (Some(name), Some(m)) if m.role == PgRole::Primary && m.state == PgState::Running => check(
            "leader",
            Level::Ok,
            format!("{name} holds the leader lease, primary running"),
        ),
        // A standby cluster's leader follows its remote: streaming is its healthy state.
        (Some(name), Some(m)) if view.config.standby_cluster.is_some() && m.state == PgState::Streaming => check(
            "leader",
            Level::Ok,
            format!(
                "{name} holds the leader lease, standby leader streaming from {}",
                view.config
                    .standby_cluster
                    .as_ref()
                    .map(|s| s.describe())
                    .unwrap_or_default()
            ),
        ),
        (Some(name), Some(m)) => check(
            "leader",
            Level::Critical,
            format!(
                "{name} holds the leader lease but its PostgreSQL is {} ({:?})",
                m.state.label(),
                m.role
            ),
        ),
        (Some(name), None) => check(
            "leader",
            Level::Critical,
            format!("{name} holds the leader key but publishes no status"),
        ),
    });
    let not_running: Vec<String> = view
        .members
        .values()
        .filter(|m| !matches!(m.state, PgState::Running | PgState::Streaming))
        .map(|m| format!("{} {}", m.name, m.state.label()))
        .collect();
    checks.push(if not_running.is_empty() {
        check(
            "postgresql",
            Level::Ok,
            format!("running on all {} members", view.members.len()),
        )
    } else {
        check("postgresql", Level::Degraded, not_running.join(", "))
    });
    let replicas: Vec<_> = view
        .members
        .values()
        .filter(|m| Some(m.name.as_str()) != leader)
        .collect();
    let not_streaming: Vec<&str> = replicas
        .iter()
        .filter(|m| m.state != PgState::Streaming)
        .map(|m| m.name.as_str())
        .collect();
    checks.push(if not_streaming.is_empty() {
        check(
            "replication",
            Level::Ok,
            format!("{} replicas streaming", replicas.len()),
        )
    } else {
        check(
            "replication",
            Level::Degraded,
            format!("not streaming: {}", not_streaming.join(", ")),
        )
    });
    let max = view.config.maximum_lag_on_failover;
    let leader_lsn = view
        .leader_member()
        .filter(|m| m.role == PgRole::Primary)
        .map(|m| m.receive_lsn);
    let lagging: Vec<String> = match leader_lsn {
        None => Vec::new(),
        Some(lsn) => replicas
            .iter()
            .filter_map(|m| {
                let lag = lsn.saturating_sub(m.receive_lsn);
                (lag > max).then(|| format!("{} {lag} bytes", m.name))
            })
            .collect(),
    };
    checks.push(match (leader_lsn, lagging.is_empty()) {
        (None, _) => check("lag", Level::Ok, "no primary position to compare with"),
        (Some(_), true) => check(
            "lag",
            Level::Ok,
            format!("within maximum_lag_on_failover ({max} bytes)"),
        ),
        (Some(_), false) => check(
            "lag",
            Level::Degraded,
            format!("beyond maximum_lag_on_failover ({max} bytes): {}", lagging.join(", ")),
        ),
    });
    let code = checks.iter().map(|c| c.level).max().unwrap_or(Level::Ok).code();
    Report { checks, code }
}

/// Runs `ctl health`: prints every check; a non-zero verdict becomes the exit code. No DCS member answering is
/// [`code::UNKNOWN`].
pub async fn run(dcs: &DcsClient, cluster: &str, out: Output) -> anyhow::Result<()> {
    let unknown = |e: anyhow::Error| Exit {
        code: code::UNKNOWN,
        message: format!("UNKNOWN: cannot read the cluster from the DCS: {e:#}"),
    };
    let rows = super::members::collect(dcs).await.map_err(unknown)?;
    let view = super::node_cmd::view(dcs, cluster).await.map_err(unknown)?;
    let report = verdict(&view, &rows);
    match out {
        Output::Json => output::json(&report)?,
        Output::Table => {
            for c in &report.checks {
                println!("{:<9} {:<12} {}", c.level.label(), c.check, c.detail);
            }
        }
    }
    match report.code {
        code::HEALTHY => Ok(()),
        other => Err(Exit {
            code: other,
            message: String::new(),
        }
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::model::{LeaderKey, MemberInfo};

    fn dcs_row(name: &str, reachable: bool, leader: bool) -> MemberRow {
        let mut r = MemberRow::unreachable(name, "127.0.0.1:1", true);
        r.reachable = reachable;
        r.leader = leader;
        r
    }

    fn view(members: &[(&str, PgRole, PgState, u64)], leader: Option<&str>) -> ClusterView {
        let mut v = ClusterView {
            leader: leader.map(|name| LeaderKey {
                name: name.into(),
                lease: 1,
                mod_revision: 1,
            }),
            ..ClusterView::default()
        };
        for (name, role, state, lsn) in members {
            v.members
                .insert(name.to_string(), MemberInfo::for_test(name, *role, *state, *lsn));
        }
        v
    }

    #[test]
    fn verdict_table() {
        use PgRole::{Primary, Replica, Unknown};
        use PgState::{CreatingReplica, Running, Stopped, Streaming};
        let mb = 1 << 20;
        let healthy = [
            ("db1", Primary, Running, 100 * mb),
            ("db2", Replica, Streaming, 100 * mb),
            ("db3", Replica, Streaming, 100 * mb),
        ];
        let all_up = [
            dcs_row("db1", true, true),
            dcs_row("db2", true, false),
            dcs_row("db3", true, false),
        ];
        let one_down = [
            dcs_row("db1", true, true),
            dcs_row("db2", true, false),
            dcs_row("db3", false, false),
        ];
        let two_down = [
            dcs_row("db1", true, true),
            dcs_row("db2", false, false),
            dcs_row("db3", false, false),
        ];
        let no_raft_leader = [
            dcs_row("db1", true, false),
            dcs_row("db2", true, false),
            dcs_row("db3", true, false),
        ];
        let mut lagging = healthy;
        lagging[2].3 = 10 * mb; // 90 MB behind, the default maximum is 1 MB
        let mut rebuilding = healthy;
        rebuilding[2] = ("db3", Replica, CreatingReplica, 0);
        let mut leader_down = healthy;
        leader_down[0] = ("db1", Unknown, Stopped, 0);
        // (what, members, leader key, DCS rows, expected code, the check that is not ok)
        type Members<'a> = &'a [(&'a str, PgRole, PgState, u64)];
        type Case<'a> = (
            &'a str,
            Members<'a>,
            Option<&'a str>,
            &'a [MemberRow],
            u8,
            Option<&'a str>,
        );
        let cases: Vec<Case<'_>> = vec![
            ("healthy", &healthy, Some("db1"), &all_up, code::HEALTHY, None),
            (
                "a DCS member down",
                &healthy,
                Some("db1"),
                &one_down,
                code::DEGRADED,
                Some("dcs_members"),
            ),
            (
                "no DCS quorum",
                &healthy,
                Some("db1"),
                &two_down,
                code::CRITICAL,
                Some("dcs_quorum"),
            ),
            (
                "no Raft leader",
                &healthy,
                Some("db1"),
                &no_raft_leader,
                code::CRITICAL,
                Some("dcs_quorum"),
            ),
            ("no leader key", &healthy, None, &all_up, code::CRITICAL, Some("leader")),
            (
                "leader's PostgreSQL down",
                &leader_down,
                Some("db1"),
                &all_up,
                code::CRITICAL,
                Some("leader"),
            ),
            (
                "leader unpublished",
                &healthy[1..],
                Some("db1"),
                &all_up,
                code::CRITICAL,
                Some("leader"),
            ),
            (
                "a replica lagging",
                &lagging,
                Some("db1"),
                &all_up,
                code::DEGRADED,
                Some("lag"),
            ),
            (
                "a replica rebuilding",
                &rebuilding,
                Some("db1"),
                &all_up,
                code::DEGRADED,
                Some("replication"),
            ),
        ];
        for (what, members, leader, rows, want, failing) in cases {
            let report = verdict(&view(members, leader), rows);
            assert_eq!(report.code, want, "{what}: {:?}", report.checks);
            if let Some(name) = failing {
                let c = report
                    .checks
                    .iter()
                    .find(|c| c.check == name)
                    .expect("the check is listed");
                assert_ne!(c.level, Level::Ok, "{what}: {c:?}");
                assert!(!c.detail.is_empty(), "{what}");
            }
        }
    }

    #[test]
    fn a_streaming_standby_leader_is_healthy_only_in_a_standby_cluster() {
        let members = [
            ("db1", PgRole::Replica, PgState::Streaming, 100),
            ("db2", PgRole::Replica, PgState::Streaming, 100),
        ];
        let rows = [dcs_row("db1", true, true), dcs_row("db2", true, false)];
        let mut v = view(&members, Some("db1"));
        assert_eq!(
            verdict(&v, &rows).code,
            code::CRITICAL,
            "a normal cluster needs a primary"
        );
        v.config.standby_cluster = Some(crate::cluster::standby::StandbyCluster {
            host: Some("10.1.0.10".into()),
            ..Default::default()
        });
        let report = verdict(&v, &rows);
        assert_eq!(report.code, code::HEALTHY, "{:?}", report.checks);
    }
}
