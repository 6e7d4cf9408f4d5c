//! Two writable primaries, proven from the writability pollers' answers (pure). A run of writable answers on ONE
//! connection means writable all along (a primary cannot enter recovery without a restart, which ends the
//! connection); two runs of different hosts that overlap in (shared, same-machine) server time are two primaries.
//! Kept incrementally: a long run holds the runs, not every answer.

use std::collections::BTreeMap;

/// One answer of a db host's poller.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Index of the db host.
    pub node: usize,
    /// Connection number on that host (a new connection starts a new run).
    pub conn: u64,
    /// The server's clock, epoch seconds.
    pub at: f64,
    /// Writable (false also when the host did not answer).
    pub writable: bool,
}

/// A writable stretch of one host on one connection, in server time.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Run {
    node: usize,
    from: f64,
    to: f64,
}

/// Two overlapping runs; `key` identifies the pair across checks (their hosts and start times).
#[derive(Clone, Debug, PartialEq)]
pub struct Overlap {
    pub key: (usize, u64, usize, u64),
    pub text: String,
}

/// Every host's writable runs so far.
#[derive(Clone, Debug, Default)]
pub struct WritableRuns {
    open: BTreeMap<usize, (u64, Run)>,
    closed: Vec<Run>,
}

impl WritableRuns {
    /// Adds one answer (in order per host; hosts may interleave).
    pub fn add(&mut self, s: Sample) {
        match self.open.get_mut(&s.node) {
            Some((conn, run)) if *conn == s.conn && s.writable => run.to = s.at,
            _ => {
                if let Some((_, run)) = self.open.remove(&s.node) {
                    self.closed.push(run);
                }
                if s.writable {
                    let run = Run {
                        node: s.node,
                        from: s.at,
                        to: s.at,
                    };
                    self.open.insert(s.node, (s.conn, run));
                }
            }
        }
    }

    /// Every pair of runs of different hosts that overlap; `names` names the hosts.
    pub fn overlaps(&self, names: &[&str]) -> Vec<Overlap> {
        let mut runs: Vec<Run> = self
            .closed
            .iter()
            .copied()
            .chain(self.open.values().map(|(_, r)| *r))
            .collect();
        runs.sort_by(|a, b| a.from.total_cmp(&b.from));
        let name = |n: usize| names.get(n).copied().unwrap_or("?");
        let mut found = Vec::new();
        for (i, a) in runs.iter().enumerate() {
            // Sorted by start: only the runs starting before `a` ends can overlap it.
            for b in runs[i + 1..].iter().take_while(|b| b.from <= a.to) {
                if a.node != b.node {
                    found.push(Overlap {
                        key: (a.node, a.from.to_bits(), b.node, b.from.to_bits()),
                        text: format!(
                            "{} writable from {:.3} to {:.3} and {} from {:.3} to {:.3} (server clock, epoch s)",
                            name(a.node),
                            a.from,
                            a.to,
                            name(b.node),
                            b.from,
                            b.to
                        ),
                    });
                }
            }
        }
        found
    }
}

/// The first two writable primaries in `samples`, if any.
pub fn two_writable(samples: &[Sample], names: &[&str]) -> Option<String> {
    let mut runs = WritableRuns::default();
    samples.iter().for_each(|s| runs.add(*s));
    runs.overlaps(names).into_iter().next().map(|o| o.text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DBS: [&str; 3] = ["db1", "db2", "db3"];

    fn x(node: usize, conn: u64, at: f64, writable: bool) -> Sample {
        Sample {
            node,
            conn,
            at,
            writable,
        }
    }

    #[test]
    fn overlapping_writable_runs_are_two_primaries() {
        // db1 writable 0..2 on one connection, db2 from 3: a clean handover.
        let clean = [
            x(0, 1, 0.0, true),
            x(1, 1, 0.5, false),
            x(0, 1, 2.0, true),
            x(1, 1, 3.0, true),
        ];
        assert_eq!(two_writable(&clean, &DBS), None);
        // db2 writable at 1.0 inside db1's run 0..2: two primaries.
        let two = [x(0, 1, 0.0, true), x(1, 1, 1.0, true), x(0, 1, 2.0, true)];
        assert!(two_writable(&two, &DBS).is_some_and(|m| m.contains("db1") && m.contains("db2")));
        // A new connection breaks the run (db1 restarted in between): no proof of overlap.
        let restarted = [x(0, 1, 0.0, true), x(1, 1, 1.0, true), x(0, 2, 2.0, true)];
        assert_eq!(two_writable(&restarted, &DBS), None);
        // A read-only (or missing) answer breaks the run too.
        let demoted = [
            x(0, 1, 0.0, true),
            x(0, 1, 0.9, false),
            x(1, 1, 1.0, true),
            x(0, 1, 2.0, false),
        ];
        assert_eq!(two_writable(&demoted, &DBS), None);
    }

    #[test]
    fn incremental_checks_keep_the_pair_key() {
        let mut runs = WritableRuns::default();
        runs.add(x(2, 1, 10.0, true));
        runs.add(x(0, 4, 11.0, true));
        assert!(runs.overlaps(&DBS).is_empty(), "single points do not overlap");
        runs.add(x(2, 1, 12.0, true));
        let first = runs.overlaps(&DBS);
        assert_eq!(first.len(), 1);
        assert!(first[0].text.starts_with("db3 writable from 10.000 to 12.000 and db1"));
        // The run grows: the same pair, the same key.
        runs.add(x(2, 1, 13.0, true));
        assert_eq!(runs.overlaps(&DBS)[0].key, first[0].key);
        // Runs long past do not pair with later ones.
        runs.add(x(2, 1, 14.0, false));
        runs.add(x(1, 1, 20.0, true));
        runs.add(x(1, 1, 21.0, true));
        assert_eq!(runs.overlaps(&DBS).len(), 1);
    }
}
