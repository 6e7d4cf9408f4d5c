//! PostgreSQL test instances: temp roots traversable by the postgres user, free ports, polling, and a guard that
//! kills every postmaster a test started, by pid (SIGQUIT, then SIGKILL).
#![allow(dead_code)]

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pgha::postgres::{discover_bin_dir, PgSettings, Postgres};

/// Pause between two polls.
pub const POLL: Duration = Duration::from_millis(50);

/// A temporary root directory made traversable (0755) so the postgres OS user can reach data dirs under it.
pub fn temp_root() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("pgha-pg-").tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
    dir
}

/// A free TCP port on 127.0.0.1 (see `pgha::ports`).
pub fn free_port() -> u16 {
    pgha::harness::local::free_ports(1).expect("a free port")[0]
}

/// Settings of member `name` under `root` (data `<root>/<name>/data`, socket `<root>/<name>/run`), with
/// passwords for the superuser and the replication user.
pub fn settings(root: &Path, name: &str) -> PgSettings {
    let bin = discover_bin_dir(None).expect("PostgreSQL binaries");
    let base = root.join(name);
    let mut s = PgSettings::new(name, &bin, &base.join("data"), &base.join("run"), free_port());
    s.superuser_password = Some("su-secret-Xy1".into());
    s.replication_password = Some("repl-secret-Zq9".into());
    s.parameters.insert("shared_buffers".into(), "16MB".into());
    s.parameters.insert("max_connections".into(), "20".into());
    s
}

/// Kills, when dropped, every postmaster of the watched data directories and every recorded pid.
#[derive(Default)]
pub struct Killer {
    data_dirs: Mutex<Vec<PathBuf>>,
    pids: Mutex<Vec<u32>>,
}

impl Killer {
    /// Watches an instance's data directory (its postmaster.pid is read at drop time).
    pub fn watch(&self, pg: &Postgres) {
        self.data_dirs
            .lock()
            .expect("lock")
            .push(pg.settings().data_dir.clone());
    }

    /// Records the instance's current postmaster pid.
    pub fn record(&self, pg: &Postgres) {
        if let Some(pid) = pg.postmaster_pid() {
            self.pids.lock().expect("lock").push(pid);
        }
    }
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

impl Drop for Killer {
    fn drop(&mut self) {
        let mut pids: Vec<i32> = self
            .pids
            .lock()
            .map(|p| p.iter().map(|&p| p as i32).collect())
            .unwrap_or_default();
        for dir in self.data_dirs.lock().map(|d| d.clone()).unwrap_or_default() {
            let pid = std::fs::read_to_string(dir.join("postmaster.pid"))
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()));
            pids.extend(pid);
        }
        pids.retain(|&p| p > 0 && alive(p));
        pids.dedup();
        for &pid in &pids {
            // SAFETY: plain signal delivery to a pid we started.
            unsafe { libc::kill(pid, libc::SIGQUIT) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        for &pid in pids.iter().filter(|&&p| alive(p)) {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Polls `f` every [`POLL`] until it returns `Some`, for at most `timeout`; panics naming `what` otherwise.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}
