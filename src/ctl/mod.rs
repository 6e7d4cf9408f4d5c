//! `pgha ctl`: client commands against any DCS member, table output by default, JSON with `-o json`.

pub(crate) mod config_cmd;
pub(crate) mod config_doc;
pub mod config_path;
mod dcs_cmd;
mod diff;
mod edges;
mod edit_config;
pub mod exit;
mod ha_cmd;
pub mod health;
pub mod list;
mod members;
pub(crate) mod node_cmd;
pub mod output;
pub mod progress;
pub mod standby_cmd;
pub mod switchover;
mod topology;
pub mod upgrade;

pub use exit::Exit;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::cli::{CtlArgs, CtlCommand, MemberCommand};
use crate::config::{Config, Overrides, Purpose};
use crate::dcs::client::DcsClient;

/// Builds a DCS client from a ctl/edge config (endpoints + TLS).
pub fn client_from_config(config: &Config) -> anyhow::Result<Arc<DcsClient>> {
    let tls = if config.tls.plaintext {
        None
    } else {
        Some(crate::node::tls::load_node_tls(config)?.client_config())
    };
    let timeout = Duration::from_millis(config.dcs.request_timeout_ms);
    Ok(Arc::new(DcsClient::new(config.client_endpoints(), tls, timeout)?))
}

/// The ctl config (found by [`config_path`]) and a DCS client from it.
fn setup(args: &CtlArgs) -> anyhow::Result<(Config, Arc<DcsClient>)> {
    let overrides = Overrides {
        endpoints: args.endpoints.clone(),
        ..Overrides::default()
    };
    let path = config_path::from_process(args.config.as_deref(), args.endpoints.is_some())?;
    let config = Config::load(path.as_deref(), Purpose::Ctl, &overrides).context("loading the ctl config")?;
    crate::logging::init(config.log.format, "warn");
    let client = client_from_config(&config)?;
    Ok((config, client))
}

/// Runs one ctl command.
pub async fn run(args: CtlArgs) -> anyhow::Result<()> {
    let (config, client) = match setup(&args) {
        Ok(ready) => ready,
        // A health check that cannot even start says "unknown", not "failed".
        Err(e) if matches!(args.command, CtlCommand::Health | CtlCommand::Members) => {
            return Err(Exit {
                code: exit::code::UNKNOWN,
                message: format!("{e:#}"),
            }
            .into())
        }
        Err(e) => return Err(e),
    };
    match args.command {
        CtlCommand::Members => members::list(&client, args.output).await,
        CtlCommand::Health => health::run(&client, &config.cluster.name, args.output).await,
        CtlCommand::List { slots, watch: None } => list::list(&client, &config.cluster.name, args.output, slots).await,
        CtlCommand::List {
            slots,
            watch: Some(seconds),
        } => list::watch(&client, &config.cluster.name, args.output, slots, seconds).await,
        CtlCommand::Switchover { cancel: true, .. } => switchover::cancel(&client, &config.cluster.name).await,
        CtlCommand::Switchover {
            leader,
            candidate,
            scheduled,
            force,
            ..
        } => {
            let req = switchover::Request {
                leader: leader.as_deref(),
                candidate: candidate.as_deref(),
                scheduled: scheduled.as_deref(),
                force,
                failover: false,
            };
            switchover::run(&client, &config.cluster.name, req, args.output).await
        }
        CtlCommand::Failover { candidate, force } => {
            let req = switchover::Request {
                leader: None,
                candidate: Some(&candidate),
                scheduled: None,
                force,
                failover: true,
            };
            switchover::run(&client, &config.cluster.name, req, args.output).await
        }
        CtlCommand::ShowConfig => config_cmd::show(&client, &config.cluster.name, args.output).await,
        CtlCommand::EditConfig {
            set,
            pg,
            slot,
            apply,
            force,
        } => {
            let edit = edit_config::EditArgs {
                set: &set,
                pg: &pg,
                slots: &slot,
                apply: apply.as_deref(),
                force,
            };
            edit_config::run(&client, &config.cluster.name, edit).await
        }
        CtlCommand::Restart {
            name,
            all,
            pending,
            role,
        } => {
            if name.is_none() && !all {
                anyhow::bail!("name a member or give --all");
            }
            let view = node_cmd::view(&client, &config.cluster.name).await?;
            let names = node_cmd::targets(&view, name.as_deref(), role)?;
            let command = crate::cluster::model::NodeCommand::Restart { pending_only: pending };
            node_cmd::send(&client, &config.cluster.name, &names, command).await
        }
        CtlCommand::Reload { name } => {
            let view = node_cmd::view(&client, &config.cluster.name).await?;
            let names = node_cmd::targets(&view, name.as_deref(), None)?;
            node_cmd::send(
                &client,
                &config.cluster.name,
                &names,
                crate::cluster::model::NodeCommand::Reload,
            )
            .await
        }
        CtlCommand::Reinit { name, wait, timeout } => {
            let wait = wait.then(|| Duration::from_secs(timeout));
            node_cmd::reinit(&client, &config.cluster.name, &name, wait).await
        }
        CtlCommand::Upgrade {
            bin_dir,
            link: _,
            clone,
            copy,
            check,
            timeout,
        } => {
            use crate::cluster::upgrade::TransferMode;
            let mode = match (clone, copy) {
                (true, _) => TransferMode::Clone,
                (_, true) => TransferMode::Copy,
                _ => TransferMode::Link,
            };
            let args = upgrade::UpgradeArgs {
                bin_dir,
                mode,
                check_only: check,
                timeout: Duration::from_secs(timeout),
            };
            upgrade::run(&client, &config.cluster.name, args).await
        }
        CtlCommand::Version => ha_cmd::version(&client, &config.cluster.name, args.output).await,
        CtlCommand::Topology => topology::show(&client, &config.cluster.name, args.output).await,
        CtlCommand::Pause { wait } => ha_cmd::set_paused(&client, &config.cluster.name, true, wait, args.output).await,
        CtlCommand::Resume { wait } => {
            ha_cmd::set_paused(&client, &config.cluster.name, false, wait, args.output).await
        }
        CtlCommand::PromoteCluster { timeout } => {
            standby_cmd::run(
                &client,
                &config.cluster.name,
                None,
                Duration::from_secs(timeout),
                args.output,
            )
            .await
        }
        CtlCommand::DemoteCluster {
            host,
            port,
            primary_slot_name,
            restore_command,
            timeout,
        } => {
            let standby = crate::cluster::standby::StandbyCluster {
                host,
                port,
                primary_slot_name,
                restore_command,
            };
            let wait = Duration::from_secs(timeout);
            standby_cmd::run(&client, &config.cluster.name, Some(standby), wait, args.output).await
        }
        CtlCommand::History => ha_cmd::history(&client, &config.cluster.name, args.output).await,
        CtlCommand::Dsn { role } => list::print_dsn(&client, &config.cluster.name, role).await,
        CtlCommand::Member(MemberCommand::Add { name, addr }) => members::add(&client, &name, &addr, args.output).await,
        CtlCommand::Member(MemberCommand::Remove { name }) => members::remove(&client, &name, args.output).await,
        CtlCommand::Dcs(cmd) => dcs_cmd::run(&client, cmd, args.output).await,
    }
}
