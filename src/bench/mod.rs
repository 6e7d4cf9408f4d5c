//! `pgha bench`: benchmarks users run themselves.

pub mod dcs;
pub mod failover;
pub mod failover_net;
pub mod measure;
pub mod phases;
pub mod probe;
pub mod profile;
pub mod proxy;
pub mod six_hosts;
pub mod stats;

use std::path::Path;

use anyhow::Context;

use crate::cli::BenchCommand;

/// Runs one benchmark.
pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Dcs(args) => dcs::run(args).await,
        BenchCommand::Failover(args) if args.local => failover::run(args).await,
        BenchCommand::Failover(args) => failover_net::run(args).await,
        BenchCommand::Proxy(args) => proxy::run(args).await,
    }
}

/// Writes a benchmark report as pretty JSON to `path` when the user asked for `--json`.
pub fn write_json(path: Option<&Path>, report: &impl serde::Serialize) -> anyhow::Result<()> {
    let Some(path) = path else { return Ok(()) };
    std::fs::write(path, serde_json::to_string_pretty(report)?).with_context(|| format!("writing {}", path.display()))
}
