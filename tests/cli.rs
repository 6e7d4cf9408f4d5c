//! The `pgha` binary's own commands: config example/validate, config errors at `run`, cert init/issue, and `demo`.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{exe, pgha, pid_alive, wait_until_sync};

const QUICK: Duration = Duration::from_secs(20);

fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

#[test]
fn example_configs_pass_validation() {
    let dir = tempfile::tempdir().expect("a temp dir");
    for role in ["db", "witness", "edge"] {
        let example = pgha(&["config", "example", "--role", role], &[], QUICK);
        assert!(example.ok(), "config example --role {role}: {example:?}");
        assert!(
            example.stdout.contains("[dcs]"),
            "the {role} example has a [dcs] section"
        );
        let file = dir.path().join(format!("{role}.toml"));
        std::fs::write(&file, &example.stdout).expect("writing the example");
        let valid = pgha(&["config", "validate", path_str(&file), "--role", role], &[], QUICK);
        assert!(valid.ok(), "the {role} example does not validate: {valid:?}");
        assert!(valid.stdout.contains("valid"), "{valid:?}");
    }
}

const PEERS_OK: &str = r#"["w1=127.0.0.1:7401", "w2=127.0.0.1:7402", "w3=127.0.0.1:7403"]"#;

fn witness_config(name_line: &str, peers: &str, data_dir: &Path) -> String {
    format!(
        "[node]\n{name_line}\ndata_dir = \"{}\"\n\n[dcs]\nlisten = \"127.0.0.1:7401\"\npeers = {peers}\n\n[tls]\nplaintext = true\n",
        data_dir.display()
    )
}

#[test]
fn bad_configs_are_rejected_by_validate_and_run_naming_the_key() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let data = dir.path().join("data");
    let cases = [
        ("missing name", witness_config("", PEERS_OK, &data), "node.name"),
        (
            "bad address",
            witness_config(
                "name = \"w1\"",
                r#"["w1=127.0.0.1:7401", "w2=127.0.0.1:99999", "w3=127.0.0.1:7403"]"#,
                &data,
            ),
            "dcs.peers[1]",
        ),
        (
            "duplicate name",
            witness_config(
                "name = \"w1\"",
                r#"["w1=127.0.0.1:7401", "w2=127.0.0.1:7402", "w1=127.0.0.1:7403"]"#,
                &data,
            ),
            "dcs.peers[2]",
        ),
    ];
    for (what, text, key) in cases {
        let file = dir.path().join(format!("{}.toml", what.replace(' ', "-")));
        std::fs::write(&file, text).expect("writing a config");
        let validate = pgha(
            &["config", "validate", path_str(&file), "--role", "witness"],
            &[],
            QUICK,
        );
        assert_eq!(validate.code(), Some(1), "{what}: config validate: {validate:?}");
        assert!(
            validate.stderr.contains(key),
            "{what}: validate's stderr does not name {key}:\n{}",
            validate.stderr
        );
        let run = pgha(&["run", "--role", "witness", "-c", path_str(&file)], &[], QUICK);
        assert_eq!(run.code(), Some(1), "{what}: run: {run:?}");
        assert!(
            run.stderr.contains(key),
            "{what}: run's stderr does not name {key}:\n{}",
            run.stderr
        );
    }
    // The good variant passes, so the failures above are about the named keys only.
    let good = dir.path().join("good.toml");
    std::fs::write(&good, witness_config("name = \"w1\"", PEERS_OK, &data)).expect("writing a config");
    let validate = pgha(
        &["config", "validate", path_str(&good), "--role", "witness"],
        &[],
        QUICK,
    );
    assert!(validate.ok(), "{validate:?}");

    // A missing file and a directory instead of a file.
    for path in [dir.path().join("nosuch.toml"), dir.path().to_path_buf()] {
        let validate = pgha(
            &["config", "validate", path_str(&path), "--role", "witness"],
            &[],
            QUICK,
        );
        assert_eq!(validate.code(), Some(1), "validate {}: {validate:?}", path.display());
        assert!(
            validate.stderr.contains(path_str(&path)),
            "stderr does not name the file:\n{}",
            validate.stderr
        );
        let run = pgha(&["run", "--role", "witness", "-c", path_str(&path)], &[], QUICK);
        assert_eq!(run.code(), Some(1), "run -c {}: {run:?}", path.display());
        assert!(
            run.stderr.contains(path_str(&path)),
            "stderr does not name the file:\n{}",
            run.stderr
        );
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn cert_init_and_issue_write_usable_files_with_private_keys() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let dir = tmp.path().join("tls");
    let init = pgha(&["cert", "init", "--dir", path_str(&dir)], &[], QUICK);
    assert!(init.ok(), "{init:?}");
    let issue_args = [
        "cert",
        "issue",
        "--dir",
        path_str(&dir),
        "--name",
        "db1",
        "--ip",
        "127.0.0.1",
    ];
    // The role is required, and the error names the flag and the choices.
    let no_role = pgha(&issue_args, &[], QUICK);
    assert!(!no_role.ok(), "{no_role:?}");
    for want in ["--role", "member, witness, edge, admin, monitor"] {
        assert!(no_role.stderr.contains(want), "{want:?} missing:\n{}", no_role.stderr);
    }
    let issue = pgha(&[&issue_args[..], &["--role", "member"]].concat(), &[], QUICK);
    assert!(issue.ok(), "{issue:?}");
    assert!(issue.stdout.contains("pgha://pgha/member/db1"), "{}", issue.stdout);
    assert!(
        issue.stdout.contains("--role ROLE"),
        "how to re-issue: {}",
        issue.stdout
    );
    let show = pgha(&["cert", "show", path_str(&dir.join("db1.pem"))], &[], QUICK);
    assert!(show.ok(), "{show:?}");
    for want in ["role:       member", "name:       db1", "IP:127.0.0.1", "not after:"] {
        assert!(show.stdout.contains(want), "{want:?} missing:\n{}", show.stdout);
    }
    for file in ["ca.pem", "ca-key.pem", "db1.pem", "db1-key.pem"] {
        assert!(dir.join(file).is_file(), "{file} was not written");
    }
    assert_eq!(mode(&dir.join("ca-key.pem")), 0o600);
    assert_eq!(mode(&dir.join("db1-key.pem")), 0o600);
    let files = pgha::tls::TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("db1.pem"),
        key: dir.join("db1-key.pem"),
    };
    pgha::tls::NodeTls::load(&files).expect("the issued certificate loads against the CA");

    let ca_before = std::fs::read(dir.join("ca.pem")).expect("reading ca.pem");
    let again = pgha(&["cert", "init", "--dir", path_str(&dir)], &[], QUICK);
    assert!(!again.ok(), "a second cert init without --force succeeded: {again:?}");
    assert!(
        again.stderr.contains("ca.pem") && again.stderr.contains("force"),
        "the refusal should name the existing file and --force:\n{}",
        again.stderr
    );
    assert_eq!(
        std::fs::read(dir.join("ca.pem")).expect("reading ca.pem"),
        ca_before,
        "the CA was not replaced"
    );
}

