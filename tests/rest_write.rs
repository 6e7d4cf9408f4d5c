//! Patroni's REST writes end to end (real processes, real TLS): a switchover driven by exactly the request Patroni's
//! documentation shows, refused (403, nothing changed) without a client certificate or with a member or edge one;
//! PATCH /config changes a dynamic key; POST /restart restarts the member's PostgreSQL.

mod common;
#[path = "common/db.rs"]
mod db;
#[path = "common/https.rs"]
mod https;
#[path = "common/probe.rs"]
mod probe;

use std::time::{Duration, Instant};

use pgha::cluster::keys::Keys;
use pgha::cluster::model::{ClusterView, PgRole, PgState};
use pgha::cluster::store::Store;
use pgha::harness::local::LocalCluster;
use pgha::identity::CertRole;

use db::{index_of, READY};
use https::{https, Identity};

async fn view(cluster: &LocalCluster) -> ClusterView {
    let client = cluster.client(Duration::from_secs(5)).expect("client");
    let keys = Keys::new("demo");
    Store {
        dcs: &client,
        keys: &keys,
    }
    .view()
    .await
    .expect("cluster view")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patroni_rest_writes() {
    if db::skip_without_pg() {
        return;
    }
    let started = Instant::now();
    let mut cluster = https::start_tls_cluster();
    let leader = cluster.wait_pg_cluster(2, READY).await.expect("cluster ready");
    let li = index_of(&cluster, &leader);
    let candidate = cluster.nodes[(li + 1) % 3].name.clone();
    let ci = index_of(&cluster, &candidate);
    eprintln!("cluster ready after {:?}: leader {leader}", started.elapsed());
    let certs = cluster.dir.join("certs");
    let ca = certs.join("ca.pem");
    let localhost = [std::net::IpAddr::from([127, 0, 0, 1])];
    let issued = |role: CertRole, name: &str| {
        let p = pgha::cert::issue(&certs, role, name, &localhost, &["localhost".into()], 1).expect("issuing");
        Identity {
            cert: p.cert,
            key: p.key,
        }
    };
    let admin = Identity {
        cert: certs.join("ctl.pem"),
        key: certs.join("ctl-key.pem"),
    };
    let member = Identity {
        cert: certs.join(format!("{candidate}.pem")),
        key: certs.join(format!("{candidate}-key.pem")),
    };
    let edge = issued(CertRole::Edge, "edge9");
    let monitor = issued(CertRole::Monitor, "mon9");
    let port = |i: usize| cluster.nodes[i].rest_port.expect("rest port");
    // Exactly the request Patroni's documentation shows, with this cluster's names.
    let request = format!(r#"{{"leader":"{leader}","candidate":"{candidate}"}}"#);

    // Refused: no client certificate, a member's, an edge's, a monitor's. 403 with the reason; nothing changes.
    for (who, id) in [
        ("no certificate", None),
        ("member", Some(&member)),
        ("edge", Some(&edge)),
        ("monitor", Some(&monitor)),
    ] {
        let (code, body) = https(&ca, id, port(li), "POST", "/switchover", &request)
            .await
            .expect("HTTPS");
        assert_eq!(code, 403, "{who}: {body}");
        assert!(
            body.contains("permission denied") && body.contains("admin"),
            "{who}: {body}"
        );
    }
    let (code, body) = https(&ca, Some(&edge), port(li), "PATCH", "/config", r#"{"ttl": 30}"#)
        .await
        .expect("HTTPS");
    assert_eq!(code, 403, "edge PATCH /config: {body}");
    let v = view(&cluster).await;
    assert_eq!(
        v.leader.as_ref().map(|l| l.name.as_str()),
        Some(leader.as_str()),
        "still the leader"
    );
    assert!(v.switchover.is_none(), "no switchover request was stored");
    assert_eq!(v.config.ttl_ms, 2000, "config unchanged");

    // Bad requests get Patroni's answers.
    let (code, body) = https(
        &ca,
        Some(&admin),
        port(li),
        "POST",
        "/switchover",
        r#"{"candidate":"x"}"#,
    )
    .await
    .expect("HTTPS");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("only from a specific leader"), "{body}");
    let (code, body) = https(
        &ca,
        Some(&admin),
        port(li),
        "POST",
        "/switchover",
        &format!(r#"{{"leader":"{candidate}","candidate":"{leader}"}}"#),
    )
    .await
    .expect("HTTPS");
    assert_eq!(code, 412, "wrong leader: {body}");

    // A scheduled switchover is stored (202) and DELETE /switchover drops it (then 404).
    let later = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("a time");
    let scheduled = format!(r#"{{"leader":"{leader}","candidate":"{candidate}","scheduled_at":"{later}"}}"#);
    let (code, body) = https(&ca, Some(&admin), port(li), "POST", "/switchover", &scheduled)
        .await
        .expect("HTTPS");
    assert_eq!((code, body.as_str()), (202, "Switchover scheduled"));
    assert!(view(&cluster).await.switchover.is_some(), "stored");
    let (code, body) = https(&ca, Some(&admin), port(ci), "DELETE", "/switchover", "")
        .await
        .expect("HTTPS");
    assert_eq!((code, body.as_str()), (200, "scheduled switchover deleted"));
    let (code, _) = https(&ca, Some(&admin), port(ci), "DELETE", "/switchover", "")
        .await
        .expect("HTTPS");
    assert_eq!(code, 404);

    // The switchover itself, with the admin certificate, asked of the leader's REST API.
    let asked = Instant::now();
    let (code, body) = https(&ca, Some(&admin), port(li), "POST", "/switchover", &request)
        .await
        .expect("HTTPS");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body, format!("Successfully switched over to \"{candidate}\""));
    eprintln!("switchover answered after {:?}", asked.elapsed());
    common::wait_until(
        Duration::from_secs(60),
        "the old leader streaming from the new one",
        || async {
            let v = view(&cluster).await;
            let new_leads = v
                .leader_member()
                .is_some_and(|m| m.name == candidate && m.role == PgRole::Primary);
            let old_streams = v
                .members
                .get(&leader)
                .is_some_and(|m| m.role == PgRole::Replica && m.state == PgState::Streaming);
            new_leads && old_streams
        },
    )
    .await;

    // PATCH /config: Patroni's shape (seconds, postgresql.parameters) changes dynamic keys.
    let patch = r#"{"maximum_lag_on_failover": 2097152, "postgresql": {"parameters": {"work_mem": "7MB"}}}"#;
    let (code, body) = https(&ca, Some(&admin), port(li), "PATCH", "/config", patch)
        .await
        .expect("HTTPS");
    assert_eq!(code, 200, "{body}");
    let stored: serde_json::Value = serde_json::from_str(&body).expect("the config as JSON");
    assert_eq!(stored["maximum_lag_on_failover"], 2097152, "{stored}");
    let v = view(&cluster).await;
    assert_eq!(v.config.maximum_lag_on_failover, 2 << 20);
    assert_eq!(
        v.config.postgresql_parameters.get("work_mem").map(String::as_str),
        Some("7MB")
    );
    let (code, body) = https(&ca, Some(&admin), port(li), "PATCH", "/config", r#"{"ttl": "soon"}"#)
        .await
        .expect("HTTPS");
    assert_eq!(code, 400, "a bad value is refused naming it: {body}");
    assert!(body.contains("ttl"), "{body}");

    // POST /restart on a replica (the old leader): its PostgreSQL restarts (a new postmaster pid).
    let before = cluster.postmaster_pid(li).expect("a running postmaster");
    let (code, body) = https(&ca, Some(&admin), port(li), "POST", "/restart", "")
        .await
        .expect("HTTPS");
    assert_eq!(code, 200, "{body}");
    common::wait_until(Duration::from_secs(60), "a new postmaster", || async {
        cluster.postmaster_pid(li).is_some_and(|p| p != before)
    })
    .await;
    // The restart filters: this node is a replica now, so role=primary does not match.
    let (code, body) = https(&ca, Some(&admin), port(li), "POST", "/restart", r#"{"role":"primary"}"#)
        .await
        .expect("HTTPS");
    assert_eq!(code, 503, "{body}");
    // Reinitialize on the leader is refused with the reason.
    let (code, body) = https(&ca, Some(&admin), port(ci), "POST", "/reinitialize", "")
        .await
        .expect("HTTPS");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("leader"), "{body}");
    // Reads stay open without a certificate; tag filters follow Patroni.
    let (code, _) = https(&ca, None, port(li), "GET", "/replica", "").await.expect("HTTPS");
    assert_eq!(code, 200);
    let (code, _) = https(&ca, None, port(li), "GET", "/replica?tag_zone=a", "")
        .await
        .expect("HTTPS");
    assert_eq!(code, 503, "no such tag on this node");
    cluster.stop_all(Duration::from_secs(10));
    eprintln!("done after {:?}", started.elapsed());
}
