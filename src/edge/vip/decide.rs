//! The VIP keeper's decision (pure): from the `vip` key, our health, our lease clock and the other edges' status,
//! whether to acquire, keep, release or wait. Table-tested; the keeper (keeper.rs) only carries decisions out.
//!
//! Safety comes from the DCS: the address is held only under the `vip` key, bound to our lease and taken with a
//! compare-and-swap on its absence, and released before the lease could expire. Priorities only order who tries
//! first when the key is free (higher number first, ties by name), so the best healthy edge usually wins.

use std::time::{Duration, Instant};

/// Delay per rank when the key is free: the best candidate tries at once, the second after this, ...
pub const RANK_STEP: Duration = Duration::from_millis(500);

/// A holder whose proxy turned unhealthy keeps the VIP this long first. The edge's health is its DCS view being
/// fresh; while the DCS elects a leader (or has no quorum) every edge's view goes stale at once, and moving the VIP
/// then only adds an outage. An edge cut off from the voters cannot renew its lease and lets go at the lease
/// deadline anyway, so the grace costs nothing in that case.
pub const UNHEALTHY_GRACE: Duration = Duration::from_secs(2);

/// Who the `vip` key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// The key is absent.
    Free,
    /// Held by us, under our current lease.
    Me,
    /// Held by another edge (or by an earlier run of ours, under a lease we no longer renew).
    Other(String),
}

/// Another edge's published status (the fields of `edges/<name>` that matter here).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Candidate {
    pub name: String,
    pub healthy: bool,
    /// None: the edge has no VIP configured and never takes it.
    #[serde(default)]
    pub vip_priority: Option<u32>,
}

/// Everything `decide` looks at.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    pub me: &'a str,
    pub my_priority: u32,
    /// Our proxy is healthy (track-script equivalent).
    pub healthy: bool,
    /// Since when it has been unhealthy (None while healthy; None while unhealthy counts as long ago).
    pub unhealthy_since: Option<Instant>,
    /// We hold the address and the key (we acquired it and did not release it).
    pub owning: bool,
    /// Our lease is safely ours by our own clock (before `send + ttl - ttl/4`).
    pub lease_valid: bool,
    pub holder: Holder,
    /// The status of every edge (may include us; our own entry is ignored: our live values are above).
    pub candidates: &'a [Candidate],
    /// The edge that last held the key (it just lost or gave it up: it goes last in the race).
    pub last_holder: Option<&'a str>,
    /// Since when the key has been seen free.
    pub free_since: Option<Instant>,
    pub preempt: bool,
    /// A keeper that just started leaves a free key alone until then, so the other edges' status is known before
    /// anyone ranks (otherwise the first edge up would win whatever its priority).
    pub settle_until: Instant,
    pub now: Instant,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Take the free key (CAS on absence), then add the address and announce it.
    Acquire(String),
    /// Hold on: keep renewing.
    Keep,
    /// Remove the address, then give up the key.
    Release(String),
    /// The key is free but a better candidate goes first: look again after this long.
    Wait(Duration),
    /// Nothing to do until something changes.
    Idle,
}

/// Orders candidates: higher priority first, ties by name.
fn better(a: (u32, &str), b: (u32, &str)) -> bool {
    a.0 > b.0 || (a.0 == b.0 && a.1 < b.1)
}

/// Our position among the healthy candidates (0 = first), the last holder going after everyone else.
pub fn rank(i: &Input) -> usize {
    let others: Vec<(u32, &str)> = i
        .candidates
        .iter()
        .filter(|c| c.name != i.me && c.healthy && Some(c.name.as_str()) != i.last_holder)
        .filter_map(|c| c.vip_priority.map(|p| (p, c.name.as_str())))
        .collect();
    if i.last_holder == Some(i.me) {
        return others.len();
    }
    others.iter().filter(|o| better(**o, (i.my_priority, i.me))).count()
}

/// The decision for this instant.
pub fn decide(i: &Input) -> Decision {
    if i.owning {
        return decide_owning(i);
    }
    if !i.healthy {
        return Decision::Idle;
    }
    match &i.holder {
        // Our key without the address (e.g. the address was removed under us): release to start clean.
        Holder::Me => Decision::Release("VIP key held without the address".into()),
        Holder::Other(_) => Decision::Idle,
        Holder::Free if i.now < i.settle_until => Decision::Wait(i.settle_until - i.now),
        Holder::Free => {
            let r = rank(i);
            if r == 0 {
                return Decision::Acquire("key free, best priority".into());
            }
            let due = i.free_since.unwrap_or(i.now) + RANK_STEP * r as u32;
            if i.now >= due {
                Decision::Acquire(format!(
                    "key free for {} ms, rank {r}",
                    (RANK_STEP * r as u32).as_millis()
                ))
            } else {
                Decision::Wait(due - i.now)
            }
        }
    }
}

