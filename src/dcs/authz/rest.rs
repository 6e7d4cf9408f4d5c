//! The REST API's writes (Patroni's `POST /switchover` etc.) and who makes them (pure): the caller of a REST request
//! from its transport and client certificate. The decision itself is the `Rpc::RestWrite` rule of `authorize`.

use super::principal;
use super::rules::{Denial, Principal};
use crate::identity::peer::CertIdentity;
use crate::identity::LegacyCertificates;

/// Every write the REST API serves (Patroni's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestWrite {
    Switchover,
    CancelSwitchover,
    Failover,
    Restart,
    Reload,
    Reinitialize,
    PatchConfig,
    PutConfig,
}

impl RestWrite {
    pub const ALL: [RestWrite; 8] = [
        RestWrite::Switchover,
        RestWrite::CancelSwitchover,
        RestWrite::Failover,
        RestWrite::Restart,
        RestWrite::Reload,
        RestWrite::Reinitialize,
        RestWrite::PatchConfig,
        RestWrite::PutConfig,
    ];

    /// The write a method and path ask for; None for reads and unknown writes.
    pub fn of(method: &str, path: &str) -> Option<RestWrite> {
        match (method, path) {
            ("POST", "/switchover") => Some(RestWrite::Switchover),
            ("DELETE", "/switchover") => Some(RestWrite::CancelSwitchover),
            ("POST", "/failover") => Some(RestWrite::Failover),
            ("POST", "/restart") => Some(RestWrite::Restart),
            ("POST", "/reload") => Some(RestWrite::Reload),
            ("POST", "/reinitialize") => Some(RestWrite::Reinitialize),
            ("PATCH", "/config") => Some(RestWrite::PatchConfig),
            ("PUT", "/config") => Some(RestWrite::PutConfig),
            _ => None,
        }
    }

    /// `POST /switchover` etc., for log lines and refusals.
    pub fn name(self) -> &'static str {
        match self {
            RestWrite::Switchover => "POST /switchover",
            RestWrite::CancelSwitchover => "DELETE /switchover",
            RestWrite::Failover => "POST /failover",
            RestWrite::Restart => "POST /restart",
            RestWrite::Reload => "POST /reload",
            RestWrite::Reinitialize => "POST /reinitialize",
            RestWrite::PatchConfig => "PATCH /config",
            RestWrite::PutConfig => "PUT /config",
        }
    }
}

/// How a REST request arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `ha.rest_tls = false`: nobody can be identified.
    PlainHttp,
    /// HTTPS; the client certificate's identity when one was presented (the TLS layer checked its CA signature).
    Https(Option<CertIdentity>),
}

/// The principal of a REST caller (pure). Plain HTTP and HTTPS without a client certificate have none; a certificate
/// without a pgha role is `Unrestricted`, which the REST write rule refuses (its holder's rights cannot be told).
pub fn caller(transport: &Transport, cluster: &str) -> Result<Principal, Denial> {
    match transport {
        Transport::PlainHttp => Err(Denial {
            kind: "rest_plain_http",
            reason: "REST writes need HTTPS (ha.rest_tls = true) and an admin client certificate".to_string(),
        }),
        Transport::Https(None) => Err(Denial {
            kind: "rest_no_client_cert",
            reason: "REST writes need an admin client certificate (none was presented)".to_string(),
        }),
        // Legacy certificates are judged as unrestricted here and refused by the rule, whatever tls.legacy_certificates
        // says: a REST write is a new right, never granted to certificates without a role.
        Transport::Https(Some(cert)) => principal::of_cert(cert, cluster, LegacyCertificates::Allow).map(|(p, _)| p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::role::{Caller, CertRole, Identity};

    #[test]
    fn caller_table() {
        let role = |r: CertRole, cluster: &str| {
            Transport::Https(Some(CertIdentity::Role(Identity {
                cluster: cluster.into(),
                caller: Caller::new(r, "x"),
            })))
        };
        let cases: Vec<(Transport, Result<Principal, &str>)> = vec![
            (Transport::PlainHttp, Err("rest_plain_http")),
            (Transport::Https(None), Err("rest_no_client_cert")),
            (
                role(CertRole::Admin, "main"),
                Ok(Principal::Cert(Caller::new(CertRole::Admin, "x"))),
            ),
            (
                role(CertRole::Member, "main"),
                Ok(Principal::Cert(Caller::new(CertRole::Member, "x"))),
            ),
            (role(CertRole::Admin, "other"), Err("wrong_cluster")),
            (
                Transport::Https(Some(CertIdentity::Legacy { cn: "old".into() })),
                Ok(Principal::Unrestricted),
            ),
            (
                Transport::Https(Some(CertIdentity::Invalid("bad".into()))),
                Err("bad_identity"),
            ),
        ];
        for (transport, want) in cases {
            let got = caller(&transport, "main").map_err(|d| d.kind);
            assert_eq!(got, want, "{transport:?}");
        }
        for w in RestWrite::ALL {
            let (method, path) = w.name().split_once(' ').expect("METHOD /path");
            assert_eq!(RestWrite::of(method, path), Some(w));
        }
        assert_eq!(RestWrite::of("GET", "/switchover"), None);
    }
}
