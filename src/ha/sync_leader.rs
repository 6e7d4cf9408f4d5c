//! The shell of synchronous replication: the leader applies one [`sync::plan`] step per loop (DCS key or
//! PostgreSQL), and every other member keeps the standby setting that makes a fresh primary wait.

use super::error::HaError;
use std::time::{Duration, Instant};

use super::runner::DbNode;
use super::sync::{self, Standby, SyncSpec, SyncStep};
use crate::cluster::model::SyncState;
use crate::cluster::model::{ClusterView, MemberInfo, SyncMode};

impl DbNode {
    /// Not leading: render the standby spec, so that after a promotion no commit is acknowledged before the new
    /// primary recorded its synchronous standbys.
    pub(super) async fn keep_standby_sync_spec(&mut self) {
        let spec = sync::standby_spec(&self.config);
        self.sync.switch_lsn = None;
        self.sync.promotion = None;
        self.sync.no_candidate_since = None;
        if self.sync.applied.as_ref() == Some(&spec) {
            return;
        }
        self.pg.set_synchronous_standby_names(&spec.render());
        self.apply_parameters().await;
        self.sync.applied = Some(spec);
    }

    /// The standbys that count as streaming for the synchronous set (`sync::settled_streaming`), keeping when each
    /// was first seen streaming.
    fn settled_streaming(&mut self, status: &crate::postgres::PgStatus, key_members: &[String]) -> Vec<String> {
        let now = Instant::now();
        let raw: Vec<&str> = status
            .replication
            .iter()
            .filter(|r| r.state == "streaming")
            .map(|r| r.application_name.as_str())
            .collect();
        self.sync.streaming_since.retain(|name, _| raw.contains(&name.as_str()));
        for name in &raw {
            self.sync.streaming_since.entry(name.to_string()).or_insert(now);
        }
        let settle = Duration::from_secs(1).min(Duration::from_millis(self.config.ttl_ms / 2));
        sync::settled_streaming(
            &self.settings.name,
            &raw,
            &self.sync.streaming_since,
            key_members,
            settle,
            now,
        )
    }

    /// Leading: one step towards the synchronous standbys we want.
    pub(super) async fn manage_sync(&mut self, view: &ClusterView) -> Result<(), HaError> {
        let Some(status) = self.supervision.last_status.clone() else {
            return Ok(());
        };
        let key_members: Vec<String> = view.sync.as_ref().map(|(k, _)| k.members.clone()).unwrap_or_default();
        let streaming = self.settled_streaming(&status, &key_members);
        let standbys: Vec<Standby> = status
            .replication
            .iter()
            .map(|r| Standby {
                name: r.application_name.clone(),
                streaming: streaming.contains(&r.application_name),
                eligible: view
                    .members
                    .get(&r.application_name)
                    .is_some_and(MemberInfo::may_be_synchronous),
                flush_lsn: r.flush_lsn.unwrap_or(0),
            })
            .collect();
        let any_candidate = standbys.iter().any(|s| s.streaming && s.eligible);
        let since = if any_candidate {
            self.sync.no_candidate_since = None;
            None
        } else {
            Some(*self.sync.no_candidate_since.get_or_insert_with(Instant::now))
        };
        // Without a streaming standby, wait for one for a while (right after a promotion they reconnect) when a
        // promotable member is alive, rather than acknowledging commits no standby has.
        let grace = Duration::from_millis(self.config.ttl_ms.saturating_mul(2));
        let expected = view
            .members
            .values()
            .any(|m| m.name != self.settings.name && !m.nofailover);
        let hold = expected && since.is_some_and(|t| t.elapsed() < grace);
        let mut key = view.sync.as_ref().map(|(k, _)| k.clone());
        let wanted = sync::desired(&self.config, &standbys, key.as_ref(), hold);
        let wanted = sync::keep_applied(wanted, self.sync.applied.as_ref(), &self.synchronous_candidates(view));
        let leader_revision = view.leader.as_ref().map(|l| l.mod_revision).unwrap_or(0);
        // A key write is followed by the PostgreSQL step in the same loop: while a new primary blocks commits, every
        // loop it waits is write downtime.
        // Up to four steps: grow the key, apply, shrink the key (when the switch is known at apply), settle.
        for _ in 0..4 {
            let step = sync::plan(
                &self.settings.name,
                key.as_ref(),
                self.sync.applied.as_ref(),
                &wanted,
                self.sync.switch_lsn,
                &standbys,
            );
            match step {
                // Settled: a switch position matters only until the key has shrunk to the applied set.
                SyncStep::Steady => self.sync.switch_lsn = None,
                SyncStep::WriteKey(state) => {
                    if self.store().write_sync(Some(&state), leader_revision).await? {
                        tracing::info!(
                            members = ?state.members,
                            quorum = state.quorum,
                            "sync key updated: only these members may be promoted"
                        );
                        key = Some(state);
                        continue;
                    }
                }
                SyncStep::DeleteKey => {
                    if self.store().write_sync(None, leader_revision).await? {
                        tracing::info!("sync key removed: replication is asynchronous");
                    }
                }
                SyncStep::Apply(spec) => {
                    let rendered = spec.render();
                    self.pg.set_synchronous_standby_names(&rendered);
                    self.apply_parameters().await;
                    let what = match &spec {
                        SyncSpec::Async => "asynchronous (no synchronous standby available)",
                        SyncSpec::Blocking => "blocking commits until a synchronous standby is recorded",
                        SyncSpec::Quorum { .. } => rendered.as_str(),
                    };
                    match spec {
                        SyncSpec::Quorum { .. } => {
                            tracing::info!(event = "sync_standbys_named", "synchronous_standby_names: {what}");
                            if let Err(e) = self.pg.nudge_standbys(&rendered).await {
                                tracing::debug!("asking the standbys for a flush report failed: {e}");
                            }
                        }
                        _ => tracing::info!("synchronous_standby_names: {what}"),
                    }
                    self.sync.switch_lsn =
                        sync::switch_at_apply(self.sync.applied.as_ref(), &spec, status.wal_position());
                    self.sync.applied = Some(spec);
                    if self.sync.switch_lsn.is_some() {
                        continue;
                    }
                }
                SyncStep::MarkSwitch => {
                    let wanted_text = self.sync.applied.as_ref().map(SyncSpec::render).unwrap_or_default();
                    if status.synchronous_standby_names == wanted_text {
                        self.sync.switch_lsn = Some(status.wal_position());
                    }
                }
                SyncStep::AwaitCatchUp { have, need } => {
                    tracing::debug!(
                        have,
                        need,
                        "waiting for the new synchronous standbys to pass the switch position"
                    );
                }
            }
            break;
        }
        Ok(())
    }

