//! Fencing (invariant 5): a tiny `pgha fence` process beside the postmaster stops PostgreSQL once the primary's lease
//! runs out without pgha moving it forward. It is a separate process in its own process group, so a frozen (SIGSTOP),
//! stuck or killed pgha cannot keep PostgreSQL writable past the lease.
//!
//! It drains before it kills: at the drain deadline a fast shutdown (SIGINT: no new commit, every backend ends, the
//! walsenders ship all WAL to the connected standbys before the postmaster exits), at the hard deadline an immediate
//! one (SIGQUIT) if the postmaster still runs. Both lie before the DCS can expire the lease.
//!
//! Protocol: pgha writes "<drain_ns> <hard_ns>" (CLOCK_MONOTONIC nanoseconds, shared by all processes of the host; one
//! number means both) to the deadline file after each renewal, atomically (tmp + rename); removing the file disarms
//! the fence. pgha arms the fence BEFORE it starts or promotes PostgreSQL, so the fencer waits for a postmaster to
//! appear; it exits when the file is removed, when the postmaster it guarded is gone, or when none appeared within
//! [`LINGER`] after the hard deadline. The file is not fsynced: monotonic time means nothing after a reboot.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often the fencer looks at the deadline.
pub const POLL: Duration = Duration::from_millis(10);

/// How long after the hard deadline a fencer that never saw a postmaster keeps watching for one (a start that pgha
/// launched just before it froze); any postmaster that appears after the hard deadline is stopped at once.
pub const LINGER: Duration = Duration::from_secs(60);

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

/// The real-time priority of the fencers: above every ordinary process and the VIP keeper's thread
/// ([`KEEPER_PRIORITY`]), below the kernel's own threads (50).
pub const FENCER_PRIORITY: i32 = 10;
/// The real-time priority of the VIP keeper's thread (`edge::vip::thread`).
pub const KEEPER_PRIORITY: i32 = 5;

/// Puts the calling thread in the real-time FIFO class at `priority`; threads and processes it starts later get the
/// ordinary class back (SCHED_RESET_ON_FORK). A fencer only sleeps and looks at a file, but on a host saturated by
/// PostgreSQL or the proxy an ordinary process can wake up late, and the margin between its deadline and the
/// earliest expiry in the DCS is an eighth of the TTL. Fails without CAP_SYS_NICE; callers then run as before and
/// say so once.
pub fn realtime_priority(priority: i32) -> Result<(), std::io::Error> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: sched_setscheduler on the calling thread (tid 0) with a parameter block we own.
    match unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, &param) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// tmpfs's `statfs` magic number.
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// Where deadline files live: a private directory (`pgha-<uid>`, mode 0700) on `/dev/shm` when that is a tmpfs, so
/// writing one is a memory operation: on the disk PostgreSQL writes to, the create and rename of a deadline file
/// waited behind the journal for over a second while the kernel wrote back a pgbench load's dirty pages, the renewal
/// task was stuck in it, and the fencer stopped a healthy primary. Falls back to `fallback` (the old place) when
/// there is no tmpfs or the directory is not ours alone.
pub fn deadline_dir(fallback: &Path) -> PathBuf {
    private_tmpfs_dir(Path::new("/dev/shm")).unwrap_or_else(|| fallback.to_path_buf())
}

fn private_tmpfs_dir(base: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let c_base = std::ffi::CString::new(base.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statfs fills the zeroed struct we own from a NUL-terminated path.
    let magic = unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        if libc::statfs(c_base.as_ptr(), &mut st) != 0 {
            return None;
        }
        st.f_type as i64
    };
    if magic != TMPFS_MAGIC {
        return None;
    }
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let dir = base.join(format!("pgha-{uid}"));
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(_) => return None,
    }
    // Ours alone: a directory another user made (or opened) could have our deadline file replaced under us.
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    (meta.is_dir() && meta.uid() == uid && meta.mode() & 0o077 == 0).then_some(dir)
}

/// Where the db member whose data directory is `data_dir` writes its deadline: [`db_deadline_file`] in
/// [`deadline_dir`] (the data directory itself when there is no private tmpfs).
pub fn db_deadline_path(data_dir: &Path) -> PathBuf {
    db_deadline_file(&deadline_dir(data_dir), data_dir)
}

