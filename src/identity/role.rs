//! Certificate roles and the identity a certificate carries: the URI SAN `pgha://<cluster>/<role>/<name>`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// URI scheme of the identity SAN.
pub const SCHEME: &str = "pgha://";

/// What a certificate may do: one per host kind (see docs/security.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertRole {
    /// A db node: Raft voter, PostgreSQL supervisor, writes the keys of its own HA job.
    Member,
    /// A DCS-only voter: Raft, forwarding; writes nothing of its own.
    Witness,
    /// An edge proxy: reads the cluster, writes `edges/<own name>` and the `vip` key under its own leases.
    Edge,
    /// An operator (`pgha ctl`): everything, including the configuration and membership.
    Admin,
    /// Monitoring: reads only.
    Monitor,
}

impl CertRole {
    /// Every role, in the order the documentation lists them.
    pub const ALL: [CertRole; 5] = [
        CertRole::Member,
        CertRole::Witness,
        CertRole::Edge,
        CertRole::Admin,
        CertRole::Monitor,
    ];

    /// The role's name in certificates, configs and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            CertRole::Member => "member",
            CertRole::Witness => "witness",
            CertRole::Edge => "edge",
            CertRole::Admin => "admin",
            CertRole::Monitor => "monitor",
        }
    }

    /// "member, witness, edge, admin, monitor": for error messages that list the choices.
    pub fn choices() -> String {
        CertRole::ALL.map(CertRole::as_str).join(", ")
    }

    /// Raft voters: the only roles that speak the Raft protocol and forward writes.
    pub fn is_voter(self) -> bool {
        matches!(self, CertRole::Member | CertRole::Witness)
    }
}

impl fmt::Display for CertRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CertRole {
    type Err = String;
    fn from_str(s: &str) -> Result<CertRole, String> {
        CertRole::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?} (one of {})", CertRole::choices()))
    }
}

/// Who made a request, as far as the rules care: a role and a name (the certificate's).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Caller {
    pub role: CertRole,
    pub name: String,
}

impl Caller {
    /// A caller (for tests and tables).
    pub fn new(role: CertRole, name: &str) -> Caller {
        Caller {
            role,
            name: name.to_string(),
        }
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.role, self.name)
    }
}

/// The identity carried by a role certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub cluster: String,
    pub caller: Caller,
}

impl Identity {
    /// The URI SAN that carries this identity.
    pub fn uri(&self) -> String {
        format!("{SCHEME}{}/{}/{}", self.cluster, self.caller.role, self.caller.name)
    }

    /// Parses `pgha://<cluster>/<role>/<name>`; None when `uri` is not a pgha URI at all, Err when it is one but
    /// malformed (such a certificate is refused, never taken for a legacy one).
    pub fn parse(uri: &str) -> Option<Result<Identity, String>> {
        let rest = uri.strip_prefix(SCHEME)?;
        let parts: Vec<&str> = rest.split('/').collect();
        let [cluster, role, name] = parts.as_slice() else {
            return Some(Err(format!("{uri:?} is not pgha://<cluster>/<role>/<name>")));
        };
        let check = || -> Result<Identity, String> {
            for (what, value) in [("cluster", cluster), ("name", name)] {
                if !valid_name(value) {
                    return Err(format!("{uri:?}: invalid {what} {value:?}"));
                }
            }
            Ok(Identity {
                cluster: cluster.to_string(),
                caller: Caller {
                    role: role.parse().map_err(|e| format!("{uri:?}: {e}"))?,
                    name: name.to_string(),
                },
            })
        };
        Some(check())
    }
}

/// What each role is for, in the order of [`CertRole::ALL`] (for `--role` errors).
pub const ROLE_HELP: &str = "member: a db node; witness: a DCS-only member; edge: an edge proxy; \
                             admin: pgha ctl for operators; monitor: read-only clients";

/// The URI SAN a CA carries to name its cluster (`pgha://<cluster>`), so `pgha cert issue` needs no `--cluster`.
pub fn ca_uri(cluster: &str) -> String {
    format!("{SCHEME}{cluster}")
}

/// Names and clusters become file names, DNS SANs and URI path segments: `[A-Za-z0-9._-]`, not only dots.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && s.bytes().any(|b| b != b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip_and_malformed_ones_are_errors() {
        for role in CertRole::ALL {
            let id = Identity {
                cluster: "main".into(),
                caller: Caller::new(role, "db1"),
            };
            assert_eq!(Identity::parse(&id.uri()), Some(Ok(id.clone())), "{role}");
        }
        assert_eq!(Identity::parse("https://x/member/db1"), None);
        for bad in [
            "pgha://main/member",
            "pgha://main/member/db1/x",
            "pgha://main/root/db1",
            "pgha:///member/db1",
            "pgha://main/member/..",
            "pgha://main/member/a b",
        ] {
            assert!(matches!(Identity::parse(bad), Some(Err(_))), "{bad}");
        }
    }

    #[test]
    fn choices_name_every_role() {
        assert_eq!(CertRole::choices(), "member, witness, edge, admin, monitor");
        assert!("root".parse::<CertRole>().unwrap_err().contains("member, witness"));
    }
}
