//! Fencing the VIP (invariant 3: no VIP holder without a live DCS lease). A SIGKILLed or frozen edge cannot remove
//! its own address, so `pgha fence-vip`, a tiny process in its own process group, removes it through netlink once
//! the deadline (`send + ttl - ttl/8` of the last successful keepalive) passes without the holder moving it.
//!
//! Same file protocol and pure step as the db fence (`crate::fence`): CLOCK_MONOTONIC nanoseconds, written
//! atomically after every keepalive; removing the file (release) tells the fencer to exit.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::fence::{self as dbfence, FenceStep};

use super::netlink::VipAddress;
use super::VipError;

/// The holder's side: the deadline file and the fencer process guarding it.
pub struct VipFence {
    file: PathBuf,
    exe: PathBuf,
    interface: String,
    cidr: String,
    child: Option<tokio::process::Child>,
}

impl VipFence {
    /// A fence for `address/prefix_len` on `interface`, run by `exe fence-vip`; not armed yet.
    pub fn new(file: PathBuf, exe: PathBuf, interface: &str, address: Ipv4Addr, prefix_len: u8) -> VipFence {
        VipFence {
            file,
            exe,
            interface: interface.to_string(),
            cidr: format!("{address}/{prefix_len}"),
            child: None,
        }
    }

    /// None while the fencer we started runs; else how it ended (or that none was started).
    pub fn exited(&mut self) -> Option<String> {
        match self.child.as_mut().map(|c| c.try_wait()) {
            None => Some("not started".into()),
            Some(Ok(None)) => None,
            Some(Ok(Some(status))) => Some(status.to_string()),
            Some(Err(e)) => Some(format!("unknown state: {e}")),
        }
    }

    /// Arms or moves the deadline (monotonic ns), starting the fencer if it is not running. Ok means both: the
    /// deadline is written and a fencer process runs.
    pub fn arm(&mut self, deadline_ns: u64) -> Result<(), VipError> {
        dbfence::arm(&self.file, deadline_ns).map_err(|e| VipError::Fence(e.to_string()))?;
        if self.exited().is_some() {
            let child = tokio::process::Command::new(&self.exe)
                .arg("fence-vip")
                .arg("--deadline-file")
                .arg(&self.file)
                .arg("--address")
                .arg(&self.cidr)
                .arg("--interface")
                .arg(&self.interface)
                .process_group(0) // not stopped or killed together with pgha
                .kill_on_drop(false)
                .spawn()
                .map_err(|e| VipError::Fence(format!("starting {} fence-vip: {e}", self.exe.display())))?;
            tracing::debug!(pid = child.id(), "VIP fencing process started");
            self.child = Some(child);
        }
        Ok(())
    }

    /// Disarms: the fencer exits on its own when it sees the file gone.
    pub fn disarm(&mut self) -> Result<(), VipError> {
        dbfence::disarm(&self.file).map_err(|e| VipError::Fence(e.to_string()))
    }
}

/// The deadline file of edge `edge` run by process `pid`, in `dir`.
pub fn deadline_file(dir: &Path, edge: &str, pid: u32) -> PathBuf {
    dir.join(format!("pgha-vip-{edge}-{pid}.deadline"))
}

/// The PID in a deadline file name of edge `edge` (pure).
pub fn file_pid(file_name: &str, edge: &str) -> Option<u32> {
    file_name
        .strip_prefix(&format!("pgha-vip-{edge}-"))?
        .strip_suffix(".deadline")?
        .parse()
        .ok()
}

/// Removes the deadline files of earlier runs of edge `edge` whose process is gone (killed together with its
/// fencer, e.g. a host-wide kill). Call it only after the address was removed at start: a fencer still guarding
/// such a file then has nothing left to guard, and exits when the file goes.
pub fn sweep_stale(dir: &Path, edge: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| file_pid(n, edge)) else {
            continue;
        };
        let gone = i32::try_from(pid).is_ok_and(|p| {
            // SAFETY: signal 0 only checks whether the process exists.
            unsafe { libc::kill(p, 0) != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) }
        });
        if pid != std::process::id() && gone {
            let _ = dbfence::disarm(&entry.path());
        }
    }
}

/// The `pgha fence-vip` process: waits until the file is removed (exit) or the deadline passes (remove the address,
/// disarm, exit). A current-thread runtime drives netlink; no other threads.
pub fn run(deadline_file: &Path, cidr: &str, interface: &str) -> Result<(), VipError> {
    let (address, prefix_len) =
        crate::config::parse_vip_address(cidr).map_err(|e| VipError::BadAddress(format!("--address: {e}")))?;
    if let Err(e) = dbfence::realtime_priority(dbfence::FENCER_PRIORITY) {
        eprintln!("pgha fence-vip: no real-time priority ({e}): on a saturated CPU the deadline may be met late");
    }
    loop {
        let deadline = std::fs::read_to_string(deadline_file).ok();
        // The guarded "thing" is the address itself, which outlives the holder: always alive here.
        match dbfence::step(deadline.as_deref(), true, dbfence::monotonic_ns()) {
            FenceStep::Exit(why) => {
                eprintln!("pgha fence-vip: exiting: {why}");
                return Ok(());
            }
            FenceStep::Fence => {
                eprintln!("pgha fence-vip: lease deadline passed without renewal: removing {cidr} from {interface}");
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| VipError::Fence(format!("starting a runtime: {e}")))?;
                let removed = runtime.block_on(async {
                    let vip = VipAddress::open(interface, address, prefix_len).await?;
                    vip.remove().await
                });
                let _ = dbfence::disarm(deadline_file);
                return removed;
            }
            // `step` never drains: an address has no graceful removal.
            FenceStep::Drain | FenceStep::Sleep => std::thread::sleep(dbfence::POLL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_file_names() {
        let f = deadline_file(Path::new("/tmp"), "edge-1", 42);
        assert_eq!(f, Path::new("/tmp/pgha-vip-edge-1-42.deadline"));
        let name = f.file_name().and_then(|n| n.to_str()).expect("name");
        assert_eq!(file_pid(name, "edge-1"), Some(42));
        assert_eq!(file_pid(name, "edge"), None, "another edge's prefix");
        assert_eq!(file_pid("pgha-vip-edge-1-x.deadline", "edge-1"), None);
        assert_eq!(file_pid("pgha-vip-edge-1-42.deadline.tmp", "edge-1"), None);
    }

    #[test]
    fn sweep_removes_only_dead_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mine = deadline_file(dir.path(), "e", std::process::id());
        // PID 0x7ffffff0 is above pid_max on Linux: never a live process.
        let dead = deadline_file(dir.path(), "e", 0x7fff_fff0);
        let other_edge = deadline_file(dir.path(), "f", 0x7fff_fff0);
        for f in [&mine, &dead, &other_edge] {
            std::fs::write(f, "1").expect("write");
        }
        sweep_stale(dir.path(), "e");
        assert!(mine.exists() && !dead.exists() && other_edge.exists());
    }
}
