//! Pure measurements of one failover run from the probe's acknowledgements and the writability samples, and the
//! per-scenario summary (median/p95/max).

use std::time::{Duration, Instant};

use serde::Serialize;

use super::stats::{summarize, Summary};

/// The write gap around a fault at `t0` as (the acknowledgement before it, the one that ended it): the longest
/// pause from the last acknowledgement at or before `t0` on (the outage may start a little after the fault is
/// injected, e.g. when a frozen process is detected).
pub fn gap_window(acked: &[(i64, Instant)], t0: Instant) -> Option<(Instant, Instant)> {
    let start = acked.iter().rposition(|(_, t)| *t <= t0)?;
    acked[start..]
        .windows(2)
        .max_by_key(|w| w[1].1.duration_since(w[0].1))
        .map(|w| (w[0].1, w[1].1))
}

/// Write gap around a fault at `t0` (see [`gap_window`]).
pub fn gap_after(acked: &[(i64, Instant)], t0: Instant) -> Option<Duration> {
    gap_window(acked, t0).map(|(from, to)| to.duration_since(from))
}

/// When the first write acknowledged after the outage came, counted from `t0`: the end of the longest pause
/// after the last acknowledgement before `t0`.
pub fn first_write_after_outage(acked: &[(i64, Instant)], t0: Instant) -> Option<Duration> {
    gap_window(acked, t0).map(|(_, to)| to.saturating_duration_since(t0))
}

/// Most hosts writable at the same time, from per-host samples `(time, writable)` sorted by time. A host counts
/// as writable from a writable sample until its next sample (or for `hold` if there is none): a host that stops
/// answering while writable is still counted for `hold`, the pessimistic reading.
pub fn max_writable(samples: &[Vec<(Instant, bool)>], hold: Duration) -> usize {
    // Writable intervals per host, then a sweep over their starts and ends.
    let mut events: Vec<(Instant, i32)> = Vec::new();
    for host in samples {
        for (i, (t, writable)) in host.iter().enumerate() {
            if !writable {
                continue;
            }
            let end = host.get(i + 1).map_or(*t + hold, |(n, _)| (*n).min(*t + hold));
            events.push((*t, 1));
            events.push((end, -1));
        }
    }
    // Ends before starts at the same instant: touching intervals do not overlap.
    events.sort_by_key(|(t, d)| (*t, *d));
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in events {
        now += d;
        most = most.max(now);
    }
    most.max(0) as usize
}

/// One run in the six-host topology.
#[derive(Debug, Clone, Serialize)]
pub struct NetRun {
    pub scenario: super::scenario::Scenario,
    pub write_gap_ms: Option<f64>,
    /// Longest pause of the replica-port reader after the fault (with `--reader`).
    pub read_gap_ms: Option<f64>,
    pub first_write_ms: Option<f64>,
    pub new_leader_ms: Option<f64>,
    pub vip_move_ms: Option<f64>,
    pub old_leader: String,
    pub new_leader: String,
    pub old_vip_holder: String,
    pub new_vip_holder: String,
    pub acknowledged: usize,
    pub lost_acknowledged: usize,
    pub max_writable: usize,
    /// Per-phase timings from the hosts' logs.
    pub phases: super::phases::Phases,
    /// The finer hand-off steps from the hosts' logs.
    pub steps: Vec<super::steps::Step>,
}

