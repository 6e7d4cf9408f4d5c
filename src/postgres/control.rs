//! The [`Postgres`] controller: data-directory state, initdb, start/stop/promote/reload and wiping.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::controldata::parse_controldata;
use super::files;
use super::os::{self, RunAs};
use super::sql::{timed, SQL_TIMEOUT};
use super::validate::validate_settings;
use super::{DataState, PgError, PgSettings, StopMode};

/// Bound on initdb.
pub const INITDB_TIMEOUT: Duration = Duration::from_secs(300);
/// Bound on quick programs (pg_controldata, pg_ctl reload).
pub const QUICK_TIMEOUT: Duration = Duration::from_secs(30);
/// Extra time given to a `pg_ctl -t` before pgha kills it.
const PG_CTL_MARGIN: Duration = Duration::from_secs(5);
/// How often [`Postgres::promote`] looks whether recovery has ended.
const PROMOTE_POLL: Duration = Duration::from_millis(10);
/// Polls of a promotion after which PostgreSQL, still in recovery, gets a SIGHUP (see [`Postgres::promote`]): its own
/// promotion (new timeline, end-of-recovery record) takes 30-70 ms here.
const KICK_AT_POLLS: [u32; 3] = [8, 20, 40];
/// How often [`Postgres::stop`] looks whether the postmaster has exited.
const STOP_POLL: Duration = Duration::from_millis(10);

/// Controls one PostgreSQL instance (see the module docs of [`crate::postgres`] for the auth model).
#[derive(Debug)]
pub struct Postgres {
    pub(crate) settings: PgSettings,
    pub(crate) run_as: RunAs,
    /// Cluster-wide parameters from the DCS's dynamic config; `settings.parameters` (local) win over them.
    pub(crate) dynamic: std::sync::RwLock<std::collections::BTreeMap<String, String>>,
    /// `synchronous_standby_names` chosen by the HA loop.
    pub(crate) sync_names: std::sync::RwLock<String>,
    /// The bin directory in use and its major version: `settings.bin_dir` until a clone brings another version.
    pub(crate) bin_dir: std::sync::RwLock<(PathBuf, Option<u32>)>,
    /// Failover slot settings chosen by the HA loop.
    pub(crate) slot_sync: std::sync::RwLock<super::SlotSync>,
    /// The connection [`Postgres::with_kept_client`] reuses.
    pub(crate) kept_client: std::sync::Mutex<Option<std::sync::Arc<tokio_postgres::Client>>>,
    /// The running replica creation's progress (None when none runs), for the member key.
    pub(crate) clone_progress: tokio::sync::watch::Sender<Option<crate::postgres::clone_progress::CloneProgress>>,
}

/// Removes a (secret) file when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Err(e) = files::remove_file(&self.0) {
            tracing::warn!("{e}");
        }
    }
}

/// `pg_ctl -t` seconds for a timeout (at least 1).
fn secs(timeout: Duration) -> String {
    timeout.as_secs_f64().ceil().max(1.0).to_string()
}

impl Postgres {
    /// Validates the settings and resolves the OS user (when running as root: `os_user`, which must exist).
    pub fn new(settings: PgSettings) -> Result<Postgres, PgError> {
        validate_settings(&settings)?;
        let run_as = os::resolve_run_as(&settings.os_user)?;
        Ok(Postgres {
            bin_dir: std::sync::RwLock::new((settings.bin_dir.clone(), settings.bin_major)),
            settings,
            run_as,
            dynamic: Default::default(),
            sync_names: Default::default(),
            slot_sync: Default::default(),
            kept_client: Default::default(),
            clone_progress: tokio::sync::watch::channel(None).0,
        })
    }

    /// Replaces the cluster-wide parameters (from the DCS); returns whether they changed. They take effect at the
    /// next [`Postgres::write_config`] (then a reload, or a restart for parameters that need one).
    pub fn set_dynamic_parameters(&self, parameters: &std::collections::BTreeMap<String, String>) -> bool {
        match self.dynamic.write() {
            Ok(mut d) if *d != *parameters => {
                *d = parameters.clone();
                true
            }
            _ => false,
        }
    }

