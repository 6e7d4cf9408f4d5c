//! Patroni-compatible hooks, the pure part: which callback follows which PostgreSQL action, the argv and environment
//! of a hook, what a `pre_promote` outcome means, and how long a vetoed node stays out of leader races.
//!
//! Patroni's contract, kept so existing scripts work: `on_*` callbacks run after the fact as
//! `<command> <action> <role> <cluster>` (role `primary` or `replica`; pgha has no standby cluster, so never
//! `standby_leader`); `pre_promote` runs with no arguments and vetoes the promotion by a non-zero exit. pgha adds
//! `PGHA_HOOK`, `PGHA_ROLE`, `PGHA_CLUSTER` and `PGHA_NODE` to every hook's environment. The processes are run by
//! `hook_exec.rs`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::PrePromoteOnTimeout;

/// A vetoed node stays out of leader races (and reports itself `nofailover` to racing peers) for this many TTLs, so
/// another member is promoted instead of the same one being asked again (Patroni: one ttl of 30 s).
pub const VETO_HOLD_TTLS: u32 = 3;

/// Which hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum HookAction {
    OnStart,
    OnStop,
    OnRestart,
    OnReload,
    OnRoleChange,
    PrePromote,
}

impl HookAction {
    /// The name scripts receive as their action argument (and the config key).
    pub fn as_str(self) -> &'static str {
        match self {
            HookAction::OnStart => "on_start",
            HookAction::OnStop => "on_stop",
            HookAction::OnRestart => "on_restart",
            HookAction::OnReload => "on_reload",
            HookAction::OnRoleChange => "on_role_change",
            HookAction::PrePromote => "pre_promote",
        }
    }
}

/// The role a hook is told about (Patroni 3's words).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookRole {
    Primary,
    Replica,
}

impl HookRole {
    pub fn as_str(self) -> &'static str {
        match self {
            HookRole::Primary => "primary",
            HookRole::Replica => "replica",
        }
    }

    /// From PostgreSQL's `pg_is_in_recovery()`.
    pub fn from_recovery(in_recovery: bool) -> HookRole {
        if in_recovery {
            HookRole::Replica
        } else {
            HookRole::Primary
        }
    }
}

/// The hook commands of a node (argv already split) and their timeouts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HookSettings {
    pub on_start: Option<Vec<String>>,
    pub on_stop: Option<Vec<String>>,
    pub on_restart: Option<Vec<String>>,
    pub on_reload: Option<Vec<String>>,
    pub on_role_change: Option<Vec<String>>,
    pub pre_promote: Option<Vec<String>>,
    pub pre_promote_timeout: Duration,
    pub pre_promote_on_timeout: PrePromoteOnTimeout,
    pub callback_timeout: Duration,
    /// The cluster name given to the scripts (Patroni's scope).
    pub cluster: String,
    /// This node's name (`PGHA_NODE`).
    pub node: String,
}

impl HookSettings {
    /// The configured command of `action`, if any.
    pub fn command(&self, action: HookAction) -> Option<&[String]> {
        match action {
            HookAction::OnStart => self.on_start.as_deref(),
            HookAction::OnStop => self.on_stop.as_deref(),
            HookAction::OnRestart => self.on_restart.as_deref(),
            HookAction::OnReload => self.on_reload.as_deref(),
            HookAction::OnRoleChange => self.on_role_change.as_deref(),
            HookAction::PrePromote => self.pre_promote.as_deref(),
        }
    }

    /// Whether any `on_*` callback is configured (else no executor is needed).
    pub fn any_callback(&self) -> bool {
        [
            &self.on_start,
            &self.on_stop,
            &self.on_restart,
            &self.on_reload,
            &self.on_role_change,
        ]
        .iter()
        .any(|c| c.is_some())
    }

    /// The full argv of `action` for `role`, None when it is not configured.
    pub fn argv(&self, action: HookAction, role: HookRole) -> Option<Vec<String>> {
        self.command(action).map(|cmd| argv(cmd, action, role, &self.cluster))
    }