/// The deadline file of the db member whose data directory is `data_dir`, in `dir`: named by a hash of the path, so
/// members (and clusters) sharing a host never share one, and a restarted member finds its own again.
pub fn db_deadline_file(dir: &Path, data_dir: &Path) -> PathBuf {
    // FNV-1a: stable across builds and versions, unlike the standard library's hasher.
    let hash = data_dir
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    dir.join(format!("pgha-fence-{hash:016x}.deadline"))
}

/// Arms (or moves) the fence: PostgreSQL is stopped at `deadline_ns` unless moved again.
pub fn arm(file: &Path, deadline_ns: u64) -> Result<(), FenceError> {
    write_deadlines(file, &deadline_ns.to_string())
}

/// Arms (or moves) a draining fence: a fast shutdown at `drain_ns`, an immediate one at `hard_ns`.
pub fn arm_draining(file: &Path, drain_ns: u64, hard_ns: u64) -> Result<(), FenceError> {
    write_deadlines(file, &format!("{} {hard_ns}", drain_ns.min(hard_ns)))
}

fn write_deadlines(file: &Path, text: &str) -> Result<(), FenceError> {
    // One temporary file per write: the session task and the HA loop both arm, and with a shared name one's rename
    // could find the file already renamed by the other (ENOENT: "cannot arm the fence", PostgreSQL stopped).
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = file.with_extension(format!("tmp.{}.{n}", std::process::id()));
    let io = |source| FenceError::Io {
        path: file.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, file).map_err(|e| {
        // A failed arm must not leave its temporary file behind (one per attempt would pile up).
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

/// The deadlines in a deadline file: (drain, hard); None when torn or garbled.
pub fn parse_deadlines(text: &str) -> Option<(u64, u64)> {
    let mut parts = text.split_whitespace().map(|p| p.parse::<u64>());
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Ok(hard)), None, None) => Some((hard, hard)),
        (Some(Ok(drain)), Some(Ok(hard)), None) => Some((drain.min(hard), hard)),
        _ => None,
    }
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
    /// Start a fast shutdown (the drain deadline passed; the hard one has not).
    Drain,
    Sleep,
}

/// What the PostgreSQL fencer knows about the postmaster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Postmaster {
    pub alive: bool,
    /// A postmaster was alive at some earlier poll.
    pub seen: bool,
    /// A fast shutdown was already requested.
    pub drained: bool,
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

/// Decides one step of the PostgreSQL fencer (pure): drain at the first deadline, kill at the second, wait for a
/// postmaster that is about to start, exit when there is nothing (left) to guard.
pub fn pg_step(deadline: Option<&str>, pm: Postmaster, now_ns: u64) -> FenceStep {
    let Some(text) = deadline else {
        return FenceStep::Exit("fence disarmed");
    };
    if !pm.alive {
        return match parse_deadlines(text) {
            _ if pm.seen => FenceStep::Exit("postmaster is gone"),
            Some((_, hard)) if now_ns >= hard.saturating_add(LINGER.as_nanos() as u64) => {
                FenceStep::Exit("no postmaster appeared before the deadline")
            }
            _ => FenceStep::Sleep,
        };
    }
    match parse_deadlines(text) {
        // A torn or garbled file must not disarm the fence: treat it as expired.
        None => FenceStep::Fence,
        Some((_, hard)) if now_ns >= hard => FenceStep::Fence,
        Some((drain, _)) if now_ns >= drain && !pm.drained => FenceStep::Drain,
        Some(_) => FenceStep::Sleep,
    }
}

