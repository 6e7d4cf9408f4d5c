//! What every long-running role shares at its edge: the TLS identity from the config, the check that its own
//! certificate fits its role, and the stop signals.

pub mod own_cert;
pub mod signals;
pub mod tls;
