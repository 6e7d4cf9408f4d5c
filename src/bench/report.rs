//! `bench failover --report DIR`: each run's timeline (the writer's acknowledgements, the fault, the phases) kept
//! while the bench runs, then written as `index.html` plus one page per run (rendering: `report_svg.rs`,
//! `report_index.rs`).

use std::path::Path;
use std::time::Instant;

use anyhow::Context;

use super::measure::gap_window;
use super::phases::Phases;
use super::report_index::{index_html, run_html, RunLink, Table};
use super::report_svg::{render, Timeline};
use super::scenario::Scenario;

/// One run's page: its timeline, its numbers, and its row in the index.
#[derive(Debug, Clone)]
pub struct RunPage {
    pub timeline: Timeline,
    /// (what, value) shown under the chart.
    pub facts: Vec<(String, String)>,
    pub link: RunLink,
}

fn ms_since(t0: Instant, t: Instant) -> f64 {
    if t >= t0 {
        t.duration_since(t0).as_secs_f64() * 1000.0
    } else {
        -(t0.duration_since(t).as_secs_f64() * 1000.0)
    }
}

/// The timeline of a run whose fault came at `t0`, from the writer's acknowledged (id, time).
pub fn timeline(title: String, acked: &[(i64, Instant)], t0: Instant, phases: Phases) -> Timeline {
    Timeline {
        title,
        acked_ms: acked.iter().map(|(_, t)| ms_since(t0, *t)).collect(),
        gap_ms: gap_window(acked, t0).map(|(a, b)| (ms_since(t0, a), ms_since(t0, b))),
        phases,
    }
}

/// The name users type for `s` (`primary-crash`).
pub fn scenario_name(s: Scenario) -> String {
    s.name().to_string()
}

/// A run's page and its index row: `number` counts runs across scenarios from 1, `of_scenario` within one.
pub fn run_page(
    number: usize,
    scenario: Scenario,
    of_scenario: usize,
    timeline: Timeline,
    facts: Vec<(String, String)>,
    cells: Vec<String>,
) -> RunPage {
    let name = format!("{} {of_scenario}", scenario_name(scenario));
    RunPage {
        timeline: Timeline {
            title: format!("{name}: acknowledged writes around the fault"),
            ..timeline
        },
        facts,
        link: RunLink {
            href: format!("run-{number:02}-{}.html", scenario_name(scenario)),
            name,
            cells,
        },
    }
}

/// A phase's cell: whole milliseconds, or `-`.
pub fn ms_cell(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0}"))
}

/// The phase cells of a run, in the order of [`PHASE_HEADERS`].
pub fn phase_cells(p: &Phases) -> Vec<String> {
    p.named().iter().map(|(_, v)| ms_cell(*v)).collect()
}

/// Headers of the phase columns of the runs table.
pub const PHASE_HEADERS: [&str; 5] = ["detect ms", "elect ms", "promote ms", "route ms", "VIP ms"];

/// Writes `index.html` and every run's page into `dir` (created if missing).
pub fn write(
    dir: &Path,
    context: &[String],
    summary: &[Table],
    run_headers: &[&str],
    runs: &[RunPage],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for r in runs {
        let html = run_html(&r.timeline.title, &render(&r.timeline), &r.facts);
        let path = dir.join(&r.link.href);
        std::fs::write(&path, html).with_context(|| format!("writing {}", path.display()))?;
    }
    let links: Vec<RunLink> = runs.iter().map(|r| r.link.clone()).collect();
    let html = index_html("pgha bench failover", context, summary, run_headers, &links);
    let path = dir.join("index.html");
    std::fs::write(&path, html).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("report: {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timeline_times_are_relative_to_the_fault() {
        let base = Instant::now();
        let at = |ms: u64| base + Duration::from_millis(ms);
        let acked = vec![(1, at(0)), (2, at(20)), (3, at(900)), (4, at(920))];
        let t = timeline("t".into(), &acked, at(30), Phases::default());
        let rounded: Vec<i64> = t.acked_ms.iter().map(|v| v.round() as i64).collect();
        assert_eq!(rounded, [-30, -10, 870, 890]);
        let (a, b) = t.gap_ms.expect("a gap");
        assert_eq!((a.round() as i64, b.round() as i64), (-10, 870));
        let page = run_page(3, Scenario::PrimaryCrash, 2, t, vec![], vec![]);
        assert_eq!(page.link.href, "run-03-primary-crash.html");
        assert_eq!(page.link.name, "primary-crash 2");
        assert!(page.timeline.title.starts_with("primary-crash 2"));
    }
}
