//! Creating a data directory by the configured methods: a replica (`create_replica_methods`, tried in order) and
//! a bootstrap restored from a backup (recovered to its target, promoted). The pure parts are
//! [`super::replica_methods`], [`super::pgbackrest`] and [`super::clone_progress`].

use std::path::Path;
use std::time::{Duration, Instant};

use super::clone_progress::{Sample, StallWatch, Verdict};
use super::clone_run::run_watched;
use super::files::{self, PlannedFile};
use super::replica_methods::{auto_conf_with, expand, MethodKind, Placeholders, ReplicaMethod, RestoreBootstrap};
use super::{render, ConfRole, PgError, Postgres, StopMode};

/// How often a bootstrap's recovery is looked at.
const RECOVERY_POLL: Duration = Duration::from_millis(250);

impl Postgres {
    /// Fills the (empty) data directory from the leader at `host:port` by the configured methods, in order: a
    /// method that fails or stalls is logged (`event = "create_replica_failed"`), whatever it wrote is wiped, and
    /// the next one is tried. Returns the name of the method that worked. The copy carries the source's
    /// configuration: call [`Postgres::write_config`] afterwards.
    pub async fn create_replica(&self, host: &str, port: u16) -> Result<String, PgError> {
        self.create_data(Some((host, port))).await
    }

    /// Fills the (empty) data directory while the cluster has no leader: by the `no_leader` methods only, in
    /// order (a restore of a backup); the member is then a replica without a leader and races like any other.
    pub async fn create_replica_without_leader(&self) -> Result<String, PgError> {
        self.create_data(None).await
    }

    async fn create_data(&self, leader: Option<(&str, u16)>) -> Result<String, PgError> {
        const STEP: &str = "creating the replica";
        let c = &self.settings.creation;
        let mut failures = Vec::new();
        let source = leader.map_or_else(|| "no leader".to_string(), |(h, p)| format!("{h}:{p}"));
        for ReplicaMethod { name, kind, no_leader } in c.methods() {
            if leader.is_none() && !no_leader {
                continue; // it needs a leader to copy from
            }
            tracing::info!(
                event = "create_replica", method = %name, source = %source,
                "creating the replica with {name}"
            );
            let result = match (&kind, leader) {
                (MethodKind::Basebackup, Some((host, port))) => self.basebackup(host, port, c.stall_timeout).await,
                (MethodKind::Basebackup, None) => Err(PgError::Settings("basebackup needs a leader".into())),
                (MethodKind::Command(argv), _) => self.run_method(STEP, &name, argv, leader).await,
            };
            let result = match result {
                Ok(()) => self.check_restored(STEP, &name).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => return Ok(name),
                Err(e) => {
                    tracing::warn!(event = "create_replica_failed", method = %name, "replica creation with {name} failed: {e}");
                    failures.push(format!("{name}: {e}"));
                    self.wipe_data_dir().await?;
                }
            }
        }
        let reason = match failures.is_empty() {
            true => "no create_replica method has no_leader set".to_string(),
            false => format!("every method failed: {}", failures.join("; ")),
        };
        Err(PgError::DataDir {
            step: STEP,
            path: self.data_dir().to_path_buf(),
            reason,
        })
    }

    /// The running replica creation's progress (method, bytes, seconds), None when none runs.
    pub fn clone_progress(&self) -> Option<crate::postgres::clone_progress::CloneProgress> {
        self.clone_progress.borrow().clone()
    }

    /// Wakes on every progress sample of a running replica creation.
    pub fn watch_clone_progress(
        &self,
    ) -> tokio::sync::watch::Receiver<Option<crate::postgres::clone_progress::CloneProgress>> {
        self.clone_progress.subscribe()
    }

