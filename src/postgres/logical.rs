//! Logical replication slots pgha keeps (the dynamic config's permanent `slots`): the pure plan, creation in the
//! slot's own database (with `failover` on PostgreSQL 17+, so standbys synchronize them), and the settings that make
//! standbys synchronize them.

use tokio_postgres::Client;

use super::names::is_valid_slot_name;
use super::sql::{timed, SQL_TIMEOUT};
use super::{PgError, Postgres};

/// The first major version with failover slots (`failover` option, `sync_replication_slots`,
/// `synchronized_standby_slots`).
pub const FAILOVER_SLOTS_SINCE: u32 = 17;

/// A permanent logical slot: name, output plugin, database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogicalSlot {
    pub name: String,
    pub plugin: String,
    pub database: String,
}

/// How standbys keep failover slots (PostgreSQL 17+), rendered into `pgha.conf` on every member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotSync {
    /// `sync_replication_slots = on` (and `dbname` in `primary_conninfo`, which the sync worker needs).
    pub enabled: bool,
    /// `synchronized_standby_slots`: the physical slots of the standbys that may be promoted, so a logical consumer
    /// never receives a change those standbys have not flushed.
    pub standby_slots: Vec<String>,
}

/// One existing logical slot as [`plan`] sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogicalRow {
    pub name: String,
    pub plugin: String,
    pub database: String,
    pub active: bool,
    pub temporary: bool,
}

/// What [`Postgres::ensure_logical_slots`] does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogicalPlan {
    /// Wanted slots that do not exist.
    pub create: Vec<LogicalSlot>,
    /// pgha's slots no longer wanted and not in use.
    pub drop: Vec<String>,
    /// Wanted names taken by another slot (another plugin or database, or a physical slot): left alone, reported.
    pub conflicts: Vec<(String, String)>,
}

/// Pure reconciliation of the logical slots: creates what is missing, drops only pgha's own unwanted inactive
/// slots, never touches a slot of the wanted name that differs (a consumer may depend on it).
pub fn plan(existing: &[LogicalRow], physical: &[String], wanted: &[LogicalSlot], owned: &[String]) -> LogicalPlan {
    let mut out = LogicalPlan::default();
    for w in wanted {
        if physical.contains(&w.name) {
            out.conflicts
                .push((w.name.clone(), "a physical slot has this name".into()));
            continue;
        }
        match existing.iter().find(|e| e.name == w.name) {
            None => out.create.push(w.clone()),
            Some(e) if e.plugin != w.plugin || e.database != w.database => out.conflicts.push((
                w.name.clone(),
                format!(
                    "it exists with plugin {} in database {} (configured: {} in {})",
                    e.plugin, e.database, w.plugin, w.database
                ),
            )),
            Some(_) => {}
        }
    }
    for e in existing {
        let wanted_name = wanted.iter().any(|w| w.name == e.name);
        if !wanted_name && !e.temporary && !e.active && owned.contains(&e.name) {
            out.drop.push(e.name.clone());
        }
    }
    out
}

/// The SQL creating a logical slot on `major` (the function gained `twophase` in 14 and `failover` in 17).
pub fn create_sql(major: u32) -> &'static str {
    match major {
        FAILOVER_SLOTS_SINCE.. => "SELECT pg_create_logical_replication_slot($1, $2, false, false, true)",
        14.. => "SELECT pg_create_logical_replication_slot($1, $2, false, false)",
        _ => "SELECT pg_create_logical_replication_slot($1, $2, false)",
    }
}

/// The existing logical slots, and the names of the physical ones.
async fn existing(client: &Client, step: &'static str) -> Result<(Vec<LogicalRow>, Vec<String>), PgError> {
    let sql = "SELECT slot_name::text, slot_type::text, COALESCE(plugin::text, ''), COALESCE(database::text, ''), \
               active, temporary FROM pg_replication_slots";
    let rows = timed(step, SQL_TIMEOUT, client.query(sql, &[])).await?;
    let mut logical = Vec::new();
    let mut physical = Vec::new();
    for r in &rows {
        let name: String = r.get(0);
        if r.get::<_, String>(1) == "physical" {
            physical.push(name);
            continue;
        }
        logical.push(LogicalRow {
            name,
            plugin: r.get(2),
            database: r.get(3),
            active: r.get(4),
            temporary: r.get(5),
        });
    }
    Ok((logical, physical))
}

