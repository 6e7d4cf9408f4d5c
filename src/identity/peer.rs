//! What a certificate says about its holder: a role identity, nothing (a legacy certificate), or garbage.

use x509_parser::extensions::GeneralName;

use super::role::{Identity, SCHEME};

/// The identity part of a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertIdentity {
    /// A role certificate: exactly one `pgha://<cluster>/<role>/<name>` URI SAN.
    Role(Identity),
    /// No pgha URI SAN: issued before roles existed (or by other tools). `cn` is for log lines only.
    Legacy { cn: String },
    /// A pgha URI SAN that does not parse, several of them, or an unparsable certificate: always refused.
    Invalid(String),
}

/// Reads the identity of a DER certificate (the end-entity one a peer presented).
pub fn of_der(der: &[u8]) -> CertIdentity {
    let x509 = match x509_parser::parse_x509_certificate(der) {
        Ok((_, x509)) => x509,
        Err(e) => return CertIdentity::Invalid(format!("unparsable certificate: {e}")),
    };
    let cn = x509
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or("")
        .to_string();
    let sans = match x509.subject_alternative_name() {
        Ok(Some(ext)) => ext.value.general_names.clone(),
        Ok(None) => Vec::new(),
        Err(e) => return CertIdentity::Invalid(format!("unreadable subject alternative names: {e}")),
    };
    let uris: Vec<&str> = sans
        .iter()
        .filter_map(|g| match g {
            GeneralName::URI(uri) if uri.starts_with(SCHEME) => Some(*uri),
            _ => None,
        })
        .collect();
    match uris.as_slice() {
        [] => CertIdentity::Legacy { cn },
        [uri] => match Identity::parse(uri) {
            Some(Ok(identity)) => CertIdentity::Role(identity),
            Some(Err(e)) => CertIdentity::Invalid(e),
            None => CertIdentity::Invalid(format!("{uri:?} is not a pgha identity")),
        },
        several => CertIdentity::Invalid(format!("{} pgha identities in one certificate", several.len())),
    }
}
