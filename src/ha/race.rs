//! Who may take the free leader key: the most advanced eligible replica (pure).

/// A member's answer (or our own state) in the leader race.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub name: String,
    pub lsn: u64,
    pub failover_priority: i32,
    pub nofailover: bool,
}

/// `Ok` when `me` should take the key; otherwise why not. `last_leader_lsn` is the last WAL position the old primary
/// published; `max_lag` is `maximum_lag_on_failover`.
pub fn should_take_leader(
    me: &Candidate,
    peers: &[Candidate],
    last_leader_lsn: Option<u64>,
    max_lag: u64,
) -> Result<(), String> {
    if me.nofailover {
        return Err("this member is nofailover".into());
    }
    if let Some(leader_lsn) = last_leader_lsn {
        let lag = leader_lsn.saturating_sub(me.lsn);
        if lag > max_lag {
            return Err(format!(
                "{lag} bytes behind the last primary position (maximum_lag_on_failover {max_lag})"
            ));
        }
    }
    for p in peers.iter().filter(|p| !p.nofailover && p.name != me.name) {
        let better = p.lsn > me.lsn
            || (p.lsn == me.lsn && p.failover_priority > me.failover_priority)
            || (p.lsn == me.lsn && p.failover_priority == me.failover_priority && p.name < me.name);
        if better {
            return Err(format!(
                "{} is a better candidate (lsn {} vs {})",
                p.name, p.lsn, me.lsn
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, lsn: u64, prio: i32, nofailover: bool) -> Candidate {
        Candidate {
            name: name.into(),
            lsn,
            failover_priority: prio,
            nofailover,
        }
    }

    /// (case, me, peers, last leader lsn, expected to take the key)
    type Case = (&'static str, Candidate, Vec<Candidate>, Option<u64>, bool);

    #[test]
    fn race_table() {
        let cases: Vec<Case> = vec![
            ("alone", c("db2", 100, 0, false), vec![], None, true),
            (
                "most advanced wins",
                c("db2", 200, 0, false),
                vec![c("db3", 100, 0, false)],
                None,
                true,
            ),
            (
                "behind loses",
                c("db2", 100, 0, false),
                vec![c("db3", 200, 0, false)],
                None,
                false,
            ),
            (
                "tie: priority",
                c("db2", 100, 0, false),
                vec![c("db3", 100, 5, false)],
                None,
                false,
            ),
            (
                "tie: priority wins",
                c("db2", 100, 5, false),
                vec![c("db3", 100, 0, false)],
                None,
                true,
            ),
            (
                "tie: name",
                c("db3", 100, 0, false),
                vec![c("db2", 100, 0, false)],
                None,
                false,
            ),
            (
                "tie: name wins",
                c("db2", 100, 0, false),
                vec![c("db3", 100, 0, false)],
                None,
                true,
            ),
            (
                "nofailover peer ignored",
                c("db2", 100, 0, false),
                vec![c("db3", 900, 0, true)],
                None,
                true,
            ),
            ("nofailover me", c("db2", 900, 0, true), vec![], None, false),
            (
                "too far behind",
                c("db2", 100, 0, false),
                vec![],
                Some(100 + (2 << 20)),
                false,
            ),
            (
                "within max lag",
                c("db2", 100, 0, false),
                vec![],
                Some(100 + 1000),
                true,
            ),
        ];
        for (name, me, peers, leader_lsn, expect) in cases {
            assert_eq!(
                should_take_leader(&me, &peers, leader_lsn, 1 << 20).is_ok(),
                expect,
                "{name}"
            );
        }
    }
}
