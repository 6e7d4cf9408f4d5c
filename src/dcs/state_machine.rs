//! The Raft state machine of a member: the in-memory [`KvState`], persisted as snapshots on the [`RaftDisk`].
//!
//! Hazards handled here: the watch broadcast is sent while the state lock is held, so a watcher that reads history
//! and subscribes under the same lock never misses or duplicates an event; a snapshot install replaces the history,
//! so watchers are told to re-sync (`SmEvent::Reset`) instead of silently skipping revisions; a snapshot's meta and
//! data are persisted in one atomic write before openraft hears it is done, and never replaced by an older one.
// openraft's trait methods return its large StorageError; our helpers share that type on purpose.
#![allow(clippy::result_large_err)]

use std::io::Cursor;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::disk::RaftDisk;
use super::kv::{Compacted, KvState};
use super::lease_clock::LeaseClock;
use super::types::{Command, CommandResult, Event, ExpiredLease, KeyValue, LogId, PghaNode, TypeConfig};

type StoreError = StorageError<u64>;
type Membership = StoredMembership<u64, PghaNode>;
type Meta = SnapshotMeta<u64, PghaNode>;

/// Capacity of the broadcast to watchers; a slower watcher re-reads from history.
const WATCH_CHANNEL: usize = 1024;

/// What watchers receive from the state machine.
#[derive(Clone, Debug)]
pub enum SmEvent {
    /// Events of one applied command, all at one revision.
    Events(Arc<Vec<Event>>),
    /// The state was replaced by a snapshot at this revision: history before it is gone.
    Reset { revision: i64 },
}

struct SmData {
    kv: KvState,
    last_applied: Option<LogId>,
    membership: Membership,
}

struct Shared {
    data: RwLock<SmData>,
    clock: Mutex<LeaseClock>,
    events: broadcast::Sender<SmEvent>,
    disk: Arc<dyn RaftDisk>,
    snapshot_seq: std::sync::atomic::AtomicU64,
    /// Serializes snapshot writes (built in the background vs installed from the leader).
    snapshot_write: Mutex<()>,
    /// Bound of the watch history in bytes (`dcs.limits.watch_history_bytes`), kept across snapshot installs.
    history_bytes: std::sync::atomic::AtomicUsize,
}

/// Handle on the state machine; cheap to clone.
#[derive(Clone)]
pub struct StateMachineStore {
    shared: Arc<Shared>,
}

/// A snapshot as persisted: openraft's metadata plus our serialized KvState.
#[derive(Serialize, Deserialize)]
struct StoredMeta {
    meta: SnapshotMeta<u64, PghaNode>,
}

fn lock_poisoned<E: std::fmt::Display>(e: E) -> StoreError {
    StorageIOError::read_state_machine(&std::io::Error::other(e.to_string())).into()
}

impl StateMachineStore {
    /// Opens the state machine from the last persisted snapshot on `disk` (empty when there is none).
    pub fn open(disk: Arc<dyn RaftDisk>) -> Result<StateMachineStore, StoreError> {
        let (events, _) = broadcast::channel(WATCH_CHANNEL);
        let shared = Shared {
            data: RwLock::new(SmData {
                kv: KvState::default(),
                last_applied: None,
                membership: Membership::default(),
            }),
            clock: Mutex::new(LeaseClock::default()),
            events,
            disk,
            snapshot_seq: std::sync::atomic::AtomicU64::new(0),
            snapshot_write: Mutex::new(()),
            history_bytes: std::sync::atomic::AtomicUsize::new(
                super::limits::Limits::DEFAULT.watch_history_bytes as usize,
            ),
        };
        let store = StateMachineStore {
            shared: Arc::new(shared),
        };
        if let Some((meta, data)) = store.read_snapshot()? {
            store.restore(&meta, Self::decode(&meta, &data)?)?;
            super::metrics::DCS.snapshot_written(data.len());
        }
        Ok(store)
    }

    fn read_snapshot(&self) -> Result<Option<(Meta, Vec<u8>)>, StoreError> {
        let Some((meta, data)) = self
            .shared
            .disk
            .read_snapshot()
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?
        else {
            return Ok(None);
        };
        let stored: StoredMeta = serde_json::from_slice(&meta).map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(Some((stored.meta, data)))
    }

