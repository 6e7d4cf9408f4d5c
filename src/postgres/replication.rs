//! Cloning and re-synchronizing data directories from another member: `pg_basebackup` and `pg_rewind`.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use super::files::{self, PlannedFile};
use super::os;
use super::render::{self, MANAGED_CONF, TLS_CA_FILE, TLS_CERT_FILE, TLS_KEY_FILE};
use super::{DataState, PgError, Postgres};

/// Files of the target's own configuration kept across `pg_rewind` (which copies the source's).
const KEPT_ON_REWIND: &[&str] = &[
    "postgresql.conf",
    MANAGED_CONF,
    "pg_hba.conf",
    "pg_ident.conf",
    "standby.signal",
    TLS_CERT_FILE,
    TLS_KEY_FILE,
    TLS_CA_FILE,
];

impl Postgres {
    /// Copies the data directory from `source_host:source_port` with `pg_basebackup -X stream -c fast -w`
    /// as the replication user (password from the passfile via PGPASSFILE), run as the OS user, killed when the
    /// data directory has not grown for `stall` (no fixed time limit: see [`super::clone_progress`]). The data directory must be missing or empty (see [`Postgres::wipe_data_dir`]); it is created
    /// 0700 and owned by the OS user. The copy carries the source's configuration: call
    /// [`Postgres::write_config`] afterwards.
    pub async fn basebackup(&self, source_host: &str, source_port: u16, stall: Duration) -> Result<(), PgError> {
        const STEP: &str = "pg_basebackup";
        let dir = self.prepare_empty_data_dir(STEP).await?;
        let passfile = self.write_client_files().await?;
        let conninfo = render::client_conninfo(&self.settings, source_host, source_port, None, None);
        let mut cmd = self.run_as.command(&self.bin("pg_basebackup"));
        cmd.arg("-D")
            .arg(&dir)
            .args(["-X", "stream", "-c", "fast", "-w", "-d", &conninfo]);
        if let Some(p) = &passfile {
            cmd.env("PGPASSFILE", p);
        }
        super::clone_run::run_watched(STEP, "basebackup", cmd, &dir, stall, &self.clone_progress).await?;
        tracing::info!(
            member = %self.settings.name, source = %format!("{source_host}:{source_port}"),
            "data directory copied with pg_basebackup"
        );
        Ok(())
    }

    /// Rewinds the (stopped) data directory onto the timeline of `source_host:source_port` with `pg_rewind`,
    /// connecting as the replication user (granted the functions pg_rewind needs by
    /// [`Postgres::create_roles`]; password via PGPASSFILE), within `timeout`.
    ///
    /// A target that was not shut down cleanly is handled by pg_rewind itself (PostgreSQL 13+ runs
    /// `postgres --single` crash recovery first); since single-user mode refuses `standby.signal`, that file is
    /// set aside during the run. The target's own configuration files (`postgresql.conf`, `pgha.conf`,
    /// `pg_hba.conf`, `pg_ident.conf`, `standby.signal`, TLS copies) are restored afterwards, whether pg_rewind
    /// succeeded or not; `postgresql.auto.conf` comes from the source. Refuses while PostgreSQL runs.
    pub async fn rewind(&self, source_host: &str, source_port: u16, timeout: Duration) -> Result<(), PgError> {
        const STEP: &str = "pg_rewind";
        let dir = self.data_dir().to_path_buf();
        if let Some(pid) = self.postmaster_pid() {
            let reason = format!("PostgreSQL is running (pid {pid}): stop it first");
            return Err(PgError::DataDir {
                step: STEP,
                path: dir,
                reason,
            });
        }
        let cluster_state = match self.data_state().await? {
            DataState::Missing => {
                return Err(PgError::DataDir {
                    step: STEP,
                    path: dir,
                    reason: "no data directory to rewind".into(),
                })
            }
            DataState::Initialized { cluster_state, .. } => cluster_state,
        };
        let d = dir.clone();
        let kept = files::blocking(move || {
            let mut kept = Vec::new();
            for name in KEPT_ON_REWIND {
                let path = d.join(name);
                let (contents, mode) = match std::fs::read(&path) {
                    Ok(bytes) => {
                        let meta = std::fs::metadata(&path).map_err(PgError::io("saving the configuration", &path))?;
                        (Some(bytes), meta.permissions().mode() & 0o7777)
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, 0o600),
                    Err(e) => {
                        return Err(PgError::Io {
                            step: "saving the configuration",
                            path,
                            source: e,
                        })
                    }
                };
                kept.push(PlannedFile { path, contents, mode });
            }
            files::remove_file(&d.join("standby.signal"))?;
            files::remove_file(&d.join("recovery.signal"))?;
            Ok(kept)
        })
        .await?;
        let passfile = self.write_client_files().await?;
        let conninfo = render::client_conninfo(&self.settings, source_host, source_port, Some("postgres"), None);
        let mut cmd = self.run_as.command(&self.bin("pg_rewind"));
        let mut target = std::ffi::OsString::from("--target-pgdata=");
        target.push(&dir);
        cmd.arg(target).arg(format!("--source-server={conninfo}"));
        if let Some(p) = &passfile {
            cmd.env("PGPASSFILE", p);
        }
        let result = os::run(STEP, cmd, timeout, None).await;
        let owner = self.run_as.owner();
        files::blocking(move || files::apply_files(&kept, owner)).await?;
        let out = result?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let what = if text.contains("no rewind required") {
            "no rewind was required"
        } else {
            "rewound"
        };
        tracing::info!(
            member = %self.settings.name, source = %format!("{source_host}:{source_port}"),
            target_state = %cluster_state, "data directory {what} with pg_rewind"
        );
        Ok(())
    }
}

/// Whether a pg_rewind failure says only that its source could not be reached or was not ready (pure): worth
/// retrying, and no reason to wipe the target for a re-clone.
pub fn rewind_source_unavailable(error: &str) -> bool {
    const TRANSIENT: [&str; 6] = [
        "Connection refused",
        "the database system is shutting down",
        "the database system is starting up",
        "the database system is not yet accepting connections",
        "could not connect to server",
        "timeout expired",
    ];
    TRANSIENT.iter().any(|t| error.contains(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewind_failures_that_are_only_the_source_being_away() {
        let cases = [
            (
                "connection to server at \"10.0.0.2\", port 5432 failed: Connection refused",
                true,
            ),
            ("failed: FATAL:  the database system is shutting down", true),
            ("FATAL:  the database system is starting up", true),
            (
                "could not find common ancestor of the source and target cluster's timelines",
                false,
            ),
            ("target server must be shut down cleanly", false),
            ("could not open file \"pg_wal/000000010000000000000003\"", false),
        ];
        for (message, transient) in cases {
            assert_eq!(rewind_source_unavailable(message), transient, "{message}");
        }
    }
}