/// A running `pgha demo`; dropping it stops the demo (SIGTERM, then SIGKILL) and any node it left behind.
struct Demo {
    child: Child,
    dir: PathBuf,
    stderr: PathBuf,
    lines: mpsc::Receiver<String>,
    node_pids: Vec<i32>,
    /// What the demo's `export PGHA_CTL_CONFIG=` line names.
    ctl_config: Option<String>,
}

impl Demo {
    fn start(dir: PathBuf, stderr: PathBuf, plaintext: bool) -> Demo {
        let mut args = vec!["demo".to_string(), "--dir".into(), path_str(&dir).into()];
        if plaintext {
            args.push("--plaintext".into());
        }
        let err = std::fs::File::create(&stderr).expect("creating the demo's stderr file");
        let mut child = Command::new(exe())
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .expect("spawning pgha demo");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        // Drains stdout until EOF, so the demo never blocks or fails on a full or closed pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Demo {
            child,
            dir,
            stderr,
            lines,
            node_pids: Vec::new(),
            ctl_config: None,
        }
    }

    fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(remaining) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(remaining) {
                Ok(line) if line.contains("ready") => return,
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        panic!("the demo was not ready within {timeout:?}; stdout: {seen:#?}\nstderr:\n{stderr}");
    }

    /// SIGTERM, then waits (bounded) for the exit status.
    fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        // SAFETY: kill(2) on the PID of our own, not yet reaped child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The one `export PGHA_CTL_CONFIG=<path>` line the demo prints after it is ready (the lines up to `nodes:`
    /// are read): the path.
    fn exported_ctl_config(&mut self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut exports = Vec::new();
        while let Some(remaining) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(remaining) {
                Ok(line) if line.starts_with("nodes:") => break,
                Ok(line) => {
                    if let Some(path) = line.strip_prefix("export PGHA_CTL_CONFIG=") {
                        exports.push(path.to_string());
                    }
                }
                Err(_) => break,
            }
        }
        assert_eq!(exports.len(), 1, "exactly one export line: {exports:?}");
        exports.remove(0)
    }

    /// `pgha ctl ARGS` without `-c`: the config comes from the demo's export line.
    fn ctl(&self, args: &[&str]) -> common::Run {
        let config = self.ctl_config.as_deref().expect("the demo's export line was read");
        // A generous request budget: a loaded machine must not turn a slow answer into a failure.
        pgha(
            &[&["ctl"], args].concat(),
            &[("PGHA_DCS__REQUEST_TIMEOUT_MS", "10000"), ("PGHA_CTL_CONFIG", config)],
            Duration::from_secs(60),
        )
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) && self.terminate(Duration::from_secs(10)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for pid in &self.node_pids {
            if pid_alive(*pid) {
                // SAFETY: a node PID our demo started (read from its demo.json) that outlived the demo.
                unsafe {
                    libc::kill(*pid, libc::SIGKILL);
                }
            }
        }
    }
}

