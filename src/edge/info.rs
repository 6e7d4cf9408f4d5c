//! What an edge publishes about itself under `edges/<name>` (bound to its own DCS lease): read by the other edges'
//! VIP keepers (`name`, `healthy`, `vip_priority`) and by `pgha ctl list`.

use serde::{Deserialize, Serialize};

/// The client ports of an edge as configured (empty = disabled).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgePorts {
    pub primary: String,
    pub replica: String,
    pub any: String,
}

/// An edge's published status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeInfo {
    pub name: String,
    /// `host:port` of the status page (empty = off).
    pub status_addr: String,
    pub ports: EdgePorts,
    /// Listeners up and the DCS view younger than the leader TTL: the precondition for holding the VIP.
    pub healthy: bool,
    /// VIP priority when this edge may hold the VIP.
    pub vip_priority: Option<u32>,
    /// This edge holds the VIP now.
    pub vip_holder: bool,
}
