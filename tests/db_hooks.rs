//! Patroni-compatible hooks with real PostgreSQL: `on_start` / `on_stop` / `on_role_change` are called with
//! `<action> <role> <cluster>` on bootstrap, clone and switchover, and a `pre_promote` that exits 1 vetoes its node's
//! promotion so another member is promoted.

mod common;
#[path = "common/db.rs"]
mod db;
#[path = "common/probe.rs"]
mod probe;

use std::path::{Path, PathBuf};
use std::time::Duration;

use db::{ctl, index_of, READY};

/// How long a hook's effect may take to show up in its file.
const HOOK_WAIT: Duration = Duration::from_secs(30);

/// Adds `line` to the `[postgresql]` section of node `i` (before it starts).
fn add_pg_line(cluster: &pgha::harness::local::LocalCluster, i: usize, line: &str) {
    let path = &cluster.nodes[i].config;
    let text = std::fs::read_to_string(path).expect("reading the node config");
    assert!(
        text.contains("\n[postgresql]\n"),
        "the node config has a [postgresql] section"
    );
    std::fs::write(
        path,
        text.replacen("\n[postgresql]\n", &format!("\n[postgresql]\n{line}\n"), 1),
    )
    .expect("writing the config");
}

/// Writes an executable shell script.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).expect("writing the script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

fn quoted(p: &Path) -> String {
    format!("\"{}\"", p.display())
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_on_start_switchover_and_stop() {
    if db::skip_without_pg() {
        return;
    }
    let mut cluster = db::lay_out(3, "", "");
    // Appends its arguments (after the file it is given) to that file: what Patroni's scripts receive.
    let hook = script(&cluster.dir, "hook.sh", "out=$1; shift\necho \"$*\" >> \"$out\"\n");
    let calls: Vec<PathBuf> = (0..3)
        .map(|i| cluster.dir.join(format!("{}.calls", cluster.nodes[i].name)))
        .collect();
    for (i, file) in calls.iter().enumerate() {
        let argv = format!("[{}, {}]", quoted(&hook), quoted(file));
        add_pg_line(
            &cluster,
            i,
            &format!("callbacks = {{ on_start = {argv}, on_stop = {argv}, on_role_change = {argv} }}"),
        );
    }
    cluster.start_all().expect("starting");
    let leader = cluster.wait_pg_cluster(2, READY).await.expect("cluster ready");
    let li = index_of(&cluster, &leader);
    common::wait_file_contains(&calls[li], "on_start primary demo", HOOK_WAIT).await;
    let ri = (0..3).find(|i| *i != li).expect("a replica");
    for i in (0..3).filter(|i| *i != li) {
        common::wait_file_contains(&calls[i], "on_start replica demo", HOOK_WAIT).await;
    }

    let candidate = cluster.nodes[ri].name.clone();
    ctl(&cluster, &["switchover", "--candidate", &candidate, "--force"]);
    common::wait_until(Duration::from_secs(60), "the switchover", || async {
        cluster.wait_pg_cluster(2, Duration::from_secs(1)).await.ok().as_deref() == Some(candidate.as_str())
    })
    .await;
    common::wait_file_contains(&calls[ri], "on_role_change primary demo", HOOK_WAIT).await;
    // The old primary: stopped for the handover, then back as a replica.
    common::wait_file_contains(&calls[li], "on_role_change replica demo", HOOK_WAIT).await;
    let old = read(&calls[li]);
    let stop_at = old.find("on_stop primary demo").expect("on_stop of the old primary");
    assert!(
        stop_at < old.find("on_role_change replica demo").unwrap_or(0),
        "on_stop comes before on_role_change:\n{old}"
    );
    let log = read(&cluster.nodes[li].log);
    assert!(
        !log.contains("\"hook_failed\"") && !log.contains("hook_failed"),
        "no callback failed:\n{log}"
    );

    // A clean stop of the new primary: on_stop is run (and waited for) before pgha exits.
    cluster.stop(ri, Duration::from_secs(30));
    let after = read(&calls[ri]);
    assert!(after.ends_with("on_stop primary demo\n"), "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vetoing_pre_promote_hands_the_promotion_to_another_member() {
    if db::skip_without_pg() {
        return;
    }
    let mut cluster = db::lay_out(3, "", "");
    // Records that it was asked (environment and argument count), then vetoes while the node's veto file exists.
    let pre = script(
        &cluster.dir,
        "pre_promote.sh",
        "echo \"asked $PGHA_HOOK $PGHA_ROLE $PGHA_CLUSTER $PGHA_NODE args=$#\" >> \"$PGHA_TEST_MARK.$PGHA_NODE\"\n\
         if [ -e \"$PGHA_TEST_MARK.$PGHA_NODE.veto\" ]; then echo 'not today' >&2; exit 1; fi\nexit 0\n",
    );
    let mark = cluster.dir.join("pre_promote");
    // The wrapper passes the marker prefix through the environment (pre_promote gets no arguments, as in Patroni).
    let wrapper = script(
        &cluster.dir,
        "pre_promote_wrapper.sh",
        &format!("PGHA_TEST_MARK={} exec {}\n", quoted(&mark), quoted(&pre)),
    );
    // Distinct priorities: among the two replicas left, the higher one wins the race first.
    for (i, priority) in [(0, 10), (1, 5), (2, 1)] {
        add_pg_line(&cluster, i, &format!("pre_promote = {}", quoted(&wrapper)));
        db::add_ha_line(&cluster, i, &format!("failover_priority = {priority}"));
    }
    cluster.start_all().expect("starting");
    let leader = cluster.wait_pg_cluster(2, READY).await.expect("cluster ready");
    let li = index_of(&cluster, &leader);
    // Nodes are in priority order: the first replica is the one that would be promoted, and it vetoes.
    let mut replicas = (0..3).filter(|i| *i != li);
    let (bi, ci) = (replicas.next().expect("B"), replicas.next().expect("C"));
    let (b, c) = (cluster.nodes[bi].name.clone(), cluster.nodes[ci].name.clone());
    let marker = |name: &str| PathBuf::from(format!("{}.{name}", mark.display()));
    std::fs::write(format!("{}.veto", marker(&b).display()), b"").expect("veto file");

    // A clean stop: the replicas hold the same WAL, so the priority decides who is asked first.
    cluster.stop(li, Duration::from_secs(30));
    let new_leader = db::wait_new_leader(&cluster, &leader, Duration::from_secs(60)).await;
    assert_eq!(new_leader, c, "the member whose pre_promote agreed is promoted");
    let asked_b = read(&marker(&b));
    assert!(
        asked_b.contains(&format!("asked pre_promote primary demo {b} args=0")),
        "{b} was asked first: {asked_b:?}"
    );
    let asked_c = read(&marker(&c));
    assert!(
        asked_c.contains(&format!("asked pre_promote primary demo {c} args=0")),
        "{asked_c:?}"
    );
    let log_b = read(&cluster.nodes[bi].log);
    let vetoes = log_b.matches("pre_promote_veto").count();
    assert!(vetoes >= 1, "{b} logged its veto:\n{log_b}");
    assert!(
        log_b.contains("not today"),
        "the script's stderr is in the log:\n{log_b}"
    );
    // B follows the new primary (and is not promoted: C keeps the key).
    common::wait_until(
        Duration::from_secs(60),
        "the vetoing member to stream from the new primary",
        || async { cluster.wait_pg_cluster(1, Duration::from_secs(1)).await.ok().as_deref() == Some(c.as_str()) },
    )
    .await;
    assert_eq!(
        read(&marker(&b)).lines().count(),
        vetoes,
        "one veto line per pre_promote run"
    );
}
