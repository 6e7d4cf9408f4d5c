//! Least privilege (invariant 8): certificate roles, and one pure decision on every RPC a member serves.
//!
//! `role` (the identity a certificate carries), `peer` (reading it from a certificate), `principal` (the identity
//! the rules judge, with the rule for certificates without a role), `keys` and `rules` (the decision, pure,
//! table-tested), `rest` (REST writes and their callers), `guard` (the shell the gRPC services call), `own` (a node's check of its own certificate at start).

pub mod guard;
pub mod keys;
pub mod own;
pub mod peer;
pub mod principal;
pub mod rest;
pub mod role;
pub mod rules;

pub use guard::{check, identify, Access, Who};
pub use role::{Caller, CertRole, Identity};
pub use rules::{authorize, lease_use, Denial, Principal, Rpc};
