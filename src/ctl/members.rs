//! `ctl members` and `ctl member add|remove`: what `etcdctl member list`, `endpoint status` and `endpoint health` show.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::output;
use crate::cli::Output;
use crate::dcs::client::DcsClient;
use crate::proto;

/// How long one member may take to answer its status.
const STATUS_TIMEOUT: Duration = Duration::from_secs(1);

/// One member as shown by `ctl members`.
#[derive(Debug, Serialize)]
pub struct MemberRow {
    pub name: String,
    pub id: String,
    pub addr: String,
    pub voter: bool,
    pub reachable: bool,
    pub raft_state: String,
    pub leader: bool,
    pub term: u64,
    pub last_log_index: u64,
    pub applied_index: u64,
    pub revision: i64,
    pub db_size_bytes: u64,
    pub rtt_ms: Option<f64>,
    pub error: Option<String>,
}

/// Lists members with each one's own view, asked directly (reachability and round trip).
pub async fn list(client: &DcsClient, out: Output) -> anyhow::Result<()> {
    let any = client.status().await?;
    let mut rows = Vec::new();
    for m in &any.members {
        let started = Instant::now();
        let status = client.status_of(&m.addr, STATUS_TIMEOUT).await;
        let rtt_ms = started.elapsed().as_secs_f64() * 1000.0;
        rows.push(row(m, status, rtt_ms));
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    if out == Output::Json {
        return output::json(&rows);
    }
    let headers = [
        "NAME", "ADDRESS", "TYPE", "STATE", "TERM", "LAST LOG", "APPLIED", "REVISION", "DB SIZE", "RTT",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.addr.clone(),
                if r.voter { "voter" } else { "learner" }.into(),
                if r.reachable {
                    r.raft_state.clone()
                } else {
                    format!("unreachable: {}", r.error.as_deref().unwrap_or(""))
                },
                r.term.to_string(),
                r.last_log_index.to_string(),
                r.applied_index.to_string(),
                r.revision.to_string(),
                format!("{} kB", r.db_size_bytes / 1024),
                r.rtt_ms.map(|ms| format!("{ms:.1} ms")).unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    println!("{}", output::table(&headers, &cells));
    Ok(())
}

fn row(m: &proto::Member, status: Result<proto::StatusResponse, impl std::fmt::Display>, rtt_ms: f64) -> MemberRow {
    let mut r = MemberRow {
        name: m.name.clone(),
        id: format!("{:016x}", m.id),
        addr: m.addr.clone(),
        voter: m.voter,
        reachable: false,
        raft_state: "-".into(),
        leader: false,
        term: 0,
        last_log_index: 0,
        applied_index: 0,
        revision: 0,
        db_size_bytes: 0,
        rtt_ms: None,
        error: None,
    };
    match status {
        Ok(s) => {
            r.reachable = true;
            r.leader = s.has_leader && s.leader_id == s.id;
            r.raft_state = s.state;
            r.term = s.term;
            r.last_log_index = s.last_log_index;
            r.applied_index = s.applied_index;
            r.revision = s.revision;
            r.db_size_bytes = s.db_size_bytes;
            r.rtt_ms = Some(rtt_ms);
        }
        Err(e) => r.error = Some(e.to_string()),
    }
    r
}

fn print_membership(members: &[proto::Member], out: Output) -> anyhow::Result<()> {
    #[derive(Serialize)]
    struct M<'a> {
        name: &'a str,
        addr: &'a str,
        voter: bool,
    }
    let list: Vec<M> = members
        .iter()
        .map(|m| M {
            name: &m.name,
            addr: &m.addr,
            voter: m.voter,
        })
        .collect();
    if out == Output::Json {
        return output::json(&list);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|m| {
            vec![
                m.name.to_string(),
                m.addr.to_string(),
                if m.voter { "voter" } else { "learner" }.into(),
            ]
        })
        .collect();
    println!("{}", output::table(&["NAME", "ADDRESS", "TYPE"], &rows));
    Ok(())
}

/// Adds a member (learner, then voter) and prints the new membership.
pub async fn add(client: &DcsClient, name: &str, addr: &str, out: Output) -> anyhow::Result<()> {
    let members = client.add_member(name, addr).await?;
    print_membership(&members, out)
}

/// Removes a member and prints the new membership.
pub async fn remove(client: &DcsClient, name: &str, out: Output) -> anyhow::Result<()> {
    let members = client.remove_member(name).await?;
    print_membership(&members, out)
}
