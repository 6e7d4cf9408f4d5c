//! The embedded Raft DCS that replaces etcd: an etcd-like KV with leases and watches, replicated by openraft on
//! sled, served over gRPC (mutual TLS), plus the client other roles use.

pub mod admin;
pub mod authz;
pub mod bootstrap;
pub mod channel;
pub mod client;
pub mod codec;
pub mod convert;
pub mod core;
pub mod disk;
pub mod fault;
pub mod kv;
pub mod lease_clock;
pub mod lease_expiry;
pub mod lease_quorum;
pub mod lease_votes;
pub mod limits;
pub mod log_store;
pub mod member;
pub mod metrics;
pub mod network;
pub mod quota;
pub mod service;
pub mod snapshot_guard;
pub mod state_machine;
pub mod types;
pub mod watch;

#[cfg(test)]
mod storage_suite;
