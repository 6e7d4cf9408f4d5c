//! The replicated key-value state: revisions, transactions, leases and the watch history (pure, no I/O).
//!
//! Every member applies the same commands in the same log order and reaches the same state; nothing here reads a
//! clock. Lease *deadlines* live in `lease_clock` on each member; only the resulting `LeaseExpire` command, proposed
//! by the leader through the log, removes a lease here.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::limits::{kv_cost, Limits, LEASE_COST};
use super::types::{Command, CommandResult, Compare, CompareTarget, Event, EventKind, KeyValue, Op, Txn};

/// History bound until the member sets its own (tests, tools).
const DEFAULT_HISTORY_BYTES: usize = Limits::DEFAULT.watch_history_bytes as usize;

fn event_bytes(e: &Event) -> usize {
    e.kv.key.len() + e.kv.value.len() + EVENT_OVERHEAD
}

/// How many events the watch history keeps at most; older revisions are reported as compacted. Their bytes are
/// bounded too (`dcs.limits.watch_history_bytes`, see [`KvState::set_history_bytes`]): 20000 puts of 1 MiB would
/// otherwise hold 20 GiB.
pub const HISTORY_EVENTS: usize = 20_000;
/// Bytes an event counts against the history bound besides its key and value.
const EVENT_OVERHEAD: usize = 64;
/// Bounds on a lease TTL: shorter than a Raft round trip is meaningless, longer than a day is a mistake.
pub const MIN_TTL_MS: i64 = 100;
pub const MAX_TTL_MS: i64 = 86_400_000;

/// A granted lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub ttl_ms: i64,
    /// Keys bound to the lease; deleted with it.
    pub keys: BTreeSet<Vec<u8>>,
    /// Log index of the grant or of the last keepalive.
    pub refreshed_index: u64,
    /// Who granted it with a role certificate; None: granted by an unrestricted caller (plaintext, a legacy
    /// certificate, or before roles existed: older (JSON) snapshots have no such field; always written, as
    /// postcard has no optional fields).
    #[serde(default)]
    pub owner: Option<crate::identity::Caller>,
}

/// The state machine proper.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct KvState {
    /// Cluster revision: bumped once by every command that changes at least one key.
    pub revision: i64,
    #[serde(with = "kvs_as_list")]
    kvs: BTreeMap<Vec<u8>, KeyValue>,
    leases: BTreeMap<i64, Lease>,
    next_lease_id: i64,
    /// Recent events for watchers starting in the past. Not part of snapshots.
    #[serde(skip)]
    history: VecDeque<Event>,
    /// Highest revision no longer (fully) in `history`; a watch must start after it.
    #[serde(skip)]
    compacted: i64,
    /// Bytes of `history` (keys, values, overhead) and their bound; the bound is this member's config.
    #[serde(skip)]
    history_bytes: usize,
    #[serde(skip)]
    history_max_bytes: Option<usize>,
    /// What the state counts against `dcs.limits.max_state_bytes` (see `limits::kv_cost`); derived, so not in
    /// snapshots: [`KvState::recount`] after decoding one.
    #[serde(skip)]
    state_bytes: u64,
}

/// A watch asked for revisions that are no longer retained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("revision {requested} is compacted (history starts after revision {compacted})")]
pub struct Compacted {
    pub requested: i64,
    pub compacted: i64,
}

impl KvState {
    /// Applies one committed command at log `index`; returns the result and the events it produced.
    pub fn apply(&mut self, index: u64, cmd: &Command) -> (CommandResult, Vec<Event>) {
        if let Command::As { caller, command } = cmd {
            return self.apply_as(index, caller, command);
        }
        let mut events = Vec::new();
        let result = match cmd {
            Command::Txn(txn) => self.apply_txn(txn, &mut events),
            Command::LeaseGrant { ttl_ms } => {
                let ttl_ms = (*ttl_ms).clamp(MIN_TTL_MS, MAX_TTL_MS);
                self.next_lease_id += 1;
                let id = self.next_lease_id;
                let lease = Lease {
                    ttl_ms,
                    keys: BTreeSet::new(),
                    refreshed_index: index,
                    owner: None,
                };
                self.leases.insert(id, lease);
                self.state_bytes += LEASE_COST;
                CommandResult::Lease {
                    id,
                    ttl_ms,
                    found: true,
                }
            }
            Command::LeaseKeepAlive { id } => match self.leases.get_mut(id) {
                Some(lease) => {
                    lease.refreshed_index = index;
                    CommandResult::Lease {
                        id: *id,
                        ttl_ms: lease.ttl_ms,
                        found: true,
                    }
                }
                None => CommandResult::Lease {
                    id: *id,
                    ttl_ms: 0,
                    found: false,
                },
            },
            Command::LeaseRevoke { id } => {
                let found = self.remove_lease(*id, &mut events);
                CommandResult::Lease {
                    id: *id,
                    ttl_ms: 0,
                    found,
                }
            }
            Command::LeaseExpire { leases } => {
                let mut expired = Vec::new();
                for lease in leases {
                    let current = self.leases.get(&lease.id).map(|l| l.refreshed_index);
                    // A keepalive applied after the leader's decision renews the lease: skip it.
                    if current == Some(lease.refreshed_index) && self.remove_lease(lease.id, &mut events) {
                        expired.push(lease.id);
                    }
                }
                CommandResult::Expired { expired }
            }
            // Made by a caller: handled (and unwrapped) by `apply_as` above.
            Command::As { .. } => CommandResult::Denied("a nested caller".into()),
        };
        if !events.is_empty() {
            self.record(&events);
        }
        (result, events)
    }

