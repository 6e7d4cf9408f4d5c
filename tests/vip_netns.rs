//! The VIP in network namespaces (root only): the netlink and gratuitous-ARP pieces in-process after `setns`, the
//! `pgha fence-vip` process, and keepers in three edge namespaces over a DCS of three witnesses: one holder, moves
//! on SIGKILL / SIGSTOP / link cut, the old holder's address gone before the new one's appears.

mod common;
#[path = "common/netns.rs"]
mod netns;
#[path = "common/vip_keepers.rs"]
mod vip_keepers;
#[path = "common/vip_view.rs"]
mod vip_view;

use std::time::{Duration, Instant};

use netns::{in_ns, root_or_skip, tcp_touch, NsChild, Topology, IFACE};
use pgha::edge::vip::{garp, netlink::VipAddress};

const SETTLE: Duration = Duration::from_secs(10);

fn wait(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    common::wait_until_sync(timeout, what, &mut f);
}

#[test]
fn netlink_and_garp_pieces_in_a_namespace() {
    if !root_or_skip("netlink_and_garp_pieces_in_a_namespace") {
        return;
    }
    let topo = Topology::create(&["a", "b", "client"]);
    let vip = topo.addr(100);
    let vip_op = |host: &str, op: &'static str| {
        let ns = topo.host(host).ns.clone();
        in_ns(&ns, move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let a = VipAddress::open(IFACE, vip, 24).await.expect("open");
                match op {
                    "add" => {
                        a.add().await.expect("add");
                        a.add().await.expect("adding twice is fine");
                        assert!(a.present().await.expect("list"), "present after add");
                        garp::send_burst(IFACE, vip).expect("gratuitous ARP");
                    }
                    "remove" => {
                        a.remove().await.expect("remove");
                        a.remove().await.expect("removing twice is fine");
                        assert!(!a.present().await.expect("list"), "absent after remove");
                    }
                    _ => unreachable!(),
                }
            })
        })
    };
    vip_op("a", "add");
    assert!(
        topo.has_address("a", vip),
        "a carries the VIP: {:?}",
        topo.addresses("a")
    );
    // The client resolves the VIP to a's MAC by talking to it.
    tcp_touch(&topo, "client", vip, 9);
    let (mac_a, mac_b) = (topo.mac("a"), topo.mac("b"));
    wait("client resolves the VIP to a", SETTLE, || {
        topo.neighbour_mac("client", vip).as_deref() == Some(&mac_a)
    });
    // Move it: b adds it and announces, a removes it. The client's entry follows b's announcement alone.
    vip_op("b", "add");
    vip_op("a", "remove");
    assert!(!topo.has_address("a", vip) && topo.has_address("b", vip));
    wait("client's neighbour entry shows b's MAC", SETTLE, || {
        topo.neighbour_mac("client", vip).as_deref() == Some(&mac_b)
    });
    // Missing interface: a clear error naming it.
    let ns = topo.host("a").ns.clone();
    let err = in_ns(&ns, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(VipAddress::open("nope0", vip, 24)).err()
    });
    let err = err.expect("no such interface").to_string();
    assert!(err.contains("nope0"), "{err}");
}