    /// Sets `synchronous_standby_names` (the HA loop's choice); returns whether it changed. Takes effect at the next
    /// [`Postgres::write_config`] and reload.
    pub fn set_synchronous_standby_names(&self, value: &str) -> bool {
        match self.sync_names.write() {
            Ok(mut v) if *v != value => {
                *v = value.to_string();
                true
            }
            _ => false,
        }
    }

    /// Sets the failover slot settings (the HA loop's choice); returns whether they changed. Take effect at the
    /// next [`Postgres::write_config`] and reload.
    pub fn set_slot_sync(&self, value: &super::SlotSync) -> bool {
        match self.slot_sync.write() {
            Ok(mut v) if *v != *value => {
                *v = value.clone();
                true
            }
            _ => false,
        }
    }

    /// The settings with the dynamic parameters merged under the local ones.
    pub(crate) fn effective_settings(&self) -> PgSettings {
        let mut s = self.settings.clone();
        if let Ok(names) = self.sync_names.read() {
            s.synchronous_standby_names = names.clone();
        }
        if let Ok(sync) = self.slot_sync.read() {
            s.slot_sync = sync.clone();
        }
        if let Ok(d) = self.dynamic.read() {
            for (k, v) in d.iter() {
                s.parameters.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        s
    }

    /// The settings in use.
    pub fn settings(&self) -> &PgSettings {
        &self.settings
    }

    /// Who PostgreSQL programs run as.
    pub fn run_as(&self) -> &RunAs {
        &self.run_as
    }

    pub(crate) fn bin(&self, program: &str) -> PathBuf {
        match self.bin_dir.read() {
            Ok(bin) => bin.0.join(program),
            Err(_) => self.settings.bin_dir.join(program),
        }
    }

    pub(crate) fn data_dir(&self) -> &Path {
        &self.settings.data_dir
    }

    /// A `pg_ctl <action> -D <PGDATA>` command.
    fn pg_ctl(&self, action: &str) -> tokio::process::Command {
        let mut cmd = self.run_as.command(&self.bin("pg_ctl"));
        cmd.arg(action).arg("-D").arg(self.data_dir()).arg("-s");
        cmd
    }

    /// What is on disk: Missing (no or empty directory) or the `pg_controldata` view of the cluster.
    pub async fn data_state(&self) -> Result<DataState, PgError> {
        let dir = self.data_dir().to_path_buf();
        if files::dir_is_empty(&dir)? {
            return Ok(DataState::Missing);
        }
        let mut cmd = self.run_as.command(&self.bin("pg_controldata"));
        cmd.arg("-D").arg(&dir);
        let out = os::run("reading pg_controldata", cmd, QUICK_TIMEOUT, None).await?;
        let cd = parse_controldata(&String::from_utf8_lossy(&out.stdout))?;
        Ok(DataState::Initialized {
            system_identifier: cd.system_identifier,
            timeline: cd.timeline,
            cluster_state: cd.cluster_state,
            checkpoint_lsn: cd.checkpoint_lsn,
            standby_signal: dir.join("standby.signal").exists(),
        })
    }

    /// Creates the data directory (0700, owned by the OS user) and runs initdb into it: UTF8, C locale, data
    /// checksums, `--username=<superuser>`, the superuser password (if any) through a 0600 `--pwfile` that is
    /// removed right after. Refuses a non-empty directory. The replication role is created later by
    /// [`Postgres::create_roles`] on the running server.
    pub async fn initdb(&self) -> Result<(), PgError> {
        let dir = self.data_dir().to_path_buf();
        let owner = self.run_as.owner();
        let d = dir.clone();
        files::blocking(move || {
            if !files::dir_is_empty(&d)? {
                return Err(PgError::DataDir {
                    step: "initdb",
                    path: d,
                    reason: "not empty".into(),
                });
            }
            files::ensure_dir(&d, 0o700, owner, true).map(|_| ())
        })
        .await?;
        let mut cmd = self.run_as.command(&self.bin("initdb"));
        cmd.arg("-D")
            .arg(&dir)
            .args(["--encoding=UTF8", "--locale=C", "--data-checksums"]);
        cmd.arg(format!("--username={}", self.settings.superuser));
        cmd.args(["--auth-local=peer", "--auth-host=scram-sha-256"]);
        let _pwfile = match &self.settings.superuser_password {
            Some(pw) => {
                let parent = dir.parent().unwrap_or_else(|| Path::new("/"));
                let name = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let path = parent.join(format!(".{name}.pgha-pwfile"));
                let guard = RemoveOnDrop(path.clone());
                let contents = format!("{pw}\n").into_bytes();
                let p = path.clone();
                files::blocking(move || files::write_atomic(&p, &contents, 0o600, owner)).await?;
                cmd.arg(format!("--pwfile={}", path.display()));
                Some(guard)
            }
            None => None,
        };
        os::run("initdb", cmd, INITDB_TIMEOUT, None).await?;
        tracing::info!(member = %self.settings.name, data_dir = %dir.display(), "initialized a new data directory");
        Ok(())
    }

    /// The postmaster's pid from `postmaster.pid`, only if that process is alive.
    pub fn postmaster_pid(&self) -> Option<u32> {
        postmaster_pid(self.data_dir())
    }

    /// Creates the socket directory (0755, owned by the OS user, when missing), the log file (0600) and
    /// enforces PGDATA's mode 0700 and owner.
    async fn prepare_start(&self) -> Result<(), PgError> {
        let (socket_dir, data_dir, log) = (
            self.settings.socket_dir.clone(),
            self.data_dir().to_path_buf(),
            self.log(),
        );
        let owner = self.run_as.owner();
        files::blocking(move || {
            files::ensure_dir(&socket_dir, 0o755, owner, false)?;
            files::ensure_dir(&data_dir, 0o700, owner, true)?;
            if let Some(parent) = log.parent() {
                std::fs::create_dir_all(parent).map_err(PgError::io("creating the log directory", parent))?;
            }
            use std::os::unix::fs::OpenOptionsExt;
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&log)
                .map_err(PgError::io("opening the server log", &log))?;
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::fchown(&file, Some(uid), Some(gid))
                    .map_err(PgError::io("changing the server log's owner", &log))?;
            }
            Ok(())
        })
        .await
    }

