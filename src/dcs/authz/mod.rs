//! Least privilege (invariant 8): certificate roles, and one pure decision on every RPC a member serves.
//!
//! The identity a certificate carries is `crate::identity`; here: `principal` (the identity the rules judge, with the
//! rule for certificates without a role), `keys` and `rules` (the decision, pure, table-tested), `rest` (the REST writes and their callers), `guard` (the shell
//! the gRPC services call).

pub mod guard;
pub mod keys;
pub mod principal;
pub mod rest;
pub mod rules;

pub use guard::{check, identify, Access, Who};
pub use rules::{authorize, lease_use, Denial, Principal, Rpc};
