//! The standby cluster setting (`standby_cluster` in the dynamic config, `[ha.standby_cluster]` to bootstrap it): the
//! remote primary this cluster's leader follows, and its checks (pure).

use serde::{Deserialize, Serialize};

/// A standby cluster's remote: its leader (the "standby leader") streams from `host:port` and/or restores WAL with
/// `restore_command`; its replicas cascade from the standby leader. Absent: a normal cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StandbyCluster {
    /// `host`: the remote primary's host (or the address of the remote cluster's edge primary port).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `port`: the remote primary's port. Default: 5432.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `primary_slot_name`: a replication slot on the remote primary the standby leader streams through (create it
    /// there, e.g. as a permanent slot of the remote cluster). Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_slot_name: Option<String>,
    /// `restore_command`: PostgreSQL's `restore_command` for the standby leader (WAL from the remote's archive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_command: Option<String>,
}

/// The remote port when `port` is not set.
pub const DEFAULT_PORT: u16 = 5432;

impl StandbyCluster {
    /// Where the standby leader streams from, when a host is set.
    pub fn remote(&self) -> Option<(String, u16)> {
        self.host
            .as_ref()
            .map(|h| (h.clone(), self.port.unwrap_or(DEFAULT_PORT)))
    }

    /// The remote as `ctl list` and the log show it.
    pub fn describe(&self) -> String {
        match (self.remote(), &self.restore_command) {
            (Some((h, p)), None) => format!("{h}:{p}"),
            (Some((h, p)), Some(_)) => format!("{h}:{p} + restore_command"),
            (None, Some(_)) => "restore_command".to_string(),
            (None, None) => "nothing".to_string(),
        }
    }

    /// Every problem as `(field, problem, hint)`: a clear error for the config file and for `ctl demote-cluster`.
    pub fn problems(&self) -> Vec<(&'static str, String, String)> {
        let mut out = Vec::new();
        if self.host.is_none() && self.restore_command.is_none() {
            out.push((
                "host",
                "neither host nor restore_command is set".to_string(),
                "set host (and port) of the remote primary, or a restore_command, or both".to_string(),
            ));
        }
        if let Some(host) = &self.host {
            let bad = host.is_empty()
                || host
                    .chars()
                    .any(|c| c.is_whitespace() || c == '\'' || c == '\\' || c == '=' || c == '/');
            if bad {
                out.push((
                    "host",
                    format!("{host:?} is not a host name or address"),
                    "write a DNS name or an IP address, e.g. \"10.0.0.5\"".to_string(),
                ));
            }
        }
        if self.port == Some(0) {
            out.push((
                "port",
                "0 is not a port".to_string(),
                "write the remote PostgreSQL's port, 1-65535 (default 5432)".to_string(),
            ));
        }
        if self.port.is_some() && self.host.is_none() {
            out.push((
                "port",
                "is set without host".to_string(),
                "set host too, or remove port".to_string(),
            ));
        }
        if let Some(slot) = &self.primary_slot_name {
            let ok = !slot.is_empty()
                && slot.len() <= 63
                && slot
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !ok {
                out.push((
                    "primary_slot_name",
                    format!("{slot:?} is not a replication slot name"),
                    "use lower-case letters, digits and '_' (at most 63)".to_string(),
                ));
            }
            if self.host.is_none() {
                out.push((
                    "primary_slot_name",
                    "is set without host".to_string(),
                    "a slot is used only when streaming: set host too".to_string(),
                ));
            }
        }
        if self.restore_command.as_ref().is_some_and(|c| c.trim().is_empty()) {
            out.push((
                "restore_command",
                "is empty".to_string(),
                "write the command, e.g. \"cp /archive/%f %p\", or remove the key".to_string(),
            ));
        }
        out
    }

    /// The problems as one message (`ctl demote-cluster`, the dynamic config check).
    pub fn check(&self) -> Result<(), String> {
        let problems = self.problems();
        if problems.is_empty() {
            return Ok(());
        }
        Err(problems
            .iter()
            .map(|(field, problem, hint)| format!("standby_cluster.{field}: {problem} ({hint})"))
            .collect::<Vec<_>>()
            .join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sc(host: Option<&str>, port: Option<u16>, slot: Option<&str>, restore: Option<&str>) -> StandbyCluster {
        StandbyCluster {
            host: host.map(str::to_string),
            port,
            primary_slot_name: slot.map(str::to_string),
            restore_command: restore.map(str::to_string),
        }
    }

    #[test]
    fn checks() {
        let cases: &[(StandbyCluster, &[&str])] = &[
            (sc(Some("10.0.0.5"), Some(5432), None, None), &[]),
            (sc(Some("db.example"), None, Some("dr_site"), None), &[]),
            (sc(None, None, None, Some("cp /a/%f %p")), &[]),
            (sc(None, None, None, None), &["host"]),
            (sc(Some(""), None, None, None), &["host"]),
            (sc(Some("a b"), None, None, None), &["host"]),
            (sc(Some("h"), Some(0), None, None), &["port"]),
            (sc(None, Some(5432), None, Some("x")), &["port"]),
            (sc(Some("h"), None, Some("Bad-Slot"), None), &["primary_slot_name"]),
            (sc(None, None, Some("s"), Some("x")), &["primary_slot_name"]),
            (sc(Some("h"), None, None, Some(" ")), &["restore_command"]),
        ];
        for (config, fields) in cases {
            let got: Vec<&str> = config.problems().iter().map(|p| p.0).collect();
            assert_eq!(got, *fields, "{config:?}");
        }
    }

    #[test]
    fn remote_and_description() {
        assert_eq!(sc(Some("h"), None, None, None).remote(), Some(("h".into(), 5432)));
        assert_eq!(sc(Some("h"), Some(7), None, None).describe(), "h:7");
        assert_eq!(sc(None, None, None, Some("x")).describe(), "restore_command");
        assert!(sc(None, None, None, None)
            .check()
            .unwrap_err()
            .contains("standby_cluster.host"));
    }
}