    /// The environment every hook gets besides pgha's own.
    pub fn env(&self, action: HookAction, role: HookRole) -> [(&'static str, String); 4] {
        [
            ("PGHA_HOOK", action.as_str().to_string()),
            ("PGHA_ROLE", role.as_str().to_string()),
            ("PGHA_CLUSTER", self.cluster.clone()),
            ("PGHA_NODE", self.node.clone()),
        ]
    }
}

/// Patroni's argv: `on_*` get `<action> <role> <cluster>` after the configured words, `pre_promote` nothing.
pub fn argv(command: &[String], action: HookAction, role: HookRole, cluster: &str) -> Vec<String> {
    let mut argv = command.to_vec();
    if action != HookAction::PrePromote {
        argv.extend([
            action.as_str().to_string(),
            role.as_str().to_string(),
            cluster.to_string(),
        ]);
    }
    argv
}

/// Which callback follows a successful start of PostgreSQL in `role`: `on_restart` for a restart, `on_role_change`
/// when the last role the callbacks were told differs (a former primary back as a replica), else `on_start`.
pub fn after_start(announced: Option<HookRole>, role: HookRole, restart: bool) -> HookAction {
    match announced {
        _ if restart => HookAction::OnRestart,
        Some(previous) if previous != role => HookAction::OnRoleChange,
        _ => HookAction::OnStart,
    }
}

/// How a hook process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookEnd {
    /// Exited with this code.
    Exited(i32),
    /// Ended by this signal (not ours).
    Signalled(i32),
    /// Still running at its timeout: killed.
    TimedOut,
    /// Could not be started (not found, not executable, ...).
    SpawnFailed(String),
}

impl HookEnd {
    pub fn succeeded(&self) -> bool {
        *self == HookEnd::Exited(0)
    }
}

impl std::fmt::Display for HookEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HookEnd::Exited(code) => write!(f, "exited with {code}"),
            HookEnd::Signalled(sig) => write!(f, "killed by signal {sig}"),
            HookEnd::TimedOut => write!(f, "timed out (killed)"),
            HookEnd::SpawnFailed(e) => write!(f, "could not be started: {e}"),
        }
    }
}

/// What to do after `pre_promote`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Promote,
    /// Do not promote, with why (for the log).
    Veto(String),
}

/// The promotion verdict of a `pre_promote` that ended as `end`: exit 0 promotes; a timeout follows
/// `pre_promote_on_timeout`; anything else (non-zero exit, signal, a command that cannot start) vetoes, as in
/// Patroni, which fails closed.
pub fn verdict(end: &HookEnd, on_timeout: PrePromoteOnTimeout) -> Verdict {
    match end {
        HookEnd::Exited(0) => Verdict::Promote,
        HookEnd::TimedOut if on_timeout == PrePromoteOnTimeout::Promote => Verdict::Promote,
        HookEnd::TimedOut => Verdict::Veto(format!("pre_promote {end} (pre_promote_on_timeout = \"veto\")")),
        _ => Verdict::Veto(format!("pre_promote {end}")),
    }
}

/// How long a vetoed node stays out of leader races.
pub fn veto_hold(ttl: Duration) -> Duration {
    ttl * VETO_HOLD_TTLS
}

/// Until when this node stays out of leader races after a vetoed promotion; shared by the HA loop (which races) and
/// the `Ha` service (which tells racing peers this node is not a candidate now).
#[derive(Debug, Default)]
pub struct PromotionHold(Mutex<Option<Instant>>);

impl PromotionHold {
    /// Holds promotions off until `until`.
    pub fn hold_until(&self, until: Instant) {
        if let Ok(mut at) = self.0.lock() {
            *at = Some(until);
        }
    }

