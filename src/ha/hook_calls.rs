//! Where the HA loop calls the hooks: `on_*` callbacks fired (never awaited) after starts, stops, reloads and
//! promotions, and `pre_promote` awaited before a promotion, its veto applied (leader key released, this node held out
//! of leader races for `hooks::VETO_HOLD_TTLS` x ttl, a switchover to it dropped so the others race at once).

use super::error::HaError;
use std::time::{Duration, Instant};

use super::hook_exec;
use super::hooks::{self, HookAction, HookEnd, HookRole, Verdict};
use super::runner::DbNode;
use crate::cluster::model::ClusterView;

impl DbNode {
    /// The role PostgreSQL has (or had, right before a stop): from its last status, else what was announced.
    fn hook_role(&self) -> HookRole {
        match &self.supervision.last_status {
            Some(status) => HookRole::from_recovery(status.in_recovery),
            None => self.hooks.announced_role.unwrap_or(HookRole::Replica),
        }
    }

    /// PostgreSQL was started in `role` (by a restart when `restart`): `on_start`, `on_restart` or
    /// `on_role_change`.
    pub(super) fn hooks_after_start(&mut self, role: HookRole, restart: bool) {
        let action = hooks::after_start(self.hooks.announced_role, role, restart);
        self.hooks.announced_role = Some(role);
        self.hooks.callbacks.fire(action, role);
    }

    /// PostgreSQL was stopped by pgha (call before the next status is read: the role is the one it had).
    pub(super) fn hooks_after_stop(&mut self) {
        let role = self.hook_role();
        self.hooks.callbacks.fire(HookAction::OnStop, role);
    }

    /// PostgreSQL's configuration was reloaded by pgha.
    pub(super) fn hooks_after_reload(&mut self) {
        let role = self.hook_role();
        self.hooks.callbacks.fire(HookAction::OnReload, role);
    }

    /// PostgreSQL was promoted.
    pub(super) fn hooks_after_promote(&mut self) {
        self.hooks.announced_role = Some(HookRole::Primary);
        self.hooks.callbacks.fire(HookAction::OnRoleChange, HookRole::Primary);
    }

    /// Runs `pre_promote` (when configured) and applies its verdict; true when the promotion may go on. On a veto
    /// the leader key is released and this node holds off promotions; the HA loop waits for the script (bounded by
    /// `pre_promote_timeout_ms`) while the session task keeps the lease, and the key, alive.
    pub(super) async fn pre_promote_allows(&mut self, view: &ClusterView) -> Result<bool, HaError> {
        let hooks = self.settings.hooks.clone();
        if hooks.pre_promote.is_none() {
            return Ok(true);
        }
        let started = Instant::now();
        let end = hook_exec::run_to_end(
            &hooks,
            HookAction::PrePromote,
            HookRole::Primary,
            hooks.pre_promote_timeout,
        )
        .await;
        let ms = started.elapsed().as_millis() as u64;
        match hooks::verdict(&end, hooks.pre_promote_on_timeout) {
            Verdict::Promote => {
                if end == HookEnd::TimedOut {
                    tracing::warn!(
                        event = "pre_promote_timeout",
                        ms,
                        "pre_promote timed out (killed): promoting anyway (pre_promote_on_timeout = \"promote\")"
                    );
                } else {
                    tracing::info!(event = "pre_promote_done", ms, "pre_promote {end}: promoting");
                }
                if !self.session.valid(Instant::now()) {
                    return Err(HaError::Refused(
                        "our lease ran out while pre_promote ran: not promoting".into(),
                    ));
                }
                Ok(true)
            }
            Verdict::Veto(why) => {
                let hold = hooks::veto_hold(Duration::from_millis(self.config.ttl_ms));
                self.settings.promotion_hold.hold_until(Instant::now() + hold);
                // Not released now (DCS error): `decide` releases it on the next loop, the hold names the reason.
                let released = self
                    .store()
                    .delete_leader(&self.settings.name, None)
                    .await
                    .unwrap_or(false);
                let candidate = view
                    .switchover
                    .as_ref()
                    .is_some_and(|sw| sw.candidate == self.settings.name);
                if candidate {
                    // The request cannot be fulfilled: the others race now rather than after its window.
                    if let Err(e) = self.store().delete_switchover().await {
                        tracing::warn!("clearing the switchover request after the veto failed: {e}");
                    }
                }
                tracing::warn!(
                    event = "pre_promote_veto",
                    ms,
                    hold_ms = hold.as_millis() as u64,
                    released,
                    "promotion vetoed: {why}; leader key {}, not a candidate for {} ms{}",
                    if released { "released" } else { "to be released" },
                    hold.as_millis(),
                    if candidate { "; switchover request dropped" } else { "" },
                );
                Ok(false)
            }
        }
    }
}
