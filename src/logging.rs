//! Log set-up: human-readable by default, JSON on request; RUST_LOG overrides the configured filter. openraft's own
//! warnings and errors repeat once per RPC attempt while a peer is unreachable (tens a second), so each of its call
//! sites is let through at most once per [`THROTTLE`]; pgha's own loops log their state changes themselves.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing_subscriber::filter::{DynFilterFn, FilterExt};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

/// At most one line per openraft call site in this period.
pub const THROTTLE: Duration = Duration::from_secs(30);

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
    let throttle = Throttle::default();
    let throttled = DynFilterFn::new(move |meta, _| throttle.allow(meta.target(), meta.callsite(), Instant::now()));
    let filter = filter.and(throttled);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => tracing_subscriber::registry()
            .with(layer.json().with_filter(filter))
            .try_init(),
        LogFormat::Human => tracing_subscriber::registry()
            .with(layer.with_filter(filter))
            .try_init(),
    };
}

/// Remembers when each throttled call site last logged.
#[derive(Default)]
struct Throttle {
    last: Mutex<HashMap<tracing::callsite::Identifier, Instant>>,
}

impl Throttle {
    /// Whether an event of `target` from `callsite` may be logged at `now`.
    fn allow(&self, target: &str, callsite: tracing::callsite::Identifier, now: Instant) -> bool {
        if !target.starts_with("openraft") {
            return true;
        }
        let Ok(mut last) = self.last.lock() else { return true };
        match last.get(&callsite) {
            Some(at) if now.saturating_duration_since(*at) < THROTTLE => false,
            _ => {
                last.insert(callsite, now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Site(#[allow(dead_code)] u8);
    impl tracing::callsite::Callsite for Site {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &tracing::Metadata<'_> {
            unimplemented!("not called by the throttle")
        }
    }
    static A: Site = Site(0);
    static B: Site = Site(1);

    #[test]
    fn openraft_call_sites_are_throttled_ours_are_not() {
        let t = Throttle::default();
        let t0 = Instant::now();
        let a = || tracing::callsite::Identifier(&A);
        let b = || tracing::callsite::Identifier(&B);
        assert!(t.allow("openraft::replication", a(), t0));
        assert!(!t.allow("openraft::replication", a(), t0 + Duration::from_secs(1)));
        assert!(
            t.allow("openraft::core", b(), t0 + Duration::from_secs(1)),
            "another call site"
        );
        assert!(t.allow("openraft::replication", a(), t0 + THROTTLE));
        for _ in 0..3 {
            assert!(
                t.allow("pgha::ha::runner", a(), t0),
                "pgha's own lines are never throttled"
            );
        }
    }
}
