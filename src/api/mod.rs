//! HTTP APIs of a db node: the Patroni-compatible REST health endpoints (and `/metrics`, from `crate::metrics`).

pub mod health;
pub mod metrics;
pub mod rest;
pub mod tls_listener;
