//! `pgha demo`: a whole local cluster in one command, for a first look.

use std::time::Duration;

use anyhow::Context;

use crate::cli::DemoArgs;
use crate::config::{LogFormat, Role};
use crate::ctl::progress::{Progress, Sink};
use crate::harness::local::{Layout, LocalCluster};

/// Runs the demo until SIGINT/SIGTERM, then stops every node and returns.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    crate::logging::init(LogFormat::Human, args.log.log_level.as_deref().unwrap_or("info"));
    if args.members == 0 || args.members > 9 {
        anyhow::bail!("--members must be between 1 and 9 (got {})", args.members);
    }
    let exe = std::env::current_exe().context("locating the pgha binary")?;
    let role = if args.witness { Role::Witness } else { Role::Db };
    let dir = args.dir.as_deref();
    let mut cluster = LocalCluster::create_with(&exe, dir, args.members, role, !args.plaintext, Layout::default())?;
    println!(
        "pgha demo: {} {role} nodes under {}",
        args.members,
        cluster.dir.display()
    );
    cluster.start_all()?;
    let leader = match role {
        Role::Db => {
            println!("bootstrapping PostgreSQL (initdb on one node, pg_basebackup on the others):");
            let mut progress = Progress::new(Sink::Stdout);
            let name = cluster
                .wait_pg_cluster_showing(args.members - 1, Duration::from_secs(180), Some(&mut progress))
                .await
                .with_context(|| {
                    format!(
                        "waiting for a primary and streaming replicas (logs: {}/node*/pgha.log)",
                        cluster.dir.display()
                    )
                })?;
            cluster.nodes.iter().position(|n| n.name == name).unwrap_or(0)
        }
        _ => cluster
            .wait_leader(Duration::from_secs(30))
            .await
            .context("waiting for the DCS to elect a leader")?,
    };
    let edge = match role {
        Role::Db => {
            let i = cluster.add_edge("")?;
            cluster.start_edge(i)?;
            if !cluster.wait_edge_healthy(i, Duration::from_secs(30)).await {
                anyhow::bail!(
                    "the edge did not become healthy; see {}",
                    cluster.edges[i].log.display()
                );
            }
            cluster.edges[i].edge
        }
        _ => None,
    };
    let ctl = cluster.write_ctl_config()?;
    let manifest = cluster.write_manifest()?;
    if let Some(p) = edge {
        let password = cluster.dir.join("secrets/superuser");
        println!(
            "connect through the edge (primary): PGPASSWORD=$(cat {}) psql \"host=127.0.0.1 port={} user=postgres \
             dbname=postgres\"",
            password.display(),
            p.primary
        );
        println!(
            "  edge1: replicas port {}, any member port {}, status http://127.0.0.1:{}/",
            p.replica, p.any, p.status
        );
    }
    println!(
        "ready: leader is {} ({})",
        cluster.nodes[leader].name, cluster.nodes[leader].dcs_addr
    );
    for node in &cluster.nodes {
        let pg = node
            .pg_port
            .map(|p| format!("  postgres 127.0.0.1:{p}"))
            .unwrap_or_default();
        let pid = node.pid.unwrap_or(0);
        println!(
            "  {:<6} pid {pid:<8} grpc {}{pg}  log {}",
            node.name,
            node.dcs_addr,
            node.log.display()
        );
    }
    if role == Role::Db {
        let hosts = vec!["127.0.0.1"; cluster.nodes.len()].join(",");
        let ports: Vec<String> = cluster
            .nodes
            .iter()
            .filter_map(|n| n.pg_port.map(|p| p.to_string()))
            .collect();
        let ports = ports.join(",");
        let password = cluster.dir.join("secrets/superuser");
        for (what, attrs) in [("primary", "read-write"), ("replicas", "standby")] {
            println!(
                "psql ({what}): PGPASSWORD=$(cat {}) psql \"host={hosts} port={ports} user=postgres dbname=postgres \
                 target_session_attrs={attrs}\"",
                password.display()
            );
        }
    }
    // The one line to paste: ctl then finds the demo's config without -c.
    println!("export {}={}", crate::ctl::config_path::ENV, ctl.display());
    if role == Role::Db {
        println!(
            "try:   {} ctl list      (or ctl list --watch, ctl health)",
            exe.display()
        );
    }
    println!("       {} ctl members", exe.display());
    println!("nodes: {}   (Ctrl-C stops everything)", manifest.display());
    crate::node::signals::wait_for_stop_signal().await?;
    println!("stopping the demo cluster");
    cluster.stop_all(Duration::from_secs(10));
    Ok(())
}
