//! `ctl pause | resume | history`: maintenance mode (no automatic promotion or demotion) and the timeline history.

use anyhow::Context;

use super::output;
use crate::cli::Output;
use crate::dcs::client::DcsClient;
use crate::dcs::types::{Compare, CompareTarget, Op, Txn};
use crate::ha::keys::Keys;
use crate::ha::model::{DynamicConfig, HistoryEntry};
use crate::postgres::lsn_to_string;

/// Attempts at the compare-and-swap of the config key before giving up (concurrent edits).
const CAS_ATTEMPTS: usize = 5;

/// Turns maintenance mode on or off (compare-and-swap on the `config` key, so no concurrent edit is lost).
pub async fn set_paused(dcs: &DcsClient, cluster: &str, paused: bool, out: Output) -> anyhow::Result<()> {
    let keys = Keys::new(cluster);
    for _ in 0..CAS_ATTEMPTS {
        let (kvs, _) = dcs.get(keys.config().as_bytes(), false).await?;
        let (mut config, target) = match kvs.first() {
            Some(kv) => (
                serde_json::from_slice::<DynamicConfig>(&kv.value)
                    .context("the dynamic config in the DCS is unreadable")?,
                CompareTarget::ModRevision(kv.mod_revision),
            ),
            None => anyhow::bail!("cluster {cluster} is not initialized (no dynamic config in the DCS)"),
        };
        if config.paused != paused {
            config.paused = paused;
            let txn = Txn {
                compares: vec![Compare {
                    key: keys.config().into_bytes(),
                    target,
                }],
                success: vec![Op::Put {
                    key: keys.config().into_bytes(),
                    value: serde_json::to_vec(&config)?,
                    lease: 0,
                }],
                failure: vec![],
            };
            if !dcs.txn(txn).await?.succeeded {
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
    let keys = Keys::new(cluster);
    let (kvs, _) = dcs.get(keys.history().as_bytes(), false).await?;
    let entries: Vec<HistoryEntry> = match kvs.first() {
        Some(kv) => serde_json::from_slice(&kv.value).context("the history in the DCS is unreadable")?,
        None => Vec::new(),
    };
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
