//! `ctl pause | resume | history`: maintenance mode (no automatic promotion or demotion) and the timeline history.

use super::output;
use crate::cli::Output;
use crate::dcs::client::DcsClient;

use crate::ha::keys::Keys;
use crate::ha::model::HistoryEntry;
use crate::postgres::lsn_to_string;

/// Attempts at the compare-and-swap of the config key before giving up (concurrent edits).
const CAS_ATTEMPTS: usize = 5;

/// Turns maintenance mode on or off (compare-and-swap on the `config` key, so no concurrent edit is lost).
pub async fn set_paused(dcs: &DcsClient, cluster: &str, paused: bool, out: Output) -> anyhow::Result<()> {
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
