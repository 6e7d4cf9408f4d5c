//! The edge role: follows the cluster through the DCS, routes client ports to the right PostgreSQL (closing
//! sessions whose backend lost its role), serves a status page, publishes itself, and may hold the VIP.

pub mod cancel;
pub mod changes;
pub mod copy;
pub mod follow;
pub mod handshake;
pub mod hello;
pub mod http;
pub mod idle;
pub mod info;
pub mod keyscan;
pub mod metrics;
pub mod pacing;
pub mod proxy;
pub mod publish;
pub mod refuse;
pub mod routing;
pub mod state;
pub mod status;
pub mod updater;
pub mod vip;
pub mod workers;