/// Summary of one scenario's runs.
#[derive(Debug, Clone, Serialize)]
pub struct NetSummary {
    pub scenario: super::scenario::Scenario,
    pub runs: usize,
    pub write_gap: Option<Summary>,
    pub read_gap: Option<Summary>,
    pub first_write: Option<Summary>,
    pub new_leader: Option<Summary>,
    pub vip_move: Option<Summary>,
    pub lost_acknowledged: usize,
    pub max_writable: usize,
    pub detect: Option<Summary>,
    pub elect: Option<Summary>,
    pub promote: Option<Summary>,
    pub route: Option<Summary>,
    pub vip: Option<Summary>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Milliseconds of an optional duration (for the JSON).
pub fn opt_ms(d: Option<Duration>) -> Option<f64> {
    d.map(ms)
}

fn summary_of(runs: &[&NetRun], f: impl Fn(&NetRun) -> Option<f64>) -> Option<Summary> {
    let v: Vec<Duration> = runs
        .iter()
        .filter_map(|r| f(r))
        .map(|m| Duration::from_secs_f64(m / 1000.0))
        .collect();
    summarize(&v)
}

/// Per-scenario summaries in the order of `scenarios`.
pub fn summarize_runs(scenarios: &[super::scenario::Scenario], runs: &[NetRun]) -> Vec<NetSummary> {
    scenarios
        .iter()
        .map(|s| {
            let of: Vec<&NetRun> = runs.iter().filter(|r| r.scenario == *s).collect();
            NetSummary {
                scenario: *s,
                runs: of.len(),
                write_gap: summary_of(&of, |r| r.write_gap_ms),
                read_gap: summary_of(&of, |r| r.read_gap_ms),
                first_write: summary_of(&of, |r| r.first_write_ms),
                new_leader: summary_of(&of, |r| r.new_leader_ms),
                vip_move: summary_of(&of, |r| r.vip_move_ms),
                lost_acknowledged: of.iter().map(|r| r.lost_acknowledged).sum(),
                max_writable: of.iter().map(|r| r.max_writable).max().unwrap_or(0),
                detect: summary_of(&of, |r| r.phases.detect_ms),
                elect: summary_of(&of, |r| r.phases.elect_ms),
                promote: summary_of(&of, |r| r.phases.promote_ms),
                route: summary_of(&of, |r| r.phases.route_ms),
                vip: summary_of(&of, |r| r.phases.vip_ms),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::scenario::Scenario;

    fn at(t0: Instant, ms: &[u64]) -> Vec<(i64, Instant)> {
        ms.iter()
            .enumerate()
            .map(|(i, m)| (i as i64, t0 + Duration::from_millis(*m)))
            .collect()
    }

    #[test]
    fn gap_and_first_write_around_the_fault() {
        let base = Instant::now();
        let acked = at(base, &[0, 20, 40, 60, 900, 920]);
        let t0 = base + Duration::from_millis(50);
        assert_eq!(gap_after(&acked, t0), Some(Duration::from_millis(840)));
        assert_eq!(first_write_after_outage(&acked, t0), Some(Duration::from_millis(850)));
        // A long pause before the fault does not count.
        let acked = at(base, &[0, 2000, 2020, 2040]);
        assert_eq!(
            gap_after(&acked, base + Duration::from_millis(2010)),
            Some(Duration::from_millis(20))
        );
        // Nothing acknowledged before the fault: nothing to measure.
        assert_eq!(gap_after(&acked, base - Duration::from_millis(1)), None);
    }

    #[test]
    fn overlapping_writable_hosts() {
        let b = Instant::now();
        let t = |ms: u64| b + Duration::from_millis(ms);
        let hold = Duration::from_millis(300);
        // A stays writable until 100, B writable from 100: a hand-over, never two.
        let a = vec![(t(0), true), (t(50), true), (t(100), false)];
        let bb = vec![(t(0), false), (t(100), true), (t(150), true)];
        assert_eq!(max_writable(&[a.clone(), bb.clone()], hold), 1);
        // B writable from 80 while A still answered writable at 50 (until 100): two.
        let bb2 = vec![(t(0), false), (t(80), true)];
        assert_eq!(max_writable(&[a, bb2], hold), 2);
        // A stops answering while writable: counted for `hold` only.
        let a = vec![(t(0), true)];
        assert_eq!(max_writable(&[a.clone(), vec![(t(400), true)]], hold), 1);
        assert_eq!(max_writable(&[a, vec![(t(200), true)]], hold), 2);
        assert_eq!(max_writable(&[], hold), 0);
    }

    #[test]
    fn summaries_per_scenario() {
        let run = |s, gap: f64, lost, w| NetRun {
            scenario: s,
            write_gap_ms: Some(gap),
            read_gap_ms: None,
            first_write_ms: Some(gap),
            new_leader_ms: None,
            vip_move_ms: None,
            old_leader: "db1".into(),
            new_leader: "db2".into(),
            old_vip_holder: "edge1".into(),
            new_vip_holder: "edge1".into(),
            acknowledged: 10,
            lost_acknowledged: lost,
            max_writable: w,
            phases: crate::bench::phases::Phases {
                detect_ms: Some(gap / 2.0),
                ..Default::default()
            },
            steps: Vec::new(),
        };
        let runs = vec![
            run(Scenario::PrimaryCrash, 100.0, 0, 1),
            run(Scenario::PrimaryCrash, 300.0, 2, 1),
            run(Scenario::PrimaryCrash, 200.0, 0, 2),
            run(Scenario::EdgeCrash, 50.0, 0, 1),
        ];
        let s = summarize_runs(
            &[Scenario::PrimaryCrash, Scenario::EdgeCrash, Scenario::Switchover],
            &runs,
        );
        assert_eq!(s[0].runs, 3);
        let gap = s[0].write_gap.expect("gaps");
        assert_eq!((gap.p50_ms, gap.p95_ms, gap.max_ms), (200.0, 300.0, 300.0));
        assert_eq!((s[0].lost_acknowledged, s[0].max_writable), (2, 2));
        assert!(s[0].new_leader.is_none());
        assert_eq!(s[0].detect.expect("detect").p50_ms, 100.0);
        assert!(s[0].promote.is_none());
        assert_eq!(s[1].runs, 1);
        assert_eq!(s[2].runs, 0);
        assert!(s[2].write_gap.is_none());
    }
}
