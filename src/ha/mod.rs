//! The db role's HA brain: a pure decision (`decide`, `race`) fed by a loop that reads the DCS and PostgreSQL and
//! applies one action at a time; the leader lease clock; the fencing process that stops a primary whose pgha froze.

pub mod actions;
pub mod cascade;
mod cascade_slots;
pub mod decide;
pub mod fence;
pub mod history;
mod hook_calls;
pub mod hook_exec;
pub mod hooks;
pub mod keys;
pub mod lease;
pub mod model;
pub mod race;
mod rebind;
pub mod runner;
pub mod session;
pub mod slots;
pub mod stall;
pub mod store;
pub mod sync;
mod sync_leader;
pub mod wal_service;