    fn apply_txn(&mut self, txn: &Txn, events: &mut Vec<Event>) -> CommandResult {
        let succeeded = txn.compares.iter().all(|c| self.holds(c));
        let ops = if succeeded { &txn.success } else { &txn.failure };
        // Validate first so a transaction is all-or-nothing.
        for op in ops {
            if let Op::Put { lease, .. } = op {
                if *lease != 0 && !self.leases.contains_key(lease) {
                    return CommandResult::Rejected(format!("lease {lease} not found"));
                }
            }
        }
        let revision = self.revision + 1;
        let mut deleted = 0;
        for op in ops {
            match op {
                Op::Put { key, value, lease } => events.push(self.put(revision, key, value, *lease)),
                Op::Delete { key, prefix } => {
                    let keys = self.matching_keys(key, *prefix);
                    deleted += keys.len() as u64;
                    for key in keys {
                        events.extend(self.delete(revision, &key));
                    }
                }
            }
        }
        if !events.is_empty() {
            self.revision = revision;
        }
        CommandResult::Txn {
            succeeded,
            revision: self.revision,
            deleted,
        }
    }

    fn holds(&self, compare: &Compare) -> bool {
        let kv = self.kvs.get(&compare.key);
        match &compare.target {
            CompareTarget::Absent => kv.is_none(),
            CompareTarget::ModRevision(rev) => kv.is_some_and(|kv| kv.mod_revision == *rev),
            CompareTarget::Value(value) => kv.is_some_and(|kv| &kv.value == value),
        }
    }

    fn put(&mut self, revision: i64, key: &[u8], value: &[u8], lease: i64) -> Event {
        let previous = self.kvs.get(key).cloned();
        if let Some(old) = &previous {
            if old.lease != 0 && old.lease != lease {
                if let Some(l) = self.leases.get_mut(&old.lease) {
                    l.keys.remove(key);
                }
            }
        }
        if lease != 0 {
            if let Some(l) = self.leases.get_mut(&lease) {
                l.keys.insert(key.to_vec());
            }
        }
        let old_cost = previous.as_ref().map_or(0, |p| kv_cost(p.key.len(), p.value.len()));
        self.state_bytes = self.state_bytes.saturating_sub(old_cost) + kv_cost(key.len(), value.len());
        let kv = KeyValue {
            key: key.to_vec(),
            value: value.to_vec(),
            create_revision: previous.as_ref().map_or(revision, |p| p.create_revision),
            mod_revision: revision,
            version: previous.as_ref().map_or(1, |p| p.version + 1),
            lease,
        };
        self.kvs.insert(key.to_vec(), kv.clone());
        Event {
            kind: EventKind::Put,
            kv,
        }
    }

    fn delete(&mut self, revision: i64, key: &[u8]) -> Option<Event> {
        let old = self.kvs.remove(key)?;
        self.state_bytes = self.state_bytes.saturating_sub(kv_cost(old.key.len(), old.value.len()));
        if old.lease != 0 {
            if let Some(l) = self.leases.get_mut(&old.lease) {
                l.keys.remove(key);
            }
        }
        let kv = KeyValue {
            key: old.key,
            mod_revision: revision,
            lease: old.lease,
            ..KeyValue::default()
        };
        Some(Event {
            kind: EventKind::Delete,
            kv,
        })
    }

