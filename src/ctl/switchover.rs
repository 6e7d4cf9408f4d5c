//! `ctl switchover` and `ctl failover`: validate the candidate, record the request in the DCS, wait for the result.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::output;
use super::progress::{Progress, Sink};
use crate::cli::Output;
use crate::cluster::keys::Keys;
use crate::cluster::model::{ClusterView, MemberInfo, PgRole, PgState, SwitchoverRequest};
use crate::cluster::store::{unix_ms, Store};
use crate::dcs::client::DcsClient;

/// How long ctl waits for the new leader.
const WAIT: Duration = Duration::from_secs(60);
/// How long the leader's node may take to answer before a failover treats it as gone.
const LIVENESS_TIMEOUT: Duration = Duration::from_secs(1);

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

/// Why a member cannot take over in a failover while the leader is gone (pure): it must be a running replica.
pub fn failover_refusal(view: &ClusterView, candidate: &MemberInfo) -> Option<String> {
    if candidate.nofailover {
        return Some(format!("{} is tagged nofailover", candidate.name));
    }
    if view
        .sync_members()
        .is_some_and(|k| !k.members.contains(&candidate.name))
    {
        return Some(format!(
            "{} is not a synchronous standby; it may lack acknowledged commits",
            candidate.name
        ));
    }
    let running = matches!(candidate.state, PgState::Streaming | PgState::Running);
    if candidate.role != PgRole::Replica || !running {
        return Some(format!(
            "{} is not a running replica (state: {})",
            candidate.name,
            candidate.state.label()
        ));
    }
    None
}

/// Parses `--scheduled` (RFC 3339) into milliseconds since the epoch; refuses times already past at `now_ms`.
pub fn parse_scheduled(text: &str, now_ms: u64) -> anyhow::Result<u64> {
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("--scheduled {text:?} is not an RFC 3339 time (e.g. 2026-11-22T03:00:00Z)"))?;
    let ms = u64::try_from(at.unix_timestamp_nanos() / 1_000_000).context("--scheduled is before 1970")?;
    if ms <= now_ms {
        bail!("--scheduled {text} is in the past; leave --scheduled out to switch over now");
    }
    Ok(ms)
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

