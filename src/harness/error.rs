//! What can go wrong while laying out, starting or observing a cluster under test (loopback or six hosts).

use std::time::Duration;

/// One error type for the whole harness.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error(transparent)]
    Netns(#[from] crate::netns::NetnsError),
    #[error(transparent)]
    Cert(#[from] crate::cert::CertError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Client(#[from] crate::dcs::client::ClientError),
    #[error("not ready within {0:?}: {1}")]
    NotReady(Duration, String),
    #[error("{0} needs the six-host topology (run without --local, as root)")]
    Unsupported(String),
    #[error("no host or node {0}")]
    NoHost(String),
}

/// Maps an I/O error to [`HarnessError::Io`] saying what was being done.
pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
    let what = what.into();
    move |source| HarnessError::Io { what, source }
}
