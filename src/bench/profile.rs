//! The configuration of the cluster under test that `bench failover`'s flags ask for: `[ha]` and `[edge.vip]`
//! lines for the generated configs, the label of the report, and the scenarios as the bench's own type.

use super::scenario::Scenario;
use crate::cli::{BenchFailoverArgs, Scenario as CliScenario};

impl BenchFailoverArgs {
    /// The `[ha]` lines these flags ask for.
    pub fn ha_lines(&self) -> String {
        let mut lines = String::new();
        if let Some(mode) = &self.sync {
            lines.push_str(&format!("synchronous_mode = \"{mode}\"\n"));
        }
        if let Some(ttl) = self.ttl_ms {
            // The HA loop must fit at least two lease renewals in one TTL.
            lines.push_str(&format!(
                "ttl_ms = {ttl}\nloop_wait_ms = {}\n",
                (ttl / 8).clamp(50, 250)
            ));
        }
        lines
    }

    /// The `[edge.vip]` lines these flags ask for.
    pub fn vip_lines(&self) -> String {
        self.vip_ttl_ms.map(|t| format!("ttl_ms = {t}\n")).unwrap_or_default()
    }

    /// How the runs replicate and time out, for the report.
    pub fn profile(&self) -> String {
        let mut p = self
            .sync
            .clone()
            .map_or("async".to_string(), |m| format!("synchronous_mode = {m}"));
        if let Some(t) = self.ttl_ms {
            p.push_str(&format!(", ttl_ms = {t}"));
        }
        if let Some(t) = self.vip_ttl_ms {
            p.push_str(&format!(", VIP ttl_ms = {t}"));
        }
        p
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
