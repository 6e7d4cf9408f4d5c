//! Whether every db member streams from the leader again (pure): the leader's member is a running primary, every
//! other member publishes `streaming` in the DCS, and the leader's `pg_stat_replication` lists each of them as
//! streaming (a published state can be a frozen member's last word; the leader's own view cannot).

use crate::ha::model::{ClusterView, PgRole, PgState};

/// The leader's name when every member of `dbs` streams from it; otherwise what is missing. `streaming` holds the
/// `application_name`s the leader's `pg_stat_replication` shows in state `streaming` (None: the leader did not
/// answer).
pub fn rejoined(view: &ClusterView, dbs: &[&str], streaming: Option<&[String]>) -> Result<String, String> {
    let Some(leader) = view.leader_member() else {
        let key = view.leader.as_ref().map(|l| l.name.as_str());
        return Err(format!("no leader with a published status (leader key: {key:?})"));
    };
    if leader.role != PgRole::Primary {
        return Err(format!(
            "leader {} is not a running primary ({:?}, {})",
            leader.name,
            leader.role,
            leader.state.label()
        ));
    }
    let mut missing = Vec::new();
    for name in dbs.iter().filter(|d| **d != leader.name) {
        let published = view.members.get(*name).map(|m| m.state);
        let on_leader = streaming.is_some_and(|s| s.iter().any(|a| a == name));
        if published != Some(PgState::Streaming) || !on_leader {
            let state = published.map_or("no status", PgState::label);
            let seen = match streaming {
                None => "the leader's pg_stat_replication unread",
                Some(_) if on_leader => "streaming on the leader",
                Some(_) => "not streaming on the leader",
            };
            missing.push(format!("{name}: {state}, {seen}"));
        }
    }
    if missing.is_empty() {
        Ok(leader.name.clone())
    } else {
        Err(format!("leader {}; {}", leader.name, missing.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ha::model::{LeaderKey, MemberInfo};

    fn view(members: &[(&str, PgRole, PgState)], leader: Option<&str>) -> ClusterView {
        let mut v = ClusterView::default();
        for (n, r, s) in members {
            v.members.insert(n.to_string(), MemberInfo::for_test(n, *r, *s, 100));
        }
        v.leader = leader.map(|l| LeaderKey {
            name: l.into(),
            lease: 1,
            mod_revision: 1,
        });
        v
    }

    #[test]
    fn every_member_must_stream_from_the_leader() {
        use PgRole::*;
        use PgState::*;
        let dbs = ["db1", "db2", "db3"];
        let all = view(
            &[
                ("db1", Primary, Running),
                ("db2", Replica, Streaming),
                ("db3", Replica, Streaming),
            ],
            Some("db1"),
        );
        let both = vec!["db2".to_string(), "db3".to_string()];
        assert_eq!(rejoined(&all, &dbs, Some(&both)), Ok("db1".into()));
        // Published streaming, but the leader does not see db3: a stale status.
        let one = vec!["db2".to_string()];
        let e = rejoined(&all, &dbs, Some(&one)).unwrap_err();
        assert!(e.contains("db3: streaming, not streaming on the leader"), "{e}");
        assert!(rejoined(&all, &dbs, None).unwrap_err().contains("unread"));
        // A member still stopped.
        let stopped = view(
            &[
                ("db1", Primary, Running),
                ("db2", Replica, Streaming),
                ("db3", Unknown, Stopped),
            ],
            Some("db1"),
        );
        assert!(rejoined(&stopped, &dbs, Some(&both))
            .unwrap_err()
            .contains("db3: stopped"));
        // A member without a status (its pgha down).
        let gone = view(&[("db1", Primary, Running), ("db2", Replica, Streaming)], Some("db1"));
        assert!(rejoined(&gone, &dbs, Some(&both))
            .unwrap_err()
            .contains("db3: no status"));
        // No leader, or a leader still promoting.
        assert!(rejoined(&gone, &dbs, Some(&both)).is_err());
        assert!(rejoined(&view(&[], None), &dbs, None)
            .unwrap_err()
            .contains("no leader"));
        let promoting = view(&[("db2", Replica, Streaming)], Some("db2"));
        assert!(rejoined(&promoting, &dbs, None)
            .unwrap_err()
            .contains("not a running primary"));
    }
}
