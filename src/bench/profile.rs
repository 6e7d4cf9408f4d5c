//! The configuration of the cluster under test that `bench failover`'s flags ask for: `[ha]` and `[edge.vip]`
//! lines for the generated configs, and the label of the report.

use crate::cli::BenchFailoverArgs;

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
