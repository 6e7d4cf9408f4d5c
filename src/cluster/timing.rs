//! The cluster's timing: the one set of defaults (leader lease TTL, HA loop period) and the pair every loop reads.

use std::time::Duration;

/// Leader lease TTL unless configured (`ha.ttl_ms`, dynamic `ttl_ms`).
pub const DEFAULT_TTL_MS: u64 = 1200;
/// HA loop and lease renewal period unless configured (`ha.loop_wait_ms`, dynamic `loop_wait_ms`).
pub const DEFAULT_LOOP_WAIT_MS: u64 = 250;
/// The VIP lease's TTL (`edge.vip.ttl_ms`): the VIP leaves a dead edge about this long after its last refresh. It
/// can be shorter than a Raft election because holders refresh on a quorum of voters directly (ARCHITECTURE.md,
/// "Leases across leader changes"); `pgha bench soak` under a CPU-saturating load moved nothing at 300 ms.
pub const DEFAULT_VIP_TTL_MS: u64 = 300;

/// The lease TTL and loop period in force; the dynamic config can change them while a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub ttl: Duration,
    pub loop_wait: Duration,
}

impl Timing {
    /// From the configured milliseconds.
    pub fn from_ms(ttl_ms: u64, loop_wait_ms: u64) -> Timing {
        Timing {
            ttl: Duration::from_millis(ttl_ms),
            loop_wait: Duration::from_millis(loop_wait_ms),
        }
    }
}

impl Default for Timing {
    fn default() -> Self {
        Timing::from_ms(DEFAULT_TTL_MS, DEFAULT_LOOP_WAIT_MS)
    }
}
