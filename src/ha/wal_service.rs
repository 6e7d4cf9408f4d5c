//! The `Ha` gRPC service of a db node: its WAL position read from PostgreSQL at the moment of the question, so a
//! replica racing for leadership compares fresh positions, not ones published a loop ago.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::postgres::Postgres;
use crate::proto;

/// Answers `WalPosition` for this node.
#[derive(Clone)]
pub struct HaService {
    pub pg: Arc<Postgres>,
    pub name: String,
    pub nofailover: bool,
    pub failover_priority: i32,
    /// While our `pre_promote` vetoed a promotion a moment ago, we answer as `nofailover` so a racing peer does not
    /// wait for us.
    pub promotion_hold: Arc<crate::ha::hooks::PromotionHold>,
}

#[tonic::async_trait]
impl proto::ha_server::Ha for HaService {
    async fn wal_position(
        &self,
        _req: Request<proto::WalPositionRequest>,
    ) -> Result<Response<proto::WalPositionResponse>, Status> {
        let mut resp = proto::WalPositionResponse {
            name: self.name.clone(),
            nofailover: self.nofailover || self.promotion_hold.held(std::time::Instant::now()),
            failover_priority: self.failover_priority,
            ..Default::default()
        };
        if self.pg.postmaster_pid().is_some() {
            if let Ok(s) = self.pg.status().await {
                resp.running = true;
                resp.in_recovery = s.in_recovery;
                resp.timeline = s.timeline;
                resp.lsn = s.wal_position();
            }
        }
        Ok(Response::new(resp))
    }
}
