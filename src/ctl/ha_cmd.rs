//! `ctl pause | resume | history | version`: maintenance mode (no automatic promotion or demotion), the timeline
//! history, and the versions members run.

use std::time::{Duration, Instant};

use super::output;
use crate::cli::Output;
use crate::dcs::client::DcsClient;

use crate::cluster::keys::Keys;
use crate::cluster::model::HistoryEntry;
use crate::postgres::lsn_to_string;

/// Attempts at the compare-and-swap of the config key before giving up (concurrent edits).
const CAS_ATTEMPTS: usize = 5;
/// How long `--wait` waits for every member to report the new mode (each reports within one loop when healthy).
const WAIT: Duration = Duration::from_secs(30);

/// Turns maintenance mode on or off (compare-and-swap on the `config` key, so no concurrent edit is lost); with
/// `wait`, until every published member reports it.
pub async fn set_paused(dcs: &DcsClient, cluster: &str, paused: bool, wait: bool, out: Output) -> anyhow::Result<()> {
    let keys = Keys::new(cluster);
    for _ in 0..CAS_ATTEMPTS {
        let (mut config, revision) = super::config_cmd::read(dcs, &keys).await?;
        if config.paused != paused {
            config.paused = paused;
            if !super::config_cmd::write(dcs, &keys, &config, revision).await? {
                continue; // someone else changed the config meanwhile: read it again
            }
        }
        let state = if paused { "on" } else { "off" };
        if wait {
            wait_members(dcs, cluster, paused).await?;
        }
        match out {
            Output::Json => output::json(&serde_json::json!({ "cluster": cluster, "paused": paused }))?,
            Output::Table => println!("Maintenance mode: {state}"),
        }
        return Ok(());
    }
    anyhow::bail!("the dynamic config kept changing; try again")
}

/// Prints the timeline history (one line per promotion).
pub async fn history(dcs: &DcsClient, cluster: &str, out: Output) -> anyhow::Result<()> {
    let entries: Vec<HistoryEntry> = super::node_cmd::view(dcs, cluster).await?.history;
    if out == Output::Json {
        return output::json(&entries);
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let time = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(e.unix_ms) * 1_000_000)
                .map(|t| t.to_string())
                .unwrap_or_default();
            vec![
                e.timeline.to_string(),
                lsn_to_string(e.lsn),
                e.reason.clone(),
                time,
                e.new_leader.clone(),
            ]
        })
        .collect();
    println!(
        "{}",
        output::table(&["TL", "LSN", "Reason", "Timestamp", "New Leader"], &rows)
    );
    Ok(())
}

/// Members (by name) whose published `paused` differs from `paused` (pure).
pub fn not_yet(view: &crate::cluster::model::ClusterView, paused: bool) -> Vec<String> {
    view.members
        .values()
        .filter(|m| m.paused != paused)
        .map(|m| m.name.clone())
        .collect()
}

async fn wait_members(dcs: &DcsClient, cluster: &str, paused: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let view = super::node_cmd::view(dcs, cluster).await?;
        let missing = not_yet(&view, paused);
        if missing.is_empty() {
            return Ok(());
        }
        if started.elapsed() > WAIT {
            anyhow::bail!(
                "maintenance mode is stored, but {} did not report it within {WAIT:?} (is their pgha running?)",
                missing.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Prints ctl's version and, when the cluster answers, each member's.
pub async fn version(dcs: &DcsClient, cluster: &str, out: Output) -> anyhow::Result<()> {
    let own = env!("CARGO_PKG_VERSION");
    let members: Option<std::collections::BTreeMap<String, String>> = match super::node_cmd::view(dcs, cluster).await {
        Ok(view) => Some(view.members.into_values().map(|m| (m.name, m.version)).collect()),
        Err(e) => {
            // The local version is the answer that matters; an unreachable cluster is reported, not fatal.
            eprintln!("members: not reachable ({e:#})");
            None
        }
    };
    if out == Output::Json {
        return output::json(&serde_json::json!({ "pgha_ctl": own, "members": members }));
    }
    println!("pgha ctl {own}");
    for (name, version) in members.unwrap_or_default() {
        let version = if version.is_empty() { "unknown" } else { &version };
        println!("{name}: pgha {version}");
    }
    Ok(())
}
