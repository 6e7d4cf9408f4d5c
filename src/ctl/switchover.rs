//! `ctl switchover` and `ctl failover`: validate the candidate, record the request in the DCS, wait for the result.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::output;
use crate::cli::Output;
use crate::dcs::client::DcsClient;
use crate::ha::keys::Keys;
use crate::ha::model::{ClusterView, MemberInfo, PgRole, PgState, SwitchoverRequest};
use crate::ha::store::{unix_ms, Store};

/// How long ctl waits for the new leader.
const WAIT: Duration = Duration::from_secs(60);

/// Why a member cannot be promoted by a switchover (pure); None when it can.
pub fn refusal(view: &ClusterView, candidate: &MemberInfo) -> Option<String> {
    if candidate.nofailover {
        return Some(format!("{} is tagged nofailover", candidate.name));
    }
    if candidate.role != PgRole::Replica || candidate.state != PgState::Streaming {
        return Some(format!(
            "{} is not a streaming replica (state: {})",
            candidate.name,
            candidate.state.label()
        ));
    }
    if let Some(key) = view.sync_members() {
        if !key.members.contains(&candidate.name) {
            return Some(format!(
                "{} is not a synchronous standby (synchronous: {}); it may lack acknowledged commits",
                candidate.name,
                key.members.join(", ")
            ));
        }
        // A synchronous standby holds every acknowledged commit: its lag behind unacknowledged WAL does not matter.
        return None;
    }
    let leader_lsn = view.leader_member().map(|m| m.receive_lsn).unwrap_or(0);
    let lag = leader_lsn.saturating_sub(candidate.receive_lsn);
    if lag > view.config.maximum_lag_on_failover {
        return Some(format!(
            "{} lags {lag} bytes behind the leader (maximum_lag_on_failover {})",
            candidate.name, view.config.maximum_lag_on_failover
        ));
    }
    None
}

/// The best streaming replica: most advanced, then highest priority, then name.
pub fn best_candidate(view: &ClusterView) -> Option<&MemberInfo> {
    view.members
        .values()
        .filter(|m| refusal(view, m).is_none())
        .max_by(|a, b| {
            (a.receive_lsn, a.failover_priority, std::cmp::Reverse(&a.name)).cmp(&(
                b.receive_lsn,
                b.failover_priority,
                std::cmp::Reverse(&b.name),
            ))
        })
}

/// Parameters of a switchover or failover command.
pub struct Request<'a> {
    pub leader: Option<&'a str>,
    pub candidate: Option<&'a str>,
    pub scheduled: Option<&'a str>,
    pub force: bool,
    /// Failover: allowed without a live leader, candidate required.
    pub failover: bool,
}

/// Runs `switchover` or `failover`.
pub async fn run(dcs: &DcsClient, cluster: &str, req: Request<'_>, out: Output) -> anyhow::Result<()> {
    let keys = Keys::new(cluster);
    let store = Store { dcs, keys: &keys };
    let view = store.view().await?;
    let current = view.leader.as_ref().map(|l| l.name.clone());
    if !req.failover {
        let Some(current) = current.as_deref() else {
            bail!("cluster {cluster} has no leader: use `ctl failover`")
        };
        if let Some(expected) = req.leader {
            if expected != current {
                bail!("{expected} is not the leader (the leader is {current})");
            }
        }
    }
    let candidate = match req.candidate {
        Some(name) => {
            let m = view
                .members
                .get(name)
                .with_context(|| format!("no member named {name}"))?;
            if Some(name) == current.as_deref() {
                bail!("{name} is already the leader");
            }
            if !req.failover || current.is_some() {
                if let Some(why) = refusal(&view, m) {
                    bail!("refusing: {why}");
                }
            } else if m.nofailover {
                bail!("refusing: {name} is tagged nofailover");
            } else if view.sync_members().is_some_and(|k| !k.members.contains(&m.name)) {
                bail!("refusing: {name} is not a synchronous standby; it may lack acknowledged commits");
            }
            m.name.clone()
        }
        None if req.failover => bail!("failover needs --candidate NAME"),
        None => best_candidate(&view)
            .map(|m| m.name.clone())
            .context("no streaming replica can take over")?,
    };
    let scheduled_unix_ms = match req.scheduled {
        Some(text) => {
            let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .with_context(|| format!("--scheduled {text:?} is not an RFC 3339 time (e.g. 2026-11-22T03:00:00Z)"))?;
            Some(u64::try_from(at.unix_timestamp_nanos() / 1_000_000).context("--scheduled is before 1970")?)
        }
        None => None,
    };
    let plan = format!(
        "{} of cluster {cluster}: {} -> {candidate}{}",
        if req.failover { "Failover" } else { "Switchover" },
        current.as_deref().unwrap_or("(no leader)"),
        req.scheduled.map(|s| format!(" at {s}")).unwrap_or_default()
    );
    if !req.force && !output::confirm(&format!("{plan}\nAre you sure?"))? {
        bail!("aborted");
    }
    let request = SwitchoverRequest {
        leader: if req.failover { None } else { current.clone() },
        candidate: candidate.clone(),
        scheduled_unix_ms,
        created_unix_ms: unix_ms(),
    };
    if !store.request_switchover(&request).await? {
        bail!("another switchover is pending (`ctl switchover --cancel` drops it)");
    }
    if scheduled_unix_ms.is_some() {
        println!("{plan}: scheduled");
        return Ok(());
    }
    let started = Instant::now();
    while started.elapsed() < WAIT {
        let view = store.view().await?;
        if view
            .leader_member()
            .is_some_and(|m| m.name == candidate && m.role == PgRole::Primary)
        {
            let ms = started.elapsed().as_millis();
            return match out {
                Output::Json => output::json(&serde_json::json!({ "leader": candidate, "elapsed_ms": ms })),
                Output::Table => {
                    println!("{plan}: done in {ms} ms");
                    Ok(())
                }
            };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{candidate} did not become the leader within {WAIT:?}; the request stays pending (`--cancel` drops it)")
}

/// Drops a pending (e.g. scheduled) switchover.
pub async fn cancel(dcs: &DcsClient, cluster: &str) -> anyhow::Result<()> {
    let keys = Keys::new(cluster);
    match (Store { dcs, keys: &keys }).delete_switchover().await? {
        0 => bail!("no switchover is pending"),
        _ => {
            println!("pending switchover cancelled");
            Ok(())
        }
    }
}
