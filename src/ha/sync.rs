//! Synchronous replication (pure): which standbys the leader names in `synchronous_standby_names`, the order in which
//! the `sync` key and PostgreSQL change so the key always covers every acknowledged commit, and who may be promoted.
//!
//! Invariant kept by [`plan`]: while PostgreSQL runs with `ANY k (S)`, the `sync` key holds members `M ⊇ S` and
//! quorum `q <= k`. Every acknowledged commit is then on at least `q` members of `M`, so any `|M| - q + 1` members
//! include one that has it, and the most advanced of them has every acknowledged commit ([`may_promote`]).
//! Growing the set: write the key (union) first, then PostgreSQL. Shrinking: PostgreSQL first, then wait until `k`
//! of the new set have flushed past the WAL position at the switch (older commits are then on them too), then the key.

use std::collections::BTreeSet;

use crate::cluster::model::{DynamicConfig, SyncMode, SyncState};

/// Standby name used while no real standby may confirm commits: nothing can match it, so commits wait.
pub const BLOCKING_NAME: &str = "pgha_no_sync_standby";

/// What PostgreSQL's `synchronous_standby_names` says.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum SyncSpec {
    /// Empty: commits do not wait for standbys.
    #[default]
    Async,
    /// Commits wait and nothing can confirm them (strict mode without a standby; a new primary before it chose).
    Blocking,
    /// `ANY k (names)`: commits wait for `k` of `names`.
    Quorum { k: u32, names: BTreeSet<String> },
}

impl SyncSpec {
    /// The value of `synchronous_standby_names`.
    pub fn render(&self) -> String {
        match self {
            SyncSpec::Async => String::new(),
            SyncSpec::Blocking => format!("ANY 1 (\"{BLOCKING_NAME}\")"),
            SyncSpec::Quorum { k, names } => {
                let list: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
                format!("ANY {k} ({})", list.join(", "))
            }
        }
    }

    fn names(&self) -> BTreeSet<String> {
        match self {
            SyncSpec::Quorum { names, .. } => names.clone(),
            _ => BTreeSet::new(),
        }
    }
}

/// The spec every non-leader renders: blocking in synchronous mode, so that a promoted standby acknowledges nothing
/// before it has chosen (and recorded) its synchronous standbys.
pub fn standby_spec(config: &DynamicConfig) -> SyncSpec {
    match config.synchronous_mode {
        SyncMode::Off => SyncSpec::Async,
        SyncMode::On | SyncMode::Quorum => SyncSpec::Blocking,
    }
}

/// A standby as the primary sees it in `pg_stat_replication`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Standby {
    pub name: String,
    /// Streaming (caught up once), as opposed to catching up or starting.
    pub streaming: bool,
    /// May be promoted (not `nofailover`), so worth naming.
    pub eligible: bool,
    pub flush_lsn: u64,
}

/// The standbys that count as streaming for the synchronous set (pure). `since` is when each of `streaming` was first
/// seen streaming. One not in the key must have streamed for `settle` while a standby of the key streams: a standby
/// whose WAL forked from the primary's connects, streams for a moment and is cut, and each attempt would otherwise
/// change the set (a key write and a reload). With no standby of the key streaming, any streaming one counts at once:
/// commits wait for it.
pub fn settled_streaming(
    me: &str,
    streaming: &[&str],
    since: &std::collections::BTreeMap<String, std::time::Instant>,
    key_members: &[String],
    settle: std::time::Duration,
    now: std::time::Instant,
) -> Vec<String> {
    let in_key = |name: &str| key_members.iter().any(|m| m == name && m != me);
    let key_streams = streaming.iter().any(|n| in_key(n));
    streaming
        .iter()
        .filter(|n| {
            !key_streams
                || in_key(n)
                || since
                    .get(**n)
                    .is_some_and(|t| now.saturating_duration_since(*t) >= settle)
        })
        .map(|n| n.to_string())
        .collect()
}

