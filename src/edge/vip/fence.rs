//! Fencing the VIP (invariant 3: no VIP holder without a live DCS lease). A SIGKILLed or frozen edge cannot remove
//! its own address, so `pgha fence-vip`, a tiny process in its own process group, removes it through netlink once
//! the deadline (`send + ttl - ttl/8` of the last successful keepalive) passes without the holder moving it.
//!
//! Same file protocol and pure step as the db fence (`crate::ha::fence`): CLOCK_MONOTONIC nanoseconds, written
//! atomically after every keepalive; removing the file (release) tells the fencer to exit.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::ha::fence::{self as dbfence, FenceStep};

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

    /// Arms or moves the deadline (monotonic ns), starting the fencer if it is not running.
    pub fn arm(&mut self, deadline_ns: u64) -> Result<(), VipError> {
        dbfence::arm(&self.file, deadline_ns).map_err(|e| VipError::Fence(e.to_string()))?;
        let running = self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)));
        if !running {
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

/// The `pgha fence-vip` process: waits until the file is removed (exit) or the deadline passes (remove the address,
/// disarm, exit). A current-thread runtime drives netlink; no other threads.
pub fn run(deadline_file: &Path, cidr: &str, interface: &str) -> Result<(), VipError> {
    let (address, prefix_len) =
        crate::config::parse_vip_address(cidr).map_err(|e| VipError::BadAddress(format!("--address: {e}")))?;
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
            FenceStep::Sleep => std::thread::sleep(dbfence::POLL),
        }
    }
}
