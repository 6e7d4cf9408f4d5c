//! The edges part of `ctl list`: every published edge (name, health, ports) and which one holds the VIP.

use serde::Serialize;

use super::output;
use crate::cluster::keys::Keys;
use crate::dcs::client::DcsClient;
use crate::edge::info::EdgeInfo;

/// One row of the edges table.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct EdgeRow {
    pub edge: String,
    pub healthy: bool,
    pub primary: String,
    pub replica: String,
    pub any: String,
    pub status: String,
    pub vip_holder: bool,
}

/// Rows from the values of `edges/*` and the `vip` key (pure); unreadable entries are skipped.
pub fn rows(edges: &[Vec<u8>], vip: Option<&str>) -> Vec<EdgeRow> {
    let mut rows: Vec<EdgeRow> = edges
        .iter()
        .filter_map(|v| serde_json::from_slice::<EdgeInfo>(v).ok())
        .map(|e| EdgeRow {
            vip_holder: vip == Some(e.name.as_str()),
            edge: e.name,
            healthy: e.healthy,
            primary: e.ports.primary,
            replica: e.ports.replica,
            any: e.ports.any,
            status: e.status_addr,
        })
        .collect();
    rows.sort_by(|a, b| a.edge.cmp(&b.edge));
    rows
}

/// The edges of the cluster and the VIP holder (value of the `vip` key).
pub async fn read(dcs: &DcsClient, keys: &Keys) -> anyhow::Result<(Vec<EdgeRow>, Option<String>)> {
    let (edges, _) = dcs.get(keys.edges().as_bytes(), true).await?;
    let (vip, _) = dcs.get(keys.vip().as_bytes(), false).await?;
    let vip = vip.first().map(|kv| String::from_utf8_lossy(&kv.value).into_owned());
    let values: Vec<Vec<u8>> = edges.into_iter().map(|kv| kv.value).collect();
    Ok((rows(&values, vip.as_deref()), vip))
}

/// Prints the edges table (nothing when the cluster has no edge).
pub fn print(rows: &[EdgeRow], vip: Option<&str>) {
    if rows.is_empty() {
        return;
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.edge.clone(),
                if r.healthy { "healthy" } else { "unhealthy" }.to_string(),
                r.primary.clone(),
                r.replica.clone(),
                r.any.clone(),
                r.status.clone(),
                if r.vip_holder { "*".into() } else { String::new() },
            ]
        })
        .collect();
    let headers = ["Edge", "State", "Primary", "Replicas", "Any", "Status page", "VIP"];
    println!("{}", output::table(&headers, &cells));
    println!(" VIP holder: {}", vip.unwrap_or("none"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::info::EdgePorts;

    #[test]
    fn rows_mark_the_vip_holder_and_skip_garbage() {
        let info = |name: &str, healthy| {
            serde_json::to_vec(&EdgeInfo {
                name: name.into(),
                status_addr: "h:8080".into(),
                ports: EdgePorts {
                    primary: "0.0.0.0:5432".into(),
                    ..EdgePorts::default()
                },
                healthy,
                vip_priority: Some(100),
                vip_holder: false,
            })
            .expect("json")
        };
        let rows = rows(
            &[info("edge2", false), b"not json".to_vec(), info("edge1", true)],
            Some("edge2"),
        );
        let got: Vec<(&str, bool, bool)> = rows
            .iter()
            .map(|r| (r.edge.as_str(), r.healthy, r.vip_holder))
            .collect();
        assert_eq!(got, [("edge1", true, false), ("edge2", false, true)]);
        assert_eq!(rows[0].primary, "0.0.0.0:5432");
    }
}
