//! The faults `pgha bench failover` injects, as the bench's own type (the clap type in `cli` converts into it), and
//! what each one is expected to change.

use serde::Serialize;

/// A fault injected by `bench failover` (`cli::Scenario` names them on the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// SIGKILL the primary's pgha and PostgreSQL.
    PrimaryCrash,
    /// SIGKILL only PostgreSQL on the primary (pgha restarts it in place).
    PostgresCrash,
    /// SIGTERM the primary's pgha (clean handover).
    Sigterm,
    /// Planned switchover to the best streaming replica.
    Switchover,
    /// Cut the primary host's link (six-host mode).
    PrimaryPartition,
    /// SIGSTOP the primary's pgha for 2 x ttl, then SIGCONT (six-host mode).
    PrimaryFreeze,
    /// A power-off of the VIP holder (six-host mode).
    EdgeCrash,
    /// Cut the VIP holder's link (six-host mode).
    EdgePartition,
}

impl Scenario {
    /// Every scenario, in the order of the command line's list.
    pub const ALL: [Scenario; 8] = [
        Scenario::PrimaryCrash,
        Scenario::PostgresCrash,
        Scenario::Sigterm,
        Scenario::Switchover,
        Scenario::PrimaryPartition,
        Scenario::PrimaryFreeze,
        Scenario::EdgeCrash,
        Scenario::EdgePartition,
    ];

    /// The name users type (`primary-crash`), the same as in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::PrimaryCrash => "primary-crash",
            Scenario::PostgresCrash => "postgres-crash",
            Scenario::Sigterm => "sigterm",
            Scenario::Switchover => "switchover",
            Scenario::PrimaryPartition => "primary-partition",
            Scenario::PrimaryFreeze => "primary-freeze",
            Scenario::EdgeCrash => "edge-crash",
            Scenario::EdgePartition => "edge-partition",
        }
    }

    /// True when the run must see a new leader before it counts as over.
    pub fn changes_leader(self) -> bool {
        matches!(
            self,
            Scenario::PrimaryCrash | Scenario::PrimaryPartition | Scenario::Switchover | Scenario::Sigterm
        )
    }

    /// True when the run must see the VIP move before it counts as over.
    pub fn moves_vip(self) -> bool {
        matches!(self, Scenario::EdgeCrash | Scenario::EdgePartition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_json_names() {
        for s in Scenario::ALL {
            assert_eq!(serde_json::to_value(s).ok(), Some(serde_json::json!(s.name())), "{s:?}");
        }
    }
}
