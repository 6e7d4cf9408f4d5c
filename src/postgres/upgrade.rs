//! A major upgrade's work on one data directory: the new binaries checked, the old directory set aside (kept until
//! the operator removes it), initdb with the old checksum setting, `pg_upgrade`, the way back, and the new bin
//! directory remembered across pgha restarts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::bin_dir::{self, SUPPORTED};
use super::control::QUICK_TIMEOUT;
use super::{files, os, PgError, Postgres};
use serde::{Deserialize, Serialize};

/// How `pg_upgrade` carries the data files over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferMode {
    /// Hard links: seconds for any size; the old data directory is unusable once the new server starts.
    #[default]
    Link,
    /// Reflinks (copy-on-write file systems): as fast, and the old data directory stays usable.
    Clone,
    /// A full copy: slow, the old data directory stays usable.
    Copy,
}

impl TransferMode {
    /// The `pg_upgrade` flag.
    pub fn flag(self) -> &'static str {
        match self {
            TransferMode::Link => "--link",
            TransferMode::Clone => "--clone",
            TransferMode::Copy => "--copy",
        }
    }
}

/// Bound on `pg_upgrade` (link and clone modes take seconds; a copy of a large database takes long).
pub const PG_UPGRADE_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
/// Programs the new bin directory needs besides [`bin_dir::REQUIRED`].
const UPGRADE_PROGRAMS: &[&str] = &["pg_upgrade", "pg_controldata", "pg_checksums", "pg_basebackup"];

/// The old data directory's place after an upgrade (pure): `<data_dir>.pg<major>.<id>`, beside it (same file
/// system, which `--link` needs).
pub fn aside_path(data_dir: &Path, major: Option<u32>, id: u64) -> PathBuf {
    let name = data_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pgdata".into());
    let version = major.map(|m| format!("pg{m}")).unwrap_or_else(|| "old".into());
    data_dir.with_file_name(format!("{name}.{version}.{id}"))
}

/// The file that remembers the bin directory chosen by an upgrade, beside the data directory (pure).
pub fn bin_dir_file(data_dir: &Path) -> PathBuf {
    super::beside(data_dir, "bin_dir")
}

/// The bin directory an upgrade chose for `data_dir` (None: no upgrade, or unreadable): searched first at start.
pub fn remembered_bin_dir(data_dir: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(bin_dir_file(data_dir)).ok()?;
    let dir = PathBuf::from(text.trim());
    (!dir.as_os_str().is_empty()).then_some(dir)
}

/// Checks `bin_dir` can upgrade a data directory of major `from`: complete (with pg_upgrade), a version pgha runs,
/// newer than `from`. Returns its major version.
pub fn check_new_binaries(bin_dir: &Path, from: Option<u32>) -> Result<u32, PgError> {
    let bad = |why: String| PgError::BinDir(format!("upgrade binaries {}: {why}", bin_dir.display()));
    if !bin_dir.is_dir() {
        return Err(bad("no such directory".into()));
    }
    let missing: Vec<&str> = bin_dir::REQUIRED
        .iter()
        .chain(UPGRADE_PROGRAMS)
        .copied()
        .filter(|p| !bin_dir.join(p).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(bad(format!("lacks {}", missing.join(", "))));
    }
    let major = bin_dir::postgres_major(bin_dir).ok_or_else(|| bad("`postgres --version` gave no version".into()))?;
    if !SUPPORTED.contains(&major) {
        return Err(bad(format!(
            "PostgreSQL {major}; pgha runs {} to {}",
            SUPPORTED.start(),
            SUPPORTED.end()
        )));
    }
    match from {
        Some(from) if major <= from => Err(bad(format!(
            "PostgreSQL {major} is not newer than the data directory's PostgreSQL {from}"
        ))),
        _ => Ok(major),
    }
}

/// `--link` renames the old cluster's `global/pg_control` to `pg_control.old` (so the old server cannot start on
/// shared files by mistake); before the new server's first start, renaming it back is the way back.
async fn restore_pg_control(data_dir: &Path) -> Result<(), PgError> {
    let global = data_dir.join("global");
    files::blocking(move || {
        let renamed = global.join("pg_control.old");
        match renamed.exists() {
            true => std::fs::rename(&renamed, global.join("pg_control"))
                .map_err(PgError::io("restoring the old pg_control", &renamed)),
            false => Ok(()),
        }
    })
    .await
}