#[test]
fn fence_vip_removes_the_address_at_the_deadline_and_exits_when_disarmed() {
    if !root_or_skip("fence_vip_removes_the_address_at_the_deadline_and_exits_when_disarmed") {
        return;
    }
    let topo = Topology::create(&["a"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let vip = topo.addr(100);
    let cidr = format!("{vip}/24");
    let file = dir.path().join("vip.deadline");
    let fencer = |log: &str| {
        topo.spawn(
            "a",
            &[
                common::exe().to_str().expect("utf-8 path"),
                "fence-vip",
                "--deadline-file",
                file.to_str().expect("utf-8 path"),
                "--address",
                &cidr,
                "--interface",
                IFACE,
            ],
            &[],
            &dir.path().join(log),
        )
    };
    let add = || {
        let out = topo.run("a", &["ip", "addr", "add", &cidr, "dev", IFACE]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    add();
    // Disarm: the fencer exits and leaves the address alone.
    pgha::fence::arm(&file, pgha::fence::monotonic_ns_in(Duration::from_secs(60))).expect("arm");
    let mut f = fencer("disarm.log");
    pgha::fence::disarm(&file).expect("disarm");
    wait("fencer exits once disarmed", SETTLE, || !f.running());
    assert!(topo.has_address("a", vip), "a disarmed fence keeps the address");
    // Deadline: the fencer removes the address, disarms and exits.
    let deadline = Duration::from_millis(300);
    pgha::fence::arm(&file, pgha::fence::monotonic_ns_in(deadline)).expect("arm");
    let armed = Instant::now();
    let mut f = fencer("fence.log");
    wait("address removed by the fencer", SETTLE, || !topo.has_address("a", vip));
    assert!(armed.elapsed() >= deadline, "not before the deadline");
    wait("fencer exits after fencing", SETTLE, || !f.running());
    assert!(!file.exists(), "the fencer disarms after fencing");
    // A garbled deadline counts as expired.
    add();
    std::fs::write(&file, "garbage").expect("write");
    let mut f = fencer("garbled.log");
    wait("garbled deadline fences", SETTLE, || !topo.has_address("a", vip));
    wait("fencer exits", SETTLE, || !f.running());
}

/// Runs `argv` to its end (SIGKILL and panic after 20 s); returns (exit code, stderr).
fn run_bounded(argv: &[&str]) -> (Option<i32>, String) {
    let mut child = std::process::Command::new(argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{argv:?} did not exit (it should refuse to start)");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err).expect("read stderr");
    (status.code(), err)
}

#[test]
fn an_edge_without_capabilities_or_interface_refuses_to_start() {
    if !root_or_skip("an_edge_without_capabilities_or_interface_refuses_to_start") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let config = |interface: &str| {
        let path = dir.path().join(format!("{interface}.toml"));
        let text = format!(
            "[cluster]\nname = \"demo\"\n[node]\nname = \"edge1\"\n[dcs]\nendpoints = [\"127.0.0.1:9\"]\n\
             [tls]\nplaintext = true\n[edge]\nprimary_listen = \"127.0.0.1:9\"\nreplica_listen = \"\"\n\
             any_listen = \"\"\nstatus_listen = \"\"\n[edge.vip]\naddress = \"10.231.255.100/24\"\n\
             interface = \"{interface}\"\n"
        );
        std::fs::write(&path, text).expect("config");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).expect("chmod");
        path.to_str().expect("utf-8 path").to_string()
    };
    let exe = common::exe();
    let exe = exe.to_str().expect("utf-8 path");
    // As user nobody: no CAP_NET_ADMIN / CAP_NET_RAW.
    let eth = config(IFACE);
    let nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        exe,
        "run",
        "--role",
        "edge",
        "-c",
    ];
    let (code, err) = run_bounded(&[&nobody[..], &[eth.as_str()]].concat());
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("CAP_NET_ADMIN") && err.contains("CAP_NET_RAW"), "{err}");
    for (interface, needle) in [("nope0", "\"nope0\" does not exist"), ("lo", "no MAC address")] {
        let cfg = config(interface);
        let (code, err) = run_bounded(&[exe, "run", "--role", "edge", "-c", &cfg]);
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains(needle), "{interface}: {err}");
    }
}

#[test]
fn keepers_hold_the_vip_once_and_move_it_on_faults() {
    if !root_or_skip("keepers_hold_the_vip_once_and_move_it_on_faults") {
        return;
    }
    vip_keepers::scenario();
}

#[test]
fn a_better_edge_preempts_when_enabled() {
    if !root_or_skip("a_better_edge_preempts_when_enabled") {
        return;
    }
    vip_keepers::preemption();
}

/// Starts the keeper of `edge` (the `vip_keeper_child` helper) in its namespace, fencing with `fence_exe`.
fn spawn_keeper(topo: &Topology, dir: &std::path::Path, edge: &str, priority: u32, fence_exe: &str) -> NsChild {
    let exe = std::env::current_exe().expect("test binary");
    let argv = [
        exe.to_str().expect("utf-8 path"),
        "vip_keeper_child",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ];
    let endpoint = format!("{}:{DCS_PORT}", topo.host("db1").ip);
    let cidr = format!("{}/24", topo.addr(100));
    let health = dir.join(format!("{edge}.unhealthy"));
    let priority = priority.to_string();
    let envs = [
        ("PGHA_VIP_CHILD", edge),
        ("PGHA_VIP_PRIORITY", priority.as_str()),
        ("PGHA_VIP_ENDPOINTS", endpoint.as_str()),
        ("PGHA_VIP_ADDRESS", cidr.as_str()),
        ("PGHA_VIP_TTL_MS", "2000"),
        ("PGHA_VIP_PREEMPT", "false"),
        ("PGHA_VIP_HEALTH_FILE", health.to_str().expect("utf-8 path")),
        ("PGHA_VIP_EXE", fence_exe),
    ];
    topo.spawn(edge, &argv, &envs, &dir.join(format!("{edge}.log")))
}

/// PIDs of the `pgha fence-vip` processes in `host`'s namespace.
fn fencers(topo: &Topology, host: &str) -> Vec<i32> {
    topo.pids(host)
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|arg| arg == b"fence-vip"))
        })
        .collect()
}

const DCS_PORT: u16 = 2379;