    /// The other members that may be synchronous standbys, as `view` lists them.
    fn synchronous_candidates(&self, view: &ClusterView) -> Vec<String> {
        view.members
            .values()
            .filter(|m| m.name != self.settings.name && m.may_be_synchronous())
            .map(|m| m.name.clone())
            .collect()
    }

    /// The `sync` key and standby names for a promotion of this member (`sync::at_promotion`); None outside
    /// synchronous mode, in a standby cluster (which does not promote), or with nobody to name.
    pub(super) fn promotion_sync(&self, view: &ClusterView) -> Option<(SyncState, SyncSpec)> {
        if view.config.standby_cluster.is_some() {
            return None;
        }
        let key = view.sync.as_ref().map(|(k, _)| k);
        sync::at_promotion(
            &self.config,
            &self.settings.name,
            key,
            &self.synchronous_candidates(view),
        )
    }

    /// Takes the free leader key; in synchronous mode together with the `sync` key naming the standbys the promotion
    /// ahead will run with (kept for [`DbNode::name_promotion_standbys`]). True when we got it.
    pub(super) async fn take_leader_key(&mut self, view: &ClusterView, lease: i64) -> Result<bool, HaError> {
        let Some((state, spec)) = self.promotion_sync(view) else {
            return Ok(self.store().take_leader(&self.settings.name, lease).await?);
        };
        let revision = view.sync.as_ref().map(|(_, r)| *r);
        let took = self
            .store()
            .take_leader_naming(&self.settings.name, lease, &state, revision)
            .await?;
        if took {
            self.sync.promotion = Some(spec);
        }
        Ok(took)
    }

    /// Before PostgreSQL leaves recovery: sets the standbys named with the leader key (or, when the key was ours
    /// already, writes the `sync` key for them first) for the caller's reload, so commits on the new timeline are
    /// confirmed as soon as one of them streams, without waiting for a loop as leader and another reload. A failure
    /// here only costs that wait.
    pub(super) async fn name_promotion_standbys(&mut self, view: &ClusterView) {
        let spec = match self.sync.promotion.take() {
            Some(spec) => spec,
            None => {
                let Some((state, spec)) = self.promotion_sync(view) else {
                    return;
                };
                let Some(leader) = view.leader.as_ref().filter(|l| l.name == self.settings.name) else {
                    return;
                };
                match self.store().write_sync(Some(&state), leader.mod_revision).await {
                    Ok(true) => spec,
                    Ok(false) => return,
                    Err(e) => {
                        tracing::debug!("naming the synchronous standbys before the promotion failed: {e}");
                        return;
                    }
                }
            }
        };
        let rendered = spec.render();
        self.pg.set_synchronous_standby_names(&rendered);
        tracing::info!(
            event = "promotion_standbys_named",
            "synchronous_standby_names before the promotion: {rendered}"
        );
        self.sync.applied = Some(spec);
        self.sync.switch_lsn = None;
    }

    /// While this leader's commits wait for a synchronous standby to be chosen, or the key still names members it
    /// means to drop (a new primary names itself until a standby passes its promotion), the loop looks again soon:
    /// a standby that starts streaming or catches up changes nothing in the DCS, so no watch event would wake it.
    pub(super) fn sync_pending(&self) -> bool {
        self.config.synchronous_mode != SyncMode::Off
            && (self.sync.applied.as_ref() == Some(&SyncSpec::Blocking) || self.sync.switch_lsn.is_some())
    }

    /// Bootstrap: the first primary must commit its own setup with no standby in existence.
    pub(super) fn bootstrap_sync_spec(&mut self) {
        self.pg.set_synchronous_standby_names("");
        self.sync.applied = Some(SyncSpec::Async);
    }
}
