//! Placeholder of the VIP keeper (built on branch `vip`; replaced at merge): the agreed signatures only.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::dcs::client::DcsClient;
use crate::ha::keys::Keys;

/// What the VIP keeper needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VipSettings {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub interface: String,
    pub priority: u32,
    pub preempt: bool,
    pub ttl: Duration,
}

/// A VIP failure.
#[derive(Debug, thiserror::Error)]
pub enum VipError {
    #[error("the VIP keeper is not part of this build (branch `vip`)")]
    NotBuilt,
}

/// Checks CAP_NET_ADMIN / CAP_NET_RAW and the interface.
pub fn check_capabilities(_s: &VipSettings) -> Result<(), VipError> {
    Err(VipError::NotBuilt)
}

/// Holds the VIP while this edge owns the `vip` lease.
pub async fn run_keeper(
    _s: VipSettings,
    _edge_name: String,
    _dcs: Arc<DcsClient>,
    _keys: Keys,
    _healthy: tokio::sync::watch::Receiver<bool>,
    _holder: tokio::sync::watch::Sender<Option<String>>,
    _shutdown: CancellationToken,
) -> Result<(), VipError> {
    Err(VipError::NotBuilt)
}
