//! Finding the PostgreSQL binaries: the configured directory, else `pg_config --bindir`, else the Debian paths.

use std::path::{Path, PathBuf};

use super::PgError;

/// Programs a usable bin directory must contain.
pub const REQUIRED: &[&str] = &["initdb", "pg_ctl", "postgres"];
/// Major versions probed under `/usr/lib/postgresql/<major>/bin`, newest first.
const DEBIAN_MAJORS: &[u32] = &[17, 16, 15, 14, 13];

/// The required programs missing from `dir` (empty when it is usable).
pub fn missing_programs(dir: &Path) -> Vec<&'static str> {
    REQUIRED.iter().copied().filter(|p| !dir.join(p).is_file()).collect()
}

/// The directory holding initdb, pg_ctl and postgres: `configured` (which must be complete: the error names
/// it), else `pg_config --bindir` from PATH, else the newest of `/usr/lib/postgresql/{17,16,15,14,13}/bin`.
pub fn discover_bin_dir(configured: Option<&Path>) -> Result<PathBuf, PgError> {
    if let Some(dir) = configured {
        let missing = missing_programs(dir);
        if missing.is_empty() {
            return Ok(dir.to_path_buf());
        }
        return Err(PgError::BinDir(format!(
            "configured bin_dir {} lacks {}",
            dir.display(),
            missing.join(", ")
        )));
    }
    let mut tried = Vec::new();
    if let Some(dir) = pg_config_bindir() {
        if missing_programs(&dir).is_empty() {
            return Ok(dir);
        }
        tried.push(dir);
    }
    for major in DEBIAN_MAJORS {
        let dir = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
        if missing_programs(&dir).is_empty() {
            return Ok(dir);
        }
        tried.push(dir);
    }
    let tried: Vec<String> = tried.iter().map(|d| d.display().to_string()).collect();
    Err(PgError::BinDir(format!(
        "no directory with {} found (tried pg_config --bindir and {}); set postgresql.bin_dir",
        REQUIRED.join(", "),
        tried.join(", ")
    )))
}

/// `pg_config --bindir` from PATH, bounded to a few seconds (None when absent, failing or slow).
fn pg_config_bindir() -> Option<PathBuf> {
    use std::io::Read;
    let mut child = std::process::Command::new("pg_config")
        .arg("--bindir")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    };
    let mut text = String::new();
    child.stdout.take()?.read_to_string(&mut text).ok()?;
    let dir = text.trim();
    (status.success() && !dir.is_empty()).then(|| PathBuf::from(dir))
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
}
