//! Shared helpers of the integration tests: real local clusters, polling with deadlines, retried writes, CLI runs.
#![allow(dead_code)]

use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use pgha::config::Role;
use pgha::dcs::client::DcsClient;
use pgha::harness::local::LocalCluster;

/// Pause between two polls of a condition.
pub const POLL: Duration = Duration::from_millis(25);
/// Budget for a fresh cluster to elect its first leader (generous: tests share 2 cores).
pub const ELECTION: Duration = Duration::from_secs(30);

/// The `pgha` binary built for these tests.
pub fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pgha"))
}

/// Lays out and starts `members` plaintext witness nodes in a temporary directory.
pub fn start_cluster(members: usize, extra_dcs: &str) -> LocalCluster {
    start_cluster_tls(members, false, extra_dcs)
}

/// Like [`start_cluster`], with mutual TLS when `tls`.
pub fn start_cluster_tls(members: usize, tls: bool, extra_dcs: &str) -> LocalCluster {
    pgha::tls::install_crypto_provider();
    let mut cluster = LocalCluster::create(&exe(), None, members, Role::Witness, tls, extra_dcs)
        .expect("laying out the local cluster");
    cluster.start_all().expect("starting the cluster's nodes");
    cluster
}

/// Waits for a node to report itself Raft leader; returns its index.
pub async fn leader(cluster: &LocalCluster) -> usize {
    cluster.wait_leader(ELECTION).await.expect("a Raft leader")
}

/// A client of the given nodes (all when None).
pub fn client(cluster: &LocalCluster, only: Option<&[usize]>, timeout: Duration) -> DcsClient {
    cluster.client_of(only, timeout).expect("building a DCS client")
}

/// Polls `f` every [`POLL`] until it returns `Some`, for at most `timeout` (and a bounded number of rounds);
/// panics naming `what` otherwise.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let max_rounds = timeout.as_millis() / POLL.as_millis() + 2;
    for _ in 0..max_rounds {
        if let Some(value) = f().await {
            return value;
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// Polls `f` until it returns true (see [`wait_for`]).
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(timeout, what, || {
        let fut = f();
        async move { fut.await.then_some(()) }
    })
    .await
}

/// Blocking variant of [`wait_until`] for synchronous tests.
pub fn wait_until_sync(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    let max_rounds = timeout.as_millis() / POLL.as_millis() + 2;
    for _ in 0..max_rounds {
        if f() {
            return;
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(POLL);
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// Puts `key` = `value`, retrying failed attempts (a leader change may be under way) until one is acknowledged
/// within `timeout`; returns the acknowledged revision. A retried put may be applied twice.
pub async fn put_acked(client: &DcsClient, key: &str, value: &str, timeout: Duration) -> i64 {
    let what = format!("an acknowledged put of {key}");
    let mut last_error = String::new();
    let deadline = Instant::now() + timeout;
    for _ in 0..1000 {
        match client.put(key.as_bytes(), value.as_bytes(), 0).await {
            Ok(revision) => return revision,
            Err(e) => last_error = e.to_string(),
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}; last error: {last_error}");
}

/// Value of `key` by a linearizable read, retried on errors until `timeout`; None when the key is absent.
pub async fn get_value(client: &DcsClient, key: &str, timeout: Duration) -> Option<String> {
    wait_for(timeout, &format!("a linearizable read of {key}"), || async {
        client
            .get(key.as_bytes(), false)
            .await
            .ok()
            .map(|(kvs, _)| kvs.first().map(|kv| String::from_utf8_lossy(&kv.value).into_owned()))
    })
    .await
}

/// Names of the voters in the membership the answering member reports.
pub async fn voters(client: &DcsClient) -> Option<Vec<String>> {
    let status = client.status().await.ok()?;
    let mut names: Vec<String> = status.members.into_iter().filter(|m| m.voter).map(|m| m.name).collect();
    names.sort();
    Some(names)
}

/// True while a process with this PID exists (kill(pid, 0) succeeds).
pub fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission; nothing is delivered.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Outcome of a finished `pgha` invocation.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// True on exit code 0.
    pub fn ok(&self) -> bool {
        self.status.success()
    }

    /// Exit code (None when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Runs `pgha args...` with extra environment variables; SIGKILLs it (by its PID) if it has not exited within
/// `timeout` and panics.
pub fn pgha(args: &[&str], envs: &[(&str, &str)], timeout: Duration) -> Run {
    let mut child = Command::new(exe())
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning pgha");
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for pgha") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("pgha {args:?} did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        status,
        stdout: out_reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
    }
}

/// Runs a `pgha bench ...` command with `--json FILE` appended (within `timeout`), asserts it succeeded, and
/// returns the parsed report with the command's whole output for assertion messages.
/// False (after printing why the calling test skips) when the program at `path` is not installed.
pub fn installed_or_skip(path: &str, test: &str, what: &str) -> bool {
    let installed = Path::new(path).exists();
    if !installed {
        eprintln!("skipped: {test} needs {what}");
    }
    installed
}

pub fn bench_report(args: &[&str], timeout: Duration) -> (serde_json::Value, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("report.json");
    let json_arg = json.to_string_lossy().to_string();
    let mut argv = args.to_vec();
    argv.extend(["--json", json_arg.as_str()]);
    let run = pgha(&argv, &[], timeout);
    let text = format!("{}\n{}", run.stdout, run.stderr);
    assert!(run.ok(), "bench failed:\n{text}");
    let report = serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON report")).expect("valid JSON");
    (report, text)
}

/// [`pgha`] from async code, off the runtime's worker threads.
pub async fn pgha_async(args: Vec<String>, envs: Vec<(String, String)>, timeout: Duration) -> Run {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        pgha(&args, &envs, timeout)
    })
    .await
    .expect("the pgha runner thread")
}

/// Polls a text file until it contains `needle` (within `timeout`).
pub async fn wait_file_contains(path: &Path, needle: &str, timeout: Duration) {
    wait_until(timeout, &format!("{needle:?} in {}", path.display()), || async {
        std::fs::read_to_string(path).is_ok_and(|text| text.contains(needle))
    })
    .await;
}

/// Every `.rs` file under `dir`, recursively (the source-tree checks of docs.rs and module_graph.rs).
pub fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("reading src/").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}
