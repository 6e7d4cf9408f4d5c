//! `/metrics` of every role on real processes (two db nodes on PostgreSQL, a witness, an edge): the text parses
//! strictly, the DCS, HA and edge families are there, a failover moves `failovers_total` and the leader-change
//! counters, and every metric the shipped alert rules and dashboard use is exported by some role.

mod common;
#[path = "common/db.rs"]
mod db;
#[path = "common/probe.rs"]
mod probe;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use pgha::config::Role;

use db::{http, index_of, READY};

/// One scrape, parsed: declared families (name -> type) and samples (name, labels, value).
#[derive(Debug, Default)]
struct Scrape {
    types: BTreeMap<String, String>,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Scrape {
    /// Every name a query may use: samples, plus declared families (a family may have no sample yet) with the
    /// series names their type implies.
    fn names(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self.samples.iter().map(|s| s.0.clone()).collect();
        for (name, kind) in &self.types {
            names.insert(name.clone());
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        }
        names
    }

    /// The value of `name` whose labels include every pair of `with`.
    fn value(&self, name: &str, with: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|(n, labels, _)| {
                n == name && with.iter().all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.2)
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `k="v",k2="v2"` with `\\`, `\"` and `\n` escapes.
fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").ok_or(format!("label without =\" in {text:?}"))?;
        if !valid_name(key) || labels.contains_key(key) {
            return Err(format!("bad or repeated label name {key:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?} in {text:?}")),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => return Err(format!("unterminated label value in {text:?}")),
            }
        };
        labels.insert(key.to_string(), value);
        rest = &after[end + 1..];
        rest = match rest.strip_prefix(',') {
            Some(r) => r,
            None if rest.is_empty() => rest,
            None => return Err(format!("expected ',' after a label in {text:?}")),
        };
    }
    Ok(labels)
}

/// A strict parser of the Prometheus text format 0.0.4: every sample belongs to the family declared (HELP and TYPE)
/// right before it, names and labels are well formed, values are numbers, no family is declared twice.
fn parse(text: &str) -> Result<Scrape, String> {
    let mut scrape = Scrape::default();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(help) = line.strip_prefix("# HELP ") {
            let name = help.split(' ').next().unwrap_or_default();
            if !valid_name(name) {
                return Err(format!("bad HELP line {line:?}"));
            }
            continue;
        }
        if let Some(decl) = line.strip_prefix("# TYPE ") {
            let (name, kind) = decl.split_once(' ').ok_or(format!("bad TYPE line {line:?}"))?;
            if !valid_name(name) || !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                return Err(format!("bad TYPE line {line:?}"));
            }
            if scrape.types.insert(name.to_string(), kind.to_string()).is_some() {
                return Err(format!("family {name} declared twice"));
            }
            current = Some((name.to_string(), kind.to_string()));
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').ok_or(format!("no value in {line:?}"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().map_err(|_| format!("bad value in {line:?}"))?,
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').ok_or(format!("unclosed labels in {line:?}"))?;
                (name, parse_labels(inner)?)
            }
            None => (series, BTreeMap::new()),
        };
        let (family, kind) = current.as_ref().ok_or(format!("sample before any TYPE: {line:?}"))?;
        let belongs = name == family
            || (kind == "histogram"
                && ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name == format!("{family}{s}")));
        if !belongs {
            return Err(format!("sample {name} under family {family} ({kind})"));
        }
        if kind == "histogram" && name.ends_with("_bucket") && !labels.contains_key("le") {
            return Err(format!("bucket without le: {line:?}"));
        }
        scrape.samples.push((name.to_string(), labels, value));
    }
    Ok(scrape)
}

