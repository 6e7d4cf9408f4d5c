//! Finding the PostgreSQL binaries: the configured directory, else the installed ones of the data directory's
//! version (`PG_VERSION`), searched in the extra roots, every `pg_config` on PATH, Debian's and RHEL's layouts.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::PgError;

#[path = "bin_choice.rs"]
pub mod choice;

pub use choice::{BinDirError, Candidate, Need, SUPPORTED};

/// Programs a usable bin directory must contain.
pub const REQUIRED: &[&str] = &["initdb", "pg_ctl", "postgres"];
/// Extra installation roots (`:`-separated), searched first: each is a bin directory or holds `bin/`
/// (binaries unpacked outside the system layouts, e.g. the tests' PostgreSQL 18).
pub const SEARCH_ENV: &str = "PGHA_PG_SEARCH";
/// Bound on `pg_config --bindir` and `postgres --version`.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the binaries are looked up for.
#[derive(Clone, Debug, Default)]
pub struct BinQuery {
    /// `postgresql.bin_dir`: used when set (it must be complete and, when readable, of the data directory's version).
    pub configured: Option<PathBuf>,
    /// The data directory, whose `PG_VERSION` decides (missing or empty: `cluster_version`, else the newest).
    pub data_dir: Option<PathBuf>,
    /// The version the cluster runs, when known (used while the data directory is empty).
    pub cluster_version: Option<u32>,
    /// Extra roots searched first (see [`SEARCH_ENV`]).
    pub extra_roots: Vec<PathBuf>,
}

/// The bin directory to use, its major version (None: a configured one whose version could not be read) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The directory.
    pub dir: PathBuf,
    /// Its `postgres --version` major.
    pub major: Option<u32>,
    /// Why this one, for the log.
    pub reason: String,
}

/// The required programs missing from `dir` (empty when it is usable).
pub fn missing_programs(dir: &Path) -> Vec<&'static str> {
    REQUIRED.iter().copied().filter(|p| !dir.join(p).is_file()).collect()
}

