//! `pgha run`: turns a validated config into a running node and keeps it up until SIGTERM/SIGINT, or until its DCS
//! member fails for good (then it stops the same way and returns an error: a non-zero exit).

use std::time::Duration;

use anyhow::Context;

use crate::config::{Config, Role};
use crate::dcs::member::{Member, MemberSettings, MemberTls};

/// Loads the node's TLS identity, or warns loudly when the config asks for plaintext.
pub fn member_tls(config: &Config) -> anyhow::Result<Option<MemberTls>> {
    if config.tls.plaintext {
        tracing::warn!("tls.plaintext = true: DCS traffic is neither encrypted nor authenticated (demo/test use only)");
        return Ok(None);
    }
    let tls = crate::node::tls::load_node_tls(config)?;
    let server = tls.server_config().context("building the TLS server configuration")?;
    Ok(Some(MemberTls {
        server,
        client: tls.client_config(),
        legacy: config.tls.legacy_certificates,
    }))
}

/// Member settings from a config validated for a voter role.
pub fn member_settings(config: &Config) -> anyhow::Result<MemberSettings> {
    let d = &config.dcs;
    Ok(MemberSettings {
        cluster: config.cluster.name.clone(),
        name: config.node.name.clone(),
        advertise: config.advertise_addr(),
        listen: d.listen.clone(),
        data_dir: config.node.data_dir.clone(),
        peers: config.peers().into_iter().map(|p| (p.name, p.addr)).collect(),
        heartbeat: Duration::from_millis(d.heartbeat_ms),
        election_timeout: (
            Duration::from_millis(d.election_timeout_min_ms),
            Duration::from_millis(d.election_timeout_max_ms),
        ),
        snapshot_logs: d.snapshot_logs,
        request_timeout: Duration::from_millis(d.request_timeout_ms),
        limits: d.limits,
        tls: member_tls(config)?,
        ha: None,
    })
}

/// Runs a node in `role` until SIGTERM or SIGINT (`Ok`), or until its DCS member's Raft core stops on its own
/// (`Err`, after the same clean stop).
pub async fn run(config: Config, role: Role) -> anyhow::Result<()> {
    // Before anything starts: a certificate that does not fit the node would only show as every peer refusing it.
    crate::node::own_cert::check(&config, role)?;
    match role {
        Role::Db | Role::Witness => {}
        Role::Edge => return crate::run_edge::run(config).await,
    }
    // Handlers first: a SIGTERM right after READY=1 (systemd may send one at any time) must mean a clean stop.
    let mut stop = crate::node::signals::StopSignals::install()?;
    std::fs::create_dir_all(&config.node.data_dir)
        .with_context(|| format!("creating node.data_dir {}", config.node.data_dir.display()))?;
    let mut settings = member_settings(&config)?;
    let db = match role {
        Role::Db => {
            let db = crate::run_db::prepare(&config, &settings)?;
            settings.ha = Some(db.ha_service());
            Some(db)
        }
        _ => None,
    };
    let member = Member::start(settings).await?;
    tracing::info!(role = %role, name = %config.node.name, "node running");
    let ha = db.map(|db| db.spawn());
    // Ready once the DCS member serves (the HA loop then brings PostgreSQL up on its own schedule).
    crate::sd_notify::ready(&format!("{role} {} serving the DCS", config.node.name));
    let fatal = tokio::select! {
        () = stop.wait() => None,
        fatal = member.fatal() => Some(fatal),
    };
    match &fatal {
        None => {
            tracing::info!("stop requested: leaving cleanly");
            crate::sd_notify::stopping();
        }
        Some(fatal) => {
            // A member whose Raft core stopped neither votes nor stores: left running it would silently cost the
            // cluster a voter. Stop like on SIGTERM (the db role hands over and stops PostgreSQL), then exit
            // non-zero so the supervisor restarts it on a fresh core that re-reads its store.
            tracing::error!(
                event = "dcs_fatal",
                cause = %fatal.cause,
                "DCS member failed: its Raft core stopped for good; stopping the node, it exits with an error"
            );
            crate::sd_notify::stopping_after_failure(&format!("{} failed: {fatal}", config.node.name));
        }
    }
    if let Some(ha) = ha {
        ha.stop().await;
    }
    member.shutdown().await;
    match fatal {
        None => Ok(()),
        Some(fatal) => Err(fatal.into()),
    }
}
