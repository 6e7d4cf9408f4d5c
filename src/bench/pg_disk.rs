//! PostgreSQL's own filesystem on a db host, as production often has it: a small tmpfs mounted under the host's
//! directory before pgha starts (the DCS stays on the machine's disk), and the disk-full fault, a filler file beside
//! the data directory that takes every free byte, deleted to heal. Unmounted on drop (lazily if something still
//! holds it), so nothing outlives the topology; the filler lives in memory and goes with the mount.

use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const FILLER: &str = "pgha-chaos-filler";

/// A mounted tmpfs; see the module doc.
#[derive(Debug)]
pub struct PgDisk {
    path: PathBuf,
    mib: u64,
}

fn c_path(path: &Path) -> std::io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
}

fn os_error(what: String) -> impl FnOnce(std::io::Error) -> std::io::Error {
    move |e| std::io::Error::new(e.kind(), format!("{what}: {e}"))
}

impl PgDisk {
    /// Creates `path` and mounts a tmpfs of `mib` MiB on it (root only).
    pub fn mount(path: &Path, mib: u64) -> std::io::Result<PgDisk> {
        std::fs::create_dir_all(path).map_err(os_error(format!("creating {}", path.display())))?;
        let target = c_path(path)?;
        let options = c_path(Path::new(&format!("size={mib}m,mode=0755")))?;
        // SAFETY: mount(2) with NUL-terminated strings that outlive the call; a fresh tmpfs on our own directory.
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                options.as_ptr().cast(),
            )
        };
        if rc != 0 {
            return Err(os_error(format!("mounting a tmpfs on {}", path.display()))(
                std::io::Error::last_os_error(),
            ));
        }
        Ok(PgDisk {
            path: path.to_path_buf(),
            mib,
        })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes still free for an unprivileged writer such as PostgreSQL.
    pub fn available(&self) -> std::io::Result<u64> {
        let path = c_path(&self.path)?;
        // SAFETY: statvfs(2) into a zeroed struct we own.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(st.f_bavail as u64 * st.f_frsize as u64)
    }

    /// Fills the filesystem: zeros in 1 MiB, then 4 KiB writes until ENOSPC (bounded by the size). Returns the bytes
    /// left free afterwards (0 when full).
    pub fn fill(&self) -> std::io::Result<u64> {
        let path = self.path.join(FILLER);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(os_error(format!("creating {}", path.display())))?;
        let zeros = vec![0u8; 1 << 20];
        for chunk in [1 << 20, 4096] {
            let rounds = self.mib * 2 + 512;
            for _ in 0..rounds {
                match file.write(&zeros[..chunk]) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                    Err(e) => return Err(os_error(format!("filling {}", path.display()))(e)),
                }
            }
        }
        self.available()
    }

    /// Deletes the filler (healing the disk-full fault); fine when there is none.
    pub fn free(&self) -> std::io::Result<()> {
        match std::fs::remove_file(self.path.join(FILLER)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

impl Drop for PgDisk {
    fn drop(&mut self) {
        let Ok(target) = c_path(&self.path) else { return };
        // SAFETY: umount2(2) on the mount point this value mounted; detach lazily when still busy.
        unsafe {
            if libc::umount2(target.as_ptr(), 0) != 0 {
                libc::umount2(target.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
}
