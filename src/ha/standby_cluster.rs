//! The standby cluster rules of the HA decision (pure): the leader of a cluster whose dynamic config names a remote
//! primary is a "standby leader" that follows the remote; without that setting it promotes (`ctl promote-cluster`);
//! a primary leader that gets it stops being writable and follows the remote (`ctl demote-cluster`).
//!
//! Only the leader-key holder is concerned: the other members follow the standby leader as they follow a primary
//! (cascading), and fail over as usual (the new leader keeps following the remote).

use super::decide::{Action, Decision, LocalData, LocalPg, LocalState};
use crate::cluster::model::{ClusterView, PgRole, PgState};
use crate::cluster::standby::StandbyCluster;

fn d(action: Action, reason: impl Into<String>) -> Decision {
    Decision {
        action,
        reason: reason.into(),
    }
}

/// The standby cluster's leader serves its replicas: it runs in recovery (streaming from the remote, or replaying
/// from the archive). False outside a standby cluster.
pub fn leader_serves(view: &ClusterView) -> bool {
    view.config.standby_cluster.is_some()
        && view
            .leader_member()
            .is_some_and(|m| m.role == PgRole::Replica && matches!(m.state, PgState::Streaming | PgState::Running))
}

/// Why pg_rewind from the standby leader must wait: pg_rewind takes a standby source's timeline from its last
/// restartpoint, which stays on the old timeline after the remote's promotion until the standby leader makes one
/// (`LeadStandby` asks for it); rewinding before would find "no rewind required" and leave a diverged replica.
pub fn rewind_wait(view: &ClusterView) -> Option<Decision> {
    let m = view.leader_member()?;
    (m.checkpoint_timeline != 0 && m.checkpoint_timeline < m.timeline).then(|| {
        d(
            Action::Wait,
            format!(
                "waiting for the standby leader {}'s first restartpoint on timeline {} before pg_rewind",
                m.name, m.timeline
            ),
        )
    })
}

/// The decision of the leader-key holder `ours` (with a lease valid by our clock) when the standby setting concerns
/// it; `None`: the ordinary rules apply.
pub fn decide(view: &ClusterView, local: &LocalState, ours: bool) -> Option<Decision> {
    if !ours || !local.lease_valid {
        return None; // followers, and a holder whose lease lapsed (it steps down or waits as usual)
    }
    let standby_data = matches!(local.data, LocalData::Present { standby: true, .. });
    let Some(remote) = view.config.standby_cluster.as_ref() else {
        // The setting is gone while we follow a remote: `ctl promote-cluster`.
        return match &local.pg {
            LocalPg::Running { in_recovery: true, .. } if local.standby_of.is_some() && !local.promotion_held => {
                Some(d(
                    Action::PromoteCluster,
                    "promote-cluster: the standby cluster setting was removed: promoting the standby leader",
                ))
            }
            _ => None,
        };
    };
    let what = remote.describe();
    Some(match &local.pg {
        LocalPg::Running { in_recovery: false, .. } => d(
            Action::DemoteToStandby,
            format!("demote-cluster: this cluster is now a standby cluster of {what}: stopping the primary"),
        ),
        LocalPg::Stopped | LocalPg::Crashed { .. } if !standby_data => d(
            Action::DemoteToStandby,
            format!("standby cluster of {what}: our data is a primary's, rewinding it before following"),
        ),
        LocalPg::Starting { .. } if !standby_data => {
            return None; // a primary in crash recovery: once it runs, it is demoted (above)
        }
        _ if local.standby_of.as_ref() != Some(remote) => follow(remote, &what),
        LocalPg::Running { .. } | LocalPg::Starting { .. } => {
            d(Action::LeadStandby, format!("standby leader: following {what}"))
        }
        LocalPg::Stopped | LocalPg::Crashed { .. } => follow(remote, &what),
    })
}

fn follow(remote: &StandbyCluster, what: &str) -> Decision {
    d(
        Action::FollowRemote { remote: remote.clone() },
        format!("standby leader: following the remote {what}"),
    )
}