    /// True while promotions are held off at `now`.
    pub fn held(&self, now: Instant) -> bool {
        self.0.lock().map(|at| at.is_some_and(|t| now < t)).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn argv_table() {
        let cmd = words(&["/bin/hook", "--flag"]);
        let cases = [
            (
                HookAction::OnStart,
                HookRole::Replica,
                vec!["/bin/hook", "--flag", "on_start", "replica", "demo"],
            ),
            (
                HookAction::OnStop,
                HookRole::Primary,
                vec!["/bin/hook", "--flag", "on_stop", "primary", "demo"],
            ),
            (
                HookAction::OnRestart,
                HookRole::Primary,
                vec!["/bin/hook", "--flag", "on_restart", "primary", "demo"],
            ),
            (
                HookAction::OnReload,
                HookRole::Replica,
                vec!["/bin/hook", "--flag", "on_reload", "replica", "demo"],
            ),
            (
                HookAction::OnRoleChange,
                HookRole::Primary,
                vec!["/bin/hook", "--flag", "on_role_change", "primary", "demo"],
            ),
            // Patroni runs pre_promote with its configured words only.
            (HookAction::PrePromote, HookRole::Primary, vec!["/bin/hook", "--flag"]),
        ];
        for (action, role, expected) in cases {
            assert_eq!(argv(&cmd, action, role, "demo"), words(&expected), "{action:?}");
        }
    }

    #[test]
    fn settings_give_argv_only_for_configured_hooks() {
        let s = HookSettings {
            on_role_change: Some(words(&["/bin/x"])),
            cluster: "c1".into(),
            node: "db1".into(),
            ..HookSettings::default()
        };
        assert!(s.any_callback());
        assert_eq!(s.argv(HookAction::OnStart, HookRole::Primary), None);
        assert_eq!(
            s.argv(HookAction::OnRoleChange, HookRole::Replica),
            Some(words(&["/bin/x", "on_role_change", "replica", "c1"]))
        );
        let env = s.env(HookAction::OnRoleChange, HookRole::Replica);
        assert!(env.contains(&("PGHA_NODE", "db1".to_string())));
        assert!(env.contains(&("PGHA_HOOK", "on_role_change".to_string())));
        assert!(!HookSettings::default().any_callback());
    }

    #[test]
    fn callback_after_a_start() {
        use HookAction::*;
        use HookRole::*;
        let cases = [
            ("first start as primary", None, Primary, false, OnStart),
            ("first start as replica", None, Replica, false, OnStart),
            ("crash restart in place", Some(Primary), Primary, false, OnStart),
            (
                "former primary back as replica",
                Some(Primary),
                Replica,
                false,
                OnRoleChange,
            ),
            (
                "replica started as primary",
                Some(Replica),
                Primary,
                false,
                OnRoleChange,
            ),
            ("operator restart", Some(Primary), Primary, true, OnRestart),
            ("operator restart, first seen", None, Replica, true, OnRestart),
        ];
        for (case, announced, role, restart, expected) in cases {
            assert_eq!(after_start(announced, role, restart), expected, "{case}");
        }
    }

    #[test]
    fn verdict_table() {
        use PrePromoteOnTimeout::{Promote as OnPromote, Veto as OnVeto};
        let cases = [
            ("exit 0", HookEnd::Exited(0), OnVeto, true),
            ("exit 1", HookEnd::Exited(1), OnPromote, false),
            ("exit 2", HookEnd::Exited(2), OnVeto, false),
            ("signal", HookEnd::Signalled(9), OnPromote, false),
            (
                "cannot start",
                HookEnd::SpawnFailed("not found".into()),
                OnPromote,
                false,
            ),
            ("timeout, veto", HookEnd::TimedOut, OnVeto, false),
            ("timeout, promote", HookEnd::TimedOut, OnPromote, true),
        ];
        for (case, end, on_timeout, promotes) in cases {
            let v = verdict(&end, on_timeout);
            assert_eq!(v == Verdict::Promote, promotes, "{case}: {v:?}");
            if let Verdict::Veto(why) = v {
                assert!(why.starts_with("pre_promote "), "{case}: {why}");
            }
        }
    }

    #[test]
    fn hold_expires() {
        let hold = PromotionHold::default();
        let now = Instant::now();
        assert!(!hold.held(now));
        hold.hold_until(now + veto_hold(Duration::from_millis(2000)));
        assert!(hold.held(now + Duration::from_millis(5999)));
        assert!(!hold.held(now + Duration::from_millis(6000)));
    }
}