/// The spec the leader wants for the standbys it sees. Members already in the key come first, so a healthy set is
/// not reshuffled as positions change. With no streaming candidate, commits wait (`Blocking`) in strict mode and
/// while `hold` (a standby is expected back soon, e.g. right after a promotion); otherwise they stop waiting.
pub fn desired(config: &DynamicConfig, standbys: &[Standby], key: Option<&SyncState>, hold: bool) -> SyncSpec {
    if config.synchronous_mode == SyncMode::Off {
        return SyncSpec::Async;
    }
    let mut candidates: Vec<&Standby> = standbys.iter().filter(|s| s.streaming && s.eligible).collect();
    let in_key = |s: &Standby| key.is_some_and(|k| k.members.contains(&s.name));
    candidates.sort_by(|a, b| {
        in_key(b)
            .cmp(&in_key(a))
            .then(b.flush_lsn.cmp(&a.flush_lsn))
            .then(a.name.cmp(&b.name))
    });
    let count = config.synchronous_node_count.max(1) as usize;
    let chosen: Vec<&Standby> = match config.synchronous_mode {
        SyncMode::Quorum => candidates,
        _ => candidates.into_iter().take(count).collect(),
    };
    if chosen.is_empty() {
        return if config.synchronous_mode_strict || hold {
            SyncSpec::Blocking
        } else {
            SyncSpec::Async
        };
    }
    SyncSpec::Quorum {
        k: count.min(chosen.len()) as u32,
        names: chosen.iter().map(|s| s.name.clone()).collect(),
    }
}

/// What the leader aims for when [`desired`] says `Blocking` (no streaming candidate) while PostgreSQL already runs
/// with a quorum of members that may still be synchronous (`eligible`), e.g. the standbys named at the promotion:
/// keep it. Commits wait either way, its members are covered by the key, and whichever comes back first confirms
/// at once, with no reload in between.
pub fn keep_applied(wanted: SyncSpec, applied: Option<&SyncSpec>, eligible: &[String]) -> SyncSpec {
    match (wanted, applied) {
        (SyncSpec::Blocking, Some(SyncSpec::Quorum { k, names })) if names.iter().all(|n| eligible.contains(n)) => {
            SyncSpec::Quorum {
                k: *k,
                names: names.clone(),
            }
        }
        (wanted, _) => wanted,
    }
}

/// The leader's next step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncStep {
    /// Nothing to change.
    Steady,
    /// Write the `sync` key (before PostgreSQL relies on it).
    WriteKey(SyncState),
    /// Delete the `sync` key (synchronous mode is off and PostgreSQL no longer waits).
    DeleteKey,
    /// Render this spec into PostgreSQL and reload.
    Apply(SyncSpec),
    /// The new spec is in effect: note the WAL position now, to know when the new set holds everything before it.
    MarkSwitch,
    /// Waiting for the new set to reach the switch position before the key can shrink.
    AwaitCatchUp { have: u32, need: u32 },
}

/// The key's members and quorum when it covers `spec` for leader `me`.
fn covers(key: Option<&SyncState>, me: &str, spec: &SyncSpec) -> bool {
    match spec {
        SyncSpec::Async | SyncSpec::Blocking => true,
        SyncSpec::Quorum { k, names } => {
            key.is_some_and(|key| key.leader == me && key.quorum <= *k && names.iter().all(|n| key.members.contains(n)))
        }
    }
}

/// The key for leader `me` that covers both `key` (what PostgreSQL may have acknowledged under) and `wanted`: the
/// union of the members, the lower quorum.
fn grown(me: &str, key: Option<&SyncState>, wanted: &SyncSpec) -> SyncState {
    let mut members: BTreeSet<String> = key.map(|k| k.members.iter().cloned().collect()).unwrap_or_default();
    members.extend(wanted.names());
    let quorum = match (key, wanted) {
        (Some(k), SyncSpec::Quorum { k: want, .. }) if !k.members.is_empty() => k.quorum.min(*want),
        (Some(k), _) if !k.members.is_empty() => k.quorum,
        (_, SyncSpec::Quorum { k: want, .. }) => *want,
        _ => 0,
    };
    SyncState {
        leader: me.to_string(),
        members: members.into_iter().collect(),
        quorum,
    }
}

