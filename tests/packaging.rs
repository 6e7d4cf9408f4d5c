//! Packaging: shipped example configs validate, completions and man pages generate, the systemd units say what
//! the docs promise, `pgha run` speaks sd_notify and JSON logs, and the .deb (when built) holds what it should.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{exe, pgha};

const QUICK: Duration = Duration::from_secs(20);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// Every shipped example, with the role it is for (from its file name; an unknown name fails the test).
fn shipped_examples() -> Vec<(PathBuf, &'static str)> {
    let mut out = Vec::new();
    let root = repo().join("packaging/examples");
    for topology in std::fs::read_dir(&root).expect("packaging/examples") {
        let dir = topology.expect("a directory entry").path();
        for entry in std::fs::read_dir(&dir).expect("an example directory") {
            let file = entry.expect("a directory entry").path();
            let name = file
                .file_name()
                .and_then(|n| n.to_str())
                .expect("a UTF-8 name")
                .to_string();
            let role = if name.starts_with("db") || name.starts_with("pg") {
                "db"
            } else if name.starts_with("witness") {
                "witness"
            } else if name.starts_with("edge") {
                "edge"
            } else if name == "ctl.toml" {
                "ctl"
            } else {
                panic!("{}: cannot tell which role this example is for", file.display());
            };
            out.push((file, role));
        }
    }
    out.sort();
    out
}

#[test]
fn shipped_examples_validate_for_their_role() {
    let examples = shipped_examples();
    // Six hosts + ctl of seeds/000, two db nodes + witness + two edges of seeds/004.
    assert_eq!(examples.len(), 12, "{examples:?}");
    // The edge keys ([edge], [edge.vip]) are validated once this build knows them.
    let edge_known = pgha(&["config", "example", "--role", "edge"], &[], QUICK)
        .stdout
        .contains("[edge]");
    let mut checked = 0;
    for (file, role) in &examples {
        match *role {
            "ctl" => {
                let config = pgha::config::Config::load(
                    Some(file),
                    pgha::config::Purpose::Ctl,
                    &pgha::config::Overrides::default(),
                );
                assert!(config.is_ok(), "{}: {:?}", file.display(), config.err());
            }
            "edge" if !edge_known => {
                eprintln!(
                    "skipped: {} (this build has no [edge] config section yet)",
                    file.display()
                );
                continue;
            }
            _ => {
                let run = pgha(&["config", "validate", path_str(file), "--role", role], &[], QUICK);
                assert!(run.ok(), "{} is not a valid {role} config: {run:?}", file.display());
            }
        }
        checked += 1;
    }
    assert!(checked >= 7, "only {checked} examples were validated");
}

#[test]
fn completions_cover_the_subcommands() {
    for (shell, needle) in [
        ("bash", "_pgha"),
        ("zsh", "#compdef pgha"),
        ("fish", "complete -c pgha"),
    ] {
        let run = pgha(&["completions", shell], &[], QUICK);
        assert!(run.ok(), "completions {shell}: {run:?}");
        assert!(run.stdout.contains(needle), "{shell} script lacks {needle:?}");
        for sub in ["run", "ctl", "switchover", "edit-config", "cert", "completions"] {
            assert!(run.stdout.contains(sub), "{shell} completions do not mention {sub}");
        }
    }
    let bad = pgha(&["completions", "tcsh"], &[], QUICK);
    assert!(!bad.ok() && bad.stderr.contains("tcsh"), "{bad:?}");
}

#[test]
fn man_pages_generate() {
    let run = pgha(&["man"], &[], QUICK);
    assert!(run.ok(), "{run:?}");
    assert!(
        run.stdout.contains(".TH pgha 1"),
        "not a roff page: {}",
        &run.stdout[..200.min(run.stdout.len())]
    );
    for sub in ["run", "ctl", "cert", "completions"] {
        assert!(run.stdout.contains(sub), "pgha.1 does not mention {sub}");
    }

    let dir = tempfile::tempdir().expect("a temp dir");
    let out = dir.path().join("man");
    let run = pgha(&["man", "--dir", path_str(&out)], &[], QUICK);
    assert!(run.ok(), "{run:?}");
    for page in [
        "pgha.1",
        "pgha-run.1",
        "pgha-ctl.1",
        "pgha-ctl-switchover.1",
        "pgha-cert-issue.1",
    ] {
        let text = std::fs::read_to_string(out.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page} is not a man page");
    }
    assert!(
        !out.join("pgha-fence.1").exists(),
        "the internal fence command must stay out of the manual"
    );
}

fn unit(name: &str) -> String {
    let path = repo().join("packaging/systemd").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The value of `key=` in a unit (last assignment wins, as in systemd); None when absent.
fn unit_value(text: &str, key: &str) -> Option<String> {
    let prefix = format!("{key}=");
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().to_string())
}

