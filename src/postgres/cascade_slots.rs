//! Replication slots for cascading replicas: a standby holds a physical slot for each member streaming from it, and
//! the primary moves such a member's (unused) slot forward to what the member published, so it does not hold the
//! primary's WAL while the member cascades.

use super::names::lsn_to_string;
use super::sql::{physical_slots, plan_slots, timed, SlotChanges, SQL_TIMEOUT};
use super::{PgError, Postgres};

impl Postgres {
    /// On a standby: creates the `wanted` physical slots and drops the inactive ones of `droppable` that are not
    /// wanted (never anybody else's, never a temporary one: [`plan_slots`]).
    pub async fn ensure_standby_slots(&self, wanted: &[String], droppable: &[String]) -> Result<SlotChanges, PgError> {
        const STEP: &str = "reconciling the slots of cascading replicas";
        self.with_kept_client(|client| async move {
            let in_recovery: bool = timed(STEP, SQL_TIMEOUT, client.query_one("SELECT pg_is_in_recovery()", &[]))
                .await?
                .get(0);
            if !in_recovery {
                return Err(PgError::WrongRole {
                    step: STEP,
                    reason: "the server is a primary".into(),
                });
            }
            let existing = physical_slots(&client, STEP).await?;
            let plan = plan_slots(&existing, wanted, droppable);
            let created = self.create_slots_on(&client, &plan.create, STEP).await?;
            let dropped = self.drop_slots_on(&client, &plan, STEP).await;
            Ok(SlotChanges { created, dropped })
        })
        .await
    }

    /// On the primary: moves each inactive physical slot of `targets` forward to its position (never backwards;
    /// PostgreSQL stops it at the flushed WAL position); returns the slots moved. A slot that became active
    /// meanwhile is left to its walsender.
    pub async fn advance_slots(&self, targets: &[(String, u64)]) -> Result<Vec<String>, PgError> {
        const STEP: &str = "moving cascading replicas' slots forward";
        const SQL: &str = "SELECT pg_replication_slot_advance(slot_name, $2::text::pg_lsn) FROM pg_replication_slots \
                           WHERE slot_name = $1 AND slot_type = 'physical' AND NOT active AND NOT temporary \
                           AND restart_lsn IS NOT NULL AND restart_lsn < $2::text::pg_lsn";
        self.with_kept_client(|client| async move {
            self.require_primary(&client, STEP).await?;
            let mut moved = Vec::new();
            for (slot, lsn) in targets {
                match timed(STEP, SQL_TIMEOUT, client.query(SQL, &[slot, &lsn_to_string(*lsn)])).await {
                    Ok(rows) if !rows.is_empty() => moved.push(slot.clone()),
                    Ok(_) => {}
                    Err(e) => tracing::debug!(slot, "slot not moved forward: {e}"),
                }
            }
            Ok(moved)
        })
        .await
    }
}
