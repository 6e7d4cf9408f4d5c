//! `pgha_certificate_expiry_timestamp_seconds`: the notAfter of the node certificate this process loaded, so an
//! alert can fire weeks before TLS between nodes stops working.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::{LazyLock, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::gauge;

/// Certificate path -> notAfter (unix seconds) of every node certificate loaded by this process.
static LOADED: LazyLock<Mutex<BTreeMap<String, i64>>> = LazyLock::new(|| Mutex::new(BTreeMap::new()));

/// Records a loaded certificate's end of validity.
pub fn loaded(path: &Path, not_after: time::OffsetDateTime) {
    if let Ok(mut map) = LOADED.lock() {
        map.insert(path.display().to_string(), not_after.unix_timestamp());
    }
}

/// Reports what [`loaded`] recorded (nothing with `tls.plaintext`).
#[derive(Debug)]
pub struct CertCollector;

impl Collector for CertCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let samples: Vec<_> = LOADED
            .lock()
            .map(|m| m.iter().map(|(p, t)| (vec![("cert", p.clone())], *t)).collect())
            .unwrap_or_default();
        gauge(
            &mut enc,
            "certificate_expiry_timestamp_seconds",
            "End of the validity of the node certificate (notAfter) as unix seconds",
            &samples,
        )
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::registry::Registry;

    #[test]
    fn loaded_certificates_are_reported_with_their_path() {
        let not_after = time::OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("a time");
        super::loaded(std::path::Path::new("/etc/pgha/tls/db1.pem"), not_after);
        let mut r = Registry::with_prefix("pgha");
        r.register_collector(Box::new(super::CertCollector));
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &r).expect("encode");
        let line = "pgha_certificate_expiry_timestamp_seconds{cert=\"/etc/pgha/tls/db1.pem\"} 1900000000\n";
        assert!(out.contains(line), "{out}");
    }
}
