//! The order of the keeper's effects (pure), so the address never exists without the right to hold it and without
//! its fence: acquire = lease -> CAS key -> arm fence (process running + deadline written) -> add address; a step
//! that fails undoes what came before it, in reverse. While holding, a fence that cannot be kept armed means release.

/// One step of taking the VIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A lease of our own (ttl = the VIP TTL).
    GrantLease,
    /// The `vip` key, put with CAS(absent) bound to that lease.
    TakeKey,
    /// `pgha fence-vip` running and the deadline file written: from here on a SIGKILL or a freeze of the edge
    /// cannot leave the address behind past the lease.
    ArmFence,
    /// The address on the interface (only if the lease is still safely ours).
    AddAddress,
}

/// The only order in which the keeper takes the VIP.
pub const ACQUIRE: [Step; 4] = [Step::GrantLease, Step::TakeKey, Step::ArmFence, Step::AddAddress];

/// One undo action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undo {
    /// Remove the address (idempotent: absent is done).
    RemoveAddress,
    /// Remove the deadline file: the fencer exits.
    DisarmFence,
    /// Revoke the lease: the DCS deletes the key with it (if our put went through, even when its answer was lost).
    RevokeLease,
}

/// What to undo when `failed` did not complete (its own partial effect included), in order.
pub fn undo_after(failed: Step) -> &'static [Undo] {
    match failed {
        Step::GrantLease => &[],
        Step::TakeKey => &[Undo::RevokeLease],
        Step::ArmFence => &[Undo::DisarmFence, Undo::RevokeLease],
        Step::AddAddress => &[Undo::RemoveAddress, Undo::DisarmFence, Undo::RevokeLease],
    }
}

/// The fence of a holder after the keeper tried to (re)arm it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceState {
    /// Deadline moved, fencer running as before.
    Armed,
    /// The fencer had exited while we held the VIP; it runs again (log it).
    Restarted,
    /// The deadline could not be written or the fencer not started: the address must go now (release), since
    /// nothing would remove it if this edge died.
    Unfenced,
}

/// Classifies an arming attempt of a holder (pure): `was_running` before it, `armed` = it succeeded.
pub fn fence_state(was_running: bool, armed: bool) -> FenceState {
    match (armed, was_running) {
        (false, _) => FenceState::Unfenced,
        (true, true) => FenceState::Armed,
        (true, false) => FenceState::Restarted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fence_is_armed_before_the_address_is_added() {
        let at = |s: Step| ACQUIRE.iter().position(|x| *x == s).expect("in the order");
        assert!(at(Step::GrantLease) < at(Step::TakeKey));
        assert!(at(Step::TakeKey) < at(Step::ArmFence));
        assert!(
            at(Step::ArmFence) < at(Step::AddAddress),
            "never an address without its fence"
        );
        assert_eq!(
            ACQUIRE.last(),
            Some(&Step::AddAddress),
            "the address is the last effect"
        );
    }

    #[test]
    fn a_failed_step_undoes_everything_before_it_in_reverse() {
        use Undo::*;
        #[rustfmt::skip]
        let cases: [(Step, &[Undo]); 4] = [
            (Step::GrantLease, &[]),
            // The CAS outcome may be unknown (timeout): revoking deletes the key if it was put.
            (Step::TakeKey, &[RevokeLease]),
            // No address was added: disarm (the fencer may have started) and give the key up.
            (Step::ArmFence, &[DisarmFence, RevokeLease]),
            (Step::AddAddress, &[RemoveAddress, DisarmFence, RevokeLease]),
        ];
        for (step, want) in cases {
            assert_eq!(undo_after(step), want, "{step:?}");
            assert!(!undo_after(step).contains(&RemoveAddress) || step == Step::AddAddress);
        }
    }

    #[test]
    fn a_holder_without_a_working_fence_releases() {
        let cases = [
            (true, true, FenceState::Armed),
            (false, true, FenceState::Restarted),
            (true, false, FenceState::Unfenced),
            (false, false, FenceState::Unfenced),
        ];
        for (was_running, armed, want) in cases {
            assert_eq!(
                fence_state(was_running, armed),
                want,
                "running {was_running}, armed {armed}"
            );
        }
    }
}
