//! `bench chaos`'s report: one record per step, the summary per fault kind (pure) and its table.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::stats::{summarize, Summary};
use crate::ctl::output::table_of;

/// One step and what the checks found after it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepRecord {
    /// 1-based.
    pub step: usize,
    /// The step as scheduled (`freeze primary + flap VIP holder for 8000 ms`).
    pub faults: String,
    /// The rows of the summary it counts in.
    pub kinds: Vec<String>,
    /// Which host each fault hit (`freeze primary = db2`).
    pub hosts: Vec<String>,
    pub primary_before: String,
    pub vip_before: String,
    pub primary_after: Option<String>,
    pub vip_after: Option<String>,
    /// From the end of the faults until every db member streams from the leader.
    pub rejoin_ms: Option<f64>,
    /// From the end of the faults until every edge is healthy and the VIP settled.
    pub settle_ms: Option<f64>,
    /// Longest pause of acknowledged writes through the VIP from the step's start until the checks.
    pub write_gap_ms: Option<f64>,
    /// Acknowledged ids first found missing on the primary after this step.
    pub lost_acknowledged: usize,
    pub violations: Vec<String>,
}

/// The summary of the steps of one fault kind (a step with a db and an edge fault counts in both rows).
#[derive(Debug, Clone, Serialize)]
pub struct KindSummary {
    pub kind: String,
    pub steps: usize,
    pub violations: usize,
    pub lost_acknowledged: usize,
    pub rejoin: Option<Summary>,
    pub write_gap: Option<Summary>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct ChaosReport {
    pub topology: &'static str,
    pub replication: String,
    pub seed: u64,
    pub steps_planned: usize,
    pub ttl_ms: u64,
    pub seconds: f64,
    /// Acknowledged writes through the VIP in the whole run, and those missing on the final primary.
    pub acknowledged: usize,
    pub lost_acknowledged: usize,
    pub summary: Vec<KindSummary>,
    pub steps: Vec<StepRecord>,
    /// Every violation, each naming its step (or the final check).
    pub violations: Vec<String>,
    /// Where the hosts' logs were kept (on failure, or when asked).
    pub logs: Option<String>,
}

fn durations(v: impl Iterator<Item = Option<f64>>) -> Vec<Duration> {
    v.flatten().map(|ms| Duration::from_secs_f64(ms / 1000.0)).collect()
}

fn summary_of(kind: String, steps: &[&StepRecord]) -> KindSummary {
    KindSummary {
        kind,
        steps: steps.len(),
        violations: steps.iter().map(|s| s.violations.len()).sum(),
        lost_acknowledged: steps.iter().map(|s| s.lost_acknowledged).sum(),
        rejoin: summarize(&durations(steps.iter().map(|s| s.rejoin_ms))),
        write_gap: summarize(&durations(steps.iter().map(|s| s.write_gap_ms))),
    }
}

/// One row per fault kind (by name), then `all`.
pub fn summarize_kinds(steps: &[StepRecord]) -> Vec<KindSummary> {
    let mut by_kind: BTreeMap<&str, Vec<&StepRecord>> = BTreeMap::new();
    for s in steps {
        for k in &s.kinds {
            by_kind.entry(k.as_str()).or_default().push(s);
        }
    }
    let mut rows: Vec<KindSummary> = by_kind
        .into_iter()
        .map(|(k, v)| summary_of(k.to_string(), &v))
        .collect();
    rows.push(summary_of("all".into(), &steps.iter().collect::<Vec<_>>()));
    rows
}

fn p50_max(s: Option<Summary>) -> String {
    s.map_or("-".into(), |s| format!("{:.0} / {:.0}", s.p50_ms, s.max_ms))
}

/// The table and the violations, as printed.
pub fn render(r: &ChaosReport) -> String {
    let headers = [
        "fault kind",
        "steps",
        "violations",
        "lost acked",
        "rejoin ms (p50 / max)",
        "write gap ms (p50 / max)",
    ];
    let mut out = format!(
        "{}, replication: {}, seed {}, {} of {} steps, ttl {} ms, {:.0} s; {} acknowledged writes, {} lost\n",
        r.topology,
        r.replication,
        r.seed,
        r.steps.len(),
        r.steps_planned,
        r.ttl_ms,
        r.seconds,
        r.acknowledged,
        r.lost_acknowledged
    );
    out.push_str(&table_of(&headers, &r.summary, |s| {
        vec![
            s.kind.clone(),
            s.steps.to_string(),
            s.violations.to_string(),
            s.lost_acknowledged.to_string(),
            p50_max(s.rejoin),
            p50_max(s.write_gap),
        ]
    }));
    out.push('\n');
    if r.violations.is_empty() {
        out.push_str("no invariant violated\n");
    } else {
        out.push_str(&format!("{} invariant violations:\n", r.violations.len()));
        for v in &r.violations {
            out.push_str(&format!("- {v}\n"));
        }
    }
    if let Some(logs) = &r.logs {
        out.push_str(&format!("hosts' logs kept in {logs}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_per_kind_and_a_total() {
        let step = |n, kinds: &[&str], rejoin, gap, lost, violations: &[&str]| StepRecord {
            step: n,
            kinds: kinds.iter().map(|k| k.to_string()).collect(),
            rejoin_ms: rejoin,
            write_gap_ms: gap,
            lost_acknowledged: lost,
            violations: violations.iter().map(|v| v.to_string()).collect(),
            ..Default::default()
        };
        let steps = vec![
            step(1, &["kill primary"], Some(3000.0), Some(2500.0), 0, &[]),
            step(
                2,
                &["kill primary", "flap VIP holder"],
                Some(5000.0),
                Some(4000.0),
                2,
                &["lost"],
            ),
            step(3, &["switchover"], Some(1000.0), None, 0, &[]),
            step(
                4,
                &["kill primary"],
                None,
                Some(100.0),
                0,
                &["no rejoin", "two primaries"],
            ),
        ];
        let rows = summarize_kinds(&steps);
        let names: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(names, ["flap VIP holder", "kill primary", "switchover", "all"]);
        let kill = &rows[1];
        assert_eq!((kill.steps, kill.violations, kill.lost_acknowledged), (3, 3, 2));
        let rejoin = kill.rejoin.expect("rejoin times");
        assert_eq!((rejoin.count, rejoin.p50_ms, rejoin.max_ms), (2, 3000.0, 5000.0));
        assert_eq!(kill.write_gap.expect("gaps").max_ms, 4000.0);
        assert!(rows[2].write_gap.is_none());
        let all = &rows[3];
        assert_eq!((all.steps, all.violations, all.lost_acknowledged), (4, 3, 2));
        let report = ChaosReport {
            topology: "six hosts",
            replication: "quorum".into(),
            seed: 7,
            steps_planned: 4,
            ttl_ms: 2000,
            seconds: 1.0,
            acknowledged: 10,
            lost_acknowledged: 2,
            summary: rows,
            steps,
            violations: vec!["step 2: lost".into()],
            logs: Some("/tmp/x".into()),
        };
        let text = render(&report);
        assert!(
            text.contains("| kill primary    | 3     | 3          | 2          | 3000 / 5000"),
            "{text}"
        );
        assert!(text.contains("1 invariant violations:\n- step 2: lost"), "{text}");
        assert!(text.contains("logs kept in /tmp/x"), "{text}");
    }
}
