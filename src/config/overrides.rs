//! Command-line flag overrides, applied after the file and the environment.

use std::path::PathBuf;

use super::Config;

/// Values given as command-line flags; each `Some` replaces the corresponding
/// key after the file and the environment have been applied (flags win).
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// Replaces `node.name`.
    pub name: Option<String>,
    /// Replaces `node.data_dir`.
    pub data_dir: Option<PathBuf>,
    /// Replaces `dcs.listen`.
    pub listen: Option<String>,
    /// Replaces `dcs.advertise` (an empty string unsets it).
    pub advertise: Option<String>,
    /// Replaces `dcs.peers`.
    pub peers: Option<Vec<String>>,
    /// Replaces `dcs.endpoints`.
    pub endpoints: Option<Vec<String>>,
}

impl Overrides {
    /// Applies the flags to `config`; returns whether any flag was set.
    pub(super) fn apply(&self, config: &mut Config) -> bool {
        let mut any = false;
        if let Some(name) = &self.name {
            config.node.name = name.clone();
            any = true;
        }
        if let Some(dir) = &self.data_dir {
            config.node.data_dir = dir.clone();
            any = true;
        }
        if let Some(listen) = &self.listen {
            config.dcs.listen = listen.clone();
            any = true;
        }
        if let Some(advertise) = &self.advertise {
            // Same rule as the environment: empty means "not set".
            config.dcs.advertise = Some(advertise.clone()).filter(|a| !a.is_empty());
            any = true;
        }
        if let Some(peers) = &self.peers {
            config.dcs.peers = peers.clone();
            any = true;
        }
        if let Some(endpoints) = &self.endpoints {
            config.dcs.endpoints = endpoints.clone();
            any = true;
        }
        any
    }
}