/// Why a switchover or failover is not carried out; the REST API answers each kind with Patroni's status code.
#[derive(Debug, thiserror::Error)]
pub enum SwitchoverError {
    /// The request itself is wrong (an unknown member, a missing candidate).
    #[error("{0}")]
    Invalid(String),
    /// The scheduled time is unreadable or past.
    #[error("{0}")]
    BadSchedule(String),
    /// The cluster does not allow it now (no leader, a candidate that may not be promoted).
    #[error("{0}")]
    Precondition(String),
    /// Another request is pending.
    #[error("another switchover is pending (`ctl switchover --cancel` drops it)")]
    Pending,
    #[error(transparent)]
    Dcs(#[from] crate::dcs::client::ClientError),
}

/// A checked request, ready to be stored.
#[derive(Debug, Clone)]
pub struct Planned {
    pub current: Option<String>,
    pub candidate: String,
    pub scheduled_unix_ms: Option<u64>,
    pub failover: bool,
    /// `Switchover of cluster c: db1 -> db2[ at T]`.
    pub summary: String,
}

/// Checks a switchover or failover against the cluster as it is now: the leader named is the leader, the
/// candidate exists and may be promoted (the best one when none is named). Shared by ctl and the REST API.
pub async fn plan(dcs: &DcsClient, cluster: &str, req: &Request<'_>) -> Result<Planned, SwitchoverError> {
    use SwitchoverError::{BadSchedule, Invalid, Precondition};
    // Checked before anything is read, so malformed input fails fast even with the cluster down.
    let scheduled_unix_ms = req
        .scheduled
        .map(|t| parse_scheduled(t, unix_ms()))
        .transpose()
        .map_err(|e| BadSchedule(format!("{e:#}")))?;
    let keys = Keys::new(cluster);
    let store = Store { dcs, keys: &keys };
    let view = store.view().await?;
    for (name, is_leader) in [(req.leader, true), (req.candidate, false)] {
        let Some(name) = name else { continue };
        if !view.members.contains_key(name) && view.leader.as_ref().is_none_or(|l| l.name != name) {
            let prefix = if is_leader {
                format!("{name} is not the leader: ")
            } else {
                String::new()
            };
            return Err(Invalid(format!(
                "{prefix}no member named {name} (members: {})",
                member_names(&view)
            )));
        }
    }
    let current = view.leader.as_ref().map(|l| l.name.clone());
    if !req.failover {
        let Some(current) = current.as_deref() else {
            return Err(Precondition(format!(
                "cluster {cluster} has no leader: use `ctl failover`"
            )));
        };
        if let Some(expected) = req.leader {
            if expected != current {
                return Err(Precondition(format!(
                    "{expected} is not the leader (the leader is {current})"
                )));
            }
        }
    }
    let candidate = match req.candidate {
        Some(name) => {
            if Some(name) == current.as_deref() && leader_alive(dcs, &view).await {
                return Err(Invalid(format!("{name} is already the leader")));
            }
            let m = view
                .members
                .get(name)
                .ok_or_else(|| Precondition(format!("{name} publishes no status (is its pgha running?)")))?;
            // A failover with the leader's node gone cannot require streaming: nobody streams from a dead primary.
            let why = if !req.failover || leader_alive(dcs, &view).await {
                refusal(&view, m)
            } else {
                failover_refusal(&view, m)
            };
            if let Some(why) = why {
                return Err(Precondition(format!("refusing: {why}")));
            }
            m.name.clone()
        }
        None if req.failover => return Err(Invalid("failover needs --candidate NAME".into())),
        None => best_candidate(&view)
            .map(|m| m.name.clone())
            .ok_or_else(|| Precondition("no streaming replica can take over".into()))?,
    };
    let summary = format!(
        "{} of cluster {cluster}: {} -> {candidate}{}",
        if req.failover { "Failover" } else { "Switchover" },
        current.as_deref().unwrap_or("(no leader)"),
        req.scheduled.map(|s| format!(" at {s}")).unwrap_or_default()
    );
    Ok(Planned {
        current,
        candidate,
        scheduled_unix_ms,
        failover: req.failover,
        summary,
    })
}

/// Stores the request the members act on.
pub async fn submit(dcs: &DcsClient, cluster: &str, planned: &Planned) -> Result<(), SwitchoverError> {
    let keys = Keys::new(cluster);
    let request = SwitchoverRequest {
        leader: if planned.failover {
            None
        } else {
            planned.current.clone()
        },
        candidate: planned.candidate.clone(),
        scheduled_unix_ms: planned.scheduled_unix_ms,
        created_unix_ms: unix_ms(),
    };
    if !(Store { dcs, keys: &keys }).request_switchover(&request).await? {
        return Err(SwitchoverError::Pending);
    }
    Ok(())
}

/// Waits up to `limit` for `candidate` to hold the leader key as primary, showing each change on `progress`;
/// the time it took, or None when it did not happen in time.
pub async fn wait_for_leader(
    dcs: &DcsClient,
    cluster: &str,
    candidate: &str,
    limit: Duration,
    mut progress: Option<&mut Progress>,
) -> Result<Option<Duration>, crate::dcs::client::ClientError> {
    let keys = Keys::new(cluster);
    let store = Store { dcs, keys: &keys };
    let started = Instant::now();
    while started.elapsed() < limit {
        let view = store.view().await?;
        if let Some(p) = progress.as_deref_mut() {
            p.observe(&view);
        }
        if view
            .leader_member()
            .is_some_and(|m| m.name == candidate && m.role == PgRole::Primary)
        {
            return Ok(Some(started.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(None)
}

/// Runs `switchover` or `failover`.
pub async fn run(dcs: &DcsClient, cluster: &str, req: Request<'_>, out: Output) -> anyhow::Result<()> {
    let planned = plan(dcs, cluster, &req).await?;
    let plan = &planned.summary;
    if !req.force && !output::confirm(&format!("{plan}\nAre you sure?"))? {
        bail!("aborted");
    }
    submit(dcs, cluster, &planned).await?;
    if planned.scheduled_unix_ms.is_some() {
        println!("{plan}: scheduled");
        return Ok(());
    }
    let candidate = &planned.candidate;
    let mut progress = Progress::changes_only(Sink::Stderr);
    match wait_for_leader(dcs, cluster, candidate, WAIT, Some(&mut progress)).await? {
        Some(took) => {
            let ms = took.as_millis();
            match out {
                Output::Json => output::json(&serde_json::json!({ "leader": candidate, "elapsed_ms": ms })),
                Output::Table => {
                    println!("{plan}: done in {ms} ms");
                    Ok(())
                }
            }
        }
        None => bail!(
            "{candidate} did not become the leader within {WAIT:?}; the request stays pending (`--cancel` drops it)"
        ),
    }
}

/// Names of the published members, for error messages.
fn member_names(view: &ClusterView) -> String {
    let names: Vec<&str> = view.members.keys().map(String::as_str).collect();
    if names.is_empty() {
        "none published".into()
    } else {
        names.join(", ")
    }
}

/// The leader key is held and its node answers: a SIGKILLed leader keeps its key (and its published status) until
/// the lease expires, so the key alone does not say the leader is alive.
async fn leader_alive(dcs: &DcsClient, view: &ClusterView) -> bool {
    let Some(leader) = view.leader_member() else {
        return false;
    };
    dcs.status_of(&leader.api_addr, LIVENESS_TIMEOUT).await.is_ok()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::model::LeaderKey;

    fn member(name: &str, role: PgRole, state: PgState, lsn: u64) -> MemberInfo {
        MemberInfo::for_test(name, role, state, lsn)
    }

    #[test]
    fn candidates_are_refused_with_the_reason() {
        let mut view = ClusterView {
            leader: Some(LeaderKey {
                name: "a".into(),
                lease: 1,
                mod_revision: 1,
            }),
            ..ClusterView::default()
        };
        view.members
            .insert("a".into(), member("a", PgRole::Primary, PgState::Running, 10 << 20));
        let ok = member("b", PgRole::Replica, PgState::Streaming, 10 << 20);
        let mut nofailover = ok.clone();
        nofailover.nofailover = true;
        let stopped = member("c", PgRole::Unknown, PgState::Stopped, 0);
        let running = member("d", PgRole::Replica, PgState::Running, 10 << 20);
        let lagging = member("e", PgRole::Replica, PgState::Streaming, 1 << 20);
        // (member, switchover or live-leader failover, failover without a live leader)
        let cases: [(&MemberInfo, Option<&str>, Option<&str>); 5] = [
            (&ok, None, None),
            (&nofailover, Some("nofailover"), Some("nofailover")),
            (&stopped, Some("not a streaming replica"), Some("not a running replica")),
            (&running, Some("not a streaming replica"), None),
            (&lagging, Some("lags"), None),
        ];
        for (m, with_leader, without) in cases {
            let got = refusal(&view, m);
            match with_leader {
                None => assert_eq!(got, None, "{}", m.name),
                Some(needle) => assert!(
                    got.as_deref().is_some_and(|w| w.contains(needle)),
                    "{}: {got:?}",
                    m.name
                ),
            }
            let got = failover_refusal(&view, m);
            match without {
                None => assert_eq!(got, None, "{}", m.name),
                Some(needle) => assert!(
                    got.as_deref().is_some_and(|w| w.contains(needle)),
                    "{}: {got:?}",
                    m.name
                ),
            }
        }
    }

    #[test]
    fn scheduled_times() {
        let now = 1_800_000_000_000;
        assert_eq!(
            parse_scheduled("2030-01-01T00:00:00Z", now).expect("future"),
            1_893_456_000_000
        );
        let err = parse_scheduled("2020-01-01T00:00:00Z", now)
            .expect_err("past")
            .to_string();
        assert!(err.contains("in the past"), "{err}");
        let err = parse_scheduled("tomorrow", now).expect_err("malformed").to_string();
        assert!(err.contains("RFC 3339") && err.contains("tomorrow"), "{err}");
    }
}