    /// Persists a snapshot (meta and data in one atomic, synced write) unless a newer one is stored already.
    fn write_snapshot(&self, meta: &Meta, data: &[u8]) -> Result<(), StoreError> {
        let err = |e: &dyn std::fmt::Display| -> StoreError {
            StorageIOError::write_snapshot(Some(meta.signature()), &std::io::Error::other(e.to_string())).into()
        };
        // openraft builds snapshots in a spawned task, so a build that started before an install may finish after
        // it: writing it then would put the state back behind the purged log.
        let _serial = self.shared.snapshot_write.lock().map_err(|e| err(&e))?;
        if let Some((stored, _)) = self.read_snapshot()? {
            if stored.last_log_id > meta.last_log_id {
                tracing::debug!(kept = %stored, skipped = %meta, "a newer snapshot is stored");
                return Ok(());
            }
        }
        let stored = serde_json::to_vec(&StoredMeta { meta: meta.clone() }).map_err(|e| err(&e))?;
        self.shared.disk.save_snapshot(&stored, data).map_err(|e| err(&e))?;
        super::metrics::DCS.snapshot_written(data.len());
        Ok(())
    }

    /// Decodes a snapshot's state (before anything is replaced: a bad snapshot changes nothing). Snapshots written
    /// by earlier versions are JSON and still read.
    fn decode(meta: &Meta, data: &[u8]) -> Result<KvState, StoreError> {
        let mut kv: KvState =
            super::codec::decode(data).map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        kv.reset_history();
        kv.recount();
        Ok(kv)
    }

    /// Bounds the watch history to `max` bytes (this member's `dcs.limits.watch_history_bytes`).
    pub fn set_watch_history_bytes(&self, max: usize) {
        self.shared
            .history_bytes
            .store(max, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut d) = self.shared.data.write() {
            d.kv.set_history_bytes(max);
        }
    }

    /// The state's quota count and how much `cmd` would grow it (`dcs.limits.max_state_bytes`).
    pub fn quota_view(&self, cmd: &Command) -> (u64, u64) {
        let d = match self.shared.data.read() {
            Ok(d) => d,
            Err(poisoned) => poisoned.into_inner(),
        };
        (d.kv.state_bytes(), super::quota::growth(&d.kv, cmd))
    }

