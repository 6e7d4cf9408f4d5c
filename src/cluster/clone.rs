//! A running replica creation's progress as the member key publishes it (`ctl list` shows it).

use serde::{Deserialize, Serialize};

/// How far a replica creation (or a bootstrap restore) has come.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloneProgress {
    /// The method running (`basebackup`, `pgbackrest`, a `[postgresql.create_replica.<name>]`).
    pub method: String,
    /// Bytes under the data directory so far.
    pub bytes: u64,
    /// Seconds since the method started.
    pub elapsed_s: u64,
}
