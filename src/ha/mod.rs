//! The db role's HA brain: a pure decision (`decide`, `race`) fed by a loop that reads the DCS and PostgreSQL and
//! applies one action at a time. The cluster model it reads is `crate::cluster`; the fencer is `crate::fence`.

pub mod actions;
pub mod cascade;
mod cascade_slots;
mod clone_publish;
pub mod decide;
pub mod error;
mod hook_calls;
pub mod hook_exec;
pub mod hooks;
pub mod no_leader;
pub mod node_parts;
pub mod race;
mod rebind;
pub mod runner;
pub mod session;
pub mod slots;
pub mod stall;
mod standby_actions;
pub mod standby_cluster;
pub mod sync;
mod sync_leader;
mod upgrade;
pub mod wal_service;
