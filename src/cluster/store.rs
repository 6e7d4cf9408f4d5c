//! The HA loop's reads and writes in the DCS: one linearizable read of the whole cluster, member publication, and
//! the compare-and-swap operations on the leader and initialize keys.

use std::time::{SystemTime, UNIX_EPOCH};

use super::keys::Keys;
use super::model::{
    ClusterView, DynamicConfig, HistoryEntry, LeaderKey, MemberInfo, NodeCommand, PendingCommand, SwitchoverRequest,
    SyncState,
};
use crate::dcs::client::{ClientError, DcsClient};
use crate::dcs::types::{Compare, CompareTarget, KeyValue, Op, Txn};

/// Reads and writes the cluster's keys.
pub struct Store<'a> {
    pub dcs: &'a DcsClient,
    pub keys: &'a Keys,
}

fn absent(key: String) -> Compare {
    Compare {
        key: key.into_bytes(),
        target: CompareTarget::Absent,
    }
}

fn put(key: String, value: impl Into<Vec<u8>>, lease: i64) -> Op {
    Op::Put {
        key: key.into_bytes(),
        value: value.into(),
        lease,
    }
}

/// Milliseconds since the epoch (for history entries).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Store<'_> {
    /// The whole cluster state in one linearizable read.
    pub async fn view(&self) -> Result<ClusterView, ClientError> {
        let (kvs, revision) = self.dcs.get(self.keys.root().as_bytes(), true).await?;
        Ok(self.parse(kvs, revision))
    }

    /// The cluster view of the keys `kvs` (every key under the root) at `revision` (pure).
    pub fn parse(&self, kvs: Vec<KeyValue>, revision: i64) -> ClusterView {
        let mut view = ClusterView {
            revision,
            ..ClusterView::default()
        };
        for kv in kvs {
            let key = String::from_utf8_lossy(&kv.key).into_owned();
            let value = String::from_utf8_lossy(&kv.value).into_owned();
            if key == self.keys.leader() {
                view.leader = Some(LeaderKey {
                    name: value,
                    lease: kv.lease,
                    mod_revision: kv.mod_revision,
                });
            } else if key == self.keys.initialize() {
                view.initialize = Some(super::model::Initialize::parse(&value));
            } else if key == self.keys.config() {
                match serde_json::from_str::<DynamicConfig>(&value) {
                    Ok(c) => view.config = c,
                    Err(e) => tracing::warn!("ignoring an unreadable dynamic config in the DCS: {e}"),
                }
            } else if key == self.keys.history() {
                view.history = serde_json::from_str(&value).unwrap_or_default();
            } else if key == self.keys.switchover() {
                match serde_json::from_str::<SwitchoverRequest>(&value) {
                    Ok(r) => view.switchover = Some(r),
                    Err(e) => tracing::warn!("ignoring an unreadable switchover request in the DCS: {e}"),
                }
            } else if key == self.keys.sync() {
                match serde_json::from_str(&value) {
                    Ok(sync) => view.sync = Some((sync, kv.mod_revision)),
                    Err(e) => tracing::warn!("ignoring an unreadable sync key in the DCS: {e}"),
                }
            } else if key == self.keys.upgrade() {
                match serde_json::from_str(&value) {
                    Ok(upgrade) => view.upgrade = Some((upgrade, kv.mod_revision)),
                    Err(e) => tracing::warn!("ignoring an unreadable upgrade key in the DCS: {e}"),
                }
            } else if let Some(name) = self.keys.command_member(&key) {
                match serde_json::from_str::<NodeCommand>(&value) {
                    Ok(command) => {
                        let pending = PendingCommand {
                            command,
                            mod_revision: kv.mod_revision,
                        };
                        view.commands.insert(name.to_string(), pending);
                    }
                    Err(e) => tracing::warn!(member = name, "ignoring an unreadable command in the DCS: {e}"),
                }
            } else if let Some(name) = self.keys.member_name(&key) {
                if let Ok(info) = serde_json::from_str::<MemberInfo>(&value) {
                    view.members.insert(name.to_string(), info);
                }
            }
        }
        view
    }

    /// Publishes our status under the session lease.
    pub async fn publish(&self, info: &MemberInfo, lease: i64) -> Result<(), ClientError> {
        let value = serde_json::to_vec(info).unwrap_or_default();
        self.dcs
            .put(self.keys.member(&info.name).as_bytes(), &value, lease)
            .await
            .map(|_| ())
    }

    /// Takes the free leader key; true when we got it.
    pub async fn take_leader(&self, name: &str, lease: i64) -> Result<bool, ClientError> {
        let txn = Txn {
            compares: vec![absent(self.keys.leader())],
            success: vec![put(self.keys.leader(), name, lease)],
            failure: vec![],
        };
        Ok(self.dcs.txn(txn).await?.succeeded)
    }

    /// Takes the free leader key and, in the same transaction, writes the `sync` key `state` for the promotion ahead
    /// (`sync::at_promotion`), provided the `sync` key is still at `sync_revision` (None: absent) as read: nobody can
    /// change it while the leader key is free, and the check makes that so. True when we got both.
    pub async fn take_leader_naming(
        &self,
        name: &str,
        lease: i64,
        state: &SyncState,
        sync_revision: Option<i64>,
    ) -> Result<bool, ClientError> {
        let sync_now = match sync_revision {
            Some(rev) => Compare {
                key: self.keys.sync().into_bytes(),
                target: CompareTarget::ModRevision(rev),
            },
            None => absent(self.keys.sync()),
        };
        let txn = Txn {
            compares: vec![absent(self.keys.leader()), sync_now],
            success: vec![put(self.keys.leader(), name, lease), self.put_sync(state)],
            failure: vec![],
        };
        Ok(self.dcs.txn(txn).await?.succeeded)
    }

    /// The write of the `sync` key (no lease: it outlives a leader, whose successor must see what it named).
    fn put_sync(&self, state: &SyncState) -> Op {
        put(self.keys.sync(), serde_json::to_vec(state).unwrap_or_default(), 0)
    }

    /// Rebinds a leader key still at `mod_revision` (ours, from a previous session) to `lease`.
    pub async fn reclaim_leader(&self, name: &str, lease: i64, mod_revision: i64) -> Result<bool, ClientError> {
        let txn = Txn {
            compares: vec![Compare {
                key: self.keys.leader().into_bytes(),
                target: CompareTarget::ModRevision(mod_revision),
            }],
            success: vec![put(self.keys.leader(), name, lease)],
            failure: vec![],
        };
        Ok(self.dcs.txn(txn).await?.succeeded)
    }

    /// Deletes the leader key if it still is at `mod_revision` (None: if it still names `name`).
    pub async fn delete_leader(&self, name: &str, mod_revision: Option<i64>) -> Result<bool, ClientError> {
        let target = match mod_revision {
            Some(rev) => CompareTarget::ModRevision(rev),
            None => CompareTarget::Value(name.as_bytes().to_vec()),
        };
        let txn = Txn {
            compares: vec![Compare {
                key: self.keys.leader().into_bytes(),
                target,
            }],
            success: vec![Op::Delete {
                key: self.keys.leader().into_bytes(),
                prefix: false,
            }],
            failure: vec![],
        };
        Ok(self.dcs.txn(txn).await?.succeeded)
    }

    /// Writes (Some) or deletes (None) the `sync` key, only while the leader key is still at `leader_revision` (ours):
    /// a deposed leader must not change who may be promoted. True when done.
    pub async fn write_sync(&self, state: Option<&SyncState>, leader_revision: i64) -> Result<bool, ClientError> {
        let op = match state {
            Some(s) => self.put_sync(s),
            None => Op::Delete {
                key: self.keys.sync().into_bytes(),
                prefix: false,
            },
        };
        let txn = Txn {
            compares: vec![Compare {
                key: self.keys.leader().into_bytes(),
                target: CompareTarget::ModRevision(leader_revision),
            }],
            success: vec![op],
            failure: vec![],
        };
        Ok(self.dcs.txn(txn).await?.succeeded)
    }

    /// Binds our member key (and the leader key, if still ours at `leader_revision`) to `lease`, in one transaction.
    pub async fn rebind(
        &self,
        info: &MemberInfo,
        leader_revision: Option<i64>,
        lease: i64,
    ) -> Result<bool, ClientError> {
        let mut compares = Vec::new();
        let mut success = vec![put(
            self.keys.member(&info.name),
            serde_json::to_vec(info).unwrap_or_default(),
            lease,
        )];
        if let Some(rev) = leader_revision {
            compares.push(Compare {
                key: self.keys.leader().into_bytes(),
                target: CompareTarget::ModRevision(rev),
            });
            success.push(put(self.keys.leader(), info.name.as_str(), lease));
        }
        let txn = Txn {
            compares,
            success,
            failure: vec![],
        };
        Ok(self.dcs.txn(txn).await?.succeeded)
    }

    /// Queues a command for a member (replacing an older one).
    pub async fn send_command(&self, member: &str, command: &NodeCommand) -> Result<(), ClientError> {
        let value = serde_json::to_vec(command).unwrap_or_default();
        self.dcs
            .put(self.keys.command(member).as_bytes(), &value, 0)
            .await
            .map(|_| ())
    }

    /// Marks a member's command done (only if it was not replaced meanwhile).
    pub async fn complete_command(&self, member: &str, mod_revision: i64) -> Result<(), ClientError> {
        let key = self.keys.command(member);
        let txn = Txn {
            compares: vec![Compare {
                key: key.clone().into_bytes(),
                target: CompareTarget::ModRevision(mod_revision),
            }],
            success: vec![Op::Delete {
                key: key.into_bytes(),
                prefix: false,
            }],
            failure: vec![],
        };
        self.dcs.txn(txn).await.map(|_| ())
    }

    /// Removes a switchover request (done, or cancelled).
    pub async fn delete_switchover(&self) -> Result<u64, ClientError> {
        self.dcs.delete(self.keys.switchover().as_bytes(), false).await
    }

    /// Stores a switchover request unless one is pending; false when one already is.
    pub async fn request_switchover(&self, request: &SwitchoverRequest) -> Result<bool, ClientError> {
        let txn = Txn {
            compares: vec![absent(self.keys.switchover())],
            success: vec![put(
                self.keys.switchover(),
                serde_json::to_vec(request).unwrap_or_default(),
                0,
            )],
            failure: vec![],
        };
        Ok(self.dcs.txn(txn).await?.succeeded)
    }

    /// Claims the bootstrap; true when this member may (or already did) initialize the cluster.
    pub async fn claim_initialize(&self, name: &str) -> Result<bool, ClientError> {
        let mine = super::model::Initialize::Pending(name.to_string()).render();
        let txn = Txn {
            compares: vec![absent(self.keys.initialize())],
            success: vec![put(self.keys.initialize(), mine.clone(), 0)],
            failure: vec![],
        };
        if self.dcs.txn(txn).await?.succeeded {
            return Ok(true);
        }
        let (kvs, _) = self.dcs.get(self.keys.initialize().as_bytes(), false).await?;
        Ok(kvs.first().is_some_and(|kv| kv.value == mine.as_bytes()))
    }

    /// Moves the cluster's identity to the system identifier `pg_upgrade` made (the leader, during `ctl upgrade`).
    pub async fn move_initialize(&self, system_identifier: u64) -> Result<(), ClientError> {
        let value = super::model::Initialize::System(system_identifier).render();
        self.dcs
            .put(self.keys.initialize().as_bytes(), value.as_bytes(), 0)
            .await
            .map(|_| ())
    }

    /// Records the system identifier once the first primary runs, and the initial dynamic config if none exists.
    pub async fn complete_initialize(&self, system_identifier: u64, config: &DynamicConfig) -> Result<(), ClientError> {
        self.dcs
            .put(
                self.keys.initialize().as_bytes(),
                super::model::Initialize::System(system_identifier).render().as_bytes(),
                0,
            )
            .await?;
        let txn = Txn {
            compares: vec![absent(self.keys.config())],
            success: vec![put(
                self.keys.config(),
                serde_json::to_vec(config).unwrap_or_default(),
                0,
            )],
            failure: vec![],
        };
        self.dcs.txn(txn).await.map(|_| ())
    }

    /// Appends a promotion to the history, keeping the last `history::KEEP` (best effort: a lost race is retried
    /// once).
    pub async fn append_history(&self, entry: HistoryEntry) -> Result<(), ClientError> {
        for _ in 0..2 {
            let (kvs, _) = self.dcs.get(self.keys.history().as_bytes(), false).await?;
            let (list, compare) = match kvs.first() {
                Some(kv) => (
                    serde_json::from_slice::<Vec<HistoryEntry>>(&kv.value).unwrap_or_default(),
                    Compare {
                        key: self.keys.history().into_bytes(),
                        target: CompareTarget::ModRevision(kv.mod_revision),
                    },
                ),
                None => (Vec::new(), absent(self.keys.history())),
            };
            let list = super::history::appended(list, entry.clone());
            let txn = Txn {
                compares: vec![compare],
                success: vec![put(
                    self.keys.history(),
                    serde_json::to_vec(&list).unwrap_or_default(),
                    0,
                )],
                failure: vec![],
            };
            if self.dcs.txn(txn).await?.succeeded {
                return Ok(());
            }
        }
        tracing::warn!("history entry not recorded: concurrent updates");
        Ok(())
    }
}
