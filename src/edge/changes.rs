//! The edge's last routing changes and VIP moves with their times: a bounded ring for the status page
//! (the ring is pure; `RECENT` is the process's, fed by the proxy's table changes and [`follow_vip`]).

use std::collections::VecDeque;
use std::sync::{LazyLock, Mutex};

use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How many changes the page keeps.
pub const KEEP: usize = 20;

/// What changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A port's routing (the primary, the replicas).
    Route,
    /// The VIP's holder.
    Vip,
}

/// One change with its time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Milliseconds since the epoch.
    pub unix_ms: u64,
    pub kind: ChangeKind,
    pub text: String,
}

/// The last `cap` changes, oldest dropped first.
#[derive(Debug)]
pub struct Ring {
    cap: usize,
    items: VecDeque<Change>,
}

impl Ring {
    pub fn new(cap: usize) -> Ring {
        Ring {
            cap,
            items: VecDeque::with_capacity(cap),
        }
    }

    pub fn push(&mut self, change: Change) {
        if self.items.len() == self.cap {
            self.items.pop_front();
        }
        if self.cap > 0 {
            self.items.push_back(change);
        }
    }

    /// Newest first.
    pub fn newest_first(&self) -> Vec<Change> {
        self.items.iter().rev().cloned().collect()
    }
}

/// The process's ring (one edge per process).
pub static RECENT: LazyLock<Mutex<Ring>> = LazyLock::new(|| Mutex::new(Ring::new(KEEP)));

/// Records a change now.
pub fn record(kind: ChangeKind, text: &str) {
    if let Ok(mut ring) = RECENT.lock() {
        ring.push(Change {
            unix_ms: crate::cluster::store::unix_ms(),
            kind,
            text: text.to_string(),
        });
    }
}

/// The changes kept, newest first.
pub fn recent() -> Vec<Change> {
    RECENT.lock().map(|r| r.newest_first()).unwrap_or_default()
}

/// What a change of the VIP holder from `old` to `new` is: its line for the page, and whether it is a move (the
/// address went from one edge to another; the first holder seen and a release are not).
pub fn vip_change(old: Option<&str>, new: Option<&str>, last_holder: Option<&str>) -> (String, bool) {
    match (old, new) {
        (_, Some(n)) => {
            let moved = last_holder.is_some_and(|l| l != n);
            let from = last_holder.map_or("nobody".to_string(), |l| l.to_string());
            (format!("VIP now held by {n} (last held by {from})"), moved)
        }
        (Some(o), None) => (format!("VIP released by {o}: held by nobody"), false),
        (None, None) => ("VIP held by nobody".to_string(), false),
    }
}

/// Records every change of the VIP holder (and counts the moves) until `token` is cancelled.
pub async fn follow_vip(mut holder: watch::Receiver<Option<String>>, token: CancellationToken) {
    let mut current = holder.borrow_and_update().clone();
    let mut last_holder = current.clone();
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            changed = holder.changed() => if changed.is_err() { return },
        }
        let new = holder.borrow_and_update().clone();
        if new == current {
            continue;
        }
        let (text, moved) = vip_change(current.as_deref(), new.as_deref(), last_holder.as_deref());
        record(ChangeKind::Vip, &text);
        if moved {
            super::metrics::EDGE.vip_moves.inc();
        }
        if new.is_some() {
            last_holder = new.clone();
        }
        current = new;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_newest() {
        let mut ring = Ring::new(2);
        for i in 0..3 {
            ring.push(Change {
                unix_ms: i,
                kind: ChangeKind::Route,
                text: format!("c{i}"),
            });
        }
        let texts: Vec<String> = ring.newest_first().into_iter().map(|c| c.text).collect();
        assert_eq!(texts, ["c2", "c1"]);
    }

    #[test]
    fn vip_moves_are_holder_to_other_holder() {
        let table = [
            (
                None,
                Some("e1"),
                None,
                "VIP now held by e1 (last held by nobody)",
                false,
            ),
            (
                Some("e1"),
                None,
                Some("e1"),
                "VIP released by e1: held by nobody",
                false,
            ),
            (
                None,
                Some("e2"),
                Some("e1"),
                "VIP now held by e2 (last held by e1)",
                true,
            ),
            (
                Some("e1"),
                Some("e2"),
                Some("e1"),
                "VIP now held by e2 (last held by e1)",
                true,
            ),
            (
                None,
                Some("e1"),
                Some("e1"),
                "VIP now held by e1 (last held by e1)",
                false,
            ),
        ];
        for (old, new, last, text, moved) in table {
            assert_eq!(
                vip_change(old, new, last),
                (text.to_string(), moved),
                "{old:?} -> {new:?}"
            );
        }
    }
}
