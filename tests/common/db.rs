//! Helpers of the db-role tests: a local PostgreSQL cluster with fast HA timing and fault injection.
#![allow(dead_code)]

use std::time::Duration;

use pgha::config::Role;
use pgha::local::{Layout, LocalCluster};

use super::common;

/// Fast HA timing for tests (the defaults are already a 2 s TTL).
pub const HA: &str = "ttl_ms = 2000\nloop_wait_ms = 250\n";
pub const READY: Duration = Duration::from_secs(120);

pub fn pg_available() -> bool {
    pgha::postgres::discover_bin_dir(None).is_ok()
}

pub fn start(members: usize, extra: &str) -> LocalCluster {
    pgha::tls::install_crypto_provider();
    let layout = Layout {
        extra_toml: extra.to_string(),
        ha_lines: HA.to_string(),
        fault_injection: true,
        ..Layout::default()
    };
    let mut cluster =
        LocalCluster::create_with(&common::exe(), None, members, Role::Db, false, layout).expect("laying out");
    cluster.start_all().expect("starting");
    cluster
}

pub fn index_of(cluster: &LocalCluster, name: &str) -> usize {
    cluster
        .nodes
        .iter()
        .position(|n| n.name == name)
        .expect("a node of that name")
}

pub fn port(cluster: &LocalCluster, i: usize) -> u16 {
    cluster.nodes[i].pg_port.expect("db nodes have a PostgreSQL port")
}

/// True (after saying so) when the PostgreSQL binaries are missing and the test must skip.
pub fn skip_without_pg() -> bool {
    let missing = !pg_available();
    if missing {
        eprintln!("skipped: PostgreSQL binaries not found");
    }
    missing
}

/// Every node's PostgreSQL port, in node order.
pub fn ports(cluster: &LocalCluster) -> Vec<u16> {
    (0..cluster.nodes.len()).map(|i| port(cluster, i)).collect()
}

/// Waits (60 s at most) until `SHOW name` on the node at `port` answers `value`.
pub async fn wait_setting(port: u16, password: &str, name: &str, value: &str) {
    let what = format!("{name} = {value} on port {port}");
    common::wait_for(Duration::from_secs(60), &what, || async {
        let client = super::probe::connect(port, password).await?;
        let row = client.query_one(&format!("SHOW {name}"), &[]).await.ok()?;
        (row.get::<_, String>(0) == value).then_some(())
    })
    .await;
}

/// Creates the `probe` table the writers insert into.
pub async fn create_probe_table(port: u16, password: &str) {
    super::probe::exec(port, password, "CREATE TABLE probe (id bigint PRIMARY KEY)")
        .await
        .expect("creating the probe table");
}
