//! `ctl restart | reload | reinit`: commands to members, delivered through the DCS (`commands/<name>`), and the wait
//! for each member to carry them out.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::cli::DsnRole;
use crate::cluster::keys::Keys;
use crate::cluster::model::{ClusterView, NodeCommand, PgRole, PgState};
use crate::cluster::store::Store;
use crate::dcs::client::DcsClient;

/// How long ctl waits for the members.
const WAIT: Duration = Duration::from_secs(180);

/// The cluster as the DCS shows it now.
pub async fn view(dcs: &DcsClient, cluster: &str) -> anyhow::Result<ClusterView> {
    Ok(Store {
        dcs,
        keys: &Keys::new(cluster),
    }
    .view()
    .await?)
}

/// Which members a command targets (pure): one by name, or all (optionally of one role).
pub fn targets(view: &ClusterView, name: Option<&str>, role: Option<DsnRole>) -> anyhow::Result<Vec<String>> {
    let leader = view.leader.as_ref().map(|l| l.name.as_str());
    let matches_role = |n: &str| match role {
        None => true,
        Some(DsnRole::Primary) => Some(n) == leader,
        Some(DsnRole::Replica) => Some(n) != leader,
    };
    match name {
        Some(n) if view.members.contains_key(n) => Ok(vec![n.to_string()]),
        Some(n) => bail!("no member named {n}"),
        None => Ok(view.members.keys().filter(|n| matches_role(n)).cloned().collect()),
    }
}

/// Sends `command` to `names` and waits until each member has consumed it.
pub async fn send(dcs: &DcsClient, cluster: &str, names: &[String], command: NodeCommand) -> anyhow::Result<()> {
    if names.is_empty() {
        bail!("no member matches");
    }
    let keys = Keys::new(cluster);
    let store = Store { dcs, keys: &keys };
    for name in names {
        store.send_command(name, &command).await?;
    }
    let started = Instant::now();
    for name in names {
        loop {
            let (kvs, _) = dcs.get(keys.command(name).as_bytes(), false).await?;
            if kvs.is_empty() {
                println!("{name}: done ({:?})", command);
                break;
            }
            if started.elapsed() > WAIT {
                bail!("{name} did not carry out {command:?} within {WAIT:?} (is its pgha running?)");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// `reinit NAME [--wait]`: refused on the leader; with `wait`, until the member streams again.
pub async fn reinit(dcs: &DcsClient, cluster: &str, name: &str, wait: bool) -> anyhow::Result<()> {
    let keys = Keys::new(cluster);
    let store = Store { dcs, keys: &keys };
    let view = store.view().await?;
    let names = targets(&view, Some(name), None)?;
    if view.leader.as_ref().is_some_and(|l| l.name == name) {
        bail!("refusing to reinit {name}: it is the leader (switch over first)");
    }
    send(dcs, cluster, &names, NodeCommand::Reinit).await?;
    if !wait {
        return Ok(());
    }
    let started = Instant::now();
    while started.elapsed() < WAIT {
        let view = store.view().await.context("reading the cluster")?;
        if view
            .members
            .get(name)
            .is_some_and(|m| m.role == PgRole::Replica && m.state == PgState::Streaming)
        {
            println!("{name}: streaming again");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("{name} is not streaming {WAIT:?} after the reinit")
}