/// The `pgha fence` process: runs until the postmaster is gone, the fence is disarmed, or it fences.
pub fn run(deadline_file: &Path, pgdata: &Path) {
    if let Err(e) = realtime_priority(FENCER_PRIORITY) {
        eprintln!("pgha fence: no real-time priority ({e}): on a saturated CPU the deadline may be met late");
    }
    let mut pm = Postmaster {
        alive: false,
        seen: false,
        drained: false,
    };
    loop {
        let deadline = std::fs::read_to_string(deadline_file).ok();
        let pid = crate::postgres::postmaster_pid(pgdata).and_then(|p| i32::try_from(p).ok());
        pm.alive = pid.is_some();
        match pg_step(deadline.as_deref(), pm, monotonic_ns()) {
            FenceStep::Exit(why) => {
                eprintln!("pgha fence: exiting: {why}");
                return;
            }
            FenceStep::Drain => {
                if let Some(pid) = pid {
                    eprintln!(
                        "pgha fence: lease not renewed in time: fast shutdown of postmaster {pid} (connected standbys \
                         receive all WAL)"
                    );
                    // SAFETY: SIGINT to the postmaster of this data directory = fast shutdown.
                    unsafe {
                        libc::kill(pid, libc::SIGINT);
                    }
                }
                pm.drained = true;
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
            FenceStep::Sleep => {}
        }
        pm.seen |= pm.alive;
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_deadline_files_are_per_data_directory_and_stable() {
        let dir = Path::new("/dev/shm/pgha-0");
        let a = db_deadline_file(dir, Path::new("/var/lib/pgha/a"));
        assert_eq!(a, db_deadline_file(dir, Path::new("/var/lib/pgha/a")));
        assert_ne!(a, db_deadline_file(dir, Path::new("/var/lib/pgha/b")));
        assert_eq!(a.parent(), Some(dir));
        let name = a.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        assert!(name.starts_with("pgha-fence-") && name.ends_with(".deadline"), "{name}");
    }

    #[test]
    fn deadline_dir_is_private_or_the_fallback() {
        let fallback = Path::new("/nonexistent-fallback");
        let dir = deadline_dir(fallback);
        if dir != fallback {
            use std::os::unix::fs::MetadataExt;
            let meta = std::fs::metadata(&dir).expect("the tmpfs directory exists");
            assert_eq!(meta.mode() & 0o777, 0o700, "{}", dir.display());
        }
        // Not a tmpfs: the fallback.
        let plain = tempfile::tempdir().expect("temp dir");
        assert_eq!(private_tmpfs_dir(plain.path()), None);
    }

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
    fn pg_fencer_drains_then_kills_and_waits_for_a_starting_postmaster() {
        let pm = |alive, seen, drained| Postmaster { alive, seen, drained };
        let linger = LINGER.as_nanos() as u64;
        let cases = [
            // (file, postmaster, now, step)
            (Some("100 200"), pm(true, true, false), 99, FenceStep::Sleep),
            (Some("100 200"), pm(true, true, false), 100, FenceStep::Drain),
            (Some("100 200"), pm(true, true, true), 150, FenceStep::Sleep),
            (Some("100 200"), pm(true, true, true), 200, FenceStep::Fence),
            (Some("100 200"), pm(true, true, false), 250, FenceStep::Fence),
            (Some("200"), pm(true, true, false), 200, FenceStep::Fence),
            (Some("200"), pm(true, true, false), 199, FenceStep::Sleep),
            (Some("300 200"), pm(true, true, false), 200, FenceStep::Fence),
            (Some("garbage"), pm(true, false, false), 0, FenceStep::Fence),
            (Some("1 2 3"), pm(true, false, false), 0, FenceStep::Fence),
            (None, pm(true, true, false), 0, FenceStep::Exit("fence disarmed")),
            (None, pm(false, false, false), 0, FenceStep::Exit("fence disarmed")),
            // Armed before the start: wait for the postmaster to appear.
            (Some("100 200"), pm(false, false, false), 50, FenceStep::Sleep),
            (
                Some("100 200"),
                pm(false, false, false),
                200 + linger - 1,
                FenceStep::Sleep,
            ),
            (
                Some("100 200"),
                pm(false, false, false),
                200 + linger,
                FenceStep::Exit("no postmaster appeared before the deadline"),
            ),
            // A postmaster that appears after the hard deadline is stopped at once.
            (Some("100 200"), pm(true, false, false), 300, FenceStep::Fence),
            (
                Some("100 200"),
                pm(false, true, true),
                150,
                FenceStep::Exit("postmaster is gone"),
            ),
        ];
        for (file, pm, now, expect) in cases {
            assert_eq!(pg_step(file, pm, now), expect, "{file:?} {pm:?} {now}");
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
        arm_draining(&file, 40, 42).expect("arm draining");
        assert_eq!(
            parse_deadlines(&std::fs::read_to_string(&file).expect("read")),
            Some((40, 42))
        );
        assert!(monotonic_ns_in(Duration::from_secs(1)) > monotonic_ns());
    }
}
