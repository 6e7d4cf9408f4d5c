//! Log set-up: human-readable by default, JSON on request; RUST_LOG overrides the configured filter.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber (stderr). A second call is a no-op.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // openraft logs every election at info and more: keep its chatter at warn unless asked.
    let filter = if std::env::var_os("RUST_LOG").is_none() {
        filter.add_directive("openraft=warn".parse().expect("static directive"))
    } else {
        filter
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.try_init(),
    };
}
