//! pgha: one binary for PostgreSQL high availability (embedded Raft DCS, supervisor, edge, ctl).
pub mod api;
pub mod bench;
pub mod cert;
pub mod cli;
pub mod config;
pub mod ctl;
pub mod dcs;
pub mod demo;
pub mod edge;
pub mod ha;
pub mod local;
pub mod logging;
pub mod postgres;
pub mod proto;
pub mod run;
pub mod run_db;
pub mod tls;
