//! The clone stall rule on real processes: a replica creation method that stops making progress is killed with
//! the reason and the next method is tried; one that is slow but keeps writing lines or growing the data directory
//! is not cut.

#[path = "common/pg.rs"]
mod pg;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use pg::{settings, temp_root, Killer};
use pgha::postgres::replica_methods::{MethodKind, ReplicaMethod};
use pgha::postgres::{discover_bin_dir, ConfRole, PgError, Postgres};

const START: Duration = Duration::from_secs(30);
/// The stall timeout of these tests: short, so a stall is seen quickly.
const STALL: Duration = Duration::from_millis(1500);

/// Writes 64 KiB into the data directory and a line, records its pid, then makes no progress.
const STALLS: &str =
    "#!/bin/sh\necho $$ > \"$2\"\nhead -c 65536 /dev/zero > \"$1/partial\"\necho \"copied 64 KiB\"\nexec sleep 120\n";
/// Slow but progressing, 4 s in all (longer than the stall timeout): a line every 0.4 s, then 16 KiB more of the
/// data directory every 0.4 s without a line, then a `PG_VERSION` (what a method must leave).
const SLOW: &str = "#!/bin/sh\nfor i in 1 2 3 4 5; do echo \"step $i\"; sleep 0.4; done\n\
                    for i in 1 2 3 4 5; do head -c 16384 /dev/zero >> \"$1/copied\"; sleep 0.4; done\n\
                    echo 15 > \"$1/PG_VERSION\"\n";

fn script(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod script");
    path.display().to_string()
}

fn method(name: &str, argv: &[&str]) -> ReplicaMethod {
    ReplicaMethod {
        name: name.into(),
        kind: MethodKind::Command(argv.iter().map(|s| s.to_string()).collect()),
        no_leader: false,
    }
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    pid > 0 && unsafe { libc::kill(pid, 0) == 0 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_method_is_killed_and_a_slow_one_is_not() {
    if discover_bin_dir(None).is_err() {
        eprintln!("skipped: PostgreSQL binaries not found");
        return;
    }
    let root = temp_root();
    let killer = Killer::default();
    let scripts = root.path().join("scripts");
    std::fs::create_dir(&scripts).expect("scripts dir");
    std::fs::set_permissions(&scripts, std::fs::Permissions::from_mode(0o777)).expect("chmod scripts dir");
    let stalls = script(&scripts, "stalls.sh", STALLS);
    let slow = script(&scripts, "slow.sh", SLOW);
    let pidfile = scripts.join("stalls.pid");
    let pidfile_arg = pidfile.display().to_string();

    let a = Postgres::new(settings(root.path(), "a")).expect("settings a");
    killer.watch(&a);
    a.initdb().await.expect("initdb");
    a.write_config(&ConfRole::Primary).await.expect("config");
    a.start(START).await.expect("start a");
    a.create_roles().await.expect("roles");
    let port = a.settings().port;

    // stalls, then slow: the first is killed after the stall timeout, the second works though it takes longer.
    let mut sb = settings(root.path(), "b");
    sb.creation.stall_timeout = STALL;
    sb.creation.replica_methods = vec![
        method("stalls", &["/bin/sh", &stalls, "{data_dir}", &pidfile_arg]),
        method("slow", &["/bin/sh", &slow, "{data_dir}"]),
    ];
    let b = Postgres::new(sb).expect("settings b");
    killer.watch(&b);
    let started = Instant::now();
    // While it runs, the progress the member key publishes (`ctl list`): the method and the bytes copied so far.
    let seen = async {
        let mut samples = b.watch_clone_progress();
        let deadline = tokio::time::sleep(Duration::from_secs(60));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => return None,
                changed = samples.changed() => {
                    changed.ok()?;
                    let now = samples.borrow_and_update().clone();
                    if let Some(p) = now.filter(|p| p.method == "slow" && p.bytes >= 16384) {
                        return Some(p);
                    }
                }
            }
        }
    };
    let (used, seen) = tokio::join!(b.create_replica("127.0.0.1", port), seen);
    let used = used.expect("a method works");
    let took = started.elapsed();
    let seen = seen.expect("the slow method's progress was published while it copied");
    eprintln!("progress seen while cloning: {seen:?}");
    assert_eq!(b.clone_progress(), None, "no progress once the copy is done");
    assert_eq!(used, "slow");
    assert!(
        took > STALL * 2,
        "the slow method ran longer than the stall timeout ({took:?})"
    );
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .expect("the stalled method ran")
        .trim()
        .parse()
        .expect("a pid");
    assert!(!alive(pid), "the stalled method's process {pid} was killed");
    assert!(
        b.settings().data_dir.join("copied").is_file(),
        "b holds the slow method's copy"
    );
    assert!(
        !b.settings().data_dir.join("partial").exists(),
        "the stalled method's files were wiped"
    );
    eprintln!("stalled method killed, slow method done in {took:?}");

    // The stall alone: the error says why.
    let mut sc = settings(root.path(), "c");
    sc.creation.stall_timeout = STALL;
    sc.creation.replica_methods = vec![method("stalls", &["/bin/sh", &stalls, "{data_dir}", &pidfile_arg])];
    let c = Postgres::new(sc).expect("settings c");
    let started = Instant::now();
    let err = c.create_replica("127.0.0.1", port).await.expect_err("stalls");
    let text = err.to_string();
    assert!(matches!(err, PgError::DataDir { .. }), "{err:?}");
    assert!(
        text.contains("stalls:") && text.contains("stalled: no progress for") && text.contains("copied 64 KiB"),
        "{text}"
    );
    eprintln!("stall alone aborted after {:?}: {text}", started.elapsed());
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .expect("pid")
        .trim()
        .parse()
        .expect("a pid");
    assert!(!alive(pid), "killed again");

    // No leader: only the no_leader methods run (a method that needs the leader is skipped, not tried).
    let skipped_pidfile = scripts.join("skipped.pid");
    let skipped_arg = skipped_pidfile.display().to_string();
    let mut sd = settings(root.path(), "d");
    sd.creation.stall_timeout = STALL;
    let mut restore = method("restore", &["/bin/sh", &slow, "{data_dir}"]);
    restore.no_leader = true;
    sd.creation.replica_methods = vec![
        method("needs-leader", &["/bin/sh", &stalls, "{data_dir}", &skipped_arg]),
        restore,
    ];
    let d = Postgres::new(sd).expect("settings d");
    killer.watch(&d);
    let used = d
        .create_replica_without_leader()
        .await
        .expect("the no_leader method works");
    assert_eq!(used, "restore");
    assert!(!skipped_pidfile.exists(), "the method that needs a leader did not run");
    assert!(d.settings().data_dir.join("copied").is_file(), "d holds the restore");

    let mut se = settings(root.path(), "e");
    se.creation.replica_methods = vec![method(
        "needs-leader",
        &["/bin/sh", &stalls, "{data_dir}", &skipped_arg],
    )];
    let e = Postgres::new(se).expect("settings e");
    let err = e
        .create_replica_without_leader()
        .await
        .expect_err("no method without a leader");
    assert!(err.to_string().contains("no_leader"), "{err}");
    assert!(!skipped_pidfile.exists(), "still not run");
}
