//! A TTL change in the dynamic config takes effect at once: the member moves its keys (and the leader key) to a new
//! lease granted with the new TTL, in one transaction, then revokes the old lease.

use super::error::HaError;
use std::time::{Duration, Instant};

use super::runner::DbNode;
use crate::cluster::model::ClusterView;

impl DbNode {
    /// Moves the session to a lease with the configured TTL when the current one was granted with another; true when
    /// it moved (the caller's view then names the old lease and must be read again).
    pub(super) async fn follow_ttl_change(&mut self, view: &ClusterView) -> Result<bool, HaError> {
        let ttl = Duration::from_millis(self.config.ttl_ms);
        let (Some(old), Some(granted)) = (self.session.lease(), self.session.granted_ttl()) else {
            return Ok(false);
        };
        if granted == ttl {
            return Ok(false);
        }
        let Some(info) = view.members.get(&self.settings.name) else {
            return Ok(false); // published first, then moved
        };
        let leader_revision = view
            .leader
            .as_ref()
            .filter(|l| l.name == self.settings.name && l.lease == old)
            .map(|l| l.mod_revision);
        let sent_at = Instant::now();
        let (lease, new_ttl) = self.dcs.lease_grant(ttl).await?;
        if !self.store().rebind(info, leader_revision, lease).await? {
            // The leader key moved meanwhile: keep the old session, drop the new lease.
            let _ = self.dcs.lease_revoke(lease).await;
            return Ok(false);
        }
        self.session.adopt(lease, new_ttl, sent_at);
        if let Err(e) = self.dcs.lease_revoke(old).await {
            tracing::debug!("revoking the previous session lease failed (it holds no key and expires): {e}");
        }
        tracing::info!(
            old_ttl_ms = granted.as_millis() as u64,
            ttl_ms = new_ttl.as_millis() as u64,
            leader = leader_revision.is_some(),
            "session moved to a lease with the new TTL (dynamic configuration change)"
        );
        Ok(true)
    }
}