/// The roots in [`SEARCH_ENV`], empty entries skipped.
pub fn search_roots_from_env() -> Vec<PathBuf> {
    std::env::var_os(SEARCH_ENV)
        .map(|v| {
            std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// The bin directory for `q` (see [`BinQuery`] and [`choice::choose`]).
pub fn resolve(q: &BinQuery) -> Result<Found, BinDirError> {
    let data_version = match &q.data_dir {
        Some(dir) => data_dir_version(dir)?,
        None => None,
    };
    if let Some(dir) = &q.configured {
        let missing = missing_programs(dir);
        if !missing.is_empty() {
            return Err(BinDirError::ConfiguredIncomplete {
                dir: dir.clone(),
                missing: missing.join(", "),
            });
        }
        let major = postgres_major(dir);
        if let (Some(found), Some(needed), Some(data_dir)) = (major, data_version, &q.data_dir) {
            if found != needed {
                return Err(BinDirError::ConfiguredMismatch {
                    dir: dir.clone(),
                    found,
                    data_dir: data_dir.clone(),
                    needed,
                });
            }
        }
        return Ok(Found {
            dir: dir.clone(),
            major,
            reason: "postgresql.bin_dir".into(),
        });
    }
    if let (Some(version), Some(data_dir)) = (data_version, &q.data_dir) {
        choice::check_supported(data_dir, version)?;
    }
    let searched = search_dirs(&q.extra_roots);
    let candidates = candidates(&searched);
    let need = Need::from_versions(data_version, q.cluster_version);
    let chosen = choice::choose(need, &candidates, &searched)?;
    Ok(Found {
        dir: chosen.dir,
        major: Some(chosen.major),
        reason: need.to_string(),
    })
}

/// The directory holding initdb, pg_ctl and postgres when no data directory is involved (tools, tests):
/// `configured`, else the newest supported version found (roots of [`SEARCH_ENV`] included).
pub fn discover_bin_dir(configured: Option<&Path>) -> Result<PathBuf, PgError> {
    let q = BinQuery {
        configured: configured.map(Path::to_path_buf),
        extra_roots: search_roots_from_env(),
        ..BinQuery::default()
    };
    resolve(&q).map(|f| f.dir).map_err(|e| PgError::BinDir(e.to_string()))
}

impl super::Postgres {
    /// The data directory's major version (`PG_VERSION`); None before there is one or when it cannot be read.
    pub fn data_major(&self) -> Option<u32> {
        data_dir_version(&self.settings.data_dir).ok().flatten()
    }

    /// After a clone: when the data directory is another major version than the binaries in use (a new member
    /// starts with the newest installed; the cluster may run an older one), switches to that version's binaries.
    /// Returns whether it switched. A configured `bin_dir` never changes (starting then says what is wrong).
    pub fn follow_data_dir_version(&self) -> Result<bool, PgError> {
        let Some(roots) = &self.settings.bin_search else {
            return Ok(false);
        };
        let data_dir = &self.settings.data_dir;
        let Some(version) = data_dir_version(data_dir).map_err(|e| PgError::BinDir(e.to_string()))? else {
            return Ok(false);
        };
        let current = self.bin_dir.read().map(|b| b.1).unwrap_or(None);
        if current == Some(version) {
            return Ok(false);
        }
        let found = resolve(&BinQuery {
            configured: None,
            data_dir: Some(data_dir.clone()),
            cluster_version: None,
            extra_roots: roots.clone(),
        })
        .map_err(|e| PgError::BinDir(e.to_string()))?;
        tracing::info!(member = %self.settings.name, event = "bin_dir_switched", bin_dir = %found.dir.display(),
            version, "the data directory is PostgreSQL {version}: using its binaries");
        if let Ok(mut bin) = self.bin_dir.write() {
            *bin = (found.dir, found.major);
        }
        Ok(true)
    }
}

/// The major version in `<data_dir>/PG_VERSION`; None when there is none yet (missing or empty directory, or a
/// clone that has not written it).
pub fn data_dir_version(data_dir: &Path) -> Result<Option<u32>, BinDirError> {
    let path = data_dir.join("PG_VERSION");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(BinDirError::PgVersionFile {
                path,
                reason: e.to_string(),
            })
        }
    };
    match choice::parse_pg_version_file(&text) {
        Some(major) => Ok(Some(major)),
        None => Err(BinDirError::PgVersionFile {
            path,
            reason: format!("{:?} is not a PostgreSQL version", text.trim()),
        }),
    }
}

/// Every directory looked at, in order, once: the extra roots (each itself and its `bin/`), `pg_config --bindir`
/// of every `pg_config` on PATH, `/usr/lib/postgresql/<N>/bin` (Debian), `/usr/pgsql-<N>/bin` (RHEL), N newest first.
pub fn search_dirs(extra_roots: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for root in extra_roots {
        dirs.push(root.clone());
        dirs.push(root.join("bin"));
    }
    dirs.extend(pg_configs_on_path().iter().filter_map(|p| pg_config_bindir(p)));
    for major in SUPPORTED.rev() {
        dirs.push(PathBuf::from(format!("/usr/lib/postgresql/{major}/bin")));
    }
    for major in SUPPORTED.rev() {
        dirs.push(PathBuf::from(format!("/usr/pgsql-{major}/bin")));
    }
    let mut seen = Vec::new();
    dirs.retain(|d| {
        // The same directory reached twice (pg_config pointing at Debian's path, a symlinked root) is listed once.
        let key = d.canonicalize().unwrap_or_else(|_| d.clone());
        let new = !seen.contains(&key);
        seen.push(key);
        new
    });
    dirs
}

/// The complete directories among `dirs` whose `postgres --version` can be read, in order.
pub fn candidates(dirs: &[PathBuf]) -> Vec<Candidate> {
    dirs.iter()
        .filter(|d| missing_programs(d).is_empty())
        .filter_map(|d| postgres_major(d).map(|major| Candidate { dir: d.clone(), major }))
        .collect()
}

/// The major version `<dir>/postgres --version` reports (None when it does not run or answers oddly).
pub fn postgres_major(dir: &Path) -> Option<u32> {
    let mut cmd = Command::new(dir.join("postgres"));
    cmd.arg("--version");
    choice::parse_version_output(&output_within(cmd, PROBE_TIMEOUT)?)
}

/// Every `pg_config` in a PATH directory.
fn pg_configs_on_path() -> Vec<PathBuf> {
    let Some(path) = std::env::var_os("PATH") else {
        return Vec::new();
    };
    std::env::split_paths(&path)
        .map(|d| d.join("pg_config"))
        .filter(|p| p.is_file())
        .collect()
}

/// `<pg_config> --bindir` (None when failing or slow).
fn pg_config_bindir(pg_config: &Path) -> Option<PathBuf> {
    let mut cmd = Command::new(pg_config);
    cmd.arg("--bindir");
    let text = output_within(cmd, PROBE_TIMEOUT)?;
    let dir = text.trim();
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

/// The stdout of a successful run of `cmd` within `limit` (killed after it); None otherwise.
fn output_within(mut cmd: Command, limit: Duration) -> Option<String> {
    use std::io::Read;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    };
    let mut text = String::new();
    child.stdout.take()?.read_to_string(&mut text).ok()?;
    status.success().then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_dir_must_be_complete() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = discover_bin_dir(Some(dir.path())).expect_err("empty dir");
        let text = err.to_string();
        assert!(
            text.contains(&dir.path().display().to_string()) && text.contains("initdb"),
            "{text}"
        );
        for p in REQUIRED {
            std::fs::write(dir.path().join(p), "").expect("touch");
        }
        assert_eq!(discover_bin_dir(Some(dir.path())).expect("complete"), dir.path());
    }

    #[test]
    fn data_dir_versions() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(data_dir_version(dir.path()), Ok(None), "empty directory");
        assert_eq!(data_dir_version(&dir.path().join("absent")), Ok(None), "no directory");
        std::fs::write(dir.path().join("PG_VERSION"), "18\n").expect("write");
        assert_eq!(data_dir_version(dir.path()), Ok(Some(18)));
        std::fs::write(dir.path().join("PG_VERSION"), "eighteen\n").expect("write");
        let err = data_dir_version(dir.path()).expect_err("garbage");
        assert!(
            err.to_string().contains("PG_VERSION") && err.to_string().contains("eighteen"),
            "{err}"
        );
    }

    #[test]
    fn unsupported_data_is_refused_before_searching() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("PG_VERSION"), "12\n").expect("write");
        let q = BinQuery {
            data_dir: Some(dir.path().to_path_buf()),
            ..BinQuery::default()
        };
        assert!(matches!(
            resolve(&q),
            Err(BinDirError::UnsupportedData { version: 12, .. })
        ));
    }

    #[test]
    fn roots_are_searched_first_and_once() {
        let root = tempfile::tempdir().expect("tempdir");
        let dirs = search_dirs(&[root.path().to_path_buf(), root.path().to_path_buf()]);
        assert_eq!(dirs[0], root.path());
        assert_eq!(dirs[1], root.path().join("bin"));
        assert_eq!(dirs.iter().filter(|d| d.as_path() == root.path()).count(), 1);
        assert!(dirs.contains(&PathBuf::from("/usr/lib/postgresql/18/bin")));
        assert!(dirs.contains(&PathBuf::from("/usr/pgsql-13/bin")));
    }
}
