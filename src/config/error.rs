//! Peers and the error types of configuration loading.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::validate;

/// One DCS member from `dcs.peers`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    /// Member name (the `node.name` of that node).
    pub name: String,
    /// `host:port` of its gRPC server.
    pub addr: String,
}

impl FromStr for Peer {
    type Err = SyntaxError;

    /// Parses `"name=host:port"` (IPv6 hosts in brackets: `"db1=[fd00::1]:7400"`).
    fn from_str(s: &str) -> Result<Peer, SyntaxError> {
        validate::parse_peer(s)
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.addr)
    }
}

/// A malformed member (`name=host:port`) or address (`host:port`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} (hint: {hint})")]
pub struct SyntaxError {
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

/// One thing wrong with a loaded configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, with a 0-based index for list entries, e.g. `"dcs.peers[1]"`.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)?;
        if !self.hint.is_empty() {
            write!(f, " (hint: {})", self.hint)?;
        }
        Ok(())
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A source is not valid TOML, has a value of the wrong type, or names an
    /// unknown key. `message` includes toml's description (key and line).
    #[error("{origin}: {message}")]
    Parse {
        /// The file name, or `environment variable PGHA_...`.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// The merged configuration breaks one or more rules; all are listed.
    #[error("invalid configuration (from {origin}):{}", problem_lines(problems))]
    Invalid {
        /// The sources that were merged (file, environment variables, flags).
        origin: String,
        /// Every problem found, in key order of the file.
        problems: Vec<Problem>,
    },
    /// A secret file (e.g. `postgresql.superuser_password_file`) could not be
    /// used. The message never contains the file's content.
    #[error("{key} ({}): {message}", path.display())]
    Secret {
        /// The key that names the file, e.g. `postgresql.replication_password_file`.
        key: String,
        /// The file.
        path: PathBuf,
        /// What is wrong (missing, unreadable, empty).
        message: String,
    },
}

/// Renders problems one per line, indented, for [`ConfigError::Invalid`].
fn problem_lines(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("\n  {p}")).collect()
}