    fn log(&self) -> PathBuf {
        self.settings.log_file()
    }

    /// `pg_ctl start -w` within `timeout`; a no-op when already running. A failure carries the tail of the server
    /// log. On a timeout pg_ctl is killed but a postmaster may remain: the caller should `stop` it.
    pub async fn start(&self, timeout: Duration) -> Result<(), PgError> {
        if let Some(pid) = self.postmaster_pid() {
            tracing::debug!(member = %self.settings.name, pid, "PostgreSQL already running");
            return Ok(());
        }
        self.prepare_start().await?;
        let log = self.log();
        let mut cmd = self.pg_ctl("start");
        cmd.arg("-w").arg("-t").arg(secs(timeout)).arg("-l").arg(&log);
        os::run("starting PostgreSQL", cmd, timeout + PG_CTL_MARGIN, Some(&log)).await?;
        let pid = self.postmaster_pid().unwrap_or(0);
        tracing::info!(member = %self.settings.name, pid, "PostgreSQL started");
        Ok(())
    }

    /// Starts PostgreSQL and waits at most `wait` for it to accept connections, so a standby that cannot become
    /// consistent (waiting for WAL it cannot get) never holds the HA loop: the loop sees it not ready and re-points
    /// it, rewinds or re-clones it. Fails only when the postmaster did not stay up (with the server log's tail).
    pub async fn start_bounded(&self, wait: Duration) -> Result<Readiness, PgError> {
        match self.start(wait).await {
            Ok(()) => Ok(Readiness::Ready),
            Err(PgError::Command { .. } | PgError::Timeout { .. }) if self.postmaster_pid().is_some() => {
                tracing::info!(
                    member = %self.settings.name,
                    event = "pg_starting",
                    "PostgreSQL is up but not accepting connections yet (recovery); not waiting for it"
                );
                Ok(Readiness::Starting)
            }
            Err(e) => Err(e),
        }
    }

