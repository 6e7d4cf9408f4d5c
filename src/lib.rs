//! pgha: one binary for PostgreSQL high availability (embedded Raft DCS, supervisor, edge, ctl).
pub mod cert;
pub mod config;
pub mod dcs;
pub mod proto;
pub mod tls;
pub mod bench;
pub mod cli;
pub mod ctl;
pub mod demo;
pub mod local;
pub mod logging;
pub mod run;
