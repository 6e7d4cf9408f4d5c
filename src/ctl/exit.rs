//! A ctl outcome that is not a plain failure: a documented exit code (`ctl health`, `ctl members`), turned into the
//! process's exit status by `main.rs`.

/// Exit codes of `ctl health` and `ctl members` (the Nagios plugin convention, so either can be a monitoring check).
pub mod code {
    /// Everything checked is fine.
    pub const HEALTHY: u8 = 0;
    /// The cluster serves but something needs attention (a member down, a replica not streaming or lagging).
    pub const DEGRADED: u8 = 1;
    /// No leader holding its lease, the leader's PostgreSQL not running as primary, or no DCS quorum.
    pub const CRITICAL: u8 = 2;
    /// The state cannot be told: no DCS member answers, or the config is unusable.
    pub const UNKNOWN: u8 = 3;
}

/// End ctl with `code`; `message` (if any) goes to stderr.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    pub code: u8,
    pub message: String,
}
