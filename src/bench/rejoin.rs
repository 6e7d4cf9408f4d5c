//! Whether every db member streams from the leader again (pure): the leader's member is a running primary, every
//! other member publishes `streaming` in the DCS, and the leader's `pg_stat_replication` lists each of them as
//! streaming (a published state can be a frozen member's last word; the leader's own view cannot) on the same
//! walsender for a while ([`Steady`]: a replica whose WAL forked from the leader's reconnects every ~200 ms, streams
//! for a moment, and is told the timeline ended).

use std::time::{Duration, Instant};

use crate::cluster::model::{ClusterView, PgRole, PgState};

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

/// A leader and the (name, walsender pid) of each replica streaming from it.
pub type Senders = (String, Vec<(String, i32)>);

/// Looks at a rejoin until it has held on the same walsenders for `hold`.
#[derive(Clone, Debug)]
pub struct Steady {
    hold: Duration,
    since: Option<(Instant, Senders)>,
}

impl Steady {
    pub fn new(hold: Duration) -> Steady {
        Steady { hold, since: None }
    }

    /// One look at `now`: Some((leader, walsender (name, pid) of each replica)) when [`rejoined`] said yes. Returns
    /// (leader, when the steady stretch began) once it lasted `hold`.
    pub fn observe(&mut self, seen: Option<Senders>, now: Instant) -> Option<(String, Instant)> {
        let Some((leader, mut senders)) = seen else {
            self.since = None;
            return None;
        };
        senders.sort();
        match &self.since {
            Some((from, (l, s))) if *l == leader && *s == senders => {
                let from = *from;
                (now.saturating_duration_since(from) >= self.hold).then_some((leader, from))
            }
            _ => {
                self.since = Some((now, (leader, senders)));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::model::{LeaderKey, MemberInfo};

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

    #[test]
    fn a_rejoin_counts_once_the_same_walsenders_held() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let seen = |l: &str, s: &[(&str, i32)]| {
            Some((
                l.to_string(),
                s.iter().map(|(n, p)| (n.to_string(), *p)).collect::<Vec<_>>(),
            ))
        };
        let mut st = Steady::new(Duration::from_secs(1));
        assert_eq!(st.observe(seen("db1", &[("db3", 7), ("db2", 5)]), at(0)), None);
        assert_eq!(st.observe(seen("db1", &[("db2", 5), ("db3", 7)]), at(600)), None);
        assert_eq!(
            st.observe(seen("db1", &[("db2", 5), ("db3", 7)]), at(1000)),
            Some(("db1".into(), at(0)))
        );
        // A replica that reconnects (a new walsender pid) restarts the stretch, so does a look that fails.
        let mut st = Steady::new(Duration::from_secs(1));
        st.observe(seen("db1", &[("db2", 5), ("db3", 7)]), at(0));
        assert_eq!(st.observe(seen("db1", &[("db2", 5), ("db3", 8)]), at(1000)), None);
        assert_eq!(st.observe(None, at(1500)), None);
        assert_eq!(st.observe(seen("db1", &[("db2", 5), ("db3", 9)]), at(1600)), None);
        assert_eq!(
            st.observe(seen("db1", &[("db2", 5), ("db3", 9)]), at(2700)),
            Some(("db1".into(), at(1600)))
        );
        // A new leader too.
        assert_eq!(st.observe(seen("db2", &[("db1", 1), ("db3", 9)]), at(2800)), None);
    }
}
