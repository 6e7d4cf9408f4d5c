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

use netns::{in_ns, root_or_skip, tcp_touch, Topology, IFACE};
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
    pgha::ha::fence::arm(&file, pgha::ha::fence::monotonic_ns_in(Duration::from_secs(60))).expect("arm");
    let mut f = fencer("disarm.log");
    pgha::ha::fence::disarm(&file).expect("disarm");
    wait("fencer exits once disarmed", SETTLE, || !f.running());
    assert!(topo.has_address("a", vip), "a disarmed fence keeps the address");
    // Deadline: the fencer removes the address, disarms and exits.
    let deadline = Duration::from_millis(300);
    pgha::ha::fence::arm(&file, pgha::ha::fence::monotonic_ns_in(deadline)).expect("arm");
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

/// Not a test: the keeper process that `keepers_hold_the_vip_once_and_move_it_on_faults` starts in each edge
/// namespace (this test binary re-executed with `PGHA_VIP_CHILD` set).
#[test]
#[ignore = "helper process started by keepers_hold_the_vip_once_and_move_it_on_faults"]
fn vip_keeper_child() {
    vip_keepers::child();
}
