//! Blocking file helpers: atomic, durable writes with mode and owner, directory creation, emptiness checks.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::PgError;

/// A file pgha wants in a given state.
#[derive(Clone, Debug)]
pub struct PlannedFile {
    /// Where.
    pub path: PathBuf,
    /// Contents, or None when the file must not exist.
    pub contents: Option<Vec<u8>>,
    /// Permission bits.
    pub mode: u32,
}

/// Brings every planned file into its state (blocking); returns whether anything changed.
pub fn apply_files(files: &[PlannedFile], owner: Option<(u32, u32)>) -> Result<bool, PgError> {
    let mut changed = false;
    for f in files {
        changed |= match &f.contents {
            Some(contents) => write_atomic(&f.path, contents, f.mode, owner)?,
            None => remove_file(&f.path)?,
        };
    }
    Ok(changed)
}

/// Removes a file if present; returns whether it existed.
pub fn remove_file(path: &Path) -> Result<bool, PgError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(PgError::Io {
            step: "removing a file",
            path: path.into(),
            source: e,
        }),
    }
}

/// Writes `contents` to `path` via a temporary file and rename, with `mode` and `owner`, durably (the file is
/// synced before the rename, its directory after); returns false (and writes nothing) when the file already has
/// exactly that content, mode and owner.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32, owner: Option<(u32, u32)>) -> Result<bool, PgError> {
    const STEP: &str = "writing a file";
    if let (Ok(meta), Ok(existing)) = (std::fs::metadata(path), std::fs::read(path)) {
        let owner_ok = owner.is_none_or(|(u, g)| meta.uid() == u && meta.gid() == g);
        if existing == contents && meta.permissions().mode() & 0o7777 == mode && owner_ok {
            return Ok(false);
        }
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.pgha-tmp"));
    remove_file(&tmp)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(PgError::io(STEP, &tmp))?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(PgError::io(STEP, &tmp))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(&file, Some(uid), Some(gid)).map_err(PgError::io("changing a file's owner", &tmp))?;
    }
    file.write_all(contents).map_err(PgError::io(STEP, &tmp))?;
    // Crash consistency: the contents reach the disk before the rename can expose them, and the rename itself
    // (a directory entry) before we report the file written.
    file.sync_all().map_err(PgError::io(STEP, &tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(PgError::io(STEP, path))?;
    let dir = parent_dir(path);
    sync_dir(dir).map_err(PgError::io("syncing a directory", dir))?;
    Ok(true)
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// fsync of a directory: makes the entries created, renamed or removed in it durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Creates `dir` (and missing parents) if needed. A directory it creates, or any when `enforce`, gets `mode`
/// and `owner`. Returns whether it was created.
pub fn ensure_dir(dir: &Path, mode: u32, owner: Option<(u32, u32)>, enforce: bool) -> Result<bool, PgError> {
    const STEP: &str = "creating a directory";
    let created = if dir.is_dir() {
        false
    } else {
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(PgError::io(STEP, parent))?;
        }
        std::fs::create_dir(dir).map_err(PgError::io(STEP, dir))?;
        true
    };
    if created || enforce {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(PgError::io(STEP, dir))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid))
                .map_err(PgError::io("changing a directory's owner", dir))?;
        }
    }
    Ok(created)
}

/// Whether `dir` is missing or empty.
pub fn dir_is_empty(dir: &Path) -> Result<bool, PgError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(PgError::Io {
            step: "reading the data directory",
            path: dir.into(),
            source: e,
        }),
    }
}

/// Runs blocking file work off the async runtime.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PgError> + Send + 'static,
) -> Result<T, PgError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(PgError::Settings(format!("file task failed: {e}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_report_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f.conf");
        assert!(write_atomic(&p, b"x", 0o600, None).expect("write"));
        assert!(!write_atomic(&p, b"x", 0o600, None).expect("same"));
        assert!(write_atomic(&p, b"x", 0o644, None).expect("mode"));
        assert!(write_atomic(&p, b"y", 0o644, None).expect("content"));
        assert_eq!(std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777, 0o644);
        let plan = [PlannedFile {
            path: p.clone(),
            contents: None,
            mode: 0,
        }];
        assert!(apply_files(&plan, None).expect("remove"));
        assert!(!apply_files(&plan, None).expect("absent"));
    }
}