/// A new cluster initdb'ed for an upgrade, not used yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Staged {
    pub dir: PathBuf,
    pub major: u32,
}

/// The old data directory after a successful `pg_upgrade`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upgraded {
    /// Where the old data directory now is (kept: the way back, until the operator removes it).
    pub old_data_dir: PathBuf,
    pub major: u32,
}

impl Postgres {
    /// Whether the data directory has data checksums (`pg_controldata`).
    pub async fn data_checksums(&self) -> Result<bool, PgError> {
        let mut cmd = self.run_as.command(&self.bin("pg_controldata"));
        cmd.arg("-D").arg(self.data_dir());
        let out = os::run("reading pg_controldata", cmd, QUICK_TIMEOUT, None).await?;
        let text = String::from_utf8_lossy(&out.stdout);
        let version = text
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == "Data page checksum version")
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default();
        Ok(!version.is_empty() && version != "0")
    }

    /// Uses the binaries of `dir` (major `major`) from now on, and remembers them beside the data directory so a
    /// pgha restart picks them again.
    pub fn use_bin_dir(&self, dir: &Path, major: u32) -> Result<(), PgError> {
        if let Ok(mut bin) = self.bin_dir.write() {
            *bin = (dir.to_path_buf(), Some(major));
        }
        let file = bin_dir_file(self.data_dir());
        files::write_atomic(&file, format!("{}\n", dir.display()).as_bytes(), 0o644, None)?;
        tracing::info!(member = %self.settings.name, event = "bin_dir_switched", bin_dir = %dir.display(),
            version = major, remembered_in = %file.display(), "major upgrade: using PostgreSQL {major}'s binaries");
        Ok(())
    }

    /// A controller of `data_dir` with the binaries of `bin_dir` (the new cluster of an upgrade).
    fn sibling(&self, data_dir: &Path, bin_dir: &Path, major: u32) -> Result<Postgres, PgError> {
        let mut settings = self.settings.clone();
        settings.data_dir = data_dir.to_path_buf();
        settings.bin_dir = bin_dir.to_path_buf();
        settings.bin_major = Some(major);
        settings.bin_search = None;
        settings.log_file = Some(super::beside(data_dir, "log"));
        Postgres::new(settings)
    }

    /// initdb of the new cluster at `dir` with the new binaries, with the old cluster's checksum setting and its
    /// pg_hba.conf/pg_ident.conf (so `pg_upgrade` connects to both the same way).
    async fn initdb_new(&self, dir: &Path, bin: &Path, major: u32, checksums: bool) -> Result<(), PgError> {
        let new = self.sibling(dir, bin, major)?;
        new.initdb().await?;
        if !checksums {
            // initdb enables checksums (PostgreSQL 18's default too); pg_upgrade needs the old cluster's setting.
            let mut cmd = self.run_as.command(&bin.join("pg_checksums"));
            cmd.arg("--disable").arg("-D").arg(dir);
            os::run("disabling data checksums in the new cluster", cmd, QUICK_TIMEOUT, None).await?;
        }
        let owner = self.run_as.owner();
        let (old, new_dir) = (self.data_dir().to_path_buf(), dir.to_path_buf());
        files::blocking(move || {
            for name in ["pg_hba.conf", "pg_ident.conf"] {
                let from = old.join(name);
                match std::fs::read(&from) {
                    Ok(bytes) => {
                        files::write_atomic(&new_dir.join(name), &bytes, 0o600, owner)?;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(PgError::io("copying the authentication files", &from)(e)),
                }
            }
            Ok(())
        })
        .await
    }

    /// `pg_upgrade` from `old` (this controller's binaries) to `new` (`bin`); with `live` the old server runs
    /// (only for `--check`).
    async fn pg_upgrade(
        &self,
        old: &Path,
        new: &Path,
        bin: &Path,
        mode: TransferMode,
        check: bool,
    ) -> Result<(), PgError> {
        let ports = crate::ports::free_ports(2).map_err(PgError::io("reserving ports for pg_upgrade", new))?;
        let old_port = if check { self.settings.port } else { ports[0] };
        let mut cmd = self.run_as.command(&bin.join("pg_upgrade"));
        let old_bin = self.bin_dir_now();
        cmd.current_dir(&self.settings.socket_dir)
            .arg("--old-bindir")
            .arg(&old_bin)
            .arg("--new-bindir")
            .arg(bin)
            .arg("--old-datadir")
            .arg(old)
            .arg("--new-datadir")
            .arg(new)
            .arg(format!("--username={}", self.settings.superuser))
            .arg(format!("--old-port={old_port}"))
            .arg(format!("--new-port={}", ports[1]))
            .arg("--socketdir")
            .arg(&self.settings.socket_dir)
            .arg(mode.flag());
        if check {
            cmd.arg("--check");
        }
        let step = if check { "pg_upgrade --check" } else { "pg_upgrade" };
        os::run(step, cmd, PG_UPGRADE_TIMEOUT, None).await.map(|_| ())
    }

    /// `pg_upgrade --check` against the running data directory, into a throw-away new cluster (removed after).
    /// Returns the new major version.
    pub async fn upgrade_check(&self, bin: &Path, mode: TransferMode, id: u64) -> Result<u32, PgError> {
        let major = check_new_binaries(bin, self.data_major())?;
        let checksums = self.data_checksums().await?;
        let temp = self.data_dir().with_file_name(format!(
            "{}.upgrade-check.{id}",
            self.data_dir()
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        ));
        let result = async {
            self.initdb_new(&temp, bin, major, checksums).await?;
            self.pg_upgrade(self.data_dir(), &temp, bin, mode, self.postmaster_pid().is_some())
                .await
        }
        .await;
        let t = temp.clone();
        if let Err(e) = files::blocking(move || match std::fs::remove_dir_all(&t) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(PgError::io("removing the check cluster", &t)(e)),
            _ => Ok(()),
        })
        .await
        {
            tracing::warn!("{e}");
        }
        result.map(|()| major)
    }

    /// Prepares the new cluster while the old one still serves (so initdb is no part of the write outage): initdb
    /// with the new binaries beside the data directory (`<data_dir>.pg<new>.new.<id>`), with the old checksum setting.
    pub async fn stage_upgrade(&self, bin: &Path, id: u64) -> Result<Staged, PgError> {
        let major = check_new_binaries(bin, self.data_major())?;
        let checksums = self.data_checksums().await?;
        let name = self
            .data_dir()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "pgdata".into());
        let dir = self.data_dir().with_file_name(format!("{name}.pg{major}.new.{id}"));
        self.initdb_new(&dir, bin, major, checksums).await?;
        Ok(Staged { dir, major })
    }

    /// Removes a staged new cluster that will not be used.
    pub async fn discard_staged(&self, staged: &Staged) {
        let dir = staged.dir.clone();
        let removed = files::blocking(move || match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(PgError::io("removing the new cluster", &dir)(e)),
            _ => Ok(()),
        })
        .await;
        if let Err(e) = removed {
            tracing::warn!("{e}");
        }
    }

    /// The upgrade of the stopped data directory into `staged`: `pg_upgrade`, then the old directory set aside
    /// (kept: the way back) and the new one moved into its place. On a failure the staged cluster is removed and
    /// the old directory is as it was (its `pg_control` restored): the old version can start again.
    pub async fn upgrade_data_dir(
        &self,
        staged: &Staged,
        bin: &Path,
        mode: TransferMode,
        id: u64,
    ) -> Result<Upgraded, PgError> {
        self.ensure_stopped("pg_upgrade")?;
        let data = self.data_dir().to_path_buf();
        if let Err(e) = self.pg_upgrade(&data, &staged.dir, bin, mode, false).await {
            self.discard_staged(staged).await;
            restore_pg_control(&data).await?;
            tracing::warn!(member = %self.settings.name, event = "upgrade_rolled_back", data_dir = %data.display(),
                "pg_upgrade failed: the old data directory is unchanged");
            return Err(e);
        }
        let aside = self.set_aside(id).await?;
        let (from, to) = (staged.dir.clone(), data.clone());
        let moved = files::blocking(move || {
            std::fs::rename(&from, &to).map_err(PgError::io("moving the new cluster into place", &from))
        })
        .await;
        if let Err(e) = moved {
            self.roll_back_upgrade(&aside).await?;
            return Err(e);
        }
        Ok(Upgraded {
            old_data_dir: aside,
            major: staged.major,
        })
    }

    /// The bin directory in use.
    fn bin_dir_now(&self) -> PathBuf {
        match self.bin_dir.read() {
            Ok(bin) => bin.0.clone(),
            Err(_) => self.settings.bin_dir.clone(),
        }
    }

    /// The way back before the new server's first start: the new data directory removed, the old one (`aside`)
    /// put back, its `pg_control` restored (`--link` renames it to `pg_control.old` at the point of no return).
    pub async fn roll_back_upgrade(&self, aside: &Path) -> Result<(), PgError> {
        let (data, aside) = (self.data_dir().to_path_buf(), aside.to_path_buf());
        files::blocking(move || {
            const STEP: &str = "putting the old data directory back";
            match std::fs::remove_dir_all(&data) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(PgError::io(STEP, &data)(e)),
                _ => {}
            }
            std::fs::rename(&aside, &data).map_err(PgError::io(STEP, &aside))
        })
        .await?;
        restore_pg_control(self.data_dir()).await?;
        tracing::warn!(member = %self.settings.name, event = "upgrade_rolled_back", data_dir = %self.data_dir().display(),
            "major upgrade rolled back: the old data directory is in place again");
        Ok(())
    }

    /// Refuses `step` while PostgreSQL runs on the data directory.
    fn ensure_stopped(&self, step: &'static str) -> Result<(), PgError> {
        match self.postmaster_pid() {
            Some(pid) => Err(PgError::DataDir {
                step,
                path: self.data_dir().to_path_buf(),
                reason: format!("PostgreSQL is running (pid {pid})"),
            }),
            None => Ok(()),
        }
    }

    /// Renames the (stopped) data directory aside, beside it (none is left in its place: the data is then missing);
    /// returns where it went. It is kept until the operator removes it.
    pub async fn set_aside(&self, id: u64) -> Result<PathBuf, PgError> {
        self.ensure_stopped("setting the data directory aside")?;
        let data = self.data_dir().to_path_buf();
        let aside = aside_path(&data, self.data_major(), id);
        let (d, a) = (data.clone(), aside.clone());
        files::blocking(move || std::fs::rename(&d, &a).map_err(PgError::io("setting the data directory aside", &d)))
            .await?;
        tracing::info!(member = %self.settings.name, event = "upgrade_old_data_kept", old_data_dir = %aside.display(),
            "old data directory kept at {} (remove it once the upgrade is confirmed)", aside.display());
        Ok(aside)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_beside_the_data_directory() {
        let data = Path::new("/var/lib/pgha/pgdata");
        assert_eq!(
            aside_path(data, Some(15), 42),
            PathBuf::from("/var/lib/pgha/pgdata.pg15.42")
        );
        assert_eq!(aside_path(data, None, 1), PathBuf::from("/var/lib/pgha/pgdata.old.1"));
        assert_eq!(bin_dir_file(data), PathBuf::from("/var/lib/pgha/pgdata.bin_dir"));
    }

    #[test]
    fn bad_binaries_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope");
        let e = check_new_binaries(&missing, Some(15)).expect_err("absent").to_string();
        assert!(e.contains("no such directory") && e.contains("nope"), "{e}");
        let e = check_new_binaries(dir.path(), Some(15)).expect_err("empty").to_string();
        assert!(e.contains("lacks initdb, pg_ctl, postgres, pg_upgrade"), "{e}");
    }

    #[test]
    fn remembered_bin_dir_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("pgdata");
        assert_eq!(remembered_bin_dir(&data), None);
        std::fs::write(bin_dir_file(&data), "/opt/pg18/bin\n").expect("write");
        assert_eq!(remembered_bin_dir(&data), Some(PathBuf::from("/opt/pg18/bin")));
    }
}