    /// What the postmaster says of itself in `postmaster.pid` (no connection, so no backend is forked).
    pub fn postmaster_state(&self) -> Option<PmState> {
        postmaster_state(self.data_dir())
    }

    /// Stops PostgreSQL draining first: a fast shutdown (no new commit; the walsenders ship every WAL record to the
    /// connected standbys before the postmaster exits), escalated to an immediate one after `drain`.
    pub async fn stop_draining(&self, drain: Duration) -> Result<(), PgError> {
        match self.stop(StopMode::Fast, drain).await {
            Err(PgError::Timeout { .. }) => {
                tracing::warn!(
                    member = %self.settings.name,
                    event = "pg_stop_escalated",
                    "fast shutdown did not finish in {} ms: immediate shutdown",
                    drain.as_millis()
                );
                self.stop(StopMode::Immediate, QUICK_TIMEOUT).await
            }
            other => other,
        }
    }

    /// Stops PostgreSQL in `mode` within `timeout`; a no-op when not running. Sends the postmaster the signal
    /// `pg_ctl stop -m <mode>` would and polls for its end every 10 ms (pg_ctl looks every 100 ms, and in a
    /// switchover every one of those is write downtime).
    pub async fn stop(&self, mode: StopMode, timeout: Duration) -> Result<(), PgError> {
        const STEP: &str = "stopping PostgreSQL";
        let Some(pid) = self.postmaster_pid() else {
            tracing::debug!(member = %self.settings.name, "PostgreSQL not running: nothing to stop");
            return Ok(());
        };
        let deadline = Instant::now() + timeout;
        if let Err(e) = os::send_signal(pid, mode.signal()) {
            if self.postmaster_pid().is_some() {
                return Err(PgError::io(STEP, self.data_dir())(e));
            }
        }
        // The postmaster removes postmaster.pid as it exits; a killed one leaves the file but not the process.
        while self.postmaster_pid().is_some() {
            if Instant::now() >= deadline {
                return Err(PgError::Timeout {
                    step: STEP,
                    command: format!("kill -{} {pid} (stop -m {})", mode.signal(), mode.as_arg()),
                    timeout,
                    log: os::file_tail(&self.log(), 20),
                });
            }
            tokio::time::sleep(STOP_POLL).await;
        }
        tracing::info!(member = %self.settings.name, mode = mode.as_arg(), "PostgreSQL stopped");
        Ok(())
    }

