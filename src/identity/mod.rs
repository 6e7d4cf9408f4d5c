//! Who a peer is: the role and name a certificate carries (`pgha://<cluster>/<role>/<name>`), read from it, and the
//! rule for certificates issued before roles. Used by `cert`, `tls` and the DCS's authorization.

pub mod peer;
pub mod role;

use serde::{Deserialize, Serialize};

pub use role::{Caller, CertRole, Identity};

/// The rule for certificates without a pgha role (`tls.legacy_certificates`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LegacyCertificates {
    /// They keep the full rights every certificate had before roles (this release's default, for rotation).
    #[default]
    Allow,
    /// They are refused with a reason naming the re-issue command.
    Deny,
}
