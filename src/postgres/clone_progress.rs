//! The stall rule of replica creation and restores (pure): progress is the data directory growing or the method
//! writing a line; no progress for the stall timeout aborts, however long the whole copy takes.

use std::time::Duration;

/// One observation of a running clone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Time since the clone started.
    pub at: Duration,
    /// Bytes under the data directory.
    pub bytes: u64,
    /// Output the method has written so far (lines; for a recovery, the server log's bytes): any monotonic count.
    pub lines: u64,
}

/// What to do after a sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Keep going; `progressed` when this sample showed progress.
    Continue {
        /// The sample showed progress.
        progressed: bool,
    },
    /// Kill the method: the reason, for the log and the error.
    Abort(String),
}

/// Tracks progress of one clone.
#[derive(Clone, Debug)]
pub struct StallWatch {
    timeout: Duration,
    last_progress: Duration,
    max_bytes: u64,
    lines: u64,
}

impl StallWatch {
    /// A watch that aborts after `timeout` without progress, counted from the start.
    pub fn new(timeout: Duration) -> StallWatch {
        StallWatch {
            timeout,
            last_progress: Duration::ZERO,
            max_bytes: 0,
            lines: 0,
        }
    }

    /// Progress = more bytes than ever seen before (a method that deletes and rewrites files does not count twice)
    /// or a new output line.
    pub fn observe(&mut self, s: Sample) -> Verdict {
        let progressed = s.bytes > self.max_bytes || s.lines > self.lines;
        self.max_bytes = self.max_bytes.max(s.bytes);
        self.lines = self.lines.max(s.lines);
        if progressed {
            self.last_progress = s.at;
            return Verdict::Continue { progressed };
        }
        let idle = s.at.saturating_sub(self.last_progress);
        if idle >= self.timeout {
            return Verdict::Abort(format!(
                "no progress for {} ms (data directory at {}, {} output lines; postgresql.clone_stall_timeout_ms = {})",
                idle.as_millis(),
                bytes_text(self.max_bytes),
                self.lines,
                self.timeout.as_millis()
            ));
        }
        Verdict::Continue { progressed }
    }
}

/// `bytes` as a short human text: `512 B`, `12.0 MiB`, `1.2 GiB`.
pub fn bytes_text(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// How often a running copy's size is logged (while it progresses).
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Whether a progressing copy logs its size at `at`: the first progress, then every [`LOG_EVERY`] (not per sample).
pub fn log_due(last_logged: Option<Duration>, at: Duration) -> bool {
    last_logged.is_none_or(|last| at.saturating_sub(last) >= LOG_EVERY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(at_ms: u64, bytes: u64, lines: u64) -> Sample {
        Sample {
            at: Duration::from_millis(at_ms),
            bytes,
            lines,
        }
    }

    #[test]
    fn stall_table() {
        let go = |progressed| Verdict::Continue { progressed };
        // (samples, verdict of the last one) with a 1000 ms timeout
        let cases: Vec<(&str, Vec<Sample>, Option<Verdict>)> = vec![
            ("nothing yet, within the timeout", vec![s(900, 0, 0)], Some(go(false))),
            ("nothing at all for the timeout", vec![s(1000, 0, 0)], None),
            (
                "growing slowly",
                vec![s(900, 1, 0), s(1800, 2, 0), s(2700, 3, 0)],
                Some(go(true)),
            ),
            (
                "lines only",
                vec![s(900, 0, 1), s(1800, 0, 2), s(2700, 0, 3)],
                Some(go(true)),
            ),
            (
                "grew, then stopped",
                vec![s(500, 100, 0), s(1400, 100, 0)],
                Some(go(false)),
            ),
            (
                "grew, then stopped too long",
                vec![s(500, 100, 0), s(1500, 100, 0)],
                None,
            ),
            (
                "shrank and regrew below the maximum",
                vec![s(500, 100, 0), s(1000, 50, 0), s(1500, 90, 0)],
                None,
            ),
            (
                "regrew past the maximum",
                vec![s(500, 100, 0), s(1000, 50, 0), s(1400, 101, 0)],
                Some(go(true)),
            ),
        ];
        for (name, samples, want) in cases {
            let mut w = StallWatch::new(Duration::from_millis(1000));
            let last = samples.iter().map(|x| w.observe(*x)).last();
            match (want, last) {
                (Some(want), Some(got)) => assert_eq!(got, want, "{name}"),
                (None, Some(Verdict::Abort(reason))) => {
                    assert!(reason.contains("no progress for"), "{name}: {reason}")
                }
                (want, got) => panic!("{name}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn sizes() {
        for (bytes, text) in [
            (0, "0 B"),
            (1023, "1023 B"),
            (1536, "1.5 KiB"),
            (16 << 20, "16.0 MiB"),
            ((12 << 30) / 10, "1.2 GiB"),
            (2 << 40, "2.0 TiB"),
        ] {
            assert_eq!(bytes_text(bytes), text, "{bytes}");
        }
    }

    #[test]
    fn log_cadence() {
        let secs = Duration::from_secs;
        for (last, at, due) in [
            (None, secs(0), true),
            (Some(secs(0)), secs(5), false),
            (Some(secs(0)), secs(10), true),
            (Some(secs(30)), secs(39), false),
            (Some(secs(30)), secs(41), true),
        ] {
            assert_eq!(log_due(last, at), due, "{last:?} {at:?}");
        }
    }
}

/// How far a replica creation (or a bootstrap restore) has come, as the member key publishes it (`ctl list` shows it).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CloneProgress {
    /// The method running (`basebackup`, `pgbackrest`, a `[postgresql.create_replica.<name>]`).
    pub method: String,
    /// Bytes under the data directory so far.
    pub bytes: u64,
    /// Seconds since the method started.
    pub elapsed_s: u64,
}
