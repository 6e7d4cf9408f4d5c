//! pgBackRest commands (pure): WAL archiving (`archive_command`), `restore_command` and the restore a replica or
//! a bootstrap runs, all from one `[postgresql.pgbackrest]` section.

use std::path::{Path, PathBuf};

use super::replica_methods::DATA_DIR;

/// One pgBackRest repository and stanza, as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pgbackrest {
    /// The `pgbackrest` program.
    pub bin: String,
    /// `--config` (None: pgBackRest's default file).
    pub config: Option<PathBuf>,
    /// `--stanza`.
    pub stanza: String,
    /// Render `archive_mode`/`archive_command`.
    pub archive: bool,
    /// Render `restore_command`.
    pub restore: bool,
}

/// What the restore is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreKind {
    /// A replica: `--type=standby` (then streams from the leader).
    Standby,
    /// A bootstrap: `--type=default` (pgha writes the recovery target and `recovery_target_action = promote`).
    Bootstrap,
}

impl Pgbackrest {
    /// The words every command starts with: program, `--config`, `--stanza`, `--pg1-path`.
    fn base(&self, data_dir: &str) -> Vec<String> {
        let mut argv = vec![self.bin.clone()];
        if let Some(c) = &self.config {
            argv.push(format!("--config={}", c.display()));
        }
        argv.push(format!("--stanza={}", self.stanza));
        argv.push(format!("--pg1-path={data_dir}"));
        argv
    }

    /// `archive_command` (run by PostgreSQL through the shell, hence quoted).
    pub fn archive_command(&self, data_dir: &Path) -> String {
        let mut argv = self.base(&data_dir.to_string_lossy());
        argv.push("archive-push".into());
        format!("{} %p", shell_join(&argv))
    }

    /// `restore_command`.
    pub fn restore_command(&self, data_dir: &Path) -> String {
        let mut argv = self.base(&data_dir.to_string_lossy());
        argv.push("archive-get".into());
        format!("{} %f \"%p\"", shell_join(&argv))
    }

    /// The restore's argv with the `{data_dir}` placeholder (a replica method's or the bootstrap's default command).
    /// `--delta` lets a retry reuse what an interrupted restore already wrote.
    pub fn restore_argv(&self, kind: RestoreKind) -> Vec<String> {
        let mut argv = self.base(DATA_DIR);
        argv.push("--delta".into());
        argv.push("restore".into());
        argv.push(
            match kind {
                RestoreKind::Standby => "--type=standby",
                RestoreKind::Bootstrap => "--type=default",
            }
            .into(),
        );
        argv
    }
}

/// Words joined for `sh -c`, each single-quoted when it holds anything but plain characters.
fn shell_join(words: &[String]) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c);
    words
        .iter()
        .map(|w| match !w.is_empty() && w.chars().all(plain) {
            true => w.clone(),
            false => format!("'{}'", w.replace('\'', "'\\''")),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(config: Option<&str>) -> Pgbackrest {
        Pgbackrest {
            bin: "pgbackrest".into(),
            config: config.map(PathBuf::from),
            stanza: "main".into(),
            archive: true,
            restore: true,
        }
    }

    #[test]
    fn commands() {
        let dir = Path::new("/var/lib/pg data");
        let r = repo(Some("/etc/pgbr.conf"));
        assert_eq!(
            r.archive_command(dir),
            "pgbackrest --config=/etc/pgbr.conf --stanza=main '--pg1-path=/var/lib/pg data' archive-push %p"
        );
        assert_eq!(
            repo(None).restore_command(Path::new("/d")),
            "pgbackrest --stanza=main --pg1-path=/d archive-get %f \"%p\""
        );
        assert_eq!(
            repo(None).restore_argv(RestoreKind::Standby),
            [
                "pgbackrest",
                "--stanza=main",
                "--pg1-path={data_dir}",
                "--delta",
                "restore",
                "--type=standby"
            ]
        );
        assert_eq!(
            repo(None)
                .restore_argv(RestoreKind::Bootstrap)
                .last()
                .map(String::as_str),
            Some("--type=default")
        );
    }
}
