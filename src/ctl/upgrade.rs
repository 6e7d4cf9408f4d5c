//! `ctl upgrade --bin-dir NEW`: drives a major upgrade through its steps (`cluster::upgrade::Step`), recording each
//! in the `upgrade` key (so `ctl list` explains a stop half-way) and printing it as it runs; the work itself runs on
//! the db nodes (`ha/upgrade.rs`), asked by node commands and by the key.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::progress::{Progress, Sink};
use crate::cli::Output;
use crate::cluster::keys::Keys;
use crate::cluster::model::{ClusterView, NodeCommand};
use crate::cluster::store::{unix_ms, Store};
use crate::cluster::upgrade::{preflight, waiting_for, Outcome, Step, TransferMode, UpgradeState};
use crate::dcs::client::DcsClient;

/// What the operator asked for.
#[derive(Clone, Debug)]
pub struct UpgradeArgs {
    pub bin_dir: PathBuf,
    pub mode: TransferMode,
    /// Only the checks: nothing is stopped and no key is written.
    pub check_only: bool,
    /// Bound on each wait (the re-creation of the replicas is the long one).
    pub timeout: Duration,
}

/// The poll period of the waits.
const POLL: Duration = Duration::from_millis(100);

struct Driver<'a> {
    dcs: &'a DcsClient,
    cluster: &'a str,
    keys: Keys,
    started: Instant,
    progress: Progress,
    limit: Duration,
}