    /// Promotes (`pg_promote(wait => false)`) and polls `pg_is_in_recovery()` every 10 ms within `timeout`: pg_ctl
    /// and pg_promote's own wait look only every 100 ms, and each of those is write downtime. A promotion not done
    /// after [`KICK_AT_POLLS`] polls is nudged with a SIGHUP. The first checkpoint on the new timeline is the
    /// caller's (see [`Postgres::checkpoint_in_background`]).
    pub async fn promote(&self, timeout: Duration) -> Result<(), PgError> {
        const STEP: &str = "promoting PostgreSQL";
        let deadline = Instant::now() + timeout;
        self.with_kept_client(|client| async move {
            timed(
                STEP,
                SQL_TIMEOUT,
                client.execute("SELECT pg_promote(wait => false)", &[]),
            )
            .await
        })
        .await?;
        tracing::info!(event = "promote_requested", member = %self.settings.name, "pg_promote sent");
        let mut polls = 0u32;
        loop {
            let row = self
                .with_kept_client(|client| async move {
                    timed(STEP, SQL_TIMEOUT, client.query_one("SELECT pg_is_in_recovery()", &[])).await
                })
                .await?;
            if !row.get::<_, bool>(0) {
                tracing::info!(event = "pg_promoted", member = %self.settings.name, "PostgreSQL promoted");
                return Ok(());
            }
            polls += 1;
            if KICK_AT_POLLS.contains(&polls) {
                // A promote request can miss the startup process's wake-up (it resets its latch after a WAL receiver
                // failure and then sleeps wal_retrieve_retry_interval); a SIGHUP sets that latch again.
                if let Some(pid) = self.postmaster_pid() {
                    tracing::debug!(member = %self.settings.name, polls, "still in recovery: waking the startup process");
                    let _ = os::send_signal(pid, libc::SIGHUP);
                }
            }
            if Instant::now() >= deadline {
                return Err(PgError::Timeout {
                    step: STEP,
                    command: "SELECT pg_promote(wait => false)".into(),
                    timeout,
                    log: String::new(),
                });
            }
            tokio::time::sleep(PROMOTE_POLL).await;
        }
    }

    /// Applies configuration changes that need no restart: SIGHUP to the postmaster, what `pg_ctl reload` sends,
    /// without starting pg_ctl (a process start is ~15 ms on a busy host, and a new primary's first commits can wait
    /// for this reload), the way [`Postgres::stop`] signals it.
    pub async fn reload(&self) -> Result<(), PgError> {
        const STEP: &str = "reloading PostgreSQL";
        let Some(pid) = self.postmaster_pid() else {
            return Err(PgError::Io {
                step: STEP,
                path: self.data_dir().join("postmaster.pid"),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "PostgreSQL is not running"),
            });
        };
        os::send_signal(pid, libc::SIGHUP).map_err(PgError::io(STEP, self.data_dir()))?;
        tracing::info!(member = %self.settings.name, "PostgreSQL configuration reloaded");
        Ok(())
    }

    /// Removes everything inside the data directory (symlinks such as tablespaces or pg_wal are removed, not
    /// followed). Refuses while PostgreSQL runs.
    pub async fn wipe_data_dir(&self) -> Result<(), PgError> {
        let dir = self.data_dir().to_path_buf();
        if let Some(pid) = self.postmaster_pid() {
            let reason = format!("PostgreSQL is running (pid {pid})");
            return Err(PgError::DataDir {
                step: "wiping the data directory",
                path: dir,
                reason,
            });
        }
        tracing::warn!(member = %self.settings.name, data_dir = %dir.display(), "wiping the data directory");
        files::blocking(move || {
            const STEP: &str = "wiping the data directory";
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => {
                    return Err(PgError::Io {
                        step: STEP,
                        path: dir,
                        source: e,
                    })
                }
            };
            for entry in entries {
                let path = entry.map_err(PgError::io(STEP, &dir))?.path();
                let meta = std::fs::symlink_metadata(&path).map_err(PgError::io(STEP, &path))?;
                let removed = if meta.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                removed.map_err(PgError::io(STEP, &path))?;
            }
            Ok(())
        })
        .await
    }
}

/// Whether a started PostgreSQL accepts connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// The postmaster runs but recovery has not reached a consistent state yet.
    Starting,
}

/// The postmaster's own status line in `postmaster.pid` (PM_STATUS, PostgreSQL >= 10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PmState {
    Starting,
    /// Accepting connections as a primary.
    Ready,
    /// Accepting read-only connections (hot standby).
    Standby,
    Stopping,
}

impl PmState {
    /// Whether connections are accepted.
    pub fn accepts_connections(self) -> bool {
        matches!(self, PmState::Ready | PmState::Standby)
    }
}

