//! The error type of PostgreSQL control: each variant names the failing step and the path or command.

use std::path::PathBuf;
use std::time::Duration;

/// A failed PostgreSQL control step. Never carries a password: commands get secrets through files only, and
/// only the tail of their output is kept.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// Invalid settings or arguments.
    #[error("invalid PostgreSQL settings: {0}")]
    Settings(String),
    /// The OS user to run PostgreSQL as cannot be used.
    #[error("OS user {user:?}: {reason}")]
    OsUser {
        /// The configured user name.
        user: String,
        /// What is wrong.
        reason: String,
    },
    /// No usable PostgreSQL binaries.
    #[error("PostgreSQL binaries: {0}")]
    BinDir(String),
    /// A file-system operation failed.
    #[error("{step}: {}: {source}", path.display())]
    Io {
        /// What pgha was doing.
        step: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A PostgreSQL program exited unsuccessfully.
    #[error(
        "{step}: `{command}` failed ({status}){}{}",
        tail_part("output", output),
        tail_part("server log", log)
    )]
    Command {
        /// What pgha was doing.
        step: &'static str,
        /// Program and arguments (no secrets are ever passed as arguments).
        command: String,
        /// Exit status.
        status: String,
        /// Tail of its stderr/stdout.
        output: String,
        /// Tail of the server log, when relevant (start).
        log: String,
    },
    /// A PostgreSQL program or SQL step did not finish in time (the program was killed).
    #[error(
        "{step}: `{command}` did not finish within {timeout:?}{}",
        tail_part("server log", log)
    )]
    Timeout {
        /// What pgha was doing.
        step: &'static str,
        /// Program and arguments, or the SQL step.
        command: String,
        /// The bound that was exceeded.
        timeout: Duration,
        /// Tail of the server log, when relevant.
        log: String,
    },
    /// A replica creation or restore made no progress for its stall timeout and was killed.
    #[error("{step}: `{command}` stalled: {reason}{}", tail_part("output", output))]
    Stalled {
        /// What pgha was doing.
        step: &'static str,
        /// Program and arguments.
        command: String,
        /// How long it made no progress.
        reason: String,
        /// Tail of its output.
        output: String,
    },
    /// The data directory is not in the state the step needs.
    #[error("{step}: {}: {reason}", path.display())]
    DataDir {
        /// What pgha was doing.
        step: &'static str,
        /// The data directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Output of a PostgreSQL program or query that pgha cannot interpret.
    #[error("{step}: cannot parse {what}: {detail}")]
    Parse {
        /// What pgha was doing.
        step: &'static str,
        /// What was being parsed.
        what: String,
        /// Why it failed.
        detail: String,
    },
    /// A SQL step failed (the message includes the server's or the I/O error's detail).
    #[error("{step}: {}", sql_detail(error))]
    Sql {
        /// What pgha was doing.
        step: &'static str,
        /// The driver or server error (never includes statement text).
        error: tokio_postgres::Error,
    },
    /// The server is not in the role the step needs (e.g. slots on a standby).
    #[error("{step}: {reason}")]
    WrongRole {
        /// What pgha was doing.
        step: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// A driver error with its cause: tokio-postgres' own Display stops at "db error".
pub fn sql_detail(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{}: {} ({})", db.severity(), db.message(), db.code().code());
    }
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

fn tail_part(label: &str, text: &str) -> String {
    if text.trim().is_empty() {
        String::new()
    } else {
        format!("; {label}:\n{}", text.trim_end())
    }
}

impl PgError {
    /// An [`PgError::Io`] builder for `map_err`.
    pub fn io(step: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> PgError {
        let path = path.into();
        move |source| PgError::Io { step, path, source }
    }

    /// A [`PgError::Sql`] builder for `map_err`.
    pub fn sql(step: &'static str) -> impl FnOnce(tokio_postgres::Error) -> PgError {
        move |error| PgError::Sql { step, error }
    }
}