/// How long creating a logical slot may take: PostgreSQL waits until every transaction running at the start has
/// ended and a snapshot of running transactions is logged (every 15 s), so it runs beside the HA loop.
pub const CREATE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

impl Postgres {
    /// On a running primary: what to do with the logical slots (see [`plan`]).
    pub async fn logical_slot_plan(&self, wanted: &[LogicalSlot], owned: &[String]) -> Result<LogicalPlan, PgError> {
        const STEP: &str = "reading logical replication slots";
        let (rows, physical) = self
            .with_kept_client(|client| async move {
                self.require_primary(&client, STEP).await?;
                existing(&client, STEP).await
            })
            .await?;
        Ok(plan(&rows, &physical, wanted, owned))
    }

    /// Drops logical slots no longer configured; returns those dropped and those that failed, with the reason.
    pub async fn drop_logical_slots(&self, names: &[String]) -> (Vec<String>, Vec<(String, String)>) {
        const STEP: &str = "dropping a logical replication slot";
        let mut dropped = Vec::new();
        let mut failed = Vec::new();
        for name in names {
            let result = self
                .with_kept_client(|client| async move {
                    timed(
                        STEP,
                        SQL_TIMEOUT,
                        client.execute("SELECT pg_drop_replication_slot($1)", &[name]),
                    )
                    .await
                })
                .await;
            match result {
                Ok(_) => {
                    tracing::info!(member = %self.settings.name, slot = %name, event = "slot_dropped",
                        "logical replication slot dropped (no longer in the dynamic config)");
                    dropped.push(name.clone());
                }
                Err(e) => failed.push((name.clone(), e.to_string())),
            }
        }
        (dropped, failed)
    }

    /// On a standby: drops the inactive logical slots among `names` that the server did not
    /// synchronize from the primary, and returns them. They are what a former primary kept: on 17+ the slot sync
    /// worker refuses to overwrite a slot of the same name, and on any version a stale slot holds back WAL here and,
    /// through `hot_standby_feedback`, vacuum on the primary.
    pub async fn drop_stale_logical_slots(&self, names: &[String]) -> Result<Vec<String>, PgError> {
        let major = self.data_major().unwrap_or(0);
        const STEP: &str = "dropping a former primary's logical slots";
        let names = names.to_vec();
        self.with_kept_client(|client| {
            let names = names.clone();
            async move {
                let in_recovery: bool = timed(STEP, SQL_TIMEOUT, client.query_one("SELECT pg_is_in_recovery()", &[]))
                    .await?
                    .get(0);
                if !in_recovery {
                    return Ok(Vec::new());
                }
                let synced = if major >= FAILOVER_SLOTS_SINCE {
                    "synced"
                } else {
                    "false"
                };
                let sql = format!(
                    "SELECT slot_name::text FROM pg_replication_slots WHERE slot_type = 'logical' AND NOT active \
                     AND NOT {synced} AND slot_name = ANY($1)"
                );
                let rows = timed(STEP, SQL_TIMEOUT, client.query(sql.as_str(), &[&names])).await?;
                let mut dropped = Vec::new();
                for row in rows {
                    let slot: String = row.get(0);
                    timed(
                        STEP,
                        SQL_TIMEOUT,
                        client.execute("SELECT pg_drop_replication_slot($1)", &[&slot]),
                    )
                    .await?;
                    tracing::info!(member = %self.settings.name, slot, event = "slot_dropped",
                        "a former primary's logical slot dropped on this standby (the new primary has its own)");
                    dropped.push(slot);
                }
                Ok(dropped)
            }
        })
        .await
    }