impl Driver<'_> {
    fn store(&self) -> Store<'_> {
        Store {
            dcs: self.dcs,
            keys: &self.keys,
        }
    }

    fn say(&self, line: &str) {
        println!("[{:>6.1}s] {line}", self.started.elapsed().as_secs_f64());
    }

    async fn view(&mut self) -> anyhow::Result<ClusterView> {
        let view = self.store().view().await.context("reading the cluster")?;
        self.progress.observe(&view);
        Ok(view)
    }

    /// Records the step (or the failure) in the `upgrade` key and logs it.
    async fn record(&self, state: &UpgradeState) -> anyhow::Result<()> {
        let value = serde_json::to_vec(state)?;
        self.dcs
            .put(self.keys.upgrade().as_bytes(), &value, 0)
            .await
            .context("writing the upgrade key")?;
        tracing::info!(event = "upgrade_state", step = state.step.name(), failed = ?state.failed, "{}", state.describe());
        Ok(())
    }

    /// Waits until each of `names` reports the outcome of run `id`; returns the failures as `name: reason`.
    async fn reports(
        &mut self,
        (id, step): (u64, Step),
        names: &[String],
    ) -> anyhow::Result<Vec<(String, String, bool)>> {
        let deadline = Instant::now() + self.limit;
        loop {
            let view = self.view().await?;
            let mut pending = Vec::new();
            let mut failed = Vec::new();
            for name in names {
                match view
                    .members
                    .get(name)
                    .and_then(|m| m.upgrade.as_ref())
                    .filter(|r| r.id == id && r.step == step)
                {
                    Some(r) => match &r.outcome {
                        Outcome::Running => pending.push(name.as_str()),
                        Outcome::Done => {}
                        Outcome::Failed { reason, rolled_back } => {
                            failed.push((name.clone(), reason.clone(), *rolled_back))
                        }
                    },
                    None => pending.push(name.as_str()),
                }
            }
            if pending.is_empty() {
                return Ok(failed);
            }
            if Instant::now() > deadline {
                bail!(
                    "no report from {} within {:?} (is pgha running there? its log says why)",
                    pending.join(", "),
                    self.limit
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the members are where `state.step` needs them.
    async fn settle(&mut self, state: &UpgradeState) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.limit;
        loop {
            let view = self.view().await?;
            let Some(who) = waiting_for(&view, state) else {
                return Ok(());
            };
            if Instant::now() > deadline {
                bail!(
                    "step {}: still waiting for {who} after {:?}",
                    state.step.name(),
                    self.limit
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Sends `command` to `names`.
    async fn send(&self, names: &[String], command: &NodeCommand) -> anyhow::Result<()> {
        for name in names {
            self.store().send_command(name, command).await?;
        }
        Ok(())
    }

    async fn set_paused(&self, paused: bool) -> anyhow::Result<()> {
        super::ha_cmd::set_paused(self.dcs, self.cluster, paused, true, Output::Table).await
    }
}

/// Runs `ctl upgrade`.
pub async fn run(dcs: &DcsClient, cluster: &str, args: UpgradeArgs) -> anyhow::Result<()> {
    if !args.bin_dir.is_absolute() {
        bail!(
            "--bin-dir {}: give an absolute path (it is used on every member)",
            args.bin_dir.display()
        );
    }
    let mut d = Driver {
        dcs,
        cluster,
        keys: Keys::new(cluster),
        started: Instant::now(),
        progress: Progress::changes_only(Sink::Stderr),
        limit: args.timeout,
    };
    let view = d.view().await?;
    let (leader, from_system) = preflight(&view).map_err(|why| anyhow::anyhow!("cannot upgrade: {why}"))?;
    let was_paused = view.config.paused;
    let members: Vec<String> = view.members.keys().cloned().collect();
    let mut state = UpgradeState {
        id: unix_ms(),
        bin_dir: args.bin_dir.clone(),
        mode: args.mode,
        leader: leader.clone(),
        from_system,
        to_system: None,
        step: Step::Check,
        failed: None,
        rolled_back: false,
    };
    if !args.check_only {
        d.record(&state).await?;
    }
    d.say(&format!(
        "step check: pg_upgrade --check on {leader}, the binaries in {} on {}",
        args.bin_dir.display(),
        members.join(", ")
    ));
    let check = NodeCommand::UpgradeCheck {
        id: state.id,
        bin_dir: args.bin_dir.clone(),
    };
    d.send(&members, &check).await?;
    let failures = d.reports((state.id, Step::Check), &members).await?;
    if !failures.is_empty() {
        let why: Vec<String> = failures.iter().map(|(n, r, _)| format!("{n}: {r}")).collect();
        if !args.check_only {
            state.failed = Some(why.join("; "));
            state.rolled_back = true;
            d.record(&state).await?;
        }
        bail!("upgrade check failed (nothing was changed):\n  {}", why.join("\n  "));
    }
    d.say("check passed on every member");
    if args.check_only {
        return Ok(());
    }
    let result = steps(&mut d, &mut state, &leader, was_paused).await;
    if let Err(e) = &result {
        if state.failed.is_none() {
            state.failed = Some(format!("{e:#}"));
            d.record(&state).await?;
        }
    }
    result
}

/// The steps after the check.
async fn steps(d: &mut Driver<'_>, state: &mut UpgradeState, leader: &str, was_paused: bool) -> anyhow::Result<()> {
    state.step = Step::Pause;
    d.record(state).await?;
    d.say("step pause: maintenance mode on (no failover while the leader is down on purpose)");
    d.set_paused(true).await?;

    state.step = Step::StopReplicas;
    d.record(state).await?;
    d.say("step stop_replicas: the replicas stop");
    d.settle(state).await?;

    state.step = Step::UpgradeLeader;
    d.record(state).await?;
    d.say(&format!(
        "step upgrade_leader: {leader} stops cleanly, pg_upgrade {}, starts on the new binaries",
        state.mode.flag()
    ));
    let upgrade = NodeCommand::Upgrade {
        id: state.id,
        bin_dir: state.bin_dir.clone(),
        mode: state.mode,
    };
    let leader_only = [leader.to_string()];
    d.send(&leader_only, &upgrade).await?;
    let failures = d.reports((state.id, Step::UpgradeLeader), &leader_only).await?;
    if let Some((_, reason, rolled_back)) = failures.first() {
        state.failed = Some(reason.clone());
        state.rolled_back = *rolled_back;
        d.record(state).await?;
        if *rolled_back && !was_paused {
            d.set_paused(false).await?;
        }
        let back = match rolled_back {
            true => "rolled back: the old version runs again on the old data",
            false => "NOT rolled back: see docs/operations.md, Major upgrade, the way back",
        };
        bail!("upgrade of {leader} failed: {reason} ({back})");
    }
    let view = d.view().await?;
    state.to_system = view
        .members
        .get(leader)
        .and_then(|m| m.upgrade.as_ref())
        .and_then(|r| r.system_identifier)
        .or_else(|| view.system_identifier().filter(|s| *s != state.from_system));
    if state.to_system.is_none() {
        bail!("{leader} reported the upgrade done without its new system identifier");
    }
    d.say(&format!(
        "{leader} runs the new version (system {})",
        state.to_system.unwrap_or_default()
    ));

    state.step = Step::RecreateReplicas;
    d.record(state).await?;
    d.say("step recreate_replicas: each replica sets its old data aside and is created again from the new leader");
    d.settle(state).await?;

    state.step = Step::Resume;
    d.record(state).await?;
    if !was_paused {
        d.say("step resume: maintenance mode off");
        d.set_paused(false).await?;
    }
    state.step = Step::Done;
    d.record(state).await?;
    d.say(&format!(
        "upgrade done: every member runs {} and streams; the old data directories are kept beside each data \
         directory (<data_dir>.pg<old major>.{}): remove them once satisfied",
        state.bin_dir.display(),
        state.id
    ));
    Ok(())
}