#[test]
fn units_match_the_documented_contract() {
    for (name, role, user) in [
        ("pgha-db.service", "db", "postgres"),
        ("pgha-witness.service", "witness", "pgha"),
        ("pgha-edge.service", "edge", "pgha"),
    ] {
        let text = unit(name);
        let v = |k: &str| unit_value(&text, k).unwrap_or_else(|| panic!("{name}: no {k}="));
        assert_eq!(v("Type"), "notify", "{name}");
        assert_eq!(v("Restart"), "on-failure", "{name}");
        assert_eq!(v("User"), user, "{name}");
        assert_eq!(v("NoNewPrivileges"), "yes", "{name}");
        assert_eq!(v("ProtectSystem"), "strict", "{name}");
        assert_eq!(v("PrivateTmp"), "yes", "{name}");
        // Only pgha gets SIGTERM: it stops PostgreSQL itself (clean handover) or releases the VIP.
        assert_eq!(v("KillMode"), "mixed", "{name}");
        assert_eq!(
            v("ExecStart"),
            format!("/usr/bin/pgha run --role {role} -c /etc/pgha/{role}.toml"),
            "{name}"
        );
        let caps = v("CapabilityBoundingSet");
        assert_eq!(
            v("AmbientCapabilities"),
            caps,
            "{name}: ambient and bounding sets differ"
        );
        if role == "edge" {
            assert_eq!(caps, "CAP_NET_ADMIN CAP_NET_RAW", "{name}");
        } else {
            assert_eq!(caps, "", "{name} must have no capabilities");
            assert_eq!(v("StateDirectory"), "pgha", "{name}");
            assert_eq!(v("ReadWritePaths"), "/var/lib/pgha", "{name}");
        }
    }
}

#[test]
fn units_pass_systemd_analyze_verify() {
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    for name in ["pgha-db.service", "pgha-witness.service", "pgha-edge.service"] {
        // verify insists that ExecStart's binary exists: point it at the one under test.
        let text = unit(name).replace("/usr/bin/pgha", path_str(&exe()));
        let file = dir.path().join(name);
        std::fs::write(&file, text).expect("writing the unit copy");
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no", path_str(&file)])
            .output()
            .expect("running systemd-analyze");
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Without systemd as PID 1 verify still parses every directive; it only may complain that it cannot
        // reach the manager or find unrelated units, which says nothing about ours.
        let ours: Vec<&str> = stderr.lines().filter(|l| l.contains(name)).collect();
        assert!(ours.is_empty(), "{name}: {}", ours.join("\n"));
    }
}

/// A `pgha run` child that is SIGKILLed (by PID) if the test ends before it exits.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Receives one datagram within `deadline`, None on timeout.
fn recv_until(socket: &UnixDatagram, deadline: Instant) -> Option<String> {
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("setting a read timeout");
        match socket.recv(&mut buf) {
            Ok(n) => return Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("reading NOTIFY_SOCKET: {e}"),
        }
    }
    None
}

#[test]
fn run_notifies_systemd_and_logs_json_lines() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("binding the notify socket");
    let port = pgha::harness::local::free_ports(1).expect("a free port")[0];
    let addr = format!("127.0.0.1:{port}");
    let log_path = dir.path().join("w1.log");
    let log = std::fs::File::create(&log_path).expect("creating the log file");
    let child = Command::new(exe())
        .args(["run", "--role", "witness", "--log-format", "json", "--name", "w1"])
        .args(["--data-dir", path_str(&dir.path().join("w1")), "--listen", &addr])
        .args(["--peers", &format!("w1={addr}")])
        .env("PGHA_TLS__PLAINTEXT", "true")
        .env("NOTIFY_SOCKET", &notify_path)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawning pgha run");
    let mut node = Node(child);

    let ready = recv_until(&notify, Instant::now() + Duration::from_secs(30));
    let ready = ready.unwrap_or_else(|| {
        panic!(
            "no READY=1 within 30 s; log:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        )
    });
    assert!(ready.lines().any(|l| l == "READY=1"), "first notification: {ready:?}");
    assert!(ready.contains("STATUS=witness w1"), "{ready:?}");
    // Ready means serving: the gRPC port accepts connections now.
    std::net::TcpStream::connect(&addr).expect("the DCS port is open once READY=1 was sent");

    // SAFETY: signalling the child we spawned, by its PID.
    let pid = i32::try_from(node.0.id()).expect("a pid");
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let stopping = recv_until(&notify, Instant::now() + Duration::from_secs(10));
    assert!(
        stopping
            .as_deref()
            .is_some_and(|s| s.lines().any(|l| l == "STOPPING=1")),
        "{stopping:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = node.0.try_wait().expect("waiting for pgha") {
            break status;
        }
        assert!(Instant::now() < deadline, "pgha did not exit within 20 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(25));
    };
    assert!(status.success(), "pgha exited with {status}");

    let text = std::fs::read_to_string(&log_path).expect("reading the log");
    let mut messages = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(value["level"].is_string() && value["timestamp"].is_string(), "{line}");
        if let Some(m) = value["fields"]["message"].as_str() {
            messages.push(m.to_string());
        }
    }
    for wanted in ["node running", "stop requested: leaving cleanly"] {
        assert!(
            messages.iter().any(|m| m == wanted),
            "no {wanted:?} line in {messages:?}"
        );
    }
}