    /// Runs one command method into the empty data directory (created 0700, owned by the OS user), as the OS user,
    /// under the stall rule; `{conninfo}` names `leader` (empty without one).
    async fn run_method(
        &self,
        step: &'static str,
        method: &str,
        argv: &[String],
        leader: Option<(&str, u16)>,
    ) -> Result<(), PgError> {
        let dir = self.prepare_empty_data_dir(step).await?;
        // The passfile lives beside the data directory: written once the directory (and its parent) exists.
        let passfile = self.write_client_files().await?;
        let conninfo = leader
            .map(|(host, port)| render::client_conninfo(&self.settings, host, port, None, passfile.as_deref()))
            .unwrap_or_default();
        let conninfo = conninfo.as_str();
        let s = &self.settings;
        let argv = expand(
            argv,
            &Placeholders {
                data_dir: &dir.to_string_lossy(),
                conninfo,
                member: &s.name,
                scope: &s.creation.scope,
            },
        );
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| PgError::Settings(format!("replica method {method}: empty command")))?;
        let mut cmd = self.run_as.command(Path::new(program));
        cmd.args(args);
        if let Some(p) = self.passfile_path() {
            cmd.env("PGPASSFILE", p);
        }
        run_watched(step, method, cmd, &dir, s.creation.stall_timeout, &self.clone_progress).await
    }

    /// The data directory a copy fills: it must be missing or empty (see [`Postgres::wipe_data_dir`]); created 0700
    /// and owned by the OS user. Returns its path.
    pub(crate) async fn prepare_empty_data_dir(&self, step: &'static str) -> Result<std::path::PathBuf, PgError> {
        let dir = self.data_dir().to_path_buf();
        let owner = self.run_as.owner();
        let d = dir.clone();
        files::blocking(move || {
            if !files::dir_is_empty(&d)? {
                let reason = "not empty: wipe it first".to_string();
                return Err(PgError::DataDir { step, path: d, reason });
            }
            files::ensure_dir(&d, 0o700, owner, true).map(|_| ())
        })
        .await?;
        Ok(dir)
    }

    /// A method that exited 0 must have left a data directory; recovery settings it wrote to
    /// `postgresql.auto.conf` (pgBackRest's `restore_command`) are dropped: pgha renders its own.
    async fn check_restored(&self, step: &'static str, method: &str) -> Result<(), PgError> {
        let dir = self.data_dir().to_path_buf();
        if !dir.join("PG_VERSION").is_file() {
            return Err(PgError::DataDir {
                step,
                path: dir,
                reason: format!("{method} exited 0 but left no PG_VERSION"),
            });
        }
        self.rewrite_auto_conf(&[]).await
    }

    /// Rewrites `postgresql.auto.conf` without recovery settings, then with `recovery` appended.
    async fn rewrite_auto_conf(&self, recovery: &[(String, String)]) -> Result<(), PgError> {
        let path = self.data_dir().join("postgresql.auto.conf");
        let owner = self.run_as.owner();
        let recovery = recovery.to_vec();
        files::blocking(move || {
            let current = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(e) => return Err(PgError::io("reading postgresql.auto.conf", &path)(e)),
            };
            let plan = [PlannedFile {
                path,
                contents: Some(auto_conf_with(&current, &recovery).into_bytes()),
                mode: 0o600,
            }];
            files::apply_files(&plan, owner).map(|_| ())
        })
        .await
    }

    /// Bootstraps from a backup: runs the restore into the empty data directory, starts PostgreSQL in archive
    /// recovery with the target and `recovery_target_action = promote`, waits (under the stall rule: the replay
    /// position must move) until it promoted, then removes the recovery settings and restarts it as a plain
    /// primary, so no recovery target outlives the recovery. Returns with PostgreSQL running.
    pub async fn restore_bootstrap(&self, r: &RestoreBootstrap, start_timeout: Duration) -> Result<(), PgError> {
        const STEP: &str = "bootstrap from a backup";
        tracing::info!(event = "bootstrap_restore", method = %r.method, "restoring the cluster from a backup");
        let restored = match self.run_method(STEP, &r.method, &r.argv, None).await {
            Ok(()) => self.check_restored(STEP, &r.method).await,
            Err(e) => Err(e),
        };
        if let Err(e) = restored {
            // A partial restore is no cluster: the next attempt starts from an empty directory.
            self.wipe_data_dir().await?;
            return Err(e);
        }
        self.follow_data_dir_version()?;
        self.write_config(&ConfRole::Primary).await?;
        self.rewrite_auto_conf(&r.recovery).await?;
        let signal = self.data_dir().join("recovery.signal");
        let owner = self.run_as.owner();
        files::blocking(move || {
            let plan = [PlannedFile {
                path: signal,
                contents: Some(Vec::new()),
                mode: 0o600,
            }];
            files::apply_files(&plan, owner).map(|_| ())
        })
        .await?;
        self.start_bounded(Duration::from_secs(2)).await?;
        self.await_promotion(STEP).await?;
        tracing::info!(event = "bootstrap_recovered", method = %r.method, "recovery reached its target and promoted");
        self.rewrite_auto_conf(&[]).await?;
        self.stop(StopMode::Fast, start_timeout).await?;
        self.start(start_timeout).await
    }

    /// Polls until recovery ended; fails when the postmaster exits (e.g. the target lies beyond the archive) or
    /// neither the replay position nor the server log moved for the stall timeout.
    async fn await_promotion(&self, step: &'static str) -> Result<(), PgError> {
        let started = Instant::now();
        let mut watch = StallWatch::new(self.settings.creation.stall_timeout);
        loop {
            if self.postmaster_pid().is_none() {
                return Err(PgError::DataDir {
                    step,
                    path: self.data_dir().to_path_buf(),
                    reason: format!(
                        "PostgreSQL exited during recovery; server log:\n{}",
                        super::os::file_tail(&self.settings.log_file(), 15)
                    ),
                });
            }
            let replayed = match self.status().await {
                Ok(st) if !st.in_recovery => return Ok(()),
                Ok(st) => st.replay_lsn.unwrap_or(0),
                Err(_) => 0, // not accepting connections yet
            };
            // Before it is consistent the server takes no connections; it logs every WAL segment it restores, so
            // its log growing is progress too.
            let logged = std::fs::metadata(self.settings.log_file()).map_or(0, |m| m.len());
            let sample = Sample {
                at: started.elapsed(),
                bytes: replayed,
                lines: logged,
            };
            if let Verdict::Abort(reason) = watch.observe(sample) {
                let _ = self.stop(StopMode::Immediate, Duration::from_secs(30)).await;
                return Err(PgError::Stalled {
                    step,
                    command: "archive recovery".into(),
                    reason,
                    output: super::os::file_tail(&self.settings.log_file(), 15),
                });
            }
            tokio::time::sleep(RECOVERY_POLL).await;
        }
    }
}
