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

impl MemberRow {
    /// A member that did not answer (yet).
    pub fn unreachable(name: &str, addr: &str, voter: bool) -> MemberRow {
        MemberRow {
            name: name.to_string(),
            id: String::new(),
            addr: addr.to_string(),
            voter,
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
        }
    }
}

/// Every member with its own view, asked directly (reachability and round trip), sorted by name.
pub async fn collect(client: &DcsClient) -> anyhow::Result<Vec<MemberRow>> {
    let any = client.status().await?;
    let mut rows = Vec::new();
    for m in &any.members {
        let started = Instant::now();
        let status = client.status_of(&m.addr, STATUS_TIMEOUT).await;
        let rtt_ms = started.elapsed().as_secs_f64() * 1000.0;
        rows.push(row(m, status, rtt_ms));
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rows)
}

/// The exit code of `ctl members` (pure): 0 all answer, 1 some do not, 2 no quorum of voters or no Raft leader.
pub fn exit_code(rows: &[MemberRow]) -> u8 {
    use super::exit::code;
    let voters = rows.iter().filter(|r| r.voter).count();
    let answering = rows.iter().filter(|r| r.voter && r.reachable).count();
    if answering <= voters / 2 || !rows.iter().any(|r| r.reachable && r.leader) {
        code::CRITICAL
    } else if rows.iter().any(|r| !r.reachable) {
        code::DEGRADED
    } else {
        code::HEALTHY
    }
}

/// Lists members (`ctl members`); exits non-zero ([`exit_code`]) when one does not answer. No member answering at
/// all is [`super::exit::code::UNKNOWN`].
pub async fn list(client: &DcsClient, out: Output) -> anyhow::Result<()> {
    let rows = collect(client).await.map_err(|e| super::exit::Exit {
        code: super::exit::code::UNKNOWN,
        message: format!("no DCS member answers: {e:#}"),
    })?;
    print_rows(&rows, out)?;
    match exit_code(&rows) {
        0 => Ok(()),
        code => Err(super::exit::Exit {
            code,
            message: String::new(),
        }
        .into()),
    }
}

fn print_rows(rows: &[MemberRow], out: Output) -> anyhow::Result<()> {
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
    let mut r = MemberRow::unreachable(&m.name, &m.addr, m.voter);
    r.id = format!("{:016x}", m.id);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_code_table() {
        let r = |name: &str, voter: bool, reachable: bool, leader: bool| {
            let mut row = MemberRow::unreachable(name, "a:1", voter);
            row.reachable = reachable;
            row.leader = leader;
            row
        };
        let cases = [
            (
                vec![
                    r("a", true, true, true),
                    r("b", true, true, false),
                    r("c", true, true, false),
                ],
                0,
            ),
            (
                vec![
                    r("a", true, true, true),
                    r("b", true, true, false),
                    r("c", true, false, false),
                ],
                1,
            ),
            (
                vec![
                    r("a", true, true, true),
                    r("b", true, true, false),
                    r("l", false, false, false),
                ],
                1,
            ),
            (
                vec![
                    r("a", true, true, true),
                    r("b", true, false, false),
                    r("c", true, false, false),
                ],
                2,
            ),
            (
                vec![
                    r("a", true, true, false),
                    r("b", true, true, false),
                    r("c", true, true, false),
                ],
                2,
            ),
        ];
        for (rows, want) in cases {
            assert_eq!(exit_code(&rows), want, "{rows:?}");
        }
    }
}
