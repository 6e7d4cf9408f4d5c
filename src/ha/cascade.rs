//! Cascading replication (Patroni's `replicatefrom` tag), pure: which member a replica streams from, which slots a
//! standby keeps for the members that stream from it, and which of the primary's member slots it moves forward for
//! members that stream from another replica.
//!
//! A replica tagged `replicatefrom = NAME` streams from NAME while NAME is in the view, runs PostgreSQL as a streaming
//! replica (or is the leader) and is not itself; otherwise from the leader. Chains are followed: a chain that comes
//! back to this member (A from B, B from A) is a loop and every member on it streams from the leader, as Patroni does.
//! Hazard: the upstream's own choice is read from the view (its tag and published state), so both ends of a loop
//! reach the same verdict in the same view and neither waits for the other.

use std::collections::{BTreeMap, BTreeSet};

use crate::cluster::model::{ClusterView, MemberInfo, PgRole, PgState};
use crate::postgres::slot_name;

/// The tag's name.
pub const TAG: &str = "replicatefrom";

/// The member `tags` name as upstream (trimmed), if any.
pub fn replicatefrom(tags: &BTreeMap<String, String>) -> Option<&str> {
    tags.get(TAG).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// Where a replica streams from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source<'a> {
    /// The leader: no `replicatefrom` tag, or it names the leader.
    Leader,
    /// The member the tag names, which can serve now.
    Member(&'a MemberInfo),
    /// The tag names a member that cannot serve now (why): the leader.
    Fallback(String),
}

/// A member other replicas may stream from: the leader, or a replica that streams.
fn serves(view: &ClusterView, m: &MemberInfo) -> bool {
    let leader = view.leader.as_ref().is_some_and(|l| l.name == m.name);
    leader || (m.role == PgRole::Replica && m.state == PgState::Streaming)
}

/// The upstream of `me`, tagged `replicatefrom` (None: untagged).
pub fn source<'a>(view: &'a ClusterView, me: &str, tagged: Option<&str>) -> Source<'a> {
    let Some(name) = tagged else {
        return Source::Leader;
    };
    if name == me {
        return Source::Fallback(format!("replicatefrom names this member ({name}) itself"));
    }
    if view.leader.as_ref().is_some_and(|l| l.name == name) {
        return Source::Leader;
    }
    let Some(upstream) = view.members.get(name) else {
        return Source::Fallback(format!("{name} (replicatefrom) is not in the cluster"));
    };
    if !serves(view, upstream) {
        return Source::Fallback(format!(
            "{name} (replicatefrom) is not a streaming replica ({})",
            upstream.state.label()
        ));
    }
    // Walk the chain above `upstream`: it ends at the leader, at a member without the tag, or at one whose own
    // upstream cannot serve (it then streams from the leader); coming back to `me` is a loop.
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut at = upstream;
    loop {
        if view.leader.as_ref().is_some_and(|l| l.name == at.name) {
            return Source::Member(upstream);
        }
        if !seen.insert(at.name.as_str()) {
            // A loop above us: its members stream from the leader, so our upstream does too.
            return Source::Member(upstream);
        }
        let next_name = replicatefrom(&at.tags).filter(|n| *n != at.name);
        if next_name == Some(me) {
            return Source::Fallback(format!("{name} (replicatefrom) leads back to this member: a loop"));
        }
        let next = next_name
            .and_then(|n| view.members.get(n))
            .filter(|n| seen.contains(n.name.as_str()) || serves(view, n));
        match next {
            Some(n) => at = n,
            None => return Source::Member(upstream),
        }
    }
}

/// Whether `m` streams from another replica rather than the leader (by its tag and the view).
pub fn cascades(view: &ClusterView, m: &MemberInfo) -> bool {
    matches!(source(view, &m.name, replicatefrom(&m.tags)), Source::Member(_))
}

/// The members whose `replicatefrom` names `me`, a standby, and that may stream from it (the leader never does):
/// `me` keeps their slots (Patroni keeps them whether or not they stream from it at the moment, so a member that
/// fell back to the leader finds its slot when it returns).
pub fn downstream<'a>(view: &'a ClusterView, me: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    let leader = view.leader.as_ref().map(|l| l.name.as_str());
    view.members
        .values()
        .filter(move |m| m.name != me && Some(m.name.as_str()) != leader && replicatefrom(&m.tags) == Some(me))
        .map(|m| m.name.as_str())
}

