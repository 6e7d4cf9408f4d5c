//! A DCS member whose Raft store fails (an injected full disk) leaves: it logs `dcs_fatal`, tells systemd it is
//! stopping and exits non-zero, while the other two keep committing; restarted with the fault gone it rejoins.

mod common;

use std::fs::OpenOptions;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{client, exe, get_value, put_acked, voters, wait_until, ELECTION};
use pgha::config::Role;
use pgha::harness::local::{Layout, LocalCluster, LocalNode};

const WRITE: Duration = Duration::from_secs(20);
/// From the first write after the disk filled to the process's exit (openraft stops at once; the clean stop of a
/// witness takes well under a second).
const EXIT: Duration = Duration::from_secs(20);

/// A node started by the test itself (to see its exit status and give it a NOTIFY_SOCKET); killed by PID on drop.
struct OwnNode(Child);

impl OwnNode {
    fn spawn(node: &LocalNode, notify: &Path) -> OwnNode {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("opening the node log");
        let err_log = log.try_clone().expect("opening the node log");
        let child = Command::new(&node.argv[0])
            .args(&node.argv[1..])
            .env("PGHA_FAULT_INJECTION", "1")
            .env("NOTIFY_SOCKET", notify)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .expect("starting node1");
        OwnNode(child)
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.0.try_wait().expect("polling node1")
    }
}

impl Drop for OwnNode {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Datagrams received on the notify socket until one contains `needle` (within `timeout`); panics with what came.
fn notification_with(socket: &UnixDatagram, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline {
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("setting a read timeout");
        match socket.recv(&mut buf) {
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if text.contains(needle) {
                    return text;
                }
                seen.push(text);
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("reading NOTIFY_SOCKET: {e}"),
        }
    }
    panic!("no notification containing {needle:?} within {timeout:?}; got {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_disk_fails_exits_non_zero_and_rejoins_after_restart() {
    pgha::tls::install_crypto_provider();
    let layout = Layout {
        fault_injection: true,
        ..Layout::default()
    };
    let mut cluster =
        LocalCluster::create_with(&exe(), None, 3, Role::Witness, false, layout).expect("laying out the cluster");
    let notify_path = cluster.dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("binding the notify socket");
    let mut node1 = OwnNode::spawn(&cluster.nodes[0], &notify_path);
    cluster.start(1).expect("starting node2");
    cluster.start(2).expect("starting node3");
    notification_with(&notify, "READY=1", ELECTION);

    let all = client(&cluster, None, Duration::from_secs(2));
    let others = client(&cluster, Some(&[1, 2]), Duration::from_secs(2));
    let via_node1 = client(&cluster, Some(&[0]), Duration::from_secs(2));
    let three: Vec<String> = ["node1", "node2", "node3"].map(String::from).to_vec();
    wait_until(ELECTION, "three voters", || async {
        voters(&all).await.as_ref() == Some(&three)
    })
    .await;
    put_acked(&all, "/disk/before", "1", WRITE).await;
    wait_until(WRITE, "node1 to apply /disk/before", || async {
        via_node1
            .get_local(b"/disk/before", false)
            .await
            .is_ok_and(|(kvs, _)| kvs.len() == 1)
    })
    .await;

    // node1's disk fills: its next Raft write fails, openraft stops for good, and pgha must leave with an error.
    std::fs::write(cluster.nodes[0].data_dir.join("fault.disk-full"), b"on\n").expect("switching the fault on");
    let deadline = Instant::now() + EXIT;
    let mut written = Vec::new();
    let status = loop {
        if let Some(status) = node1.exited() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "node1 still runs {EXIT:?} after its disk filled"
        );
        // Writes make every member append; failures are expected while node1 (maybe the leader) goes.
        let key = format!("/disk/during/{:03}", written.len());
        if others.put(key.as_bytes(), b"x", 0).await.is_ok() {
            written.push(key);
        }
    };
    assert!(
        status.code().is_some_and(|c| c != 0),
        "node1 must exit with a non-zero code, got {status}"
    );
    let stopping = notification_with(&notify, "STOPPING=1", Duration::from_secs(5));
    assert!(stopping.contains("STATUS=node1 failed"), "{stopping:?}");
    let log = std::fs::read_to_string(&cluster.nodes[0].log).expect("node1's log");
    assert!(log.contains("dcs_fatal"), "no dcs_fatal line in node1's log:\n{log}");

    // The other two keep committing.
    for k in 0..10 {
        let key = format!("/disk/after/{k:02}");
        put_acked(&others, &key, "y", WRITE).await;
        written.push(key);
    }
    assert_eq!(get_value(&others, "/disk/after/09", WRITE).await.as_deref(), Some("y"));

    // Restarted with a working disk, node1 catches up and the cluster has its three voters again.
    std::fs::remove_file(cluster.nodes[0].data_dir.join("fault.disk-full")).expect("switching the fault off");
    drop(node1);
    cluster.start(0).expect("restarting node1");
    wait_until(WRITE, "node1 to hold every key written while it was away", || async {
        let Ok((kvs, _)) = via_node1.get_local(b"/disk/", true).await else {
            return false;
        };
        written.iter().all(|key| kvs.iter().any(|kv| kv.key == key.as_bytes()))
    })
    .await;
    wait_until(WRITE, "three voters, as node1 sees them", || async {
        voters(&via_node1).await.as_ref() == Some(&three)
    })
    .await;
    put_acked(&via_node1, "/disk/rejoined", "1", WRITE).await;
    assert_eq!(get_value(&others, "/disk/rejoined", WRITE).await.as_deref(), Some("1"));
}