fn decide_owning(i: &Input) -> Decision {
    if !i.lease_valid {
        return Decision::Release("lease deadline near without a successful keepalive".into());
    }
    match &i.holder {
        Holder::Me => {}
        Holder::Free => return Decision::Release("VIP key gone from the DCS".into()),
        Holder::Other(o) => return Decision::Release(format!("VIP key now held by {o}")),
    }
    if !i.healthy {
        let waited = i
            .unhealthy_since
            .map_or(UNHEALTHY_GRACE, |t| i.now.saturating_duration_since(t));
        return match waited >= UNHEALTHY_GRACE {
            true => Decision::Release("proxy unhealthy".into()),
            false => Decision::Wait(UNHEALTHY_GRACE - waited),
        };
    }
    if i.preempt {
        let preemptor = i
            .candidates
            .iter()
            .find(|c| c.name != i.me && c.healthy && c.vip_priority.is_some_and(|p| p > i.my_priority));
        if let Some(c) = preemptor {
            return Decision::Release(format!(
                "preempted by {} (priority {} > {})",
                c.name,
                c.vip_priority.unwrap_or_default(),
                i.my_priority
            ));
        }
    }
    Decision::Keep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(name: &str, healthy: bool, prio: Option<u32>) -> Candidate {
        Candidate {
            name: name.into(),
            healthy,
            vip_priority: prio,
        }
    }

    #[test]
    fn decision_table() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let all = vec![
            cand("edge1", true, Some(100)),
            cand("edge2", true, Some(50)),
            cand("edge3", true, Some(50)),
            cand("edge4", false, Some(200)),
            cand("edge5", true, None),
        ];
        let base = Input {
            me: "edge2",
            my_priority: 50,
            healthy: true,
            unhealthy_since: None,
            owning: false,
            lease_valid: false,
            holder: Holder::Free,
            candidates: &all,
            last_holder: None,
            free_since: Some(t0),
            preempt: false,
            settle_until: t0,
            now: t0,
        };
        let acquire = |s: &str| Decision::Acquire(s.into());
        let release = |s: &str| Decision::Release(s.into());
        let held = Input {
            owning: true,
            lease_valid: true,
            holder: Holder::Me,
            ..base.clone()
        };
        #[rustfmt::skip]
        let cases: Vec<(&str, Input, Decision)> = vec![
            ("free, edge1 better: wait one rank", base.clone(), Decision::Wait(ms(500))),
            ("free, rank 1 after its delay", Input { now: t0 + ms(500), ..base.clone() },
                acquire("key free for 500 ms, rank 1")),
            ("best edge takes at once", Input { me: "edge1", my_priority: 100, ..base.clone() },
                acquire("key free, best priority")),
            ("tie by name: edge3 after edge2", Input { me: "edge3", ..base.clone() }, Decision::Wait(ms(1000))),
            ("the last holder is skipped", Input { last_holder: Some("edge1"), ..base.clone() },
                acquire("key free, best priority")),
            ("the last holder goes last", Input { me: "edge1", my_priority: 100, last_holder: Some("edge1"),
                ..base.clone() }, Decision::Wait(ms(1000))),
            ("just started: wait for the others' status", Input { me: "edge1", my_priority: 100,
                settle_until: t0 + ms(300), ..base.clone() }, Decision::Wait(ms(300))),
            ("unhealthy edges do not take it", Input { healthy: false, ..base.clone() }, Decision::Idle),
            ("held by another edge", Input { holder: Holder::Other("edge1".into()), ..base.clone() },
                Decision::Idle),
            ("our key without the address", Input { holder: Holder::Me, ..base.clone() },
                release("VIP key held without the address")),
            ("holder keeps it", held.clone(), Decision::Keep),
            ("holder past its step-down deadline", Input { lease_valid: false, ..held.clone() },
                release("lease deadline near without a successful keepalive")),
            ("holder lost the key", Input { holder: Holder::Free, ..held.clone() },
                release("VIP key gone from the DCS")),
            ("key taken by another", Input { holder: Holder::Other("edge3".into()), ..held.clone() },
                release("VIP key now held by edge3")),
            ("unhealthy holder releases", Input { healthy: false, ..held.clone() }, release("proxy unhealthy")),
            ("unhealthy holder keeps it for the grace (DCS election)", Input { healthy: false,
                unhealthy_since: Some(t0 - ms(500)), ..held.clone() }, Decision::Wait(ms(1500))),
            ("unhealthy holder releases after the grace", Input { healthy: false,
                unhealthy_since: Some(t0 - ms(2000)), ..held.clone() }, release("proxy unhealthy")),
            ("no preemption by default", held.clone(), Decision::Keep),
            ("preemption by a better healthy edge", Input { preempt: true, ..held.clone() },
                release("preempted by edge1 (priority 100 > 50)")),
            ("no preemption by an unhealthy better edge", Input { preempt: true, me: "edge1", my_priority: 100,
                ..held.clone() }, Decision::Keep),
            ("edge3 is preempted too (edge2 ties, edge1 is better)", Input { preempt: true, me: "edge3", ..held.clone() },
                release("preempted by edge1 (priority 100 > 50)")),
        ];
        for (what, input, want) in cases {
            assert_eq!(decide(&input), want, "{what}");
        }
    }

    #[test]
    fn equal_priorities_never_preempt() {
        let all = vec![cand("a", true, Some(10)), cand("b", true, Some(10))];
        let now = Instant::now();
        let i = Input {
            me: "b",
            my_priority: 10,
            healthy: true,
            unhealthy_since: None,
            owning: true,
            lease_valid: true,
            holder: Holder::Me,
            candidates: &all,
            last_holder: None,
            free_since: None,
            preempt: true,
            settle_until: now,
            now,
        };
        assert_eq!(decide(&i), Decision::Keep);
    }

    #[test]
    fn status_json_ignores_other_fields() {
        let c: Candidate =
            serde_json::from_str(r#"{"name":"edge1","healthy":true,"vip_priority":7,"ports":[5432]}"#).expect("json");
        assert_eq!(c, cand("edge1", true, Some(7)));
        let c: Candidate = serde_json::from_str(r#"{"name":"edge2","healthy":false}"#).expect("json");
        assert_eq!(c.vip_priority, None);
    }
}
