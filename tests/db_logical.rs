//! Logical replication across a failover, with real PostgreSQL and `pg_recvlogical` (pgoutput, a publication):
//! a permanent logical slot from the dynamic config, the primary's host SIGKILLed, the consumer resumed on the new
//! primary.
//! - PostgreSQL 18 (failover slots): the consumer receives every acknowledged row, none skipped.
//! - PostgreSQL 15 (no failover slots; what docs/logical-replication.md says a consumer sees): the new primary creates
//!   the slot again, and every row acknowledged once it exists is received.
//!
//! In both, the former primary rejoins without the slot it had (dropped as stale, or replaced by the synchronized one)
//! and every member streams again.

mod common;
#[path = "common/db.rs"]
mod db;
#[path = "common/probe.rs"]
mod probe;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pgha::config::Role;
use pgha::harness::local::{Layout, LocalCluster};

use db::{ctl, index_of, port, READY};

/// A `pg_recvlogical` consumer writing to a file, killed (by PID) when dropped.
struct Consumer {
    child: Child,
    file: PathBuf,
    bin_dir: PathBuf,
    port: u16,
    password: String,
}

impl Consumer {
    fn start(bin_dir: &Path, port: u16, password: &str, file: PathBuf) -> Consumer {
        let child = Self::spawn(bin_dir, port, password, &file);
        Consumer {
            child,
            file,
            bin_dir: bin_dir.to_path_buf(),
            port,
            password: password.to_string(),
        }
    }

