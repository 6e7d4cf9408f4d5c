//! The configuration of the cluster under test that `bench failover`'s and `bench soak`'s flags ask for: `[ha]` and
//! `[edge.vip]` lines for the generated configs, the label of the report, and the scenarios as the bench's own type.

use super::scenario::Scenario;
use crate::cli::{BenchFailoverArgs, BenchSoakArgs, Scenario as CliScenario};

/// The `[ha]` lines for a synchronous mode and a leader TTL.
fn ha_lines(sync: Option<&str>, ttl_ms: Option<u64>) -> String {
    let mut lines = String::new();
    if let Some(mode) = sync {
        lines.push_str(&format!("synchronous_mode = \"{mode}\"\n"));
    }
    if let Some(ttl) = ttl_ms {
        // The HA loop must fit at least two lease renewals in one TTL.
        lines.push_str(&format!(
            "ttl_ms = {ttl}\nloop_wait_ms = {}\n",
            (ttl / 8).clamp(50, 250)
        ));
    }
    lines
}

/// The `[edge.vip]` lines for a VIP TTL.
pub(super) fn vip_lines(vip_ttl_ms: Option<u64>) -> String {
    vip_ttl_ms.map(|t| format!("ttl_ms = {t}\n")).unwrap_or_default()
}

/// How the cluster replicates and times out, for a report.
fn profile(sync: Option<&str>, ttl_ms: Option<u64>, vip_ttl_ms: Option<u64>) -> String {
    let mut p = sync.map_or("async".to_string(), |m| format!("synchronous_mode = {m}"));
    if let Some(t) = ttl_ms {
        p.push_str(&format!(", ttl_ms = {t}"));
    }
    if let Some(t) = vip_ttl_ms {
        p.push_str(&format!(", VIP ttl_ms = {t}"));
    }
    p
}

impl BenchFailoverArgs {
    /// The `[ha]` lines these flags ask for.
    pub fn ha_lines(&self) -> String {
        ha_lines(self.sync.as_deref(), self.ttl_ms)
    }

    /// The `[edge.vip]` lines these flags ask for.
    pub fn vip_lines(&self) -> String {
        vip_lines(self.vip_ttl_ms)
    }

    /// How the runs replicate and time out, for the report.
    pub fn profile(&self) -> String {
        profile(self.sync.as_deref(), self.ttl_ms, self.vip_ttl_ms)
    }
}

impl BenchSoakArgs {
    /// The `[ha]` lines these flags ask for.
    pub fn ha_lines(&self) -> String {
        ha_lines(
            Some(&self.sync).filter(|s| s.as_str() != "off").map(String::as_str),
            self.ttl_ms,
        )
    }

    /// The `[edge.vip]` lines these flags ask for.
    pub fn vip_lines(&self) -> String {
        vip_lines(self.vip_ttl_ms)
    }

    /// How the soak's cluster replicates and times out, for the report.
    pub fn profile(&self) -> String {
        profile(
            Some(&self.sync).filter(|s| s.as_str() != "off").map(String::as_str),
            self.ttl_ms,
            self.vip_ttl_ms,
        )
    }
}

impl From<CliScenario> for Scenario {
    fn from(s: CliScenario) -> Self {
        use Scenario as B;
        match s {
            CliScenario::PrimaryCrash => B::PrimaryCrash,
            CliScenario::PostgresCrash => B::PostgresCrash,
            CliScenario::Sigterm => B::Sigterm,
            CliScenario::Switchover => B::Switchover,
            CliScenario::PrimaryPartition => B::PrimaryPartition,
            CliScenario::PrimaryFreeze => B::PrimaryFreeze,
            CliScenario::EdgeCrash => B::EdgeCrash,
            CliScenario::EdgePartition => B::EdgePartition,
        }
    }
}

#[cfg(test)]
mod scenario_names {
    use clap::ValueEnum;

    #[test]
    fn the_bench_type_keeps_the_command_line_names() {
        for s in super::CliScenario::value_variants() {
            let typed = s.to_possible_value().map(|v| v.get_name().to_string());
            assert_eq!(typed.as_deref(), Some(super::Scenario::from(*s).name()));
        }
    }
}
