//! The db role's HA brain: a pure decision (`decide`, `race`) fed by a loop that reads the DCS and PostgreSQL and
//! applies one action at a time; the leader lease clock; the fencing process that stops a primary whose pgha froze.

pub mod decide;
pub mod keys;
pub mod model;
pub mod race;
pub mod fence;
pub mod lease;
