//! `ctl topology`: the replication tree as `patronictl topology` shows it: the leader first, each replica indented
//! under the member it streams from (the `upstream` it publishes: the leader, or its `replicatefrom` member when it
//! cascades). A replica that publishes no upstream (not streaming yet, an older pgha), or one whose upstream is not in
//! the view, is shown under the leader; without a leader every member is a root.

use std::collections::BTreeSet;

use serde::Serialize;

use super::list::{rows, ListRow};
use super::output;
use crate::cli::Output;
use crate::dcs::client::DcsClient;

/// One member and the members streaming from it.
#[derive(Debug, Serialize)]
pub struct Node {
    #[serde(flatten)]
    pub member: ListRow,
    pub replicas: Vec<Node>,
}

/// The tree (pure): the leader with the members streaming from it below it, theirs below them; every member
/// appears once (one on a loop of published upstreams, which cannot stream, is put under the leader).
pub fn tree(view: &crate::cluster::model::ClusterView) -> Vec<Node> {
    let leader = view
        .leader
        .as_ref()
        .map(|l| l.name.as_str())
        .filter(|l| view.members.contains_key(*l));
    let mut all: Vec<Option<ListRow>> = rows(view).into_iter().map(Some).collect();
    let names: Vec<String> = all.iter().flatten().map(|r| r.member.clone()).collect();
    let Some(leader) = leader else {
        // No leader (or its member key expired): a flat list.
        return all
            .into_iter()
            .flatten()
            .map(|member| Node {
                member,
                replicas: Vec::new(),
            })
            .collect();
    };
    // The parent of each member: its published upstream when that is another member of the view, else the leader.
    let parent = |name: &str| -> &str {
        view.members
            .get(name)
            .and_then(|m| m.upstream.as_deref())
            .filter(|u| *u != name && view.members.contains_key(*u))
            .unwrap_or(leader)
    };
    fn build(
        name: &str,
        names: &[String],
        all: &mut [Option<ListRow>],
        placed: &mut BTreeSet<String>,
        parent: &dyn Fn(&str) -> String,
    ) -> Option<Node> {
        let i = names.iter().position(|n| n == name)?;
        let member = all[i].take()?;
        placed.insert(name.to_string());
        let children: Vec<String> = names
            .iter()
            .filter(|n| n.as_str() != name && !placed.contains(n.as_str()) && parent(n) == name)
            .cloned()
            .collect();
        let replicas = children
            .iter()
            .filter_map(|c| build(c, names, all, placed, parent))
            .collect();
        Some(Node { member, replicas })
    }
    let parent_owned = |n: &str| parent(n).to_string();
    let mut placed = BTreeSet::new();
    let Some(mut root) = build(leader, &names, &mut all, &mut placed, &parent_owned) else {
        return Vec::new();
    };
    // Members on a loop of upstreams never reached the leader: shown under it.
    for (i, name) in names.iter().enumerate() {
        if let Some(member) = all[i].take() {
            placed.insert(name.clone());
            root.replicas.push(Node {
                member,
                replicas: Vec::new(),
            });
        }
    }
    vec![root]
}

/// Table lines of the tree, depth-first, names indented with `+ ` per level (pure).
pub fn lines(nodes: &[Node]) -> Vec<Vec<String>> {
    fn walk(node: &Node, depth: usize, out: &mut Vec<Vec<String>>) {
        let m = &node.member;
        let lag = m.receive_lag_bytes.map(|b| b.to_string()).unwrap_or_default();
        out.push(vec![
            format!("{}{}", "+ ".repeat(depth), m.member),
            m.host.clone(),
            m.role.clone(),
            m.state.clone(),
            m.timeline.to_string(),
            lag,
        ]);
        for child in &node.replicas {
            walk(child, depth + 1, out);
        }
    }
    let mut out = Vec::new();
    for node in nodes {
        walk(node, 0, &mut out);
    }
    out
}

/// Prints the tree.
pub async fn show(dcs: &DcsClient, cluster: &str, out: Output) -> anyhow::Result<()> {
    let view = super::node_cmd::view(dcs, cluster).await?;
    let nodes = tree(&view);
    if out == Output::Json {
        return output::json(&serde_json::json!({ "cluster": cluster, "topology": nodes }));
    }
    println!("Cluster: {cluster}");
    let headers = ["Member", "Host", "Role", "State", "TL", "Lag (bytes)"];
    println!("{}", output::table(&headers, &lines(&nodes)));
    if view.config.paused {
        println!(" Maintenance mode: on");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::model::{ClusterView, LeaderKey, MemberInfo, PgRole, PgState};

    fn member(name: &str, role: PgRole) -> MemberInfo {
        let mut m = MemberInfo::for_test(name, role, PgState::Streaming, 100);
        m.timeline = 2;
        m
    }

    fn view(leader: Option<&str>) -> ClusterView {
        let mut v = ClusterView {
            leader: leader.map(|l| LeaderKey {
                name: l.into(),
                lease: 1,
                mod_revision: 1,
            }),
            ..ClusterView::default()
        };
        for (name, role) in [("a", PgRole::Replica), ("b", PgRole::Primary), ("c", PgRole::Replica)] {
            v.members.insert(name.into(), member(name, role));
        }
        v
    }

    #[test]
    fn leader_first_replicas_indented_under_it() {
        let t = tree(&view(Some("b")));
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].member.member, "b");
        let names: Vec<&str> = t[0].replicas.iter().map(|n| n.member.member.as_str()).collect();
        assert_eq!(names, ["a", "c"]);
        let l = lines(&t);
        assert_eq!(l[0][0], "b");
        assert_eq!(l[0][2], "Leader");
        assert_eq!(l[1][0], "+ a");
        assert_eq!(l[2][0], "+ c");
    }

    #[test]
    fn without_a_leader_every_member_is_a_root() {
        let t = tree(&view(None));
        let names: Vec<&str> = t.iter().map(|n| n.member.member.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert!(t.iter().all(|n| n.replicas.is_empty()));
        // A leader key whose member is not published: its would-be replicas are still shown.
        let t = tree(&view(Some("gone")));
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn cascading_replicas_under_their_upstream() {
        let mut v = view(Some("b"));
        for (name, up) in [("a", "c"), ("c", "b")] {
            if let Some(m) = v.members.get_mut(name) {
                m.upstream = Some(up.into());
            }
        }
        let l = lines(&tree(&v));
        let names: Vec<&str> = l.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(names, ["b", "+ c", "+ + a"]);
        // An upstream that is gone: under the leader.
        if let Some(m) = v.members.get_mut("a") {
            m.upstream = Some("gone".into());
        }
        let names: Vec<String> = lines(&tree(&v)).into_iter().map(|r| r[0].clone()).collect();
        assert_eq!(names, ["b", "+ a", "+ c"]);
        // A loop of published upstreams (never stable): every member still shown once.
        for (name, up) in [("a", "c"), ("c", "a")] {
            if let Some(m) = v.members.get_mut(name) {
                m.upstream = Some(up.into());
            }
        }
        let names: Vec<String> = lines(&tree(&v)).into_iter().map(|r| r[0].clone()).collect();
        assert_eq!(names, ["b", "+ a", "+ c"]);
    }
}
