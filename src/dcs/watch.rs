//! Server side of a watch: retained history first, then live events, in revision order and without gaps.
//!
//! A watcher that falls behind the broadcast re-reads from history; one whose revisions are no longer retained (or
//! whose member installed a snapshot) receives `compact_revision` and the stream ends: it must re-read and re-watch.

use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::state_machine::{SmEvent, StateMachineStore};
use super::types::Event;
use crate::proto;

/// Interval of empty progress messages, so a client notices a dead stream quickly.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);

/// Which keys a watch follows.
#[derive(Clone, Debug)]
pub struct WatchFilter {
    pub key: Vec<u8>,
    pub prefix: bool,
}

impl WatchFilter {
    fn matches(&self, e: &Event) -> bool {
        if self.prefix {
            e.kv.key.starts_with(&self.key)
        } else {
            e.kv.key == self.key
        }
    }
}

type Item = Result<proto::WatchResponse, tonic::Status>;

/// Starts a watch task; the returned stream ends when the client goes away or the watch is compacted.
pub fn start(sm: StateMachineStore, filter: WatchFilter, start_revision: i64) -> ReceiverStream<Item> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(run(sm, filter, start_revision, tx));
    ReceiverStream::new(rx)
}

fn response(events: Vec<Event>, revision: i64) -> Item {
    Ok(proto::WatchResponse {
        events: events.into_iter().map(Into::into).collect(),
        compact_revision: 0,
        revision,
    })
}

fn compacted(compact_revision: i64, revision: i64) -> Item {
    Ok(proto::WatchResponse {
        events: Vec::new(),
        compact_revision: compact_revision.max(1),
        revision,
    })
}

async fn run(sm: StateMachineStore, filter: WatchFilter, start_revision: i64, tx: mpsc::Sender<Item>) {
    let mut next = start_revision;
    'resubscribe: loop {
        let (history, mut rx, revision) = match sm.watch_from(next) {
            Ok(parts) => parts,
            Err(c) => {
                let _ = tx.send(compacted(c.compacted, sm.revision())).await;
                return;
            }
        };
        if next <= 0 {
            next = revision + 1;
            // Tell the client where "now" was, so it can resume from there on another member.
            if tx.send(response(Vec::new(), revision)).await.is_err() {
                return;
            }
        }
        let mut backlog: Vec<Event> = history.into_iter().filter(|e| filter.matches(e)).collect();
        if let Some(last) = backlog.last() {
            next = last.revision() + 1;
        }
        // Send the backlog per revision so a transaction is never split across responses.
        while !backlog.is_empty() {
            let rev = backlog[0].revision();
            let split = backlog
                .iter()
                .position(|e| e.revision() != rev)
                .unwrap_or(backlog.len());
            let rest = backlog.split_off(split);
            if tx.send(response(backlog, revision)).await.is_err() {
                return;
            }
            backlog = rest;
        }
        let mut progress = tokio::time::interval(PROGRESS_INTERVAL);
        progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Ok(SmEvent::Events(events)) => {
                        let Some(first) = events.first() else { continue };
                        if first.revision() < next {
                            continue; // already delivered from history
                        }
                        next = first.revision() + 1;
                        let matching: Vec<Event> = events.iter().filter(|e| filter.matches(e)).cloned().collect();
                        if !matching.is_empty() && tx.send(response(matching, next - 1)).await.is_err() {
                            return;
                        }
                    }
                    Ok(SmEvent::Reset { revision }) => {
                        let _ = tx.send(compacted(revision, revision)).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue 'resubscribe,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = progress.tick() => {
                    if tx.send(response(Vec::new(), sm.revision())).await.is_err() {
                        return;
                    }
                }
                _ = tx.closed() => return,
            }
        }
    }
}