/// On the primary `me`: the slots of members that stream from another replica, with the position to move each to
/// (the lowest of what the member published as received and replayed: it holds the WAL before that). Such a slot is
/// not used while the member cascades, and would hold the primary's WAL for as long; kept up to date, the member
/// falls back to the leader without a rewind. Only members on the leader's timeline.
pub fn advance_targets(view: &ClusterView, me: &str) -> Vec<(String, u64)> {
    let timeline = view.members.get(me).map(|m| m.timeline).unwrap_or(0);
    view.members
        .values()
        .filter(|m| m.name != me && m.role == PgRole::Replica && m.state == PgState::Streaming)
        .filter(|m| m.timeline == timeline && cascades(view, m))
        .map(|m| (slot_name(&m.name), m.receive_lsn.min(m.replay_lsn)))
        .filter(|(_, lsn)| *lsn > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::model::LeaderKey;

    /// Leader a; b, c, d streaming replicas; `tags` as (member, replicatefrom).
    fn view(tags: &[(&str, &str)]) -> ClusterView {
        let mut v = ClusterView {
            leader: Some(LeaderKey {
                name: "a".into(),
                lease: 1,
                mod_revision: 1,
            }),
            ..ClusterView::default()
        };
        v.members.insert(
            "a".into(),
            MemberInfo::for_test("a", PgRole::Primary, PgState::Running, 100),
        );
        for n in ["b", "c", "d"] {
            v.members.insert(
                n.into(),
                MemberInfo::for_test(n, PgRole::Replica, PgState::Streaming, 90),
            );
        }
        for (m, up) in tags {
            if let Some(m) = v.members.get_mut(*m) {
                m.tags.insert(TAG.into(), up.to_string());
            }
        }
        v
    }

    fn name(s: Source<'_>) -> String {
        match s {
            Source::Leader => "leader".into(),
            Source::Member(m) => m.name.clone(),
            Source::Fallback(_) => "fallback".into(),
        }
    }

    #[test]
    fn source_table() {
        /// (member, replicatefrom) pairs.
        type Tags = &'static [(&'static str, &'static str)];
        let cases: &[(Tags, &str, &str)] = &[
            // (tags, member, its source)
            (&[], "c", "leader"),
            (&[("c", "b")], "c", "b"),
            (&[("c", "a")], "c", "leader"),
            (&[("c", "c")], "c", "fallback"),
            (&[("c", "zz")], "c", "fallback"),
            (&[("c", " b ")], "c", "b"),
            (&[("c", "")], "c", "leader"),
            // A chain: d from c from b from the leader.
            (&[("c", "b"), ("d", "c")], "d", "c"),
            // Loops: every member on one streams from the leader.
            (&[("b", "c"), ("c", "b")], "b", "fallback"),
            (&[("b", "c"), ("c", "b")], "c", "fallback"),
            (&[("b", "c"), ("c", "d"), ("d", "b")], "d", "fallback"),
            // d is not on the loop of b and c: they stream from the leader, d from c.
            (&[("b", "c"), ("c", "b"), ("d", "c")], "d", "c"),
            (&[("b", "c"), ("c", "d"), ("d", "c")], "b", "c"),
            (&[("b", "c"), ("c", "d"), ("d", "c")], "c", "fallback"),
        ];
        for (tags, me, want) in cases {
            let v = view(tags);
            let tag = replicatefrom(&v.members[*me].tags);
            assert_eq!(name(source(&v, me, tag)), *want, "{tags:?} {me}");
        }
    }

    #[test]
    fn an_upstream_that_does_not_stream_is_left_for_the_leader() {
        for state in [PgState::Running, PgState::Stopped, PgState::Starting, PgState::Crashed] {
            let mut v = view(&[("c", "b")]);
            if let Some(b) = v.members.get_mut("b") {
                b.state = state;
            }
            assert_eq!(name(source(&v, "c", Some("b"))), "fallback", "{state:?}");
        }
        // b's own upstream is down: b streams from the leader, c from b.
        let mut v = view(&[("c", "b"), ("b", "d")]);
        if let Some(d) = v.members.get_mut("d") {
            d.state = PgState::Stopped;
        }
        assert_eq!(name(source(&v, "c", Some("b"))), "b");
        // No leader key: a named streaming replica still serves.
        let mut v = view(&[("c", "b")]);
        v.leader = None;
        assert_eq!(name(source(&v, "c", Some("b"))), "b");
    }

    #[test]
    fn downstream_slots_and_advances() {
        let v = view(&[("c", "b"), ("d", "b"), ("a", "b")]);
        let down: Vec<&str> = downstream(&v, "b").collect();
        assert_eq!(down, ["c", "d"], "never the leader");
        assert!(downstream(&v, "c").next().is_none());
        let mut v = view(&[("c", "b"), ("d", "zz")]);
        if let Some(c) = v.members.get_mut("c") {
            c.receive_lsn = 80;
            c.replay_lsn = 70;
        }
        assert_eq!(advance_targets(&v, "a"), vec![("c".to_string(), 70)]);
        if let Some(c) = v.members.get_mut("c") {
            c.timeline = 2;
        }
        assert!(advance_targets(&v, "a").is_empty(), "another timeline: left alone");
    }
}
