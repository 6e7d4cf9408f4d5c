//! What each Patroni-compatible endpoint answers (pure): 200 when this node has the role, 503 otherwise.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cluster::model::ClusterView;
use crate::postgres::PgStatus;

/// The HA loop's latest picture of this node, shared with the REST API.
#[derive(Clone, Debug, Serialize)]
pub struct NodeSnapshot {
    pub name: String,
    #[serde(skip)]
    pub taken_at: Instant,
    /// Seconds since the epoch of the snapshot (for `/patroni`).
    pub unix_ms: u64,
    #[serde(skip)]
    pub view: ClusterView,
    pub status: Option<PgStatus>,
    /// This node holds the leader key with its current session.
    pub holds_leader: bool,
    pub noloadbalance: bool,
    pub tags: std::collections::BTreeMap<String, String>,
}

impl NodeSnapshot {
    fn fresh(&self, now: Instant) -> bool {
        // Older than the lease TTL means the HA loop is stuck: no role can be vouched for.
        now.duration_since(self.taken_at) < Duration::from_millis(self.view.config.ttl_ms.max(1000))
    }

    fn running(&self) -> bool {
        self.status.is_some()
    }

    fn is_primary(&self) -> bool {
        self.holds_leader && self.status.as_ref().is_some_and(|s| !s.in_recovery)
    }

    fn is_replica(&self) -> bool {
        self.status.as_ref().is_some_and(|s| s.in_recovery)
    }

    /// Replication lag in bytes behind the leader's published position.
    pub fn lag_bytes(&self) -> Option<u64> {
        let leader = self.view.leader_member()?.receive_lsn;
        let own = self.status.as_ref()?.wal_position();
        Some(leader.saturating_sub(own))
    }
}

/// Parses `?lag=` values: bytes, or with a kB/MB/GB suffix (as Patroni accepts).
pub fn parse_lag(text: &str) -> Option<u64> {
    let t = text.trim();
    let (digits, mult) = match t.find(|c: char| !c.is_ascii_digit()) {
        None => (t, 1),
        Some(i) => {
            let mult = match t[i..].trim().to_ascii_lowercase().as_str() {
                "b" => 1,
                "kb" => 1 << 10,
                "mb" => 1 << 20,
                "gb" => 1 << 30,
                _ => return None,
            };
            (&t[..i], mult)
        }
    };
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

/// The HTTP status of a health endpoint.
pub fn status_code(path: &str, query: &HashMap<String, String>, snap: Option<&NodeSnapshot>, now: Instant) -> u16 {
    let Some(s) = snap.filter(|s| s.fresh(now)) else {
        // Informational endpoints answer even before the first loop; role checks cannot.
        return match path {
            "/liveness" if snap.is_some() => 503,
            "/patroni" | "/cluster" | "/history" | "/config" | "/metrics" => 200,
            _ => 503,
        };
    };
    let synchronous = s.view.sync_members().is_some_and(|k| k.members.contains(&s.name));
    let ok = match path {
        "/primary" | "/master" | "/read-write" | "/leader" => s.is_primary(),
        "/replica" | "/async" | "/asynchronous" if path != "/replica" && synchronous => false,
        "/replica" | "/async" | "/asynchronous" => {
            let lag_ok = match query.get("lag") {
                Some(v) => parse_lag(v).is_some_and(|max| s.lag_bytes().is_none_or(|lag| lag <= max)),
                None => true,
            };
            s.is_replica() && !s.noloadbalance && lag_ok
        }
        // A replica the `sync` key names: it holds every acknowledged commit (Patroni: sync or quorum standby).
        "/sync" | "/synchronous" => s.is_replica() && synchronous,
        "/read-only" | "/health" => s.running(),
        "/liveness" => true,
        "/readiness" => s.is_primary() || s.status.as_ref().is_some_and(|st| st.is_streaming()),
        "/patroni" | "/cluster" | "/history" | "/config" | "/metrics" => true,
        _ => return 404,
    };
    // Patroni: `?tag_key=value` narrows every check but the leader ones (and liveness/readiness) to nodes with that tag.
    let tag_checked = !matches!(
        path,
        "/primary" | "/master" | "/read-write" | "/leader" | "/liveness" | "/readiness"
    );
    if ok && (!tag_checked || tags_match(s, query)) {
        200
    } else {
        503
    }
}

/// Every `tag_<key>=<value>` of the query names a tag this node has with that value (pure). As in Patroni, the
/// built-in tags count only when set (`tag_nofailover=true`), and any other query parameter is ignored.
fn tags_match(s: &NodeSnapshot, query: &HashMap<String, String>) -> bool {
    let own = s.view.members.get(&s.name);
    query.iter().all(|(key, wanted)| {
        let Some(tag) = key.strip_prefix("tag_") else {
            return true;
        };
        let value = match tag {
            "nofailover" => own.is_some_and(|m| m.nofailover).then(|| "true".to_string()),
            "noloadbalance" => s.noloadbalance.then(|| "true".to_string()),
            _ => s.tags.get(tag).cloned(),
        };
        value.as_deref() == Some(wanted.as_str())
    })
}

#[cfg(test)]
#[path = "health_tests.rs"]
pub(crate) mod tests;