/// Parses `postmaster.pid`: (pid, status line); the status is None when the file predates it (pure).
pub fn parse_postmaster_pid(text: &str) -> Option<(u32, Option<PmState>)> {
    let mut lines = text.lines();
    let pid = lines.next()?.trim().parse::<u32>().ok().filter(|p| *p > 0)?;
    let state = match lines.nth(6).map(str::trim) {
        Some("starting") => Some(PmState::Starting),
        Some("ready") => Some(PmState::Ready),
        Some("standby") => Some(PmState::Standby),
        Some("stopping") => Some(PmState::Stopping),
        _ => None,
    };
    Some((pid, state))
}

fn read_postmaster_pid(pgdata: &std::path::Path) -> Option<(u32, Option<PmState>)> {
    let text = std::fs::read_to_string(pgdata.join("postmaster.pid")).ok()?;
    parse_postmaster_pid(&text).filter(|(pid, _)| os::pid_alive(*pid))
}

/// The PID in `<pgdata>/postmaster.pid`, if that process is alive (the one reader of that file in pgha).
pub fn postmaster_pid(pgdata: &std::path::Path) -> Option<u32> {
    read_postmaster_pid(pgdata).map(|(pid, _)| pid)
}

/// Whether a child of `postmaster` is a WAL receiver that streams, read from the process titles in /proc: a standby
/// that is not consistent yet accepts no connection, but it may be receiving WAL all the same.
pub fn walreceiver_streaming(postmaster: u32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .any(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            parent_pid(&stat) == Some(postmaster) && is_streaming_walreceiver(&String::from_utf8_lossy(&cmdline))
        })
}

/// The parent pid in a `/proc/<pid>/stat` line (pure; the command name may hold spaces and parentheses).
fn parent_pid(stat: &str) -> Option<u32> {
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

/// A process title of a streaming WAL receiver, e.g. `postgres: [cluster: ]walreceiver streaming 0/3000148` (pure).
fn is_streaming_walreceiver(title: &str) -> bool {
    title.starts_with("postgres:") && title.contains("walreceiver") && title.contains("streaming")
}

/// The status of a live postmaster of `pgdata` (None: not running, or too old to say).
pub fn postmaster_state(pgdata: &std::path::Path) -> Option<PmState> {
    read_postmaster_pid(pgdata).and_then(|(_, state)| state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postmaster_pid_file_table() {
        let file = |status: &str| format!("4242\n/data\n1700000000\n5432\n/run/pg\n*\n  5432001 0\n{status}\n");
        let cases = [
            (file("starting"), Some((4242, Some(PmState::Starting)))),
            (file("ready   "), Some((4242, Some(PmState::Ready)))),
            (file("standby "), Some((4242, Some(PmState::Standby)))),
            (file("stopping"), Some((4242, Some(PmState::Stopping)))),
            ("4242\n/data\n".to_string(), Some((4242, None))),
            ("0\n".to_string(), None),
            ("garbage\n".to_string(), None),
            (String::new(), None),
        ];
        for (text, expect) in cases {
            assert_eq!(parse_postmaster_pid(&text), expect, "{text:?}");
        }
        assert!(PmState::Standby.accepts_connections() && !PmState::Starting.accepts_connections());
    }

    #[test]
    fn walreceiver_titles_and_stat_lines() {
        assert_eq!(parent_pid("123 (postgres) S 77 123 123 0 -1"), Some(77));
        assert_eq!(parent_pid("123 (post gres (x)) S 78 1"), Some(78));
        assert_eq!(parent_pid("garbage"), None);
        assert!(is_streaming_walreceiver("postgres: walreceiver streaming 0/3000148"));
        assert!(is_streaming_walreceiver(
            "postgres: demo: walreceiver streaming 0/3000148"
        ));
        assert!(!is_streaming_walreceiver("postgres: walreceiver waiting"));
        assert!(!is_streaming_walreceiver(
            "postgres: walsender replicator 127.0.0.1 streaming 0/1"
        ));
    }
}
