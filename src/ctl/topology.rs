//! `ctl topology`: the replication tree as `patronictl topology` shows it: the leader first, each replica indented
//! under the member it streams from. pgha replicas always follow the leader (no cascading), so the tree has one
//! level; without a leader every member is a root.

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

/// The tree (pure): the leader with every other member under it, or every member as a root without a leader.
pub fn tree(view: &crate::ha::model::ClusterView) -> Vec<Node> {
    let leader = view.leader.as_ref().map(|l| l.name.as_str());
    let (mut roots, replicas): (Vec<ListRow>, Vec<ListRow>) = rows(view)
        .into_iter()
        .partition(|r| leader.is_none() || Some(r.member.as_str()) == leader);
    let leaf = |member| Node {
        member,
        replicas: Vec::new(),
    };
    match roots.pop() {
        Some(root) if leader.is_some() => vec![Node {
            member: root,
            replicas: replicas.into_iter().map(leaf).collect(),
        }],
        // No leader (or its member key expired): a flat list.
        Some(root) => roots.into_iter().chain([root]).chain(replicas).map(leaf).collect(),
        None => replicas.into_iter().map(leaf).collect(),
    }
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
    use crate::ha::model::{ClusterView, LeaderKey, MemberInfo, PgRole, PgState};

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
}
