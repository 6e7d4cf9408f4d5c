//! The OS edge: resolving the user PostgreSQL runs as and running its programs as that user, bounded in time.

use std::ffi::{CStr, CString};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::process::Command;

use super::PgError;

/// A resolved OS account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OsUser {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory.
    pub home: PathBuf,
}

/// Who PostgreSQL programs run as, and who pgha is.
#[derive(Clone, Debug)]
pub struct RunAs {
    /// The account owning PGDATA and running PostgreSQL.
    pub user: OsUser,
    /// True when pgha runs as root and switches to `user` for every PostgreSQL program.
    pub switch: bool,
    /// The account pgha itself runs as (mapped to the superuser in `pg_ident.conf`).
    pub pgha_user: String,
}

enum Lookup<'a> {
    Name(&'a CStr),
    Uid(u32),
}

fn getpw(key: Lookup<'_>) -> Result<Option<OsUser>, String> {
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: `pwd`, `buf` and `result` outlive the call; getpw*_r writes only into them, and the strings
        // it points `pwd` at live in `buf`, which is read below before being dropped or reallocated.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let buf_ptr = buf.as_mut_ptr().cast::<libc::c_char>();
        let rc = match &key {
            Lookup::Name(name) => unsafe { libc::getpwnam_r(name.as_ptr(), &mut pwd, buf_ptr, buf.len(), &mut result) },
            Lookup::Uid(uid) => unsafe { libc::getpwuid_r(*uid, &mut pwd, buf_ptr, buf.len(), &mut result) },
        };
        if rc == libc::ERANGE && buf.len() < (1 << 20) {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc).to_string());
        }
        if result.is_null() {
            return Ok(None);
        }
        // SAFETY: on success pw_name and pw_dir are NUL-terminated strings inside `buf`.
        let (name, home) = unsafe { (CStr::from_ptr(pwd.pw_name), CStr::from_ptr(pwd.pw_dir)) };
        return Ok(Some(OsUser {
            name: name.to_string_lossy().into_owned(),
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
            home: PathBuf::from(home.to_string_lossy().into_owned()),
        }));
    }
}

/// Looks an OS user up by name (getpwnam_r).
pub fn lookup_user(name: &str) -> Result<OsUser, PgError> {
    let err = |reason: String| PgError::OsUser {
        user: name.to_string(),
        reason,
    };
    let cname = CString::new(name).map_err(|_| err("contains a NUL byte".into()))?;
    getpw(Lookup::Name(&cname))
        .map_err(|e| err(format!("lookup failed: {e}")))?
        .ok_or_else(|| err("no such user".into()))
}

fn lookup_uid(uid: u32) -> Result<OsUser, PgError> {
    let err = |reason: String| PgError::OsUser {
        user: format!("uid {uid}"),
        reason,
    };
    getpw(Lookup::Uid(uid))
        .map_err(|e| err(format!("lookup failed: {e}")))?
        .ok_or_else(|| err("no passwd entry".into()))
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Resolves who PostgreSQL runs as: `os_user` when pgha is root (which must exist and not be root),
/// else the current user (`os_user` is then ignored).
pub fn resolve_run_as(os_user: &str) -> Result<RunAs, PgError> {
    let me = euid();
    if me == 0 {
        let user = lookup_user(os_user)?;
        if user.uid == 0 {
            return Err(PgError::OsUser {
                user: os_user.into(),
                reason: "PostgreSQL refuses to run as root".into(),
            });
        }
        let pgha_user = lookup_uid(0).map(|u| u.name).unwrap_or_else(|_| "root".into());
        return Ok(RunAs {
            user,
            switch: true,
            pgha_user,
        });
    }
    let user = lookup_uid(me)?;
    if user.name != os_user {
        tracing::debug!(os_user, current = %user.name, "not root: running PostgreSQL as the current user");
    }
    Ok(RunAs {
        pgha_user: user.name.clone(),
        user,
        switch: false,
    })
}

/// Whether a process with this pid exists (kill(pid, 0) succeeds or is refused for permission).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 performs only the existence and permission checks.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Sends `signal` to process `pid` (pgha runs as root or as the PostgreSQL OS user, so it may signal the postmaster).
pub fn send_signal(pid: u32, signal: libc::c_int) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("bad pid {pid}")))?;
    // SAFETY: kill(2) on one positive pid; no memory is shared.
    match unsafe { libc::kill(pid, signal) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

impl RunAs {
    /// uid/gid files must be chowned to (only when pgha switches users).
    pub fn owner(&self) -> Option<(u32, u32)> {
        self.switch.then_some((self.user.uid, self.user.gid))
    }

    /// A command for a PostgreSQL program: runs as `user` (supplementary groups dropped by std), cwd `/`,
    /// LC_ALL=C, every inherited `PG*` variable removed, stdin from /dev/null, killed when dropped.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PG") {
                cmd.env_remove(key);
            }
        }
        cmd.env("LC_ALL", "C")
            .current_dir("/")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if self.switch {
            cmd.uid(self.user.uid).gid(self.user.gid);
            cmd.env("HOME", &self.user.home)
                .env("USER", &self.user.name)
                .env("LOGNAME", &self.user.name);
        }
        cmd
    }
}

