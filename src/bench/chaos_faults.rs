//! `bench chaos`'s effects: one scheduled event applied to the six hosts (signals to pgha or every process of a
//! host, links, the db hosts' PostgreSQL disks, `pgha ctl switchover`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::chaos_schedule::{Fault, Op, Target};
use crate::harness::six_hosts::{SixHosts, DBS, EDGES};

/// The hosts a step's targets stand for, fixed when the step starts.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub primary: String,
    pub holder: String,
    replicas: Vec<String>,
    standbys: Vec<String>,
}

impl Resolved {
    /// From the leader and the VIP holder when the step starts; the others in name order.
    pub fn new(primary: &str, holder: &str) -> Resolved {
        Resolved {
            primary: primary.into(),
            holder: holder.into(),
            replicas: DBS.iter().filter(|d| **d != primary).map(|d| d.to_string()).collect(),
            standbys: EDGES
                .iter()
                .map(|(e, _)| *e)
                .filter(|e| *e != holder)
                .map(str::to_string)
                .collect(),
        }
    }

    /// The host `t` stands for.
    pub fn host(&self, t: Target) -> &str {
        fn nth(v: &[String], i: u8) -> &str {
            v.get(usize::from(i)).or(v.first()).map_or("", String::as_str)
        }
        match t {
            Target::Primary => &self.primary,
            Target::Replica(i) => nth(&self.replicas, i),
            Target::Holder => &self.holder,
            Target::Standby(i) => nth(&self.standbys, i),
        }
    }

    /// `freeze primary = db2`, for the report.
    pub fn describe(&self, fault: Fault) -> String {
        match fault {
            Fault::On(_, t) => format!("{fault} = {}", self.host(t)),
            Fault::Switchover => format!("switchover from {}", self.primary),
        }
    }
}

/// Runs `pgha ctl -c <ctl> ARGS`; (success, output).
async fn ctl(exe: &Path, config: &Path, args: &[&str]) -> anyhow::Result<(bool, String)> {
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("ctl")
        .arg("-c")
        .arg(config)
        .args(args)
        .env("PGHA_DCS__REQUEST_TIMEOUT_MS", "10000")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .context("pgha ctl did not finish within 90 s")?
        .context("running pgha ctl")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text.trim().to_string()))
}

/// `pgha ctl switchover --force` (which waits for the new leader), retried for up to a minute (a synchronous
/// standby may not be recorded yet); the violation when it never succeeds on the settled cluster.
async fn switchover(exe: PathBuf, config: PathBuf) -> anyhow::Result<Option<String>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    for _ in 0..60 {
        let (ok, out) = ctl(&exe, &config, &["switchover", "--force"]).await?;
        if ok {
            return Ok(None);
        }
        last = out;
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(Some(format!("a switchover fails on a settled cluster: {last}")))
}

/// What applying an event left running.
pub enum Applied {
    Done,
    /// A switchover runs beside the rest of the timeline (a flap's cuts must not wait for it); Some(violation)
    /// when it failed.
    Running(tokio::task::JoinHandle<anyhow::Result<Option<String>>>),
}

/// Applies one event.
pub async fn apply(six: &mut SixHosts, exe: &Path, hosts: &Resolved, op: Op) -> anyhow::Result<Applied> {
    let no_disk = |h: &str| format!("{h} has no PostgreSQL disk of its own");
    match op {
        Op::Switchover => {
            let task = switchover(exe.to_path_buf(), six.ctl_config());
            return Ok(Applied::Running(tokio::spawn(task)));
        }
        Op::Kill(t) if t.is_db() => six.kill_host(hosts.host(t)).await,
        // An edge's VIP is kernel state that outlives its processes: a killed edge also leaves the network.
        Op::Kill(t) => six.power_off(hosts.host(t)).await?,
        Op::Restart(t) if t.is_db() => six.start_pgha(hosts.host(t), exe)?,
        Op::Restart(t) => six.power_on(hosts.host(t), exe)?,
        Op::KillPgha(t) => six.signal_pgha(hosts.host(t), libc::SIGKILL)?,
        Op::RestartPgha(t) => six.start_pgha(hosts.host(t), exe)?,
        Op::Stop(t) => six.signal_pgha(hosts.host(t), libc::SIGSTOP)?,
        Op::Cont(t) => six.signal_pgha(hosts.host(t), libc::SIGCONT)?,
        Op::Cut(t) => six.cut(hosts.host(t))?,
        Op::Restore(t) => six.restore(hosts.host(t))?,
        Op::Fill(t) => {
            let h = hosts.host(t);
            let left = six.disk(h).with_context(|| no_disk(h))?.fill()?;
            anyhow::ensure!(
                left == 0,
                "{h}'s PostgreSQL disk still has {left} bytes free after filling"
            );
        }
        Op::Free(t) => {
            let h = hosts.host(t);
            six.disk(h).with_context(|| no_disk(h))?.free()?;
        }
    }
    Ok(Applied::Done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::chaos_schedule::Action;

    #[test]
    fn targets_resolve_to_hosts() {
        let r = Resolved::new("db2", "edge1");
        assert_eq!(r.host(Target::Primary), "db2");
        assert_eq!(r.host(Target::Replica(0)), "db1");
        assert_eq!(r.host(Target::Replica(1)), "db3");
        assert_eq!(r.host(Target::Holder), "edge1");
        assert_eq!(r.host(Target::Standby(1)), "edge3");
        assert_eq!(
            r.describe(Fault::On(Action::Freeze, Target::Replica(1))),
            "freeze replica#1 = db3"
        );
        assert_eq!(r.describe(Fault::Switchover), "switchover from db2");
    }
}
