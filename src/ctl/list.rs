//! `ctl list` (what `patronictl list` shows) and `ctl dsn` (libpq connection strings).

use serde::Serialize;

use super::output;
use crate::cli::{DsnRole, Output};
use crate::cluster::keys::Keys;
use crate::cluster::model::{ClusterView, PgRole};
use crate::cluster::store::Store;
use crate::dcs::client::DcsClient;
use crate::postgres::clone_progress::bytes_text;
use crate::postgres::clone_progress::CloneProgress;
use crate::postgres::lsn_to_string;

/// One row of `ctl list`.
#[derive(Debug, Serialize)]
pub struct ListRow {
    pub member: String,
    pub host: String,
    pub role: String,
    pub state: String,
    pub timeline: u32,
    pub receive_lsn: String,
    pub receive_lag_bytes: Option<u64>,
    pub replay_lsn: String,
    pub replay_lag_bytes: Option<u64>,
    pub pending_restart: bool,
    pub tags: std::collections::BTreeMap<String, String>,
    /// The replica creation running on the member (method, bytes, elapsed seconds), if one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clone_progress: Option<CloneProgress>,
}

/// The state column: the state, with a running replica creation's progress,
/// `creating replica (pgbackrest) 1.2 GiB, 35 s` (pure).
pub fn state_cell(state: &str, progress: Option<&CloneProgress>) -> String {
    match progress {
        Some(p) => format!("{state} ({}) {}, {} s", p.method, bytes_text(p.bytes), p.elapsed_s),
        None => state.to_string(),
    }
}

/// Rows of `ctl list` from a cluster view (pure).
pub fn rows(view: &ClusterView) -> Vec<ListRow> {
    let leader_name = view.leader.as_ref().map(|l| l.name.as_str());
    let leader_lsn = view
        .leader_member()
        .filter(|m| m.role == PgRole::Primary)
        .map(|m| m.receive_lsn);
    view.members
        .values()
        .map(|m| {
            let is_leader = Some(m.name.as_str()) == leader_name;
            let lag = |lsn: u64| {
                if is_leader {
                    None
                } else {
                    leader_lsn.map(|l| l.saturating_sub(lsn))
                }
            };
            let mut tags = m.tags.clone();
            if m.nofailover {
                tags.insert("nofailover".into(), "true".into());
            }
            if m.noloadbalance {
                tags.insert("noloadbalance".into(), "true".into());
            }
            ListRow {
                member: m.name.clone(),
                host: format!("{}:{}", m.pg_host, m.pg_port),
                role: member_role(view, &m.name, is_leader).to_string(),
                state: m.state.label().to_string(),
                timeline: m.timeline,
                receive_lsn: lsn_to_string(m.receive_lsn),
                receive_lag_bytes: lag(m.receive_lsn),
                replay_lsn: lsn_to_string(m.replay_lsn),
                replay_lag_bytes: lag(m.replay_lsn),
                pending_restart: m.pending_restart,
                tags,
                clone_progress: m.clone.clone(),
            }
        })
        .collect()
}

/// Prints the cluster table.
pub async fn list(dcs: &DcsClient, cluster: &str, out: Output, with_slots: bool) -> anyhow::Result<()> {
    let keys = Keys::new(cluster);
    let view = Store { dcs, keys: &keys }.view().await?;
    let rows = rows(&view);
    let (edges, vip) = super::edges::read(dcs, &keys).await?;
    if out == Output::Json {
        return output::json(&serde_json::json!({
            "cluster": cluster,
            "system_identifier": view.system_identifier(),
            "leader": view.leader.as_ref().map(|l| l.name.clone()),
            "paused": view.config.paused,
            "standby_cluster": view.config.standby_cluster,
            "upgrade": view.upgrade.as_ref().map(|(u, _)| u),
            "members": rows,
            "edges": edges,
            "vip_holder": vip,
            "slots": with_slots.then(|| view.leader_member().map(|m| m.slots.clone()).unwrap_or_default()),
        }));
    }
    let sysid = view
        .system_identifier()
        .map(|s| s.to_string())
        .unwrap_or_else(|| "not initialized".into());
    println!("Cluster: {cluster} ({sysid})");
    if let Some(standby) = &view.config.standby_cluster {
        println!(" Standby cluster: the standby leader follows {}", standby.describe());
    }
    let lag = |l: Option<u64>| l.map(|b| b.to_string()).unwrap_or_default();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let tags = r
                .tags
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ");
            vec![
                r.member.clone(),
                r.host.clone(),
                r.role.clone(),
                state_cell(&r.state, r.clone_progress.as_ref()),
                r.timeline.to_string(),
                r.receive_lsn.clone(),
                lag(r.receive_lag_bytes),
                r.replay_lsn.clone(),
                lag(r.replay_lag_bytes),
                if r.pending_restart { "*".into() } else { String::new() },
                tags,
            ]
        })
        .collect();
    let headers = [
        "Member",
        "Host",
        "Role",
        "State",
        "TL",
        "Receive LSN",
        "Lag",
        "Replay LSN",
        "Lag",
        "Pending restart",
        "Tags",
    ];
    println!("{}", output::table(&headers, &cells));
    if view.config.paused {
        println!(" Maintenance mode: on");
    }
    if let Some((upgrade, _)) = &view.upgrade {
        println!(" {}", upgrade.describe());
    }
    for m in view.members.values() {
        if let Some(note) = &m.note {
            println!(" {}: {note}", m.name);
        }
    }
    super::edges::print(&edges, vip.as_deref());
    if with_slots {
        print_slots(&view);
    }
    Ok(())
}