/// `program arg...` for messages (arguments never carry secrets).
pub fn display(cmd: &Command) -> String {
    let std = cmd.as_std();
    std::iter::once(std.get_program())
        .chain(std.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The last `max_lines` lines of `text`, at most ~`max_chars` characters.
pub fn tail(text: &str, max_lines: usize, max_chars: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out = lines[lines.len().saturating_sub(max_lines)..].join("\n");
    if out.len() > max_chars {
        let mut cut = out.len() - max_chars;
        while !out.is_char_boundary(cut) {
            cut += 1;
        }
        out = format!("...{}", &out[cut..]);
    }
    out
}

/// The tail of a (server log) file; empty when unreadable.
pub fn file_tail(path: &Path, max_lines: usize) -> String {
    let read = || -> std::io::Result<String> {
        let mut f = std::fs::File::open(path)?;
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(16 * 1024)))?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    read().map(|t| tail(&t, max_lines, 4000)).unwrap_or_default()
}

/// Runs `cmd` to completion within `timeout` (killing it on expiry); a non-zero exit is a [`PgError::Command`]
/// with the tail of its output and, when `log` is given, of that server log.
pub async fn run(
    step: &'static str,
    mut cmd: Command,
    timeout: Duration,
    log: Option<&Path>,
) -> Result<Output, PgError> {
    let shown = display(&cmd);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let program = PathBuf::from(cmd.as_std().get_program());
    let child = cmd.spawn().map_err(PgError::io(step, program))?;
    let log_tail = || log.map(|p| file_tail(p, 20)).unwrap_or_default();
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => Err(PgError::Timeout {
            step,
            command: shown,
            timeout,
            log: log_tail(),
        }),
        Ok(Err(e)) => Err(PgError::Io {
            step,
            path: PathBuf::from(shown),
            source: e,
        }),
        Ok(Ok(out)) if !out.status.success() => {
            let text = format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            );
            Err(PgError::Command {
                step,
                command: shown,
                status: out.status.to_string(),
                output: tail(&text, 15, 3000),
                log: log_tail(),
            })
        }
        Ok(Ok(out)) => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails() {
        for (text, lines, chars, want) in [
            ("a\nb\nc\n", 2, 100, "b\nc"),
            ("a\n\n\nb\n", 5, 100, "a\nb"),
            ("", 3, 100, ""),
            ("abcdef", 1, 3, "...def"),
        ] {
            assert_eq!(tail(text, lines, chars), want, "{text:?}");
        }
    }

    #[test]
    fn users_and_pids() {
        assert!(matches!(lookup_user("no-such-user-pgha"), Err(PgError::OsUser { .. })));
        assert!(matches!(lookup_user("a\0b"), Err(PgError::OsUser { .. })));
        assert_eq!(lookup_user("root").expect("root exists").uid, 0);
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(0));
        assert!(!pid_alive(u32::MAX));
    }
}
