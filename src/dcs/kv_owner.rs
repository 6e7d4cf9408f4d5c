//! Lease ownership in the state machine: a command made with a role certificate may only use its own leases.
//!
//! Checked here, in log order, as well as by the member that received the request: a lease that member has not
//! applied yet (a grant still in flight, a fresh leader) is judged here, identically on every member.

use super::KvState;
use crate::dcs::authz::lease_use;
use crate::dcs::types::{Command, CommandResult, Event, Op};
use crate::identity::Caller;

impl KvState {
    /// Applies `cmd` made by `caller`: refused (nothing changes) if it uses another's lease; a granted lease is
    /// recorded as the caller's.
    pub(super) fn apply_as(&mut self, index: u64, caller: &Caller, cmd: &Command) -> (CommandResult, Vec<Event>) {
        if let Err(reason) = self.may_use(caller, cmd) {
            return (CommandResult::Denied(reason), Vec::new());
        }
        let (result, events) = self.apply(index, cmd);
        if let (Command::LeaseGrant { .. }, CommandResult::Lease { id, .. }) = (cmd, &result) {
            if let Some(lease) = self.leases.get_mut(id) {
                lease.owner = Some(caller.clone());
            }
        }
        (result, events)
    }

    fn may_use(&self, caller: &Caller, cmd: &Command) -> Result<(), String> {
        let check = |id: i64| match self.leases.get(&id) {
            Some(lease) => lease_use(lease.owner.as_ref(), caller, id),
            // Unknown: the command itself reports it (found = false, or a rejected put).
            None => Ok(()),
        };
        match cmd {
            Command::LeaseGrant { .. } => Ok(()),
            Command::LeaseKeepAlive { id } | Command::LeaseRevoke { id } => check(*id),
            Command::Txn(txn) => txn
                .success
                .iter()
                .chain(&txn.failure)
                .filter_map(|op| match op {
                    Op::Put { lease, .. } if *lease != 0 => Some(*lease),
                    _ => None,
                })
                .try_for_each(check),
            Command::LeaseExpire { .. } | Command::As { .. } => {
                Err("an internal or nested command cannot be made by a client".to_string())
            }
        }
    }

    /// The owner of lease `id` when it exists (`Some(None)`: granted without a role certificate).
    pub fn lease_owner(&self, id: i64) -> Option<Option<&Caller>> {
        self.leases.get(&id).map(|l| l.owner.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dcs::types::{ExpiredLease, Txn};
    use crate::identity::CertRole;

    fn by(role: CertRole, name: &str, cmd: Command) -> Command {
        Command::by(Some(&Caller::new(role, name)), cmd)
    }

    fn put_bound(key: &str, lease: i64) -> Command {
        Command::Txn(Txn {
            success: vec![Op::Put {
                key: key.as_bytes().to_vec(),
                value: b"v".to_vec(),
                lease,
            }],
            ..Txn::default()
        })
    }

    fn granted(kv: &mut KvState, index: u64, cmd: Command) -> i64 {
        match kv.apply(index, &cmd).0 {
            CommandResult::Lease { id, found: true, .. } => id,
            other => panic!("grant: {other:?}"),
        }
    }

    #[test]
    fn only_the_owner_or_an_admin_uses_a_lease() {
        use CertRole::{Admin, Edge, Member};
        let mut kv = KvState::default();
        let db1 = granted(&mut kv, 1, by(Member, "db1", Command::LeaseGrant { ttl_ms: 1000 }));
        assert_eq!(kv.lease_owner(db1), Some(Some(&Caller::new(Member, "db1"))));
        let legacy = granted(&mut kv, 2, Command::LeaseGrant { ttl_ms: 1000 });
        assert_eq!(kv.lease_owner(legacy), Some(None));
        let revision = kv.revision;

        let refused = [
            by(Edge, "edge1", Command::LeaseKeepAlive { id: db1 }),
            by(Edge, "db1", Command::LeaseKeepAlive { id: db1 }),
            by(Edge, "edge1", Command::LeaseRevoke { id: db1 }),
            by(Edge, "edge1", put_bound("/pgha/main/edges/edge1", db1)),
            by(Member, "db1", Command::LeaseKeepAlive { id: legacy }),
            by(
                Member,
                "db1",
                Command::LeaseExpire {
                    leases: vec![ExpiredLease {
                        id: db1,
                        refreshed_index: 1,
                    }],
                },
            ),
            by(Admin, "ops", by(Admin, "ops", Command::LeaseRevoke { id: db1 })),
        ];
        for (i, cmd) in refused.iter().enumerate() {
            let (result, events) = kv.apply(10 + i as u64, cmd);
            assert!(matches!(result, CommandResult::Denied(_)), "{cmd:?}: {result:?}");
            assert!(events.is_empty());
        }
        // Nothing changed: same revision, the lease still there and not refreshed.
        assert_eq!(kv.revision, revision);
        let (_, lease) = kv.leases().find(|(id, _)| *id == db1).expect("db1's lease");
        assert_eq!(lease.refreshed_index, 1);

        let allowed = [
            by(Member, "db1", Command::LeaseKeepAlive { id: db1 }),
            by(Member, "db1", put_bound("/pgha/main/members/db1", db1)),
            by(Admin, "ops", Command::LeaseKeepAlive { id: legacy }),
            Command::LeaseKeepAlive { id: db1 },
            by(Member, "db1", Command::LeaseKeepAlive { id: 999 }),
        ];
        for (i, cmd) in allowed.iter().enumerate() {
            let (result, _) = kv.apply(20 + i as u64, cmd);
            assert!(!matches!(result, CommandResult::Denied(_)), "{cmd:?}: {result:?}");
        }
        assert_eq!(kv.revision, revision + 1);
    }

    #[test]
    fn snapshots_without_owners_still_load() {
        let json = r#"{"ttl_ms":1000,"keys":[],"refreshed_index":3}"#;
        let lease: crate::dcs::kv::Lease = serde_json::from_str(json).expect("an older lease");
        assert_eq!(lease.owner, None);
    }
}
