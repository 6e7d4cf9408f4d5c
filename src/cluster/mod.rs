//! The cluster's data model in the DCS, shared by every role: the keys, the typed view and its reads and writes,
//! a holder's view of its lease, and the one set of timing defaults. Depends on `dcs` only; `ha`, `edge`, `ctl`,
//! `api` and `bench` build on it.

pub mod history;
pub mod keys;
pub mod lease;
pub mod model;
pub mod standby;
pub mod store;
pub mod timing;
pub mod upgrade;
