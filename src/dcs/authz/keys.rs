//! Which DCS keys a role may write: the key schema of src/cluster/keys.rs read as permissions (pure).

use crate::dcs::types::{CompareTarget, Op, Txn};
use crate::identity::role::{Caller, CertRole};

/// The prefix of every key of `cluster` (`/pgha/<cluster>/`); `cluster::keys::Keys` builds every key under it.
pub fn cluster_root(cluster: &str) -> String {
    format!("/pgha/{cluster}/")
}

/// A key of the cluster, by what it is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind<'a> {
    Leader,
    Initialize,
    Config,
    Switchover,
    History,
    Sync,
    /// A major upgrade's state: only `ctl upgrade` (admin) writes it; members report in their own member key.
    Upgrade,
    Vip,
    Member(&'a str),
    Command(&'a str),
    Edge(&'a str),
    /// Anything else, including keys outside `/pgha/<cluster>/`: only admin writes them.
    Other,
}

/// Classifies `key` for the cluster whose keys live under `root` (`/pgha/<cluster>/`).
pub fn classify<'a>(root: &str, key: &'a [u8]) -> KeyKind<'a> {
    let Some(rest) = std::str::from_utf8(key).ok().and_then(|k| k.strip_prefix(root)) else {
        return KeyKind::Other;
    };
    match rest {
        "leader" => KeyKind::Leader,
        "initialize" => KeyKind::Initialize,
        "config" => KeyKind::Config,
        "switchover" => KeyKind::Switchover,
        "history" => KeyKind::History,
        "sync" => KeyKind::Sync,
        "upgrade" => KeyKind::Upgrade,
        "vip" => KeyKind::Vip,
        _ => {
            let named = |prefix: &str| rest.strip_prefix(prefix).filter(|n| !n.is_empty() && !n.contains('/'));
            if let Some(n) = named("members/") {
                KeyKind::Member(n)
            } else if let Some(n) = named("commands/") {
                KeyKind::Command(n)
            } else if let Some(n) = named("edges/") {
                KeyKind::Edge(n)
            } else {
                KeyKind::Other
            }
        }
    }
}

/// Where an op sits in its transaction: the `config` rule depends on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Place {
    /// In the success branch (runs only when every compare holds).
    success: bool,
    /// The transaction compares `config` to absent.
    config_absent: bool,
}

/// Checks every op of both branches (which one runs is only known when it is applied); Err names the first refusal.
pub fn check_txn(root: &str, caller: &Caller, txn: &Txn) -> Result<(), String> {
    if caller.role == CertRole::Admin {
        return Ok(());
    }
    let config_key = format!("{root}config");
    let config_absent = txn
        .compares
        .iter()
        .any(|c| c.key == config_key.as_bytes() && c.target == CompareTarget::Absent);
    let ops = txn.success.iter().map(|op| (op, true));
    for (op, success) in ops.chain(txn.failure.iter().map(|op| (op, false))) {
        check_op(root, caller, op, Place { success, config_absent })?;
    }
    Ok(())
}

fn check_op(root: &str, caller: &Caller, op: &Op, place: Place) -> Result<(), String> {
    let (key, put_value) = match op {
        // Nobody's job deletes by prefix: `members/db1` as a prefix would also take `members/db10`.
        Op::Delete { key, prefix: true } => {
            return Err(format!(
                "{caller} may not delete by prefix ({})",
                String::from_utf8_lossy(key)
            ))
        }
        Op::Delete { key, .. } => (key, None),
        Op::Put { key, value, .. } => (key, Some(value.as_slice())),
    };
    let kind = classify(root, key);
    if allowed(caller, kind, put_value, place) {
        Ok(())
    } else {
        let verb = if put_value.is_some() { "write" } else { "delete" };
        Err(format!(
            "{caller} may not {verb} {}{}",
            String::from_utf8_lossy(key),
            hint(caller.role, kind)
        ))
    }
}

/// The rule table: what each role's job writes (see src/ha/store.rs, src/edge/publish.rs, src/edge/vip/).
fn allowed(caller: &Caller, kind: KeyKind<'_>, put_value: Option<&[u8]>, place: Place) -> bool {
    let me = caller.name.as_str();
    let put = put_value.is_some();
    // The leader and vip keys name their holder: a holder can only name itself.
    let names_me = put_value.is_none_or(|v| v == me.as_bytes());
    match (caller.role, kind) {
        (CertRole::Admin, _) => true,
        (CertRole::Member, KeyKind::Member(n)) => n == me,
        (CertRole::Member, KeyKind::Leader) => names_me,
        (CertRole::Member, KeyKind::Sync | KeyKind::Initialize) => true,
        (CertRole::Member, KeyKind::History) => put,
        // A member clears a done switchover and its own finished command; only operators make them.
        (CertRole::Member, KeyKind::Switchover) => !put,
        (CertRole::Member, KeyKind::Command(n)) => !put && n == me,
        // Bootstrap stores the first config only if there is none (CAS on absence); changes are the operator's.
        (CertRole::Member, KeyKind::Config) => put && place.success && place.config_absent,
        (CertRole::Edge, KeyKind::Edge(n)) => n == me,
        (CertRole::Edge, KeyKind::Vip) => put && names_me,
        // The upgrade's state is the operator's: members report their part in their own member key.
        (_, KeyKind::Upgrade) => false,
        _ => false,
    }
}

fn hint(role: CertRole, kind: KeyKind<'_>) -> &'static str {
    match (role, kind) {
        (_, KeyKind::Config) => " (only admin changes the cluster configuration after bootstrap)",
        (_, KeyKind::Upgrade) => " (only admin runs an upgrade: pgha ctl upgrade)",
        (CertRole::Witness | CertRole::Monitor, _) => " (this role writes nothing)",
        (_, KeyKind::Member(_) | KeyKind::Command(_) | KeyKind::Edge(_)) => " (only its own name's key)",
        (_, KeyKind::Leader | KeyKind::Vip) => " (a holder key can only name the writer)",
        _ => "",
    }
}
