//! The cluster harness: real `pgha` processes laid out from one typed [`spec::ClusterSpec`], on loopback
//! ([`local::LocalCluster`]) or in network namespaces ([`six_hosts::SixHosts`]), behind one [`topology::Topology`].
//!
//! It is in the binary, not only in the tests, because `pgha demo` and `pgha bench` run it for users.

pub mod error;
pub mod local;
pub mod ns_probe;
pub mod pg_disk;
pub mod probe;
pub mod six_hosts;
pub mod spec;
pub mod topology;
pub mod vip_look;