async fn scrape(port: u16) -> Scrape {
    let (code, body) = http(port, "GET", "/metrics").await;
    assert_eq!(code, 200, "GET /metrics on port {port}: {body}");
    if let Some(promtool) = promtool() {
        let mut child = std::process::Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("running promtool");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), body.as_bytes()).expect("feeding promtool");
        let out = child.wait_with_output().expect("promtool");
        // Parse errors and lint problems (names, units, _total) both fail.
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "promtool check metrics (port {port}): {text}");
    }
    parse(&body).unwrap_or_else(|e| panic!("{e}\n{body}"))
}

fn promtool() -> Option<&'static str> {
    let found = std::process::Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    found.then_some("promtool")
}

fn monitoring_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packaging/monitoring")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The `pgha_*` metric names a PromQL expression uses.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("pgha_").map(|k| k + i) {
        let starts_word = at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_');
        let end = expr[at..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .map_or(expr.len(), |k| k + at);
        if starts_word {
            names.insert(expr[at..end].to_string());
        }
        i = end;
    }
    names
}

/// Every PromQL expression of the alert rules (`expr:` lines) and of the dashboard (`expr` and `definition` keys).
fn shipped_expressions() -> Vec<(String, String)> {
    let mut exprs = Vec::new();
    for line in monitoring_file("pgha-alerts.yml").lines() {
        if let Some(e) = line.trim().strip_prefix("expr:") {
            exprs.push(("pgha-alerts.yml".to_string(), e.trim().to_string()));
        }
    }
    let dashboard: serde_json::Value =
        serde_json::from_str(&monitoring_file("pgha-dashboard.json")).expect("the dashboard is JSON");
    fn walk(v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr" | "definition", serde_json::Value::String(e)) => {
                            out.push(("pgha-dashboard.json".to_string(), e.clone()))
                        }
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    walk(&dashboard, &mut exprs);
    exprs
}

