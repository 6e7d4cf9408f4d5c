//! The edge role: TCP proxy to the current primary/replicas and the virtual IP.
pub mod vip;
