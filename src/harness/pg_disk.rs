//! PostgreSQL's own filesystem on a db host, as production often has it: a tmpfs mounted under the host's directory
//! before pgha starts (the DCS stays on the machine's disk; memory is used only for what is stored), and the
//! disk-full fault: the tmpfs is shrunk (remount) to what it holds, a filler file takes the last partial page, and
//! both are undone to heal. No memory is spent on filling. Unmounted on drop (lazily if something still holds it), so
//! nothing outlives the topology.

use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const FILLER: &str = "pgha-chaos-filler";
const FLAGS: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV;

/// A mounted tmpfs; see the module doc.
#[derive(Debug)]
pub struct PgDisk {
    path: PathBuf,
    mib: u64,
}

fn c_string(text: &[u8]) -> std::io::Result<CString> {
    CString::new(text).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
}

fn os_error(what: String) -> impl FnOnce(std::io::Error) -> std::io::Error {
    move |e| std::io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// (bytes in use, bytes free for an unprivileged writer) of the filesystem at `path`.
fn usage(path: &Path) -> std::io::Result<(u64, u64)> {
    let p = c_string(path.as_os_str().as_bytes())?;
    // SAFETY: statvfs(2) into a zeroed struct we own.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(p.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let block = st.f_frsize as u64;
    Ok((
        (st.f_blocks as u64 - st.f_bfree as u64) * block,
        st.f_bavail as u64 * block,
    ))
}

/// mount(2) of a tmpfs on `path` with `options`, or a remount of it.
fn mount(path: &Path, options: &str, remount: bool) -> std::io::Result<()> {
    let target = c_string(path.as_os_str().as_bytes())?;
    let options = c_string(options.as_bytes())?;
    let flags = if remount { FLAGS | libc::MS_REMOUNT } else { FLAGS };
    // SAFETY: mount(2) with NUL-terminated strings that outlive the call, on a directory this module owns.
    let rc = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            flags,
            options.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl PgDisk {
    /// Creates `path` and mounts a tmpfs of at most `mib` MiB on it (root only).
    pub fn mount(path: &Path, mib: u64) -> std::io::Result<PgDisk> {
        std::fs::create_dir_all(path).map_err(os_error(format!("creating {}", path.display())))?;
        mount(path, &format!("size={mib}m,mode=0755"), false)
            .map_err(os_error(format!("mounting a tmpfs on {}", path.display())))?;
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
        usage(&self.path).map(|(_, free)| free)
    }

    /// Fills the filesystem: shrinks it to what it holds (retried while PostgreSQL writes meanwhile: a tmpfs cannot
    /// shrink below its use), then writes zeros until ENOSPC. Returns the bytes left free (0 when full).
    pub fn fill(&self) -> std::io::Result<u64> {
        let what = || format!("shrinking the tmpfs on {}", self.path.display());
        let mut shrunk = false;
        for _ in 0..20 {
            let (used, _) = usage(&self.path)?;
            match mount(&self.path, &format!("size={}k", used.div_ceil(1024)), true) {
                Ok(()) => {
                    shrunk = true;
                    break;
                }
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => continue,
                Err(e) => return Err(os_error(what())(e)),
            }
        }
        if !shrunk {
            return Err(std::io::Error::other(format!("{}: its use kept growing", what())));
        }
        let path = self.path.join(FILLER);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(os_error(format!("creating {}", path.display())))?;
        let zeros = [0u8; 4096];
        // What is left after the shrink is less than a page or two; bounded anyway.
        for _ in 0..1024 {
            match file.write(&zeros) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => return Err(os_error(format!("filling {}", path.display()))(e)),
            }
        }
        self.available()
    }

    /// Heals [`PgDisk::fill`]: deletes the filler and gives the filesystem its size back; fine when not full.
    pub fn free(&self) -> std::io::Result<()> {
        match std::fs::remove_file(self.path.join(FILLER)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        mount(&self.path, &format!("size={}m", self.mib), true)
            .map_err(os_error(format!("growing the tmpfs on {} back", self.path.display())))
    }
}

impl Drop for PgDisk {
    fn drop(&mut self) {
        let Ok(target) = c_string(self.path.as_os_str().as_bytes()) else {
            return;
        };
        // SAFETY: umount2(2) on the mount point this value mounted; detach lazily when still busy.
        unsafe {
            if libc::umount2(target.as_ptr(), 0) != 0 {
                libc::umount2(target.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_to_the_last_byte_and_heals() {
        if !crate::netns::is_root() {
            eprintln!("skipped: fills_to_the_last_byte_and_heals needs root (mount)");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let mount_point = dir.path().join("disk");
        {
            let disk = PgDisk::mount(&mount_point, 16).expect("mount");
            std::fs::write(disk.path().join("data"), vec![1u8; 3 << 20]).expect("some data");
            assert!(disk.available().expect("statvfs") > 10 << 20);
            assert_eq!(disk.fill().expect("fill"), 0);
            let err = std::fs::write(disk.path().join("more"), vec![1u8; 8192]).expect_err("a full disk");
            assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
            disk.free().expect("free");
            assert!(disk.available().expect("statvfs") > 10 << 20);
            std::fs::write(disk.path().join("more"), vec![1u8; 8192]).expect("room again");
        }
        // Unmounted on drop: the directory is empty again.
        assert_eq!(std::fs::read_dir(&mount_point).expect("mount point").count(), 0);
    }
}
