//! `pgha ctl promote-cluster` and `pgha ctl demote-cluster`: remove or set the standby cluster setting in the
//! dynamic config (CAS, admin only like every config change), then wait for the leader, showing progress lines.

use std::time::{Duration, Instant};

use anyhow::Context;

use super::output;
use super::progress::{Progress, Sink};
use crate::cli::Output;
use crate::cluster::keys::Keys;
use crate::cluster::model::{ClusterView, PgRole, PgState};
use crate::cluster::standby::StandbyCluster;
use crate::cluster::store::Store;
use crate::dcs::client::DcsClient;

/// CAS attempts against concurrent config changes.
const CAS_ATTEMPTS: usize = 5;
/// How often the wait reads the cluster.
const POLL: Duration = Duration::from_millis(200);

/// Whether the leader is done (pure): a writable primary after a promotion, a standby leader after a demotion.
pub fn leader_done(view: &ClusterView, standby: bool) -> Option<String> {
    let m = view.leader_member()?;
    let done = match standby {
        false => m.role == PgRole::Primary && m.state == PgState::Running,
        true => m.role == PgRole::Replica && matches!(m.state, PgState::Streaming | PgState::Running),
    };
    done.then(|| m.name.clone())
}

/// Sets (`Some`) or removes (`None`) the standby setting, then waits up to `wait` for the leader.
pub async fn run(
    dcs: &DcsClient,
    cluster: &str,
    standby: Option<StandbyCluster>,
    wait: Duration,
    out: Output,
) -> anyhow::Result<()> {
    if let Some(s) = &standby {
        s.check().map_err(|e| anyhow::anyhow!(e))?;
    }
    let keys = Keys::new(cluster);
    let mut written = false;
    for _ in 0..CAS_ATTEMPTS {
        let (mut config, revision) = super::config_cmd::read(dcs, &keys).await?;
        match (&config.standby_cluster, &standby) {
            (None, None) => anyhow::bail!("{cluster} is not a standby cluster: nothing to promote"),
            (Some(now), Some(_)) => anyhow::bail!(
                "{cluster} is already a standby cluster of {}: promote it first (pgha ctl promote-cluster)",
                now.describe()
            ),
            _ => {}
        }
        config.standby_cluster = standby.clone();
        if super::config_cmd::write(dcs, &keys, &config, revision).await? {
            written = true;
            break;
        }
    }
    if !written {
        anyhow::bail!("the dynamic config kept changing; try again");
    }
    let what = match &standby {
        None => "promote-cluster: standby setting removed, waiting for the leader to promote".to_string(),
        Some(s) => format!(
            "demote-cluster: now a standby cluster of {}, waiting for the leader to follow it",
            s.describe()
        ),
    };
    eprintln!("{what}");
    let store = Store { dcs, keys: &keys };
    let started = Instant::now();
    let mut progress = Progress::changes_only(Sink::Stderr);
    while started.elapsed() < wait {
        let view = store.view().await.context("reading the cluster")?;
        progress.observe(&view);
        if let Some(leader) = leader_done(&view, standby.is_some()) {
            let secs = started.elapsed().as_secs_f64();
            match out {
                Output::Json => output::json(&serde_json::json!({
                    "cluster": cluster,
                    "leader": leader,
                    "standby_cluster": standby,
                    "seconds": secs,
                }))?,
                Output::Table => match &standby {
                    None => println!("{leader} is the primary: {cluster} is writable ({secs:.1}s)"),
                    Some(s) => println!("{leader} is the standby leader following {} ({secs:.1}s)", s.describe()),
                },
            }
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
    anyhow::bail!(
        "the setting is stored, but the leader did not finish within {} s: see pgha ctl list and the leader's log",
        wait.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::model::{LeaderKey, MemberInfo};

    fn view(role: PgRole, state: PgState) -> ClusterView {
        let mut v = ClusterView::default();
        v.members
            .insert("db1".into(), MemberInfo::for_test("db1", role, state, 0));
        v.leader = Some(LeaderKey {
            name: "db1".into(),
            lease: 1,
            mod_revision: 1,
        });
        v
    }

    #[test]
    fn done_when_the_leader_has_its_new_role() {
        assert_eq!(
            leader_done(&view(PgRole::Primary, PgState::Running), false),
            Some("db1".into())
        );
        assert_eq!(leader_done(&view(PgRole::Replica, PgState::Streaming), false), None);
        assert_eq!(
            leader_done(&view(PgRole::Replica, PgState::Streaming), true),
            Some("db1".into())
        );
        assert_eq!(leader_done(&view(PgRole::Primary, PgState::Running), true), None);
        assert_eq!(leader_done(&ClusterView::default(), false), None);
    }
}