    /// Replaces the state with a snapshot's and tells watchers to re-sync.
    fn restore(&self, meta: &Meta, mut kv: KvState) -> Result<(), StoreError> {
        let mut guard = self.shared.data.write().map_err(lock_poisoned)?;
        let leases = kv
            .leases()
            .map(|(id, l)| (id, ttl(l.ttl_ms), l.refreshed_index))
            .collect::<Vec<_>>();
        self.shared
            .clock
            .lock()
            .map_err(lock_poisoned)?
            .restart(leases.into_iter(), Instant::now());
        let revision = kv.revision;
        kv.set_history_bytes(self.shared.history_bytes.load(std::sync::atomic::Ordering::Relaxed));
        *guard = SmData {
            kv,
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        let _ = self.shared.events.send(SmEvent::Reset { revision });
        Ok(())
    }

    /// Keys matching `key` (or the prefix), with this member's current revision.
    pub fn range(&self, key: &[u8], prefix: bool) -> (Vec<KeyValue>, i64) {
        match self.shared.data.read() {
            Ok(d) => (d.kv.range(key, prefix), d.kv.revision),
            Err(poisoned) => {
                let d = poisoned.into_inner();
                (d.kv.range(key, prefix), d.kv.revision)
            }
        }
    }

    /// Current revision of this member.
    pub fn revision(&self) -> i64 {
        self.shared.data.read().map(|d| d.kv.revision).unwrap_or_default()
    }

    /// Starts a watch: retained events from `start` (0 = from now) and a receiver for everything after them.
    pub fn watch_from(&self, start: i64) -> Result<(Vec<Event>, broadcast::Receiver<SmEvent>, i64), Compacted> {
        let data = match self.shared.data.read() {
            Ok(d) => d,
            Err(poisoned) => poisoned.into_inner(),
        };
        let start = if start <= 0 { data.kv.revision + 1 } else { start };
        let history = data.kv.events_since(start)?;
        // Subscribing under the read lock: no apply (which needs the write lock) can slip between the two.
        let rx = self.shared.events.subscribe();
        Ok((history, rx, data.kv.revision))
    }

    /// Owners of the given leases this member knows (`None` inside: granted without a role certificate).
    pub fn lease_owners(&self, ids: &[i64]) -> std::collections::BTreeMap<i64, Option<crate::identity::Caller>> {
        let data = match self.shared.data.read() {
            Ok(d) => d,
            Err(poisoned) => poisoned.into_inner(),
        };
        ids.iter()
            .filter_map(|id| Some((*id, data.kv.lease_owner(*id)?.cloned())))
            .collect()
    }

    /// Leases whose deadline passed on this member's clock.
    pub fn expired_leases(&self, now: Instant) -> Vec<ExpiredLease> {
        self.shared.clock.lock().map(|c| c.expired(now)).unwrap_or_default()
    }

    /// A holder's direct refresh of `id` (no log entry, `lease_quorum.rs`): the TTL when this member knows the lease.
    pub fn refresh_lease_directly(&self, id: i64, now: Instant) -> Option<Duration> {
        self.shared.clock.lock().ok()?.refreshed_directly(id, now)
    }

    /// This member saw a new membership: every lease gets at least a full TTL from `now`.
    pub fn extend_leases(&self, now: Instant) {
        if let Ok(mut clock) = self.shared.clock.lock() {
            clock.extend_all(now);
        }
    }

    /// Number of live leases.
    pub fn lease_count(&self) -> usize {
        self.shared.clock.lock().map(|c| c.len()).unwrap_or_default()
    }

    /// Bytes used by this member's store on disk.
    pub fn disk_size(&self) -> u64 {
        self.shared.disk.size_on_disk()
    }

    fn apply_entry(&self, data: &mut SmData, entry: &Entry<TypeConfig>, now: Instant) -> CommandResult {
        data.last_applied = Some(entry.log_id);
        match &entry.payload {
            EntryPayload::Blank => CommandResult::None,
            EntryPayload::Membership(m) => {
                data.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                CommandResult::None
            }
            EntryPayload::Normal(cmd) => {
                let index = entry.log_id.index;
                let (result, events) = data.kv.apply(index, cmd);
                self.track_leases(cmd, &result, index, now);
                if !events.is_empty() {
                    let _ = self.shared.events.send(SmEvent::Events(Arc::new(events)));
                }
                result
            }
        }
    }

    fn track_leases(&self, cmd: &Command, result: &CommandResult, index: u64, now: Instant) {
        let Ok(mut clock) = self.shared.clock.lock() else {
            return;
        };
        // A refused command (`Denied`) changed nothing: the clock must not change either.
        match (cmd.inner(), result) {
            (
                Command::LeaseGrant { .. } | Command::LeaseKeepAlive { .. },
                CommandResult::Lease {
                    id,
                    ttl_ms,
                    found: true,
                },
            ) => clock.refreshed(*id, ttl(*ttl_ms), index, now),
            (Command::LeaseRevoke { id }, CommandResult::Lease { .. }) => clock.removed(*id),
            (Command::LeaseExpire { .. }, CommandResult::Expired { expired }) => {
                expired.iter().for_each(|id| clock.removed(*id))
            }
            _ => {}
        }
    }
}

fn ttl(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StoreError> {
        let (data, last_log_id, last_membership) = {
            let d = self.shared.data.read().map_err(lock_poisoned)?;
            let data = super::codec::encode(&d.kv).map_err(|e| StorageIOError::write_state_machine(&e))?;
            (data, d.last_applied, d.membership.clone())
        };
        let seq = self
            .shared
            .snapshot_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let snapshot_id = match last_log_id {
            Some(id) => format!("{}-{}-{seq}", id.leader_id, id.index),
            None => format!("none-{seq}"),
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id,
        };
        self.write_snapshot(&meta, &data)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, Membership), StoreError> {
        let d = self.shared.data.read().map_err(lock_poisoned)?;
        Ok((d.last_applied, d.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, StoreError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let now = Instant::now();
        let mut data = self.shared.data.write().map_err(lock_poisoned)?;
        Ok(entries
            .into_iter()
            .map(|entry| self.apply_entry(&mut data, &entry, now))
            .collect())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StoreError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, PghaNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StoreError> {
        let data = snapshot.into_inner();
        let kv = Self::decode(meta, &data)?;
        // Durable first: once the state is replaced in memory openraft may purge the log it came from.
        self.write_snapshot(meta, &data)?;
        self.restore(meta, kv)
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StoreError> {
        Ok(self.read_snapshot()?.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dcs::disk::{DiskError, SledDisk, SnapshotBytes};
    use openraft::CommittedLeaderId;

    /// A sled disk that counts the writes the state machine makes.
    struct Recording {
        inner: SledDisk,
        meta_writes: Mutex<Vec<String>>,
        snapshot_saves: Mutex<usize>,
    }

    impl RaftDisk for Recording {
        fn read_meta(&self, key: &str) -> Result<Option<Vec<u8>>, DiskError> {
            self.inner.read_meta(key)
        }
        fn write_meta(&self, key: &str, value: &[u8]) -> Result<(), DiskError> {
            self.meta_writes.lock().expect("lock").push(key.to_string());
            self.inner.write_meta(key, value)
        }
        fn append(&self, entries: &[(u64, Vec<u8>)]) -> Result<(), DiskError> {
            self.inner.append(entries)
        }
        fn read_range(&self, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>, DiskError> {
            self.inner.read_range(start, end)
        }
        fn last_entry(&self) -> Result<Option<(u64, Vec<u8>)>, DiskError> {
            self.inner.last_entry()
        }
        fn remove_from(&self, start: u64) -> Result<(), DiskError> {
            self.inner.remove_from(start)
        }
        fn remove_upto(&self, end: u64) -> Result<(), DiskError> {
            self.inner.remove_upto(end)
        }
        fn save_snapshot(&self, meta: &[u8], data: &[u8]) -> Result<(), DiskError> {
            *self.snapshot_saves.lock().expect("lock") += 1;
            self.inner.save_snapshot(meta, data)
        }
        fn read_snapshot(&self) -> Result<Option<SnapshotBytes>, DiskError> {
            self.inner.read_snapshot()
        }
        fn sync(&self) -> Result<(), DiskError> {
            self.inner.sync()
        }
        fn size_on_disk(&self) -> u64 {
            self.inner.size_on_disk()
        }
    }

    fn meta_at(index: u64) -> Meta {
        SnapshotMeta {
            last_log_id: Some(LogId::new(CommittedLeaderId::new(1, 1), index)),
            last_membership: Membership::default(),
            snapshot_id: format!("test-{index}"),
        }
    }

    /// A serialized state holding `leases` leases (the marker the tests read back).
    fn state_with(leases: u64) -> Vec<u8> {
        let mut kv = KvState::default();
        for i in 0..leases {
            kv.apply(i + 1, &Command::LeaseGrant { ttl_ms: 60_000 });
        }
        serde_json::to_vec(&kv).expect("serializing a state")
    }

    #[tokio::test]
    async fn an_installed_snapshot_is_one_write_and_reopens_whole() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let disk = Arc::new(Recording {
            inner: SledDisk::open(dir.path()).expect("opening the store"),
            meta_writes: Mutex::default(),
            snapshot_saves: Mutex::default(),
        });
        let mut sm = StateMachineStore::open(disk.clone()).expect("opening the state machine");
        sm.install_snapshot(&meta_at(10), Box::new(Cursor::new(state_with(1))))
            .await
            .expect("installing a snapshot");
        assert_eq!(
            *disk.snapshot_saves.lock().expect("lock"),
            1,
            "meta and data in one save"
        );
        assert_eq!(
            *disk.meta_writes.lock().expect("lock"),
            Vec::<String>::new(),
            "no separate writes"
        );
        drop(sm);
        drop(disk);

        let disk = Arc::new(SledDisk::open(dir.path()).expect("reopening the store"));
        let mut sm = StateMachineStore::open(disk).expect("reopening the state machine");
        let (applied, _) = sm.applied_state().await.expect("applied state");
        assert_eq!(applied, meta_at(10).last_log_id);
        assert_eq!(sm.lease_count(), 1, "the data of the same snapshot");
    }

    #[tokio::test]
    async fn a_late_older_snapshot_does_not_replace_a_newer_one() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let disk = Arc::new(SledDisk::open(dir.path()).expect("opening the store"));
        let mut sm = StateMachineStore::open(disk).expect("opening the state machine");
        sm.install_snapshot(&meta_at(10), Box::new(Cursor::new(state_with(1))))
            .await
            .expect("installing a snapshot");
        // A build that read the state at index 5 before the install and finishes after it.
        sm.write_snapshot(&meta_at(5), &state_with(2)).expect("a late build");
        let current = sm.get_current_snapshot().await.expect("reading").expect("a snapshot");
        assert_eq!(current.meta, meta_at(10));
        assert_eq!(current.snapshot.into_inner(), state_with(1));
    }
}