    /// Removes a lease and its keys at one new revision; false when the lease did not exist.
    fn remove_lease(&mut self, id: i64, events: &mut Vec<Event>) -> bool {
        let Some(lease) = self.leases.remove(&id) else {
            return false;
        };
        self.state_bytes = self.state_bytes.saturating_sub(LEASE_COST);
        if !lease.keys.is_empty() {
            let revision = self.revision + 1;
            for key in &lease.keys {
                events.extend(self.delete(revision, key));
            }
            self.revision = revision;
        }
        true
    }

    fn matching_keys(&self, key: &[u8], prefix: bool) -> Vec<Vec<u8>> {
        if prefix {
            self.kvs
                .range(key.to_vec()..)
                .take_while(|(k, _)| k.starts_with(key))
                .map(|(k, _)| k.clone())
                .collect()
        } else if self.kvs.contains_key(key) {
            vec![key.to_vec()]
        } else {
            Vec::new()
        }
    }

    fn record(&mut self, events: &[Event]) {
        self.history.extend(events.iter().cloned());
        self.history_bytes += events.iter().map(event_bytes).sum::<usize>();
        let max_bytes = self.history_max_bytes.unwrap_or(DEFAULT_HISTORY_BYTES);
        while self.history.len() > HISTORY_EVENTS || self.history_bytes > max_bytes {
            // Drop whole revisions so a watcher never receives half of a transaction.
            let Some(oldest) = self.history.front().map(Event::revision) else {
                break;
            };
            while self.history.front().is_some_and(|e| e.revision() == oldest) {
                if let Some(e) = self.history.pop_front() {
                    self.history_bytes -= event_bytes(&e);
                }
            }
            self.compacted = oldest;
        }
    }

    /// Bounds the watch history's bytes (this member's `dcs.limits.watch_history_bytes`); applies from the next
    /// event on.
    pub fn set_history_bytes(&mut self, max: usize) {
        self.history_max_bytes = Some(max);
    }

    /// What the state counts against `dcs.limits.max_state_bytes`.
    pub fn state_bytes(&self) -> u64 {
        self.state_bytes
    }

    /// What the state counts against the quota after putting `value_len` bytes at `key`: the new pair's cost
    /// minus the cost of the value it replaces.
    pub fn put_growth(&self, key: &[u8], value_len: usize) -> u64 {
        let old = self.kvs.get(key).map_or(0, |kv| kv_cost(kv.key.len(), kv.value.len()));
        kv_cost(key.len(), value_len).saturating_sub(old)
    }

    /// Recomputes [`KvState::state_bytes`] (after decoding a snapshot, which does not carry it).
    pub fn recount(&mut self) {
        let kvs: u64 = self.kvs.values().map(|kv| kv_cost(kv.key.len(), kv.value.len())).sum();
        self.state_bytes = kvs + LEASE_COST * self.leases.len() as u64;
    }

    /// Keys equal to `key` (or starting with it when `prefix`), in key order.
    pub fn range(&self, key: &[u8], prefix: bool) -> Vec<KeyValue> {
        if prefix {
            self.kvs
                .range(key.to_vec()..)
                .take_while(|(k, _)| k.starts_with(key))
                .map(|(_, v)| v.clone())
                .collect()
        } else {
            self.kvs.get(key).cloned().into_iter().collect()
        }
    }

    /// Retained events with revision >= `start`, or why they are gone.
    pub fn events_since(&self, start: i64) -> Result<Vec<Event>, Compacted> {
        if start <= self.compacted {
            return Err(Compacted {
                requested: start,
                compacted: self.compacted,
            });
        }
        Ok(self.history.iter().filter(|e| e.revision() >= start).cloned().collect())
    }

    /// The watch history restarts at the current revision (after a restore from a snapshot).
    pub fn reset_history(&mut self) {
        self.history.clear();
        self.history_bytes = 0;
        self.compacted = self.revision;
    }

    /// Live leases: (id, ttl, refreshed_index).
    pub fn leases(&self) -> impl Iterator<Item = (i64, &Lease)> {
        self.leases.iter().map(|(id, l)| (*id, l))
    }

    /// Number of keys stored.
    pub fn key_count(&self) -> usize {
        self.kvs.len()
    }
}

/// Snapshots store keys as a list: JSON object keys must be strings and ours are bytes.
mod kvs_as_list {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    use crate::dcs::types::KeyValue;

    pub fn serialize<S: Serializer>(map: &BTreeMap<Vec<u8>, KeyValue>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.values())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<Vec<u8>, KeyValue>, D::Error> {
        let list = Vec::<KeyValue>::deserialize(d)?;
        Ok(list.into_iter().map(|kv| (kv.key.clone(), kv)).collect())
    }
}

#[path = "kv_owner.rs"]
mod owner;

#[cfg(test)]
#[path = "kv_tests.rs"]
mod tests;
