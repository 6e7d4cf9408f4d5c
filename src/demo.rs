//! `pgha demo`: a whole local cluster in one command, for a first look.

use std::time::Duration;

use anyhow::Context;

use crate::cli::DemoArgs;
use crate::config::{LogFormat, Role};
use crate::local::LocalCluster;

/// Runs the demo until SIGINT/SIGTERM, then stops every node and returns.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    crate::logging::init(LogFormat::Human, args.log.log_level.as_deref().unwrap_or("info"));
    if args.members == 0 || args.members > 9 {
        anyhow::bail!("--members must be between 1 and 9 (got {})", args.members);
    }
    let exe = std::env::current_exe().context("locating the pgha binary")?;
    let mut cluster = LocalCluster::create(
        &exe,
        args.dir.as_deref(),
        args.members,
        Role::Witness,
        !args.plaintext,
        "",
    )?;
    println!(
        "pgha demo: {} DCS members under {}",
        args.members,
        cluster.dir.display()
    );
    cluster.start_all()?;
    let leader = cluster
        .wait_leader(Duration::from_secs(30))
        .await
        .context("waiting for the DCS to elect a leader")?;
    let ctl = cluster.write_ctl_config()?;
    let manifest = cluster.write_manifest()?;
    println!(
        "ready: Raft leader is {} ({})",
        cluster.nodes[leader].name, cluster.nodes[leader].dcs_addr
    );
    for node in &cluster.nodes {
        println!(
            "  {:<6} pid {:<8} grpc {}  log {}",
            node.name,
            node.pid.unwrap_or(0),
            node.dcs_addr,
            node.log.display()
        );
    }
    println!("try:   {} ctl -c {} members", exe.display(), ctl.display());
    println!("       {} ctl -c {} dcs put /hello world", exe.display(), ctl.display());
    println!("nodes: {}   (Ctrl-C stops everything)", manifest.display());
    crate::run::wait_for_stop_signal().await?;
    println!("stopping the demo cluster");
    cluster.stop_all(Duration::from_secs(5));
    Ok(())
}