/// A keeper whose fence cannot start (the fencing executable does not exist) never adds the address: it gives the
/// key back, logs the failure once however often it retries, and retries no faster than the poll period doubling.
/// Another edge then takes the VIP; its fencer, SIGKILLed while it holds the VIP, is restarted and that is logged.
#[test]
fn no_address_without_its_fence_and_a_dead_fencer_is_restarted() {
    if !root_or_skip("no_address_without_its_fence_and_a_dead_fencer_is_restarted") {
        return;
    }
    let topo = Topology::create(&["db1", "edge1", "edge2"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let vip = topo.addr(100);
    // One witness is the whole DCS.
    let db1 = topo.host("db1").ip;
    let config = dir.path().join("db1.toml");
    let text = format!(
        "[cluster]\nname = \"demo\"\n\n[node]\nname = \"db1\"\ndata_dir = \"{data}\"\n\n[dcs]\n\
         listen = \"{db1}:{DCS_PORT}\"\npeers = [\"db1={db1}:{DCS_PORT}\"]\n\n[tls]\nplaintext = true\n",
        data = dir.path().join("db1").display(),
    );
    std::fs::write(&config, text).expect("write config");
    let pgha = common::exe();
    let pgha = pgha.to_str().expect("utf-8 path");
    let _witness = topo.spawn(
        "db1",
        &[
            pgha,
            "run",
            "--role",
            "witness",
            "-c",
            config.to_str().expect("utf-8 path"),
        ],
        &[],
        &dir.path().join("db1.log"),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let dcs = {
        let _in_runtime = runtime.enter();
        pgha::dcs::client::DcsClient::new(vec![format!("{db1}:{DCS_PORT}")], None, Duration::from_secs(2))
            .expect("DCS client")
    };
    let keys = pgha::cluster::keys::Keys::new("demo");
    // Every put of the `vip` key is one acquisition attempt that got as far as the key.
    let (mut events, mut progress) = runtime.block_on(async {
        common::wait_for(SETTLE, "the DCS", || async { dcs.get(b"/", true).await.ok() }).await;
        dcs.watch_with_progress(keys.vip().as_bytes(), false, 0)
    });
    runtime.block_on(async {
        tokio::time::timeout(SETTLE, progress.changed())
            .await
            .expect("the watch runs")
            .expect("progress")
    });
    let view = vip_view::VipView {
        topo: &topo,
        edges: vec!["edge1".into(), "edge2".into()],
        vip,
        runtime: &runtime,
        dcs: &dcs,
        keys: keys.clone(),
        log_dir: dir.path(),
    };

    let _edge1 = spawn_keeper(&topo, dir.path(), "edge1", 100, "/nonexistent/pgha");
    let first_try = runtime.block_on(async {
        tokio::time::timeout(SETTLE, events.recv())
            .await
            .expect("edge1 takes the key")
            .expect("watch open")
    });
    assert!(
        matches!(&first_try, pgha::dcs::client::WatchMessage::Events(e) if e.iter().any(|e| e.kv.value == b"edge1")),
        "{first_try:?}"
    );
    let mut attempts = 1;
    let window = Instant::now() + Duration::from_secs(9);
    while Instant::now() < window {
        assert!(
            !topo.has_address("edge1", vip),
            "edge1 added the VIP without its fence\n{}",
            view.logs()
        );
        runtime.block_on(async {
            while let Ok(Some(pgha::dcs::client::WatchMessage::Events(batch))) =
                tokio::time::timeout(Duration::from_millis(20), events.recv()).await
            {
                attempts += batch
                    .iter()
                    .filter(|e| e.kind == pgha::dcs::types::EventKind::Put && e.kv.value == b"edge1")
                    .count();
            }
        });
    }
    // Tries at about 0, 1, 3 and 7 s (the poll period doubling); one every pass would be 9 or more.
    eprintln!("edge1 without a fence executable: {attempts} acquisition attempts in 9 s");
    assert!(
        (3..=5).contains(&attempts),
        "{attempts} acquisition attempts in 9 s\n{}",
        view.logs()
    );
    assert_eq!(view.log_count("edge1", "cannot arm the fence"), 1, "{}", view.logs());
    assert_eq!(view.log_count("edge1", "acquired on"), 0, "{}", view.logs());
    common::wait_until_sync(SETTLE, "the key given back", || view.key_holder().is_none());

    // A working edge takes the VIP (the failing one goes last).
    let _edge2 = spawn_keeper(&topo, dir.path(), "edge2", 50, pgha);
    assert_eq!(view.settled_holder("edge2 up"), "edge2");
    assert!(!topo.has_address("edge1", vip));

    // Its fencer dies while it holds the VIP: restarted on the next pass, logged once, the VIP stays.
    let old = fencers(&topo, "edge2");
    assert_eq!(old.len(), 1, "one fencer runs for the holder: {old:?}");
    // SAFETY: kill(2) on a process in our own test namespace (started by our keeper).
    unsafe {
        libc::kill(old[0], libc::SIGKILL);
    }
    common::wait_until_sync(SETTLE, "a new fencer for edge2", || {
        let now = fencers(&topo, "edge2");
        now.len() == 1 && now != old
    });
    let restarts = view
        .logs()
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("fencing process exited"))
        .count();
    assert_eq!(restarts, 1, "the restart is logged once\n{}", view.logs());
    assert_eq!(view.settled_holder("after the fencer restart"), "edge2");
    assert_eq!(view.log_count("edge2", "released from"), 0, "{}", view.logs());
}

/// Not a test: the keeper process that `keepers_hold_the_vip_once_and_move_it_on_faults` starts in each edge
/// namespace (this test binary re-executed with `PGHA_VIP_CHILD` set).
#[test]
#[ignore = "helper process started by keepers_hold_the_vip_once_and_move_it_on_faults"]
fn vip_keeper_child() {
    vip_keepers::child();
}