    /// Creates one logical slot over a connection to its database (logical slots belong to one database), with
    /// `failover` on 17+; may take up to [`CREATE_TIMEOUT`].
    pub async fn create_logical_slot(&self, slot: &LogicalSlot) -> Result<(), PgError> {
        let major = self.data_major().unwrap_or(0);
        const STEP: &str = "creating a logical replication slot";
        if !is_valid_slot_name(&slot.name) {
            return Err(PgError::Settings(format!(
                "replication slot name {:?} is not [a-z0-9_]{{1,63}}",
                slot.name
            )));
        }
        let mut cfg = self.client_config();
        cfg.dbname(&slot.database);
        let client = super::sql::open(cfg).await?;
        match timed(
            STEP,
            CREATE_TIMEOUT,
            client.execute(create_sql(major), &[&slot.name, &slot.plugin]),
        )
        .await
        {
            Ok(_) => {
                tracing::info!(member = %self.settings.name, slot = %slot.name, plugin = %slot.plugin,
                    database = %slot.database, failover = major >= FAILOVER_SLOTS_SINCE, event = "slot_created",
                    "logical replication slot created");
                Ok(())
            }
            // Created meanwhile (a synchronized slot that became usable at promotion): that is the slot wanted.
            Err(PgError::Sql { error, .. })
                if error.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_OBJECT) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(name: &str, plugin: &str, database: &str) -> LogicalSlot {
        LogicalSlot {
            name: name.into(),
            plugin: plugin.into(),
            database: database.into(),
        }
    }

    fn row(name: &str, plugin: &str, active: bool) -> LogicalRow {
        LogicalRow {
            name: name.into(),
            plugin: plugin.into(),
            database: "app".into(),
            active,
            temporary: false,
        }
    }

    #[test]
    fn plan_table() {
        let cdc = slot("cdc", "pgoutput", "app");
        let owned = vec!["old".to_string(), "busy".to_string()];
        let cases: Vec<(&str, Vec<LogicalRow>, Vec<String>, LogicalPlan)> = vec![
            (
                "missing: created",
                vec![],
                vec![],
                LogicalPlan {
                    create: vec![cdc.clone()],
                    ..LogicalPlan::default()
                },
            ),
            (
                "present: nothing to do",
                vec![row("cdc", "pgoutput", true)],
                vec![],
                LogicalPlan::default(),
            ),
            (
                "another plugin: left alone, reported",
                vec![row("cdc", "wal2json", false)],
                vec![],
                LogicalPlan {
                    conflicts: vec![(
                        "cdc".into(),
                        "it exists with plugin wal2json in database app (configured: pgoutput in app)".into(),
                    )],
                    ..LogicalPlan::default()
                },
            ),
            (
                "a physical slot of that name",
                vec![],
                vec!["cdc".into()],
                LogicalPlan {
                    conflicts: vec![("cdc".into(), "a physical slot has this name".into())],
                    ..LogicalPlan::default()
                },
            ),
            (
                "pgha's unwanted inactive slot dropped; in use, or not pgha's: kept",
                vec![
                    row("cdc", "pgoutput", false),
                    row("old", "pgoutput", false),
                    row("busy", "pgoutput", true),
                    row("debezium", "pgoutput", false),
                ],
                vec![],
                LogicalPlan {
                    drop: vec!["old".into()],
                    ..LogicalPlan::default()
                },
            ),
        ];
        for (what, existing, physical, want) in cases {
            assert_eq!(
                plan(&existing, &physical, std::slice::from_ref(&cdc), &owned),
                want,
                "{what}"
            );
        }
    }

    #[test]
    fn create_sql_by_version() {
        assert!(create_sql(13).ends_with("($1, $2, false)"));
        assert!(create_sql(16).ends_with("($1, $2, false, false)"));
        assert!(create_sql(17).ends_with("($1, $2, false, false, true)"));
        assert!(create_sql(18).ends_with("($1, $2, false, false, true)"));
    }
}