fn demo_round(plaintext: bool) {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let dir = tmp.path().join("demo");
    let mut demo = Demo::start(dir.clone(), tmp.path().join("demo.stderr"), plaintext);
    demo.wait_ready(Duration::from_secs(60));
    let exported = demo.exported_ctl_config(Duration::from_secs(10));
    assert_eq!(
        Path::new(&exported),
        demo.dir.join("ctl.toml").as_path(),
        "the demo's ctl config"
    );
    demo.ctl_config = Some(exported);

    assert!(dir.join("ctl.toml").is_file(), "ctl.toml is missing");
    let manifest = std::fs::read_to_string(dir.join("demo.json")).expect("reading demo.json");
    let manifest: serde_json::Value = serde_json::from_str(&manifest).expect("demo.json is JSON");
    let nodes = manifest["nodes"].as_array().expect("demo.json lists nodes");
    assert_eq!(nodes.len(), 3, "{manifest}");
    for node in nodes {
        let pid = node["pid"].as_i64().expect("each node has a pid");
        demo.node_pids.push(i32::try_from(pid).expect("a pid fits i32"));
        let argv = node["argv"].as_array().expect("each node has an argv");
        assert!(argv.iter().any(|a| a == "run"), "argv restarts the node: {argv:?}");
    }
    assert!(
        demo.node_pids.iter().all(|p| pid_alive(*p)),
        "every node of demo.json runs"
    );

    let members = demo.ctl(&["members", "-o", "json"]);
    assert!(members.ok(), "ctl members: {members:?}");
    let rows: serde_json::Value = serde_json::from_str(&members.stdout).expect("ctl members -o json prints JSON");
    assert_eq!(rows.as_array().map(Vec::len), Some(3), "{rows}");

    let put = demo.ctl(&["dcs", "put", "/k", "v"]);
    assert!(put.ok(), "ctl dcs put: {put:?}");
    let get = demo.ctl(&["dcs", "get", "/k", "-o", "json"]);
    assert!(get.ok(), "ctl dcs get: {get:?}");
    let got: serde_json::Value = serde_json::from_str(&get.stdout).expect("ctl dcs get -o json prints JSON");
    assert_eq!(got["kvs"][0]["value"], "v", "{got}");

    let status = demo
        .terminate(Duration::from_secs(30))
        .expect("the demo exits after SIGTERM");
    assert!(status.success(), "the demo exited with {status}");
    let pids = demo.node_pids.clone();
    wait_until_sync(Duration::from_secs(10), "every demo node to be gone", || {
        pids.iter().all(|p| !pid_alive(*p))
    });
}

#[test]
fn demo_plaintext_serves_ctl_and_stops_every_node_on_sigterm() {
    demo_round(true);
}

#[test]
fn demo_with_mutual_tls_serves_ctl_and_stops_every_node_on_sigterm() {
    demo_round(false);
}

/// `ctl upgrade` documents its options, needs --bin-dir and takes one transfer mode.
#[test]
fn ctl_upgrade_options() {
    let help = pgha(&["ctl", "upgrade", "--help"], &[], QUICK);
    assert!(help.ok(), "{help:?}");
    for flag in ["--bin-dir", "--link", "--clone", "--copy", "--check", "--timeout"] {
        assert!(help.stdout.contains(flag), "{flag} in: {}", help.stdout);
    }
    let no_dir = pgha(&["ctl", "upgrade"], &[], QUICK);
    assert!(!no_dir.ok() && no_dir.stderr.contains("--bin-dir"), "{no_dir:?}");
    let two = pgha(&["ctl", "upgrade", "--bin-dir", "/x", "--link", "--copy"], &[], QUICK);
    assert!(!two.ok() && two.stderr.contains("cannot be used with"), "{two:?}");
}
