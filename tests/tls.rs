//! Mutual TLS on real processes: foreign clients are refused (and logged), the cluster's own client works, and a node
//! with a missing, garbage, expired or foreign certificate refuses to start, naming the file.

mod common;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{leader, pgha, put_acked, start_cluster_tls, wait_file_contains};
use pgha::dcs::client::DcsClient;
use pgha::identity::CertRole;
use pgha::tls::{NodeTls, TlsFiles};
use time::OffsetDateTime;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

const LOCALHOST: [IpAddr; 1] = [IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)];

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A CA of its own with a "ctl" certificate, in `dir`.
fn foreign_ca(dir: &Path) -> TlsFiles {
    pgha::cert::init_ca(dir, "foreign", 1, false).expect("creating a foreign CA");
    let paths = pgha::cert::issue(dir, CertRole::Admin, "ctl", &LOCALHOST, &["localhost".into()], 1)
        .expect("issuing a foreign cert");
    TlsFiles {
        ca: dir.join("ca.pem"),
        cert: paths.cert,
        key: paths.key,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_clients_are_refused_and_the_cluster_client_works() {
    let cluster = start_cluster_tls(3, true, "");
    leader(&cluster).await;
    let endpoints: Vec<String> = cluster.nodes.iter().map(|n| n.dcs_addr.clone()).collect();
    let own = cluster
        .client(Duration::from_secs(5))
        .expect("the cluster's ctl client");
    put_acked(&own, "/tls/own", "ok", Duration::from_secs(20)).await;

    let foreign_dir = tempfile::tempdir().expect("a temp dir");
    let foreign = foreign_ca(foreign_dir.path());

    // Trusts the cluster CA but presents a certificate of another CA: the members must refuse it.
    let impostor = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(&cluster.dir.join("certs/ca.pem"))))
        .identity(Identity::from_pem(read(&foreign.cert), read(&foreign.key)));
    let client = DcsClient::new(endpoints.clone(), Some(impostor), Duration::from_secs(2)).expect("a client");
    let put = client.put(b"/tls/impostor", b"x", 0).await;
    assert!(put.is_err(), "a client with a foreign certificate could write: {put:?}");

    // Entirely foreign (its own CA on both sides), loaded the way nodes load theirs.
    let stranger = NodeTls::load(&foreign)
        .expect("loading the foreign identity")
        .client_config();
    let client = DcsClient::new(endpoints, Some(stranger), Duration::from_secs(2)).expect("a client");
    let put = client.put(b"/tls/stranger", b"x", 0).await;
    assert!(put.is_err(), "a client of a foreign CA could write: {put:?}");

    wait_file_contains(&cluster.nodes[0].log, "TLS handshake refused", Duration::from_secs(10)).await;
    let (kvs, _) = own.get(b"/tls/", true).await.expect("the cluster client reads");
    let keys: Vec<&[u8]> = kvs.iter().map(|kv| kv.key.as_slice()).collect();
    assert_eq!(
        keys,
        vec![b"/tls/own".as_slice()],
        "only the cluster client's write exists"
    );
}

/// Writes a witness config using the given TLS files; returns its path.
fn node_config(dir: &Path, ca: &Path, cert: &Path, key: &Path) -> PathBuf {
    let port = pgha::harness::local::free_ports(1).expect("a free port")[0];
    let text = format!(
        "[node]\nname = \"w1\"\ndata_dir = \"{data}\"\n\n[dcs]\nlisten = \"127.0.0.1:{port}\"\npeers = [\"w1=127.0.0.1:{port}\"]\n\n\
         [tls]\nca = \"{ca}\"\ncert = \"{cert}\"\nkey = \"{key}\"\n",
        data = dir.join("data").display(),
        ca = ca.display(),
        cert = cert.display(),
        key = key.display(),
    );
    let path = dir.join("pgha.toml");
    std::fs::write(&path, text).expect("writing a node config");
    path
}

#[test]
fn a_node_with_a_bad_certificate_refuses_to_start() {
    let certs = tempfile::tempdir().expect("a temp dir");
    let certs = certs.path();
    pgha::cert::init_ca(certs, "test", 1, false).expect("a CA");
    let good = pgha::cert::issue(certs, CertRole::Witness, "w1", &LOCALHOST, &[], 1).expect("a node cert");
    let now = OffsetDateTime::now_utc();
    let spec = pgha::cert::IssueSpec {
        ips: &LOCALHOST,
        ..pgha::cert::IssueSpec::new(CertRole::Witness, "expired")
    };
    let expired = pgha::cert::issue_with_validity(
        certs,
        &spec,
        now - time::Duration::days(10),
        now - time::Duration::days(1),
    )
    .expect("an expired cert");
    let garbage = certs.join("garbage.pem");
    std::fs::write(&garbage, "this is not a certificate\n").expect("writing garbage");
    let foreign_dir = tempfile::tempdir().expect("a temp dir");
    let foreign = foreign_ca(foreign_dir.path());
    let ca = certs.join("ca.pem");

    let cases: [(&str, PathBuf, PathBuf); 4] = [
        ("missing", certs.join("missing.pem"), good.key.clone()),
        ("garbage", garbage, good.key.clone()),
        ("expired", expired.cert, expired.key),
        ("foreign", foreign.cert, foreign.key),
    ];
    for (what, cert, key) in cases {
        let node_dir = tempfile::tempdir().expect("a temp dir");
        let config = node_config(node_dir.path(), &ca, &cert, &key);
        let config = config.to_str().expect("a UTF-8 path");
        let run = pgha(
            &["run", "--role", "witness", "-c", config],
            &[],
            Duration::from_secs(20),
        );
        assert!(!run.ok(), "{what} certificate: pgha run started anyway: {run:?}");
        assert!(
            run.stderr.contains(&cert.display().to_string()),
            "{what} certificate: stderr does not name {}:\n{}",
            cert.display(),
            run.stderr
        );
    }
}
