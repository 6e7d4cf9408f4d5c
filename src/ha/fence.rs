//! Fencing (invariant 5): a tiny `pgha fence` process beside the postmaster stops PostgreSQL (immediate shutdown)
//! once the primary's lease deadline passes without pgha moving it forward. It is a separate process in its own
//! process group, so a frozen (SIGSTOP), stuck or killed pgha cannot keep PostgreSQL writable past the lease.
//!
//! Protocol: pgha writes the deadline (CLOCK_MONOTONIC nanoseconds, shared by all processes of the host) to the
//! deadline file after each renewal, atomically (tmp + rename); removing the file disarms the fence. The fencer
//! polls the file and the postmaster, and exits when the postmaster is gone or the file is removed.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often the fencer looks at the deadline.
pub const POLL: Duration = Duration::from_millis(10);

/// Errors of the fencing helpers.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    #[error("fence deadline file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Nanoseconds of the host's monotonic clock.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC is always available on Linux.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// Monotonic nanoseconds of a future instant `in_` from now.
pub fn monotonic_ns_in(in_: Duration) -> u64 {
    monotonic_ns().saturating_add(u64::try_from(in_.as_nanos()).unwrap_or(u64::MAX))
}

/// Arms (or moves) the fence: PostgreSQL is stopped at `deadline_ns` unless moved again.
pub fn arm(file: &Path, deadline_ns: u64) -> Result<(), FenceError> {
    let tmp = file.with_extension("tmp");
    let io = |source| FenceError::Io {
        path: file.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, deadline_ns.to_string()).map_err(io)?;
    std::fs::rename(&tmp, file).map_err(io)
}

/// Disarms the fence (no-op when not armed).
pub fn disarm(file: &Path) -> Result<(), FenceError> {
    match std::fs::remove_file(file) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(FenceError::Io {
            path: file.to_path_buf(),
            source,
        }),
    }
}

/// What the fencer does next (pure).
#[derive(Debug, PartialEq, Eq)]
pub enum FenceStep {
    /// Nothing to guard any more: exit.
    Exit(&'static str),
    /// Stop the postmaster now.
    Fence,
    Sleep,
}

/// Decides one fencer step from the deadline file content, whether the postmaster lives, and the clock.
pub fn step(deadline: Option<&str>, postmaster_alive: bool, now_ns: u64) -> FenceStep {
    if !postmaster_alive {
        return FenceStep::Exit("postmaster is gone");
    }
    match deadline.map(|d| d.trim().parse::<u64>()) {
        None => FenceStep::Exit("fence disarmed"),
        // A torn or garbled file must not disarm the fence: treat it as expired.
        Some(Err(_)) => FenceStep::Fence,
        Some(Ok(d)) if now_ns >= d => FenceStep::Fence,
        Some(Ok(_)) => FenceStep::Sleep,
    }
}

/// The `pgha fence` process: runs until the postmaster is gone, the fence is disarmed, or it fences.
pub fn run(deadline_file: &Path, pgdata: &Path) {
    loop {
        let deadline = std::fs::read_to_string(deadline_file).ok();
        let pid = crate::postgres::postmaster_pid(pgdata).and_then(|p| i32::try_from(p).ok());
        match step(deadline.as_deref(), pid.is_some(), monotonic_ns()) {
            FenceStep::Exit(why) => {
                eprintln!("pgha fence: exiting: {why}");
                return;
            }
            FenceStep::Fence => {
                if let Some(pid) = pid {
                    eprintln!(
                        "pgha fence: lease deadline passed without renewal: immediate shutdown of postmaster {pid}"
                    );
                    // SAFETY: SIGQUIT to the postmaster of this data directory = immediate shutdown of every backend.
                    unsafe {
                        libc::kill(pid, libc::SIGQUIT);
                    }
                }
                let _ = disarm(deadline_file);
                return;
            }
            FenceStep::Sleep => std::thread::sleep(POLL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fence_step_table() {
        let cases = [
            (Some("100"), true, 99, FenceStep::Sleep),
            (Some("100"), true, 100, FenceStep::Fence),
            (Some("100\n"), true, 150, FenceStep::Fence),
            (Some("garbage"), true, 0, FenceStep::Fence),
            (None, true, 0, FenceStep::Exit("fence disarmed")),
            (Some("100"), false, 150, FenceStep::Exit("postmaster is gone")),
        ];
        for (deadline, alive, now, expect) in cases {
            assert_eq!(step(deadline, alive, now), expect, "{deadline:?} {alive} {now}");
        }
    }

    #[test]
    fn arm_and_disarm() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("fence.deadline");
        arm(&file, 42).expect("arm");
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "42");
        disarm(&file).expect("disarm");
        disarm(&file).expect("disarm twice is fine");
        assert!(monotonic_ns_in(Duration::from_secs(1)) > monotonic_ns());
    }
}
