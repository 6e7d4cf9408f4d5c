//! Free TCP ports on 127.0.0.1 for local clusters, taken below the kernel's ephemeral range.
//!
//! A port from `bind(0)` is released before the child binds it, and in that gap the kernel may hand the same port
//! to any outgoing connection (a replication stream, a gRPC dial) or to another cluster's `bind(0)`: the child then
//! fails with "address in use", or worse, a Raft peer dials someone else's HTTP server. Ports below the ephemeral
//! range are never chosen by the kernel, and each process walks its own stretch of them.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port handed out (above the well-known and most registered service ports).
const FLOOR: u32 = 15000;
/// Fewer usable ports than this below the ephemeral range: fall back to `bind(0)`.
const MIN_WINDOW: u32 = 2000;

/// Ports this process has tried so far (the walk continues where it stopped).
static WALKED: AtomicU32 = AtomicU32::new(0);

/// The window `[low, high)` of ports to walk, given `/proc/sys/net/ipv4/ip_local_port_range` ("32768\t60999").
/// None when the ephemeral range leaves too little room below it.
pub fn window(local_port_range: &str) -> Option<(u32, u32)> {
    let ephemeral_low: u32 = local_port_range.split_whitespace().next()?.parse().ok()?;
    (ephemeral_low >= FLOOR + MIN_WINDOW).then_some((FLOOR, ephemeral_low))
}

/// The `step`-th candidate for process `pid` in `[low, high)`: processes start at different offsets so concurrent
/// test binaries and demos rarely meet.
pub fn candidate(low: u32, high: u32, pid: u32, step: u32) -> u16 {
    let size = u64::from(high - low);
    let start = u64::from(pid) * 7919 % size;
    (u64::from(low) + (start + u64::from(step)) % size) as u16
}

/// Reserves `n` distinct free ports on 127.0.0.1 (each bound until all are found, then released for the children).
pub fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let Some((low, high)) = window(&range) else {
        return ephemeral(n);
    };
    let mut held: Vec<TcpListener> = Vec::with_capacity(n);
    // Bounded: one pass over the window at most.
    for _ in 0..(high - low) {
        if held.len() == n {
            break;
        }
        let step = WALKED.fetch_add(1, Ordering::Relaxed);
        let port = candidate(low, high, std::process::id(), step);
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            held.push(listener);
        }
    }
    if held.len() < n {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!(
                "only {} of {n} free ports between {low} and {high} on 127.0.0.1",
                held.len()
            ),
        ));
    }
    held.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

/// `bind(0)` ports, for machines whose ephemeral range starts too low to leave a window below it.
fn ephemeral(n: usize) -> std::io::Result<Vec<u16>> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    held.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_sits_below_the_ephemeral_range() {
        let cases = [
            ("32768\t60999\n", Some((15000, 32768))),
            ("1024 65535", None),
            ("17000 60999", Some((15000, 17000))),
            ("16999 60999", None),
            ("", None),
            ("garbage", None),
        ];
        for (input, want) in cases {
            assert_eq!(window(input), want, "{input:?}");
        }
    }

    #[test]
    fn candidates_stay_in_the_window_and_differ_by_process() {
        let (low, high) = (15000, 32768);
        for pid in [1, 4242, u32::MAX] {
            for step in [0, 1, 17767, 17768, u32::MAX] {
                let p = u32::from(candidate(low, high, pid, step));
                assert!((low..high).contains(&p), "pid {pid} step {step}: {p}");
            }
        }
        assert_ne!(candidate(low, high, 100, 0), candidate(low, high, 101, 0));
        assert_ne!(candidate(low, high, 100, 0), candidate(low, high, 100, 1));
    }

    #[test]
    fn reserved_ports_are_distinct_and_outside_the_ephemeral_range() {
        let ports = free_ports(20).expect("ports");
        let unique: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(unique.len(), 20);
        let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
        if let Some((low, high)) = window(&range) {
            assert!(ports.iter().all(|&p| (low..high).contains(&u32::from(p))), "{ports:?}");
        }
    }
}
