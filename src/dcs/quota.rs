//! The state quota (`dcs.limits.max_state_bytes`) on the member that proposes a write: how much a command may grow
//! the state, and the writes it admitted that are not applied yet.
//!
//! The check runs before proposing, not in the state machine: applying must give the same result on every member,
//! and members may be configured differently. Only the leader's proposals reach the log, so counting its own writes
//! in flight keeps the state within the quota, up to what a previous leader still had in flight (see
//! `limits::QUOTA_OVERSHOOT`).

use std::sync::atomic::{AtomicU64, Ordering};

use super::kv::KvState;
use super::limits::{LimitError, Limits, LEASE_COST};
use super::types::{Command, Op};

/// How much `cmd` may grow `kv`'s quota count: the larger branch of a transaction (which one runs is decided
/// when it is applied), one lease for a grant, nothing for the rest.
pub fn growth(kv: &KvState, cmd: &Command) -> u64 {
    // `inner`: a client's command made with a role certificate is wrapped with its caller (authz).
    match cmd.inner() {
        Command::Txn(txn) => branch(kv, &txn.success).max(branch(kv, &txn.failure)),
        Command::LeaseGrant { .. } => LEASE_COST,
        _ => 0,
    }
}

fn branch(kv: &KvState, ops: &[Op]) -> u64 {
    ops.iter()
        .map(|op| match op {
            Op::Put { key, value, .. } => kv.put_growth(key, value.len()),
            Op::Delete { .. } => 0,
        })
        .sum()
}

/// Bytes of growth this member admitted and has not seen applied.
#[derive(Debug, Default)]
pub struct InFlight(AtomicU64);

/// Growth admitted for one write; released when dropped (after the write was applied, failed or timed out).
#[derive(Debug)]
pub struct Admitted<'a> {
    in_flight: &'a InFlight,
    bytes: u64,
}

impl InFlight {
    /// Admits `growth` bytes over a state of `state` bytes, or says which limit it would break.
    pub fn admit(&self, limits: &Limits, state: u64, growth: u64) -> Result<Admitted<'_>, LimitError> {
        let mut refused = None;
        let admitted = self.0.fetch_update(Ordering::AcqRel, Ordering::Acquire, |in_flight| {
            match limits.check_growth(state, in_flight, growth) {
                Ok(()) => Some(in_flight + growth),
                Err(e) => {
                    refused = Some(e);
                    None
                }
            }
        });
        match (admitted, refused) {
            (Ok(_), _) => Ok(Admitted {
                in_flight: self,
                bytes: growth,
            }),
            (Err(_), Some(e)) => Err(e),
            (Err(_), None) => unreachable!("fetch_update fails only when the closure refused"),
        }
    }

    /// Admits no growth: a member that is not the leader does not count (its state may lag the leader's).
    pub fn nothing(&self) -> Admitted<'_> {
        Admitted {
            in_flight: self,
            bytes: 0,
        }
    }

    /// Bytes admitted and not released.
    pub fn bytes(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.in_flight.0.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dcs::limits::kv_cost;
    use crate::dcs::types::Txn;

    fn put(key: &str, len: usize) -> Op {
        Op::Put {
            key: key.into(),
            value: vec![b'x'; len],
            lease: 0,
        }
    }

    fn txn(success: Vec<Op>, failure: Vec<Op>) -> Command {
        Command::Txn(Txn {
            compares: Vec::new(),
            success,
            failure,
        })
    }

    #[test]
    fn growth_counts_new_bytes_of_the_larger_branch() {
        let mut kv = KvState::default();
        kv.apply(1, &txn(vec![put("a", 100)], vec![]));
        assert_eq!(kv.state_bytes(), kv_cost(1, 100));
        let delete = Op::Delete {
            key: b"a".to_vec(),
            prefix: false,
        };
        let table: &[(&str, Command, u64)] = &[
            ("a new key", txn(vec![put("b", 10)], vec![]), kv_cost(1, 10)),
            ("a larger value", txn(vec![put("a", 150)], vec![]), 50),
            ("a smaller value", txn(vec![put("a", 10)], vec![]), 0),
            ("a delete", txn(vec![delete.clone()], vec![]), 0),
            (
                "the larger branch",
                txn(vec![put("b", 10)], vec![put("c", 20)]),
                kv_cost(1, 20),
            ),
            ("a lease", Command::LeaseGrant { ttl_ms: 1000 }, LEASE_COST),
            ("a keepalive", Command::LeaseKeepAlive { id: 1 }, 0),
        ];
        for (what, cmd, expected) in table {
            assert_eq!(growth(&kv, cmd), *expected, "{what}");
        }
    }

    #[test]
    fn writes_in_flight_count_until_released_and_deletes_always_pass() {
        let limits = Limits {
            max_state_bytes: 1000,
            ..Limits::DEFAULT
        };
        let in_flight = InFlight::default();
        let first = in_flight.admit(&limits, 500, 300).expect("within the quota");
        let err = in_flight
            .admit(&limits, 500, 300)
            .expect_err("500 + 300 in flight + 300 > 1000");
        assert_eq!(
            err,
            LimitError::State {
                state: 800,
                growth: 300,
                max: 1000
            }
        );
        assert!(err.to_string().contains("dcs.limits.max_state_bytes (1000)"), "{err}");
        in_flight
            .admit(&limits, 2000, 0)
            .expect("a write that does not grow the state passes a full DCS");
        drop(first);
        assert_eq!(in_flight.bytes(), 0);
        in_flight
            .admit(&limits, 500, 300)
            .expect("room again once the first write is released");
    }
}
