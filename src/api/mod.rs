//! HTTP APIs of a db node: the Patroni-compatible REST health endpoints, its writes, and Prometheus metrics.

pub mod health;
pub mod metrics;
pub mod patroni_config;
pub mod rest;
pub mod rest_write;
pub mod tls_listener;