    /// pg_recvlogical appends to its output file, so a restarted consumer goes on where the last one stopped.
    fn spawn(bin_dir: &Path, port: u16, password: &str, file: &Path) -> Child {
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file.with_extension("err"))
            .expect("stderr file");
        Command::new(bin_dir.join("pg_recvlogical"))
            .args([
                "-d",
                &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
            ])
            .args(["--slot", "cdc", "--start", "--no-loop", "-F", "0", "-s", "1"])
            .args(["-o", "proto_version=1", "-o", "publication_names=pub"])
            .arg("-f")
            .arg(file)
            .env("PGPASSWORD", password)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("starting pg_recvlogical")
    }

    /// What pg_recvlogical said, and how many ids it received (for failure messages).
    fn report(&self) -> String {
        let err = std::fs::read_to_string(self.file.with_extension("err")).unwrap_or_default();
        format!("{} ids received; pg_recvlogical said: {err}", self.ids().len())
    }

    /// Polls (60 s at most) until the ids received pass `done`, reconnecting like a real consumer when the server
    /// closed the stream (a busy machine may cost the primary a lease; at most 5 times); the failure says what
    /// pg_recvlogical said.
    async fn wait(&mut self, done: impl Fn(&BTreeSet<i64>) -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut restarts = 0;
        while !done(&self.ids()) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {}",
                self.report()
            );
            if restarts < 5 && matches!(self.child.try_wait(), Ok(Some(_))) {
                restarts += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
                self.child = Self::spawn(&self.bin_dir, self.port, &self.password, &self.file);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The ids received so far: every insert carries `<<id>>` in a text column (set by a trigger on the primary).
    fn ids(&self) -> BTreeSet<i64> {
        let bytes = std::fs::read(&self.file).unwrap_or_default();
        let mut ids = BTreeSet::new();
        let mut rest = bytes.as_slice();
        while let Some(start) = rest.windows(2).position(|w| w == b"<<") {
            rest = &rest[start + 2..];
            let Some(end) = rest.windows(2).position(|w| w == b">>") else {
                break;
            };
            if let Some(id) = std::str::from_utf8(&rest[..end]).ok().and_then(|t| t.parse().ok()) {
                ids.insert(id);
            }
            rest = &rest[end + 2..];
        }
        ids
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `(exists, synced, temporary, active)` of slot `cdc` on the node at `port` (`synced` false before 17).
async fn cdc_slot(port: u16, pw: &str) -> Option<(bool, bool, bool, bool)> {
    let client = probe::connect(port, pw).await?;
    let major: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int / 10000", &[])
        .await
        .ok()?
        .get(0);
    let synced = if major >= 17 { "synced" } else { "false" };
    let rows = client
        .query(
            &format!("SELECT {synced}, temporary, active FROM pg_replication_slots WHERE slot_name = 'cdc'"),
            &[],
        )
        .await
        .ok()?;
    Some(match rows.first() {
        Some(r) => (true, r.get(0), r.get(1), r.get(2)),
        None => (false, false, false, false),
    })
}

/// A 3-node quorum cluster on `bin_dir` with `wal_level = logical`, the table `probe` published as `pub`, and the
/// permanent logical slot `cdc` in the dynamic config.
async fn logical_cluster(bin_dir: &Path) -> (LocalCluster, String) {
    pgha::tls::install_crypto_provider();
    let layout = Layout {
        pg_lines: format!(
            "bin_dir = \"{}\"\nparameters = {{ wal_level = \"logical\" }}\n",
            bin_dir.display()
        ),
        ha_lines: format!("{}synchronous_mode = \"quorum\"\n", db::HA),
        fault_injection: true,
        ..Layout::default()
    };
    let mut cluster = LocalCluster::create_with(&common::exe(), None, 3, Role::Db, false, layout).expect("laying out");
    cluster.start_all().expect("starting");
    let leader = cluster.wait_pg_cluster(2, READY).await.expect("cluster ready");
    let pw = probe::password(&cluster.dir);
    let primary = port(&cluster, index_of(&cluster, &leader));
    db::create_probe_table(primary, &pw).await;
    for sql in [
        "ALTER TABLE probe ADD COLUMN IF NOT EXISTS tag text",
        "CREATE OR REPLACE FUNCTION probe_tag() RETURNS trigger LANGUAGE plpgsql AS \
         $$BEGIN NEW.tag := '<<' || NEW.id || '>>'; RETURN NEW; END$$",
        "CREATE TRIGGER probe_tag BEFORE INSERT ON probe FOR EACH ROW EXECUTE FUNCTION probe_tag()",
        "CREATE PUBLICATION pub FOR TABLE probe",
    ] {
        common::wait_for(Duration::from_secs(30), sql, || probe::exec(primary, &pw, sql)).await;
    }
    let out = ctl(
        &cluster,
        &["edit-config", "--slot", "cdc=logical:pgoutput:postgres", "--force"],
    );
    assert!(out.contains("configuration updated"), "{out}");
    common::wait_for(Duration::from_secs(60), "the slot on the primary", || async {
        cdc_slot(primary, &pw).await.filter(|s| s.0 && !s.3).map(|_| ())
    })
    .await;
    (cluster, leader)
}

/// SIGKILLs the primary's host once the sync key is its own and `consumer` has received rows; returns the new
/// leader and the time it was first seen with the slot.
async fn crash_primary(cluster: &mut LocalCluster, leader: &str, consumer: &mut Consumer) -> (String, Instant) {
    let pw = probe::password(&cluster.dir);
    db::wait_own_sync_key(cluster, leader).await;
    consumer
        .wait(|ids| ids.len() >= 20, "rows at the consumer before the crash")
        .await;
    let li = index_of(cluster, leader);
    cluster.kill(li);
    cluster.signal_postgres(li, libc::SIGKILL);
    let new = db::wait_new_leader(cluster, leader, READY).await;
    let np = port(cluster, index_of(cluster, &new));
    // Not active: PostgreSQL holds a slot it is still creating (until the transactions running then have ended).
    common::wait_for(Duration::from_secs(60), "the slot on the new primary", || async {
        cdc_slot(np, &pw).await.filter(|s| s.0 && !s.3).map(|_| ())
    })
    .await;
    (new, Instant::now())
}

/// Restarts the crashed node, waits until every member streams, and checks the former primary's own slot is gone:
/// absent before 17, on 17+ replaced by the one synchronized from the new primary.
async fn rejoin(cluster: &mut LocalCluster, old: &str, failover_slots: bool) {
    let pw = probe::password(&cluster.dir);
    let oi = index_of(cluster, old);
    cluster.stop_postgres(oi);
    cluster.start(oi).expect("restarting the crashed node");
    cluster
        .wait_pg_cluster(2, READY)
        .await
        .expect("every member streams again");
    let what = if failover_slots {
        "the former primary's slot replaced by the synchronized one"
    } else {
        "the former primary's slot dropped"
    };
    common::wait_for(Duration::from_secs(60), what, || async {
        let (exists, synced, _, _) = cdc_slot(port(cluster, oi), &pw).await?;
        (exists == failover_slots && synced == failover_slots).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_18_failover_slots_lose_no_row_for_a_logical_consumer() {
    let Some((_, v18)) = db::pg15_and_18() else { return };
    let (mut cluster, leader) = logical_cluster(&v18).await;
    let pw = probe::password(&cluster.dir);
    let dir = tempfile::tempdir().expect("tempdir");
    // Writes from here on: a standby persists a synchronized slot only once WAL past the slot's position reaches it
    // (on an idle cluster it stays temporary).
    let writer = probe::writer(&db::ports(&cluster), &pw);
    // The consumer runs first: a standby synchronizes the slot only once the slot's catalog xmin (moved by what the
    // consumer confirms) is not older than the standby's own.
    let primary = port(&cluster, index_of(&cluster, &leader));
    let mut first = Consumer::start(&v18, primary, &pw, dir.path().join("before.bin"));
    // The standbys hold the slot, synchronized and persistent (only those survive a promotion).
    for i in (0..3).filter(|i| cluster.nodes[*i].name != leader) {
        common::wait_for(
            Duration::from_secs(90),
            "the slot synchronized to a standby",
            || async {
                cdc_slot(port(&cluster, i), &pw)
                    .await
                    .filter(|(exists, synced, temporary, _)| *exists && *synced && !*temporary)
                    .map(|_| ())
            },
        )
        .await;
    }
    let (new, _) = crash_primary(&mut cluster, &leader, &mut first).await;
    let second = Consumer::start(
        &v18,
        port(&cluster, index_of(&cluster, &new)),
        &pw,
        dir.path().join("after.bin"),
    );
    let before = writer.count();
    common::wait_for(Duration::from_secs(60), "writes after the failover", || async {
        (writer.count() >= before + 20).then_some(())
    })
    .await;
    let acked = writer.stop().await;
    let want: BTreeSet<i64> = acked.iter().map(|(id, _)| *id).collect();
    let received = common::wait_for(
        Duration::from_secs(60),
        "every acknowledged row at the consumer",
        || async {
            let got: BTreeSet<i64> = first.ids().union(&second.ids()).copied().collect();
            want.is_subset(&got).then_some(got)
        },
    )
    .await;
    eprintln!(
        "PostgreSQL 18: {} acknowledged rows, {} received (re-deliveries allowed)",
        want.len(),
        received.len()
    );
    rejoin(&mut cluster, &leader, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_15_recreates_the_logical_slot_on_the_new_primary() {
    if db::skip_without_pg() {
        return;
    }
    let bin_dir = pgha::postgres::discover_bin_dir(None).expect("PostgreSQL binaries");
    let (mut cluster, leader) = logical_cluster(&bin_dir).await;
    let pw = probe::password(&cluster.dir);
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = probe::writer(&db::ports(&cluster), &pw);
    let primary = port(&cluster, index_of(&cluster, &leader));
    let mut first = Consumer::start(&bin_dir, primary, &pw, dir.path().join("before.bin"));
    let (new, slot_back) = crash_primary(&mut cluster, &leader, &mut first).await;
    let ni = index_of(&cluster, &new);
    let mut second = Consumer::start(&bin_dir, port(&cluster, ni), &pw, dir.path().join("after.bin"));
    let before = writer.count();
    common::wait_for(Duration::from_secs(60), "writes after the failover", || async {
        (writer.count() >= before + 20).then_some(())
    })
    .await;
    let acked = writer.stop().await;
    // Documented: rows acknowledged after the new primary created the slot are delivered; those between the
    // consumer's last confirmed position and that moment may not be.
    let want: BTreeSet<i64> = acked
        .iter()
        .filter(|(_, at)| *at > slot_back)
        .map(|(id, _)| *id)
        .collect();
    assert!(
        want.len() >= 10,
        "rows written after the slot came back: {}",
        want.len()
    );
    second
        .wait(
            |ids| want.is_subset(ids),
            "every row acknowledged after the slot came back",
        )
        .await;
    let log = std::fs::read_to_string(&cluster.nodes[ni].log).unwrap_or_default();
    assert!(
        log.contains("logical replication slot created"),
        "the new primary created the slot"
    );
    rejoin(&mut cluster, &leader, false).await;
}
