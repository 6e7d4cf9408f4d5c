//! Size limits of the DCS (`[dcs.limits]`): what one transaction may hold and how large the state may grow, checked
//! where a write enters; and the transport limits derived from them, so nothing one member accepts is refused later.
//!
//! Two kinds of numbers live here. The configured limits are checked at the entry (the member a client calls) and
//! again on the Raft leader before it proposes (a forwarded write meets the leader's limits). The transport limits
//! of Raft messages, snapshots and client replies are derived from [`Limits::CEILING`], the largest values the
//! config accepts: a member with smaller limits than the leader's still receives every entry and snapshot the
//! leader may send, and a client never refuses a reply any member may give.

use serde::{Deserialize, Serialize};

use super::types::{Command, CompareTarget, Op, Txn};

/// `[dcs.limits]`: request and state size limits (etcd's anchors: `--max-request-bytes` 1.5 MiB, `--max-txn-ops`
/// 128, `--quota-backend-bytes`). Set the same values on every member: a write's size is checked by the member it is
/// sent to and by the leader; the quota by the leader only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// `dcs.limits.max_key_bytes` (`PGHA_DCS__LIMITS__MAX_KEY_BYTES`): longest key (and range or watch prefix).
    /// From 64 to 65536. Default: 4096.
    pub max_key_bytes: u64,
    /// `dcs.limits.max_value_bytes` (`PGHA_DCS__LIMITS__MAX_VALUE_BYTES`): largest value of one put (or compared
    /// value). From 1024 to 4194304 (4 MiB); `max_key_bytes + max_value_bytes` must fit in `max_request_bytes`.
    /// Default: 1048576 (1 MiB).
    pub max_value_bytes: u64,
    /// `dcs.limits.max_txn_ops` (`PGHA_DCS__LIMITS__MAX_TXN_OPS`): compares + success ops + failure ops of one
    /// transaction. From 8 to 10000. Default: 128.
    pub max_txn_ops: u64,
    /// `dcs.limits.max_request_bytes` (`PGHA_DCS__LIMITS__MAX_REQUEST_BYTES`): a whole transaction as it is
    /// logged and replicated. From 65536 to 8388608 (8 MiB). Default: 1572864 (1.5 MiB).
    pub max_request_bytes: u64,
    /// `dcs.limits.max_state_bytes` (`PGHA_DCS__LIMITS__MAX_STATE_BYTES`): quota of the whole key space (keys,
    /// values, leases; see [`kv_cost`]). A write that would grow the state past it is refused; deletes always pass.
    /// From 4 x `max_request_bytes` to 1073741824 (1 GiB). Default: 67108864 (64 MiB).
    pub max_state_bytes: u64,
    /// `dcs.limits.watch_history_bytes` (`PGHA_DCS__LIMITS__WATCH_HISTORY_BYTES`): recent events kept in memory
    /// for watchers that resume (at most 20000 events either way); older revisions are reported compacted. From
    /// `max_request_bytes` to 1073741824. Default: 33554432 (32 MiB).
    pub watch_history_bytes: u64,
}

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Bytes a key-value pair counts against `max_state_bytes`: the key twice (its lease's key list holds it again)
/// plus a fixed overhead that covers revisions, lengths and a reply's framing. Every member computes the same.
pub fn kv_cost(key_len: usize, value_len: usize) -> u64 {
    2 * key_len as u64 + value_len as u64 + KV_OVERHEAD
}

/// Fixed part of [`kv_cost`]: at least what a key-value pair adds to a snapshot or a Range reply besides its key
/// and value (four varint revisions of up to 10 bytes, length prefixes, protobuf tags).
pub const KV_OVERHEAD: u64 = 64;
/// What one lease counts against `max_state_bytes` (id, TTL, refresh index, key list length).
pub const LEASE_COST: u64 = 64;

/// Bytes a Raft log entry adds around its command (log id, payload tag), rounded up.
pub const ENTRY_OVERHEAD: u64 = 64;
/// Bytes of log entries the leader packs into one AppendEntries (a larger single entry still goes alone).
/// openraft batches up to `max_payload_entries` entries whatever their size: this bounds the bytes instead.
pub const RAFT_BATCH_BYTES: u64 = 2 * MIB;
/// Room in a Raft message for everything but entries or snapshot data: vote, log ids, and a snapshot chunk's
/// metadata with the membership (names and addresses of every member).
pub const RAFT_ENVELOPE: u64 = 256 * KIB;
/// Size of the snapshot chunks a leader sends (openraft's `snapshot_max_chunk_size`).
pub const SNAPSHOT_CHUNK_BYTES: u64 = 256 * KIB;
/// Room in a client reply besides the state itself (headers of a Range or Watch reply).
pub const REPLY_OVERHEAD: u64 = 64 * KIB;
/// A leader admits writes against its own applied state plus its own writes in flight. Writes a previous leader
/// had in flight when it lost its term may commit after the new leader checked, so the state can exceed the quota
/// by at most about one more quota: replies and snapshots are sized for this factor.
pub const QUOTA_OVERSHOOT: u64 = 2;

impl Limits {
    /// The defaults.
    pub const DEFAULT: Limits = Limits {
        max_key_bytes: 4 * KIB,
        max_value_bytes: MIB,
        max_txn_ops: 128,
        max_request_bytes: 3 * MIB / 2,
        max_state_bytes: 64 * MIB,
        watch_history_bytes: 32 * MIB,
    };

    /// The smallest values the config accepts (`watch_history_bytes` and `max_state_bytes` have relative minimums
    /// too, see [`Limits::problems`]).
    pub const MIN: Limits = Limits {
        max_key_bytes: 64,
        max_value_bytes: KIB,
        max_txn_ops: 8,
        max_request_bytes: 64 * KIB,
        max_state_bytes: 256 * KIB,
        watch_history_bytes: 64 * KIB,
    };

    /// The largest values the config accepts; every transport limit is derived from these.
    pub const CEILING: Limits = Limits {
        max_key_bytes: 64 * KIB,
        max_value_bytes: 4 * MIB,
        max_txn_ops: 10_000,
        max_request_bytes: 8 * MIB,
        max_state_bytes: 1 << 30,
        watch_history_bytes: 1 << 30,
    };

    /// Each limit as (key under `dcs.limits`, value, min, max).
    pub fn fields(&self) -> [(&'static str, u64, u64, u64); 6] {
        let (v, lo, hi) = (self, Limits::MIN, Limits::CEILING);
        [
            ("max_key_bytes", v.max_key_bytes, lo.max_key_bytes, hi.max_key_bytes),
            (
                "max_value_bytes",
                v.max_value_bytes,
                lo.max_value_bytes,
                hi.max_value_bytes,
            ),
            ("max_txn_ops", v.max_txn_ops, lo.max_txn_ops, hi.max_txn_ops),
            (
                "max_request_bytes",
                v.max_request_bytes,
                lo.max_request_bytes,
                hi.max_request_bytes,
            ),
            (
                "max_state_bytes",
                v.max_state_bytes,
                lo.max_state_bytes,
                hi.max_state_bytes,
            ),
            (
                "watch_history_bytes",
                v.watch_history_bytes,
                lo.watch_history_bytes,
                hi.watch_history_bytes,
            ),
        ]
    }

    /// Every rule these limits break, as (key under `dcs.limits`, problem, hint); empty when valid.
    pub fn problems(&self) -> Vec<(&'static str, String, String)> {
        let mut out = Vec::new();
        for (key, value, min, max) in self.fields() {
            if !(min..=max).contains(&value) {
                let default = Limits::DEFAULT.fields().iter().find(|f| f.0 == key).map_or(0, |f| f.1);
                out.push((
                    key,
                    format!("{value} is outside {min}..={max}"),
                    format!("the default is {default}"),
                ));
            }
        }
        // One put of the largest key and value must fit in a request, or the value limit could never be reached.
        let largest_put = self.max_key_bytes + self.max_value_bytes + ENTRY_OVERHEAD;
        if largest_put > self.max_request_bytes {
            out.push((
                "max_value_bytes",
                format!(
                    "max_key_bytes + max_value_bytes + {ENTRY_OVERHEAD} = {largest_put} does not fit in max_request_bytes ({})",
                    self.max_request_bytes
                ),
                "raise max_request_bytes or lower max_value_bytes".to_string(),
            ));
        }
        if self.max_state_bytes < 4 * self.max_request_bytes {
            out.push((
                "max_state_bytes",
                format!(
                    "{} is less than 4 x max_request_bytes ({})",
                    self.max_state_bytes,
                    4 * self.max_request_bytes
                ),
                "the state must hold a few of the largest writes; raise it".to_string(),
            ));
        }
        if self.watch_history_bytes < self.max_request_bytes {
            out.push((
                "watch_history_bytes",
                format!(
                    "{} is less than max_request_bytes ({})",
                    self.watch_history_bytes, self.max_request_bytes
                ),
                "the history must hold at least the largest write".to_string(),
            ));
        }
        out
    }

    /// Checks a command against these limits where a write enters and on the leader. Only transactions carry
    /// client data; lease commands are fixed-size and `LeaseExpire` is made by the leader itself.
    pub fn check_command(&self, cmd: &Command) -> Result<(), LimitError> {
        // `inner`: a client's command made with a role certificate is wrapped with its caller (authz).
        match cmd.inner() {
            Command::Txn(txn) => self.check_txn(txn, cmd),
            _ => Ok(()),
        }
    }

    fn check_txn(&self, txn: &Txn, cmd: &Command) -> Result<(), LimitError> {
        let ops = txn.compares.len() + txn.success.len() + txn.failure.len();
        if ops as u64 > self.max_txn_ops {
            return Err(LimitError::Ops {
                ops,
                max: self.max_txn_ops,
            });
        }
        for compare in &txn.compares {
            self.check_key(&compare.key)?;
            if let CompareTarget::Value(value) = &compare.target {
                self.check_value(&compare.key, value)?;
            }
        }
        for op in txn.success.iter().chain(&txn.failure) {
            match op {
                Op::Put { key, value, .. } => {
                    self.check_key(key)?;
                    self.check_value(key, value)?;
                }
                Op::Delete { key, .. } => self.check_key(key)?,
            }
        }
        // The size as logged and replicated, which is what the Raft transport limits are derived from.
        let bytes = super::codec::encoded_len(cmd).map_err(|e| LimitError::Unencodable(e.to_string()))?;
        if bytes as u64 > self.max_request_bytes {
            return Err(LimitError::Request {
                bytes,
                max: self.max_request_bytes,
            });
        }
        Ok(())
    }

    /// Checks a key (or a range or watch prefix).
    pub fn check_key(&self, key: &[u8]) -> Result<(), LimitError> {
        if key.len() as u64 > self.max_key_bytes {
            return Err(LimitError::Key {
                key: shown(key),
                len: key.len(),
                max: self.max_key_bytes,
            });
        }
        Ok(())
    }

    fn check_value(&self, key: &[u8], value: &[u8]) -> Result<(), LimitError> {
        if value.len() as u64 > self.max_value_bytes {
            return Err(LimitError::Value {
                key: shown(key),
                len: value.len(),
                max: self.max_value_bytes,
            });
        }
        Ok(())
    }

    /// Checks that a write growing the state by `growth` bytes (see [`kv_cost`]) keeps it within the quota, given
    /// the applied state and the writes in flight. A write that does not grow the state always passes, so an
    /// operator can delete keys from a full DCS.
    pub fn check_growth(&self, state: u64, in_flight: u64, growth: u64) -> Result<(), LimitError> {
        let after = state.saturating_add(in_flight).saturating_add(growth);
        if growth > 0 && after > self.max_state_bytes {
            return Err(LimitError::State {
                state: state.saturating_add(in_flight),
                growth,
                max: self.max_state_bytes,
            });
        }
        Ok(())
    }

    /// Largest request message the client API takes: twice `max_request_bytes`, plus what protobuf framing may add
    /// over the logged form (a few bytes per operation). A request up to twice the limit is decoded and refused
    /// with the error naming `max_request_bytes`; a larger one gRPC refuses before decoding (OutOfRange, "decoded
    /// message length too large"), so a flood of huge messages costs no more than that.
    pub fn grpc_request_limit(&self) -> usize {
        to_usize(2 * self.max_request_bytes + 32 * self.max_txn_ops + 4 * KIB)
    }

    /// Largest reply a member with these limits sends (a Range over the whole state, or one Watch message: the
    /// events of one revision, which a prefix delete or a lease expiry can make as large as the state).
    pub fn max_reply_bytes(&self) -> usize {
        to_usize(QUOTA_OVERSHOOT * self.max_state_bytes + self.max_request_bytes + REPLY_OVERHEAD)
    }
}

/// Largest reply any member may send: what every client accepts (clients do not read the members' config).
pub fn client_reply_limit() -> usize {
    Limits::CEILING.max_reply_bytes()
}

/// Largest Raft message (AppendEntries, InstallSnapshot, forwarded write) in either direction, the same on every
/// member whatever its config: a batch of [`RAFT_BATCH_BYTES`], or one entry of the largest request any leader may
/// accept, or one snapshot chunk, plus the envelope.
pub fn raft_message_limit() -> usize {
    let payload = RAFT_BATCH_BYTES
        .max(Limits::CEILING.max_request_bytes + ENTRY_OVERHEAD)
        .max(SNAPSHOT_CHUNK_BYTES);
    to_usize(payload + RAFT_ENVELOPE)
}

/// Largest snapshot a member accepts from a leader: the largest state any leader may hold, encoded.
pub fn max_snapshot_bytes() -> u64 {
    QUOTA_OVERSHOOT * Limits::CEILING.max_state_bytes + REPLY_OVERHEAD
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// A key as shown in an error: lossy UTF-8, cut after 64 characters.
fn shown(key: &[u8]) -> String {
    let text = String::from_utf8_lossy(key);
    match text.char_indices().nth(64) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.into_owned(),
    }
}

/// A write over a limit, naming the limit and the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum LimitError {
    #[error("key {key:?} of {len} bytes exceeds dcs.limits.max_key_bytes ({max})")]
    Key { key: String, len: usize, max: u64 },
    #[error("value of {len} bytes for key {key:?} exceeds dcs.limits.max_value_bytes ({max})")]
    Value { key: String, len: usize, max: u64 },
    #[error("transaction of {ops} operations (compares + success + failure) exceeds dcs.limits.max_txn_ops ({max})")]
    Ops { ops: usize, max: u64 },
    #[error("transaction of {bytes} bytes exceeds dcs.limits.max_request_bytes ({max})")]
    Request { bytes: usize, max: u64 },
    #[error(
        "the DCS holds {state} bytes and this write adds {growth}: over dcs.limits.max_state_bytes ({max}); \
         delete keys or raise the quota"
    )]
    State { state: u64, growth: u64, max: u64 },
    #[error("transaction cannot be encoded: {0}")]
    Unencodable(String),
}

impl From<LimitError> for tonic::Status {
    fn from(e: LimitError) -> tonic::Status {
        let msg = e.to_string();
        match e {
            LimitError::Request { .. } | LimitError::State { .. } => tonic::Status::resource_exhausted(msg),
            _ => tonic::Status::invalid_argument(msg),
        }
    }
}

#[cfg(test)]
#[path = "limits_tests.rs"]
mod tests;
