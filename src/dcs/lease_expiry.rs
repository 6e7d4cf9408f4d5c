//! On the Raft leader, turns lease deadlines that passed into `LeaseExpire` log entries, once a quorum of voters
//! agrees (`lease_quorum.rs`); on every member, notices membership changes (which reset lease deadlines).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::core::DcsCore;
use super::types::{Command, CommandResult};

/// How often the leader checks deadlines: expiry is at most this late.
const TICK: Duration = Duration::from_millis(10);
/// After a vote round that expired nothing (a holder still refreshing a majority), the next one waits this long.
const VOTE_PAUSE: Duration = Duration::from_millis(50);
/// Leases per `LeaseExpire` entry (about 20 bytes each): thousands of leases lapsing together (a mass disconnect)
/// must not make one entry larger than `dcs.limits.max_request_bytes` allows a client; the rest go next tick.
const LEASES_PER_ENTRY: usize = 1024;

/// Runs until `token` is cancelled.
pub async fn run(core: Arc<DcsCore>, token: CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        // Seen promptly on every member, so its lease reset comes before any vote asked under the new membership.
        core.membership_now();
        if !core.is_leader() {
            continue;
        }
        let mut leases = core.sm.expired_leases(Instant::now());
        leases.truncate(LEASES_PER_ENTRY);
        if leases.is_empty() {
            continue;
        }
        let ids: Vec<i64> = leases.iter().map(|l| l.id).collect();
        let agreed = core.expiry_quorum(&ids).await;
        leases.retain(|l| agreed.contains(&l.id));
        if leases.is_empty() {
            tracing::debug!(leases = ?ids, "lease expiry: no quorum of voters agrees yet");
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(VOTE_PAUSE) => {}
            }
            continue;
        }
        let write = core.raft.client_write(Command::LeaseExpire { leases });
        match tokio::time::timeout(core.timeout, write).await {
            Ok(Ok(resp)) => {
                if let CommandResult::Expired { expired } = resp.data {
                    if !expired.is_empty() {
                        tracing::info!(event = "leases_expired", leases = ?expired, "leases expired: no keepalive within their TTL");
                    }
                }
            }
            Ok(Err(e)) => tracing::debug!("lease expiry not committed: {e}"),
            Err(_) => tracing::warn!("lease expiry not committed within {:?}", core.timeout),
        }
    }
}