#[test]
fn alert_rules_pass_promtool() {
    let Some(promtool) = promtool() else {
        eprintln!(
            "skipped: promtool not installed (the metric names are still checked by every_role_exports_its_families)"
        );
        return;
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/monitoring/pgha-alerts.yml");
    let out = std::process::Command::new(promtool)
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .expect("running promtool");
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_parser_is_strict() {
    let good = "# HELP pgha_x_total X.\n# TYPE pgha_x_total counter\npgha_x_total{a=\"q\\\"\",b=\"2\"} 3\n";
    let s = parse(good).expect("good text");
    assert_eq!(s.value("pgha_x_total", &[("a", "q\""), ("b", "2")]), Some(3.0));
    for bad in [
        "pgha_x 1\n",
        "# TYPE pgha_x gauge\npgha_y 1\n",
        "# TYPE pgha_x gauge\npgha_x{a=1} 1\n",
        "# TYPE pgha_x gauge\npgha_x one\n",
        "# TYPE pgha_x gauge\n# TYPE pgha_x gauge\n",
        "# TYPE pgha_h histogram\npgha_h_bucket 1\n",
    ] {
        assert!(parse(bad).is_err(), "accepted {bad:?}");
    }
    assert_eq!(
        metric_names("sum(pgha_edge_vip_configured) > 0 and rate(pgha_a_total[5m]) or xpgha_no"),
        ["pgha_a_total", "pgha_edge_vip_configured"].map(String::from).into()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_exports_its_families() {
    if db::skip_without_pg() {
        return;
    }
    // Two db nodes first; the witness joins the running DCS as the third voter; an edge follows.
    let mut cluster = db::lay_out(2, "", "");
    cluster.start_all().expect("starting the db nodes");
    cluster.wait_leader(common::ELECTION).await.expect("a Raft leader");
    let wi = cluster.add_node_as(Role::Witness).expect("laying out the witness");
    cluster.start(wi).expect("starting the witness");
    let witness_port = cluster.nodes[wi].rest_port.expect("the witness's HTTP port");
    let ei = cluster.add_edge("").expect("laying out the edge");
    cluster.start_edge(ei).expect("starting the edge");
    let edge = cluster.edges[ei].edge.expect("edge ports");

    let leader = cluster
        .wait_pg_cluster(1, READY)
        .await
        .expect("a primary and a streaming replica");
    let li = index_of(&cluster, &leader);
    let ri = 1 - li;
    let rest_ports: Vec<u16> = cluster.nodes.iter().map(|n| n.rest_port.expect("rest port")).collect();
    let rest = |i: usize| rest_ports[i];
    common::wait_for(Duration::from_secs(60), "the witness to be a voter", || async {
        let s = scrape(witness_port).await;
        (s.value("pgha_dcs_voters", &[]) == Some(3.0)).then_some(())
    })
    .await;
    let (code, ready) = http(witness_port, "GET", "/readiness").await;
    assert_eq!((code, ready.as_str()), (200, "ready\n"), "witness /readiness");
    assert_eq!(http(witness_port, "GET", "/health").await.0, 200, "witness /health");

    // A session through the edge, so its backend dial histogram has a sample.
    let pw = probe::password(&cluster.dir);
    common::wait_for(Duration::from_secs(30), "a session through the edge", || async {
        probe::in_recovery(edge.primary, &pw).await.filter(|r| !r)
    })
    .await;

    let db_scrapes = [scrape(rest(li)).await, scrape(rest(ri)).await];
    let witness = scrape(witness_port).await;
    let edge_scrape = scrape(edge.status).await;
    let dcs = [
        "pgha_dcs_has_leader",
        "pgha_dcs_is_leader",
        "pgha_dcs_current_term",
        "pgha_dcs_applied_index",
        "pgha_dcs_apply_lag_entries",
        "pgha_dcs_voters",
        "pgha_dcs_leader_changes_total",
        "pgha_dcs_proposals_committed_total",
        "pgha_dcs_proposals_failed_total",
        "pgha_dcs_log_flush_duration_seconds_count",
        "pgha_dcs_snapshot_size_bytes",
    ];
    let ha = [
        "pgha_failovers_total",
        "pgha_switchovers_total",
        "pgha_fencings_total",
        "pgha_rewinds_total",
        "pgha_reclones_total",
        "pgha_ha_leader_changes_total",
        "pgha_ha_loop_duration_seconds_bucket",
        "pgha_ha_lease_remaining_seconds",
        "pgha_ha_role",
        // Patroni-compatible names, kept for existing dashboards.
        "pgha_primary",
        "pgha_replica",
        "pgha_postgres_timeline",
        "pgha_replication_lag_bytes",
        "pgha_dcs_last_seen_age_seconds",
    ];
    let edge_families = [
        "pgha_edge_sessions",
        "pgha_edge_refused_total",
        "pgha_edge_cut_total",
        "pgha_edge_backend_connect_duration_seconds_bucket",
        "pgha_edge_vip_holder",
        "pgha_edge_vip_moves_total",
    ];
    for (what, s, names) in [
        ("db (leader)", &db_scrapes[0], [&dcs[..], &ha[..]].concat()),
        ("db (replica)", &db_scrapes[1], [&dcs[..], &ha[..]].concat()),
        ("witness", &witness, dcs.to_vec()),
        ("edge", &edge_scrape, edge_families.to_vec()),
    ] {
        let have = s.names();
        let samples: BTreeSet<&str> = s.samples.iter().map(|x| x.0.as_str()).collect();
        for name in names {
            assert!(
                samples.contains(name),
                "{what} lacks samples of {name}; it has {have:?}"
            );
        }
    }
    for (role, s) in [("db", &db_scrapes[0]), ("witness", &witness), ("edge", &edge_scrape)] {
        let version = env!("CARGO_PKG_VERSION");
        assert_eq!(
            s.value("pgha_build_info", &[("role", role), ("version", version)]),
            Some(1.0),
            "{role} build_info"
        );
    }
    assert_eq!(db_scrapes[0].value("pgha_ha_role", &[("role", "primary")]), Some(1.0));
    assert_eq!(db_scrapes[1].value("pgha_ha_role", &[("role", "replica")]), Some(1.0));
    assert!(
        edge_scrape.value(
            "pgha_edge_backend_connect_duration_seconds_count",
            &[("port", "primary")]
        ) >= Some(1.0),
        "the edge timed its backend dial"
    );

    // Every metric the shipped rules and dashboard use is exported by some role.
    let exported: BTreeSet<String> = [&db_scrapes[0], &db_scrapes[1], &witness, &edge_scrape]
        .iter()
        .flat_map(|s| s.names())
        .collect();
    let mut used = 0;
    for (file, expr) in shipped_expressions() {
        for name in metric_names(&expr) {
            used += 1;
            assert!(
                exported.contains(&name),
                "{file} uses {name}, which no role exports (in {expr:?})"
            );
        }
    }
    assert!(
        used > 20,
        "the rules and dashboard use pgha metrics ({used} uses found)"
    );

    // The edge's page refreshes itself and has a JSON twin with the routing changes and their times.
    let (code, page) = http(edge.status, "GET", "/").await;
    assert!(code == 200 && page.contains("http-equiv=\"refresh\""), "{page}");
    let (code, json) = http(edge.status, "GET", "/status.json").await;
    assert_eq!(code, 200, "{json}");
    let status: serde_json::Value = serde_json::from_str(&json).expect("status.json is JSON");
    assert_eq!(status["routing"]["primary"]["name"], leader.as_str(), "{status}");
    assert!(
        status["changes"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["kind"] == "route")),
        "the first routing is a change: {status}"
    );

    // Failover: the primary's pgha and PostgreSQL are SIGKILLed; the replica is promoted.
    let raft_leader_was_killed = db_scrapes[0].value("pgha_dcs_is_leader", &[]) == Some(1.0);
    let before = scrape(rest(ri)).await;
    let witness_before = witness.value("pgha_dcs_leader_changes_total", &[]).unwrap_or(0.0);
    cluster.kill(li);
    cluster.signal_postgres(li, libc::SIGKILL);
    let new_leader = db::wait_new_leader(&cluster, &leader, Duration::from_secs(60)).await;
    assert_eq!(index_of(&cluster, &new_leader), ri);
    let leader_changes = |s: &Scrape| s.value("pgha_ha_leader_changes_total", &[]).unwrap_or(0.0);
    // The promotion is counted in the iteration that promotes; the loop sees itself named leader in the next one.
    let after = common::wait_for(
        Duration::from_secs(30),
        "the promotion and the leader change counted",
        || async {
            let s = scrape(rest(ri)).await;
            (s.value("pgha_failovers_total", &[]) >= Some(1.0) && leader_changes(&s) > leader_changes(&before))
                .then_some(s)
        },
    )
    .await;
    assert_eq!(after.value("pgha_ha_role", &[("role", "primary")]), Some(1.0));
    let witness_after = scrape(witness_port)
        .await
        .value("pgha_dcs_leader_changes_total", &[])
        .unwrap_or(0.0);
    eprintln!(
        "failovers_total on {new_leader}: {:?}; HA leader changes {} -> {}; DCS leader changes on the witness \
         {witness_before} -> {witness_after} (the killed node was the Raft leader: {raft_leader_was_killed})",
        after.value("pgha_failovers_total", &[]),
        leader_changes(&before),
        leader_changes(&after),
    );
    if raft_leader_was_killed {
        assert!(witness_after > witness_before, "the DCS leader-change counter moved");
    }
    common::wait_for(Duration::from_secs(30), "the edge to record the new route", || async {
        let (_, json) = http(edge.status, "GET", "/status.json").await;
        let status: serde_json::Value = serde_json::from_str(&json).ok()?;
        let changes = status["changes"].as_array()?.clone();
        changes
            .iter()
            .any(|c| c["kind"] == "route" && c["text"].as_str().is_some_and(|t| t.contains(&new_leader)))
            .then_some(())
    })
    .await;
}
