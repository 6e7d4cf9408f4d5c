//! `pgha bench`: benchmarks users run themselves.

pub mod dcs;
pub mod failover;
pub mod probe;
pub mod six_hosts;
pub mod stats;

use crate::cli::BenchCommand;

/// Runs one benchmark.
pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Dcs(args) => dcs::run(args).await,
        BenchCommand::Failover(args) => failover::run(args).await,
    }
}
