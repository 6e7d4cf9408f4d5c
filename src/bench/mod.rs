//! `pgha bench`: benchmarks users run themselves.

pub mod chaos;
pub mod chaos_checks;
pub mod chaos_faults;
pub mod chaos_report;
pub mod chaos_schedule;
pub mod dcs;
pub mod failover;
pub mod failover_report;
pub mod haproxy;
pub mod measure;
pub mod phases;
pub mod profile;
pub mod proxy;
pub mod rejoin;
pub mod report;
pub mod report_index;
pub mod report_svg;
pub mod scenario;
pub mod soak;
pub mod stats;
pub mod steps;
pub mod vip_settle;
pub mod writable_runs;

use std::path::Path;

use anyhow::Context;

use crate::cli::BenchCommand;

/// Runs one benchmark.
pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Dcs(args) => dcs::run(args).await,
        BenchCommand::Failover(args) => failover::run(args).await,
        BenchCommand::Proxy(args) => proxy::run(args).await,
        BenchCommand::Chaos(args) => chaos::run(args).await,
        BenchCommand::Soak(args) => soak::run(args).await,
    }
}

/// Writes a benchmark report as pretty JSON to `path` when the user asked for `--json`.
pub fn write_json(path: Option<&Path>, report: &impl serde::Serialize) -> anyhow::Result<()> {
    let Some(path) = path else { return Ok(()) };
    std::fs::write(path, serde_json::to_string_pretty(report)?).with_context(|| format!("writing {}", path.display()))
}