/// The .deb to inspect: `PGHA_DEB`, else the newest target/debian/pgha_*.deb.
fn find_deb() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PGHA_DEB") {
        return Some(PathBuf::from(path));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo().join("target"), PathBuf::from);
    let mut debs: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(target.join("debian"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("pgha_") && n.ends_with(".deb"))
        })
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .collect();
    debs.sort();
    debs.pop().map(|(_, p)| p)
}

fn dpkg_deb(args: &[&str]) -> String {
    let out = Command::new("dpkg-deb").args(args).output().expect("running dpkg-deb");
    assert!(
        out.status.success(),
        "dpkg-deb {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn deb_holds_binary_units_docs_and_maintainer_scripts() {
    let Some(deb) = find_deb() else {
        // .ci/run builds the package first and sets PGHA_REQUIRE_DEB=1, so CI cannot pass without checking it.
        assert!(
            std::env::var("PGHA_REQUIRE_DEB").as_deref() != Ok("1"),
            "PGHA_REQUIRE_DEB=1 but no .deb: run packaging/build-deb (or set PGHA_DEB)"
        );
        eprintln!("skipped: no target/debian/pgha_*.deb (build one with packaging/build-deb)");
        return;
    };
    let deb = path_str(&deb).to_string();
    let info = dpkg_deb(&["-I", &deb]);
    for want in [
        "Package: pgha",
        "Section: database",
        "adduser",
        "postinst",
        "prerm",
        "postrm",
    ] {
        assert!(info.contains(want), "dpkg-deb -I lacks {want:?}:\n{info}");
    }
    assert!(
        info.contains(&format!("Version: {}", env!("CARGO_PKG_VERSION"))),
        "{info}"
    );

    let files = dpkg_deb(&["-c", &deb]);
    for want in [
        "./usr/bin/pgha",
        "./lib/systemd/system/pgha-db.service",
        "./lib/systemd/system/pgha-witness.service",
        "./lib/systemd/system/pgha-edge.service",
        "./usr/share/man/man1/pgha.1.gz",
        "./usr/share/man/man1/pgha-ctl-switchover.1.gz",
        "./usr/share/bash-completion/completions/pgha",
        "./usr/share/zsh/vendor-completions/_pgha",
        "./usr/share/fish/vendor_completions.d/pgha.fish",
        "./usr/share/doc/pgha/examples/six-hosts/db1.toml",
        "./usr/share/doc/pgha/examples/six-hosts/edge3.toml",
        "./usr/share/doc/pgha/examples/two-db-witness/witness.toml",
        "./usr/share/doc/pgha/operations.md",
        "./usr/share/doc/pgha/patroni-migration.md",
        "./usr/share/doc/pgha/security.md",
        "./usr/share/doc/pgha/README.md",
        "./usr/share/pgha/monitoring/pgha-dashboard.json",
        "./usr/share/pgha/monitoring/pgha-alerts.yml",
    ] {
        assert!(
            files.lines().any(|l| l.ends_with(want)),
            "the .deb lacks {want}:\n{files}"
        );
    }
    assert!(
        files.lines().any(
            |l| (l.starts_with("-rwxr-xr-x 0/0 ") || l.starts_with("-rwxr-xr-x root/root "))
                && l.ends_with("./usr/bin/pgha")
        ),
        "/usr/bin/pgha must be root-owned 0755:\n{files}"
    );

    // Not stale: the packaged units and postinst are the ones in this tree, and the binary runs.
    let dir = tempfile::tempdir().expect("a temp dir");
    let root = dir.path().join("root");
    let control = dir.path().join("control");
    dpkg_deb(&["-x", &deb, path_str(&root)]);
    dpkg_deb(&["-e", &deb, path_str(&control)]);
    for name in ["pgha-db.service", "pgha-witness.service", "pgha-edge.service"] {
        let packaged = std::fs::read_to_string(root.join("lib/systemd/system").join(name)).expect("packaged unit");
        assert_eq!(
            packaged,
            unit(name),
            "{name} in the .deb differs from packaging/systemd: rebuild the .deb"
        );
    }
    let postinst = std::fs::read_to_string(control.join("postinst")).expect("postinst");
    let ours = std::fs::read_to_string(repo().join("packaging/debian/postinst")).expect("packaging/debian/postinst");
    assert_eq!(
        postinst, ours,
        "postinst in the .deb differs from packaging/debian/postinst"
    );
    assert!(postinst.contains("adduser --system") && postinst.contains("/var/lib/pgha"));
    let version = Command::new(root.join("usr/bin/pgha"))
        .arg("--version")
        .output()
        .expect("running the packaged pgha");
    assert!(
        String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")),
        "{version:?}"
    );
}

#[test]
fn maintainer_scripts_are_valid_sh() {
    for name in ["postinst", "prerm", "postrm"] {
        let path = repo().join("packaging/debian").join(name);
        let out = Command::new("sh").arg("-n").arg(&path).output().expect("running sh -n");
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let mode = std::os::unix::fs::PermissionsExt::mode(&path.metadata().expect("metadata").permissions());
        assert_eq!(mode & 0o111, 0o111, "{name} must be executable");
    }
}
