//! The DCS key schema of one cluster: everything lives under `/pgha/<cluster>/`.

/// Key names for one cluster.
#[derive(Clone, Debug)]
pub struct Keys {
    root: String,
}

impl Keys {
    /// Keys of cluster `cluster`.
    pub fn new(cluster: &str) -> Keys {
        Keys {
            root: crate::dcs::authz::keys::cluster_root(cluster),
        }
    }

    /// Prefix of every key of the cluster.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// Lease-bound: name of the current primary.
    pub fn leader(&self) -> String {
        format!("{}leader", self.root)
    }

    /// Bootstrap race, then the cluster's system identifier.
    pub fn initialize(&self) -> String {
        format!("{}initialize", self.root)
    }

    /// Dynamic cluster configuration (JSON).
    pub fn config(&self) -> String {
        format!("{}config", self.root)
    }

    /// Pending planned switchover or manual failover (JSON).
    pub fn switchover(&self) -> String {
        format!("{}switchover", self.root)
    }

    /// Timeline history (JSON list).
    pub fn history(&self) -> String {
        format!("{}history", self.root)
    }

    /// An operator's command to one member (restart, reload, reinit).
    pub fn command(&self, name: &str) -> String {
        format!("{}commands/{name}", self.root)
    }

    /// The member name of a command key, if `key` is one.
    pub fn command_member<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(self.root.as_str())?.strip_prefix("commands/")
    }

    /// Prefix of the lease-bound member status keys.
    pub fn members(&self) -> String {
        format!("{}members/", self.root)
    }

    /// Lease-bound status of one member.
    pub fn member(&self, name: &str) -> String {
        format!("{}members/{name}", self.root)
    }

    /// The member name of a member key, if `key` is one.
    pub fn member_name<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(self.root.as_str())?.strip_prefix("members/")
    }

    /// Synchronous replication state (JSON: the leader and the members in synchronous_standby_names), written by
    /// the leader before PostgreSQL relies on it.
    pub fn sync(&self) -> String {
        format!("{}sync", self.root)
    }

    /// Prefix of the lease-bound edge status keys.
    pub fn edges(&self) -> String {
        format!("{}edges/", self.root)
    }

    /// Lease-bound status of one edge.
    pub fn edge(&self, name: &str) -> String {
        format!("{}edges/{name}", self.root)
    }

    /// The edge name of an edge status key, if `key` is one.
    pub fn edge_name<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(self.root.as_str())?.strip_prefix("edges/")
    }

    /// A major upgrade's state (JSON, `cluster::upgrade::UpgradeState`): written by `ctl upgrade` (admin) only.
    pub fn upgrade(&self) -> String {
        format!("{}upgrade", self.root)
    }

    /// Lease-bound: name of the edge that owns the virtual IP.
    pub fn vip(&self) -> String {
        format!("{}vip", self.root)
    }
}

#[cfg(test)]
mod tests {
    use super::Keys;

    #[test]
    fn schema() {
        let k = Keys::new("main");
        assert_eq!(k.leader(), "/pgha/main/leader");
        assert_eq!(k.member("db1"), "/pgha/main/members/db1");
        assert_eq!(k.member_name("/pgha/main/members/db1"), Some("db1"));
        assert_eq!(k.member_name("/pgha/other/members/db1"), None);
        assert_eq!(k.edge_name("/pgha/main/edges/edge1"), Some("edge1"));
        assert_eq!(k.vip(), "/pgha/main/vip");
        assert_eq!(k.sync(), "/pgha/main/sync");
        assert_eq!(k.upgrade(), "/pgha/main/upgrade");
    }
}