/// What `me`, about to be promoted, names before PostgreSQL leaves recovery, and the `sync` key that covers it
/// (written before, or with, the leader key): `ANY k` of every other member that may be synchronous (`others`), so
/// the first commits are confirmed as soon as one of them streams from the new timeline, not only after the first
/// loop as leader has chosen. Safe like any growth ([`plan`]): the key holds the old members and these, with the
/// lower quorum, before PostgreSQL can run with it. None when nothing is to be named (asynchronous mode, nobody
/// else): commits then wait for that first loop as before.
pub fn at_promotion(
    config: &DynamicConfig,
    me: &str,
    key: Option<&SyncState>,
    others: &[String],
) -> Option<(SyncState, SyncSpec)> {
    if config.synchronous_mode == SyncMode::Off {
        return None;
    }
    let names: BTreeSet<String> = others.iter().filter(|n| *n != me).cloned().collect();
    if names.is_empty() {
        return None;
    }
    let k = config.synchronous_node_count.max(1).min(names.len() as u32);
    let spec = SyncSpec::Quorum { k, names };
    Some((grown(me, key, &spec), spec))
}

/// The next step for leader `me` whose PostgreSQL runs with `applied` (None: not known, e.g. after pgha restarted),
/// wanting `wanted`. `switch_lsn` is the WAL position noted once `applied` took effect; `standbys` are the primary's
/// replication rows.
pub fn plan(
    me: &str,
    key: Option<&SyncState>,
    applied: Option<&SyncSpec>,
    wanted: &SyncSpec,
    switch_lsn: Option<u64>,
    standbys: &[Standby],
) -> SyncStep {
    let Some(applied) = applied.filter(|a| *a == wanted) else {
        if covers(key, me, wanted) {
            return SyncStep::Apply(wanted.clone());
        }
        // Grow first: the key must cover what PostgreSQL runs with now and what it will run with.
        return SyncStep::WriteKey(grown(me, key, wanted));
    };
    // PostgreSQL runs with what we want: shrink the key to exactly that once it is safe.
    let exact = match applied {
        // Nothing can be confirmed, and the members of the key may hold older acknowledged commits: keep it.
        SyncSpec::Blocking => return SyncStep::Steady,
        SyncSpec::Async => {
            return match key {
                None => SyncStep::Steady,
                Some(_) => SyncStep::DeleteKey,
            }
        }
        SyncSpec::Quorum { k, names } => SyncState {
            leader: me.to_string(),
            members: names.iter().cloned().collect(),
            quorum: *k,
        },
    };
    if key == Some(&exact) {
        return SyncStep::Steady;
    }
    let Some(switch) = switch_lsn else {
        return SyncStep::MarkSwitch;
    };
    let need = exact.quorum;
    let have = standbys
        .iter()
        .filter(|s| exact.members.contains(&s.name) && s.flush_lsn >= switch)
        .count() as u32;
    if have >= need {
        SyncStep::WriteKey(exact)
    } else {
        SyncStep::AwaitCatchUp { have, need }
    }
}

/// The switch position known at the moment `next` is applied over `previous`, without waiting for PostgreSQL to
/// report the new setting: leaving `Blocking`, nothing was acknowledged under the old setting, so the commits the
/// key must still cover all lie at or below the primary's current position (`position`). A new primary then drops
/// itself from the key as soon as its standbys pass that position, instead of a few loops later: until then its own
/// crash would leave nobody promotable.
pub fn switch_at_apply(previous: Option<&SyncSpec>, next: &SyncSpec, position: u64) -> Option<u64> {
    (previous == Some(&SyncSpec::Blocking) && matches!(next, SyncSpec::Quorum { .. })).then_some(position)
}

/// Whether `me` may take the leader key given the `sync` key and the members that answered the race (`me` counts
/// as answering). `Ok` when the key does not restrict promotion.
pub fn may_promote(key: Option<&SyncState>, me: &str, answered: &[&str]) -> Result<(), String> {
    let Some(key) = key.filter(|k| !k.members.is_empty()) else {
        return Ok(());
    };
    if !key.members.iter().any(|m| m == me) {
        return Err(format!(
            "not a synchronous standby (synchronous: {})",
            key.members.join(", ")
        ));
    }
    let mut heard: BTreeSet<&str> = answered
        .iter()
        .copied()
        .filter(|a| key.members.iter().any(|m| m == a))
        .collect();
    heard.insert(me);
    let need = (key.members.len() as u32).saturating_sub(key.quorum) + 1;
    if (heard.len() as u32) < need {
        return Err(format!(
            "heard from {} of the synchronous members {}; {need} are needed to be sure of every acknowledged commit",
            heard.len(),
            key.members.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
