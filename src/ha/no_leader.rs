//! A member without data while the cluster has no leader (every member lost its disk): restore it by a `no_leader`
//! replica method instead of waiting for a leader that will never come (pure; Patroni's `no_leader`).

use super::decide::LocalState;
use super::decide::{Action, Decision};
use crate::cluster::model::{ClusterView, PgRole};

/// `Some` when this member should create its data without a leader now; `None` leaves the usual wait.
/// Only with no leader key at all (a key whose holder is starting will serve soon), a DCS session held for a TTL
/// (members holding data have published themselves), and no other member running PostgreSQL (it takes the key in
/// the race, and we clone it then). The restored member is a replica without a leader: it races like any other.
pub fn restore(view: &ClusterView, local: &LocalState) -> Option<Decision> {
    if !local.restore_without_leader || view.leader.is_some() || local.lease.is_none() || !local.settled {
        return None;
    }
    if let Some(m) = view
        .members
        .values()
        .find(|m| m.name != local.name && m.role != PgRole::Unknown)
    {
        return Some(Decision {
            action: Action::Wait,
            reason: format!(
                "no leader, but {} runs PostgreSQL: it races for the key, we clone it then",
                m.name
            ),
        });
    }
    Some(Decision {
        action: Action::RestoreWithoutLeader,
        reason: "no leader and no member running PostgreSQL: creating the data with a no_leader method".into(),
    })
}