/// `list --watch SECONDS`: redraws until Ctrl-C. A terminal is cleared before each picture; otherwise (a pipe, a
/// log) each snapshot follows a separator line with its time. A failed read is shown and retried, not fatal.
pub async fn watch(dcs: &DcsClient, cluster: &str, out: Output, with_slots: bool, seconds: f64) -> anyhow::Result<()> {
    use std::io::{IsTerminal, Write};
    if !seconds.is_finite() || seconds < 0.1 {
        anyhow::bail!("--watch {seconds}: the interval must be at least 0.1 seconds");
    }
    let interval = std::time::Duration::from_secs_f64(seconds);
    let terminal = std::io::stdout().is_terminal();
    let mut last_error: Option<String> = None;
    loop {
        if terminal {
            print!("\x1b[2J\x1b[H");
        } else {
            let now = time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            println!("--- {now} ---");
        }
        match list(dcs, cluster, out, with_slots).await {
            Ok(()) => last_error = None,
            Err(e) => {
                let text = format!("{e:#}");
                println!("cannot read the cluster: {text}");
                if last_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!(event = "ctl_watch_read_failed", "list --watch: {text}");
                    last_error = Some(text);
                }
            }
        }
        let _ = std::io::stdout().flush();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// The leader's replication slots: pgha's own and everybody else's (left alone by pgha).
fn print_slots(view: &ClusterView) {
    let Some(leader) = view.leader_member() else {
        println!(" Slots: no leader");
        return;
    };
    let cells: Vec<Vec<String>> = leader
        .slots
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.kind.clone(),
                if s.active { "yes" } else { "no" }.into(),
                if s.owned { "pgha" } else { "other" }.into(),
                format!("{} MiB", s.retained_bytes >> 20),
            ]
        })
        .collect();
    println!("Slots on {}:", leader.name);
    println!(
        "{}",
        output::table(&["Slot", "Type", "Active", "Owner", "Retained WAL"], &cells)
    );
}

/// The role column, as `patronictl list` words it.
fn member_role(view: &ClusterView, name: &str, is_leader: bool) -> &'static str {
    let synchronous = view.sync_members().is_some_and(|k| k.members.iter().any(|m| m == name));
    match (is_leader, synchronous, view.config.synchronous_mode) {
        (true, _, _) if view.config.standby_cluster.is_some() => "Standby Leader",
        (true, _, _) => "Leader",
        (false, true, crate::cluster::model::SyncMode::Quorum) => "Quorum Standby",
        (false, true, _) => "Sync Standby",
        (false, false, _) => "Replica",
    }
}

/// A libpq multi-host connection string for the role (pure): the leader first for writes, replicas for reads.
pub fn dsn(view: &ClusterView, role: DsnRole) -> Option<String> {
    let leader = view.leader.as_ref().map(|l| l.name.clone());
    let mut members: Vec<_> = view.members.values().collect();
    members.sort_by_key(|m| (Some(&m.name) != leader.as_ref(), m.name.clone()));
    let (members, attrs): (Vec<_>, &str) = match role {
        DsnRole::Primary => (members, "read-write"),
        DsnRole::Replica => (
            members
                .into_iter()
                .filter(|m| Some(&m.name) != leader.as_ref())
                .collect(),
            "standby",
        ),
    };
    if members.is_empty() {
        return None;
    }
    let hosts = members.iter().map(|m| m.pg_host.clone()).collect::<Vec<_>>().join(",");
    let ports = members
        .iter()
        .map(|m| m.pg_port.to_string())
        .collect::<Vec<_>>()
        .join(",");
    Some(format!(
        "host={hosts} port={ports} dbname=postgres target_session_attrs={attrs}"
    ))
}

/// Prints a connection string.
pub async fn print_dsn(dcs: &DcsClient, cluster: &str, role: DsnRole) -> anyhow::Result<()> {
    let keys = Keys::new(cluster);
    let view = Store { dcs, keys: &keys }.view().await?;
    match dsn(&view, role) {
        Some(s) => {
            println!("{s}");
            Ok(())
        }
        None => anyhow::bail!("no member with that role is published in cluster {cluster}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_cells() {
        let p = |method: &str, bytes: u64, elapsed_s: u64| CloneProgress {
            method: method.into(),
            bytes,
            elapsed_s,
        };
        for (progress, want) in [
            (None, "creating replica"),
            (Some(p("basebackup", 0, 0)), "creating replica (basebackup) 0 B, 0 s"),
            (
                Some(p("pgbackrest", (12 << 30) / 10, 35)),
                "creating replica (pgbackrest) 1.2 GiB, 35 s",
            ),
            (
                Some(p("snap", 3 << 40, 7200)),
                "creating replica (snap) 3.0 TiB, 7200 s",
            ),
        ] {
            assert_eq!(state_cell("creating replica", progress.as_ref()), want);
        }
    }
}
