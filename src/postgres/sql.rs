//! SQL on the local instance: the superuser connection over the unix socket, roles, slots and checkpoints.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use super::names::is_valid_slot_name;
use super::{PgError, Postgres};

/// Bound on connecting to the local socket.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on one SQL step.
pub const SQL_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on [`Postgres::checkpoint`].
pub const CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `fut` within `timeout`, mapping driver errors and expiry to [`PgError`] for `step`.
pub async fn timed<T>(
    step: &'static str,
    timeout: Duration,
    fut: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, PgError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(result) => result.map_err(PgError::sql(step)),
        Err(_) => Err(PgError::Timeout {
            step,
            command: step.to_string(),
            timeout,
            log: String::new(),
        }),
    }
}

/// Session settings that keep the next statements (which carry a password) out of the server log and
/// pg_stat_statements, even when they fail.
const QUIET: &str = "SET LOCAL log_statement = 'none'; SET LOCAL log_min_duration_statement = -1; \
                     SET LOCAL log_min_error_statement = 'panic'; SET LOCAL pg_stat_statements.track_utility = off";

/// Functions pg_rewind needs on its source (PostgreSQL 11+ allows a non-superuser with these grants).
const REWIND_GRANTS: &str = "GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean), \
     pg_catalog.pg_stat_file(text, boolean), pg_catalog.pg_read_binary_file(text), \
     pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO %I";

/// Opens a connection; its task runs on the current runtime until the client is dropped.
pub(crate) async fn open(cfg: tokio_postgres::Config) -> Result<Client, PgError> {
    let (client, connection) = timed("connecting to PostgreSQL", CONNECT_TIMEOUT, cfg.connect(NoTls)).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("PostgreSQL connection ended: {e}");
        }
    });
    Ok(client)
}

/// The physical slots as `(name, active, temporary)`.
pub(super) async fn physical_slots(client: &Client, step: &'static str) -> Result<Vec<SlotRow>, PgError> {
    let sql = "SELECT slot_name::text, active, temporary FROM pg_replication_slots WHERE slot_type = 'physical'";
    let rows = timed(step, SQL_TIMEOUT, client.query(sql, &[])).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
}

/// One replication slot on the primary, for reports (`ctl list --slots`, retained-WAL warnings).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SlotReport {
    pub name: String,
    /// `physical` or `logical`.
    pub kind: String,
    pub active: bool,
    /// WAL kept for it: current position minus its restart position (0 when it has none yet).
    pub retained_bytes: u64,
}

/// What [`Postgres::ensure_slots`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotChanges {
    pub created: Vec<String>,
    pub dropped: Vec<String>,
}

/// What [`Postgres::ensure_slots`] does with the existing physical slots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotPlan {
    /// Wanted slots that do not exist.
    pub create: Vec<String>,
    /// Unwanted, inactive, persistent slots that pgha created.
    pub drop: Vec<String>,
    /// Unwanted slots of pgha's still in use (left for a later round).
    pub busy: Vec<String>,
}

/// One existing physical slot: name, active, temporary.
pub type SlotRow = (String, bool, bool);

/// Pure slot reconciliation: only slots pgha created (`owned`) are ever dropped; temporary slots (pg_basebackup's)
/// and everybody else's (a backup tool's, pg_receivewal's) are left alone.
pub fn plan_slots(existing: &[SlotRow], wanted: &[String], owned: &[String]) -> SlotPlan {
    let mut plan = SlotPlan::default();
    for w in wanted {
        if !existing.iter().any(|(name, _, _)| name == w) && !plan.create.contains(w) {
            plan.create.push(w.clone());
        }
    }
    for (name, active, temporary) in existing {
        if *temporary || wanted.contains(name) || !owned.contains(name) {
            continue;
        }
        if *active { &mut plan.busy } else { &mut plan.drop }.push(name.clone());
    }
    plan
}

impl Postgres {
    /// Connects as the superuser over the unix socket (`peer` auth through the `pgha` ident map: no password;
    /// see the module docs). The connection task runs on the current runtime until the client is dropped.
    pub async fn connect(&self) -> Result<Client, PgError> {
        open(self.client_config()).await
    }

    pub(crate) fn client_config(&self) -> tokio_postgres::Config {
        let s = &self.settings;
        let mut cfg = tokio_postgres::Config::new();
        cfg.host_path(&s.socket_dir)
            .port(s.port)
            .user(&s.superuser)
            .dbname("postgres")
            .application_name("pgha")
            .connect_timeout(CONNECT_TIMEOUT);
        cfg
    }

    /// Runs `work` on a connection kept between calls: the HA loop queries every iteration, and a new connection
    /// costs a backend start (fork, catalog caches), ~25 ms on a busy host, which a failover waits for. A failure drops the connection; when the kept connection turns out closed (PostgreSQL restarted
    /// since), `work` runs once more on a new one. Queries on it pipeline, so concurrent callers (the loop, the race
    /// service) share it; a long statement (CHECKPOINT) takes its own connection.
    pub(crate) async fn with_kept_client<T, F, Fut>(&self, work: F) -> Result<T, PgError>
    where
        F: Fn(Arc<Client>) -> Fut,
        Fut: Future<Output = Result<T, PgError>>,
    {
        let kept = self
            .kept_client
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .filter(|c| !c.is_closed());
        let reused = kept.is_some();
        let client = match kept {
            Some(client) => client,
            None => self.keep_new_client().await?,
        };
        let result = work(client.clone()).await;
        if result.is_ok() {
            return result;
        }
        if let Ok(mut slot) = self.kept_client.lock() {
            slot.take_if(|c| Arc::ptr_eq(c, &client));
        }
        if reused && client.is_closed() {
            return work(self.keep_new_client().await?).await;
        }
        result
    }

    async fn keep_new_client(&self) -> Result<Arc<Client>, PgError> {
        let client = Arc::new(self.connect().await?);
        if let Ok(mut slot) = self.kept_client.lock() {
            *slot = Some(client.clone());
        }
        Ok(client)
    }

    pub(crate) async fn require_primary(&self, client: &Client, step: &'static str) -> Result<(), PgError> {
        let row = timed(step, SQL_TIMEOUT, client.query_one("SELECT pg_is_in_recovery()", &[])).await?;
        if row.get::<_, bool>(0) {
            return Err(PgError::WrongRole {
                step,
                reason: "the server is a standby (in recovery)".into(),
            });
        }
        Ok(())
    }

    /// On a running primary: creates or alters `replication_user` WITH REPLICATION LOGIN and its password
    /// (identifier and literal quoted server-side with `format('%I', '%L')`, statements kept out of the logs),
    /// and grants it the functions pg_rewind needs. Idempotent.
    pub async fn create_roles(&self) -> Result<(), PgError> {
        const STEP: &str = "creating the replication role";
        let mut client = self.connect().await?;
        self.require_primary(&client, STEP).await?;
        let user = self.settings.replication_user.clone();
        let password = self.settings.replication_password.clone();
        let work = async {
            let tx = client.transaction().await?;
            tx.batch_execute(QUIET).await?;
            let exists: bool = tx
                .query_one("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", &[&user])
                .await?
                .get(0);
            let verb = if exists { "ALTER" } else { "CREATE" };
            let statement: String = match &password {
                Some(pw) => {
                    let sql =
                        "SELECT format('%s ROLE %I WITH REPLICATION LOGIN PASSWORD %L', $1::text, $2::text, $3::text)";
                    tx.query_one(sql, &[&verb, &user, pw]).await?.get(0)
                }
                None => {
                    let sql = "SELECT format('%s ROLE %I WITH REPLICATION LOGIN', $1::text, $2::text)";
                    tx.query_one(sql, &[&verb, &user]).await?.get(0)
                }
            };
            tx.batch_execute(&statement).await?;
            let grants: String = tx
                .query_one("SELECT format($1::text, $2::text)", &[&REWIND_GRANTS, &user])
                .await?
                .get(0);
            tx.batch_execute(&grants).await?;
            tx.commit().await.map(|()| exists)
        };
        let existed = timed(STEP, SQL_TIMEOUT, work).await?;
        let what = if existed {
            "replication role updated"
        } else {
            "replication role created"
        };
        tracing::info!(member = %self.settings.name, role = %user, "{what}");
        Ok(())
    }

    /// On a running primary: creates the wanted physical slots (reserving WAL at once) and drops every other
    /// persistent, inactive physical slot. Naming rule: pgha owns all physical slots of the primary (PostgreSQL
    /// restricts slot names to `[a-z0-9_]`, the same alphabet as [`super::slot_name`]), so a physical slot kept
    /// for another tool must be listed in `wanted`. Logical and temporary slots are never touched; an active
    /// unwanted slot is left for a later call.
    pub async fn ensure_slots(&self, wanted: &[String], owned: &[String]) -> Result<SlotChanges, PgError> {
        const STEP: &str = "reconciling replication slots";
        self.with_kept_client(|client| async move {
            self.require_primary(&client, STEP).await?;
            let existing = physical_slots(&client, STEP).await?;
            let plan = plan_slots(&existing, wanted, owned);
            let created = self.create_slots_on(&client, &plan.create, STEP).await?;
            let dropped = self.drop_slots_on(&client, &plan, STEP).await;
            Ok(SlotChanges { created, dropped })
        })
        .await
    }

    /// Every replication slot with the WAL it retains (primary only).
    pub async fn slot_report(&self) -> Result<Vec<SlotReport>, PgError> {
        const STEP: &str = "reading replication slots";
        self.with_kept_client(|client| async move {
            let sql = "SELECT slot_name::text, slot_type::text, active, \
                       COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint \
                       FROM pg_replication_slots WHERE NOT temporary ORDER BY slot_name";
            let rows = timed(STEP, SQL_TIMEOUT, client.query(sql, &[])).await?;
            Ok(rows
                .iter()
                .map(|r| SlotReport {
                    name: r.get(0),
                    kind: r.get(1),
                    active: r.get(2),
                    retained_bytes: u64::try_from(r.get::<_, i64>(3)).unwrap_or(0),
                })
                .collect())
        })
        .await
    }

    /// Drops the plan's unwanted inactive slots (a failure is left for a later call); returns those dropped.
    pub(super) async fn drop_slots_on(&self, client: &Client, plan: &SlotPlan, step: &'static str) -> Vec<String> {
        let mut dropped = Vec::new();
        for slot in &plan.drop {
            let result = timed(
                step,
                SQL_TIMEOUT,
                client.execute("SELECT pg_drop_replication_slot($1)", &[slot]),
            )
            .await;
            match result {
                Ok(_) => {
                    tracing::info!(member = %self.settings.name, slot, event = "slot_dropped", "replication slot dropped");
                    dropped.push(slot.clone());
                }
                Err(e) => tracing::debug!(slot, "replication slot not dropped: {e}"),
            }
        }
        for slot in &plan.busy {
            tracing::debug!(slot, "unwanted replication slot still active: dropped later");
        }
        dropped
    }

    /// Creates those of `wanted` that are missing, reserving WAL, and drops nothing; works on a standby too. A
    /// promotion candidate calls it before promoting: replicas re-pointed at it stream at once (cascading, then
    /// across the timeline switch) instead of failing on a missing slot and retrying later.
    pub async fn create_slots(&self, wanted: &[String]) -> Result<Vec<String>, PgError> {
        const STEP: &str = "creating replication slots";
        self.with_kept_client(|client| async move {
            let existing = physical_slots(&client, STEP).await?;
            let missing: Vec<String> = plan_slots(&existing, wanted, &[]).create;
            self.create_slots_on(&client, &missing, STEP).await
        })
        .await
    }

    /// Creates `slots` (an existing one counts as created: a slot of that name is pgha's to manage); returns them.
    pub(super) async fn create_slots_on(
        &self,
        client: &Client,
        slots: &[String],
        step: &'static str,
    ) -> Result<Vec<String>, PgError> {
        if let Some(bad) = slots.iter().find(|w| !is_valid_slot_name(w)) {
            return Err(PgError::Settings(format!(
                "replication slot name {bad:?} is not [a-z0-9_]{{1,63}}"
            )));
        }
        for slot in slots {
            let sql = "SELECT pg_create_physical_replication_slot($1, true)";
            match timed(step, SQL_TIMEOUT, client.execute(sql, &[slot])).await {
                Ok(_) => {
                    tracing::info!(member = %self.settings.name, slot, event = "slot_created", "replication slot created")
                }
                Err(PgError::Sql { error, .. })
                    if error.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_OBJECT) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(slots.to_vec())
    }

    /// Once the running server uses `synchronous_standby_names = wanted`, commits one tiny transaction with local
    /// durability so that every standby reports its flush position again. Why: a commit that flushed while no
    /// standby counted as synchronous (right after a promotion) is released only by the next standby report, and
    /// without new WAL that report waits for `wal_receiver_status_interval`. Gives up quietly after about half a
    /// second if the reload is not visible yet (the status interval then releases the waiters).
    pub async fn nudge_standbys(&self, wanted: &str) -> Result<(), PgError> {
        const STEP: &str = "asking the standbys for a flush report";
        // On the kept connection (a new one is the first commit's wait): the transaction goes as one simple query,
        // so statements of other callers pipelined on it cannot land inside.
        self.with_kept_client(|client| async move {
            for _ in 0..50 {
                let now: String = timed(
                    STEP,
                    SQL_TIMEOUT,
                    client.query_one("SELECT pg_catalog.current_setting('synchronous_standby_names')", &[]),
                )
                .await?
                .get(0);
                if now == wanted {
                    let sql = "BEGIN; SET LOCAL synchronous_commit = local; SELECT pg_catalog.txid_current(); COMMIT";
                    return timed(STEP, SQL_TIMEOUT, client.batch_execute(sql)).await;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(())
        })
        .await
    }

    /// `CHECKPOINT` within [`CHECKPOINT_TIMEOUT`].
    pub async fn checkpoint(&self) -> Result<(), PgError> {
        self.checkpoint_within(CHECKPOINT_TIMEOUT).await
    }

    /// Starts a `CHECKPOINT` (within [`CHECKPOINT_TIMEOUT`]) on a connection of its own, opened inside the task, and
    /// returns at once: after a promotion the new timeline must reach pg_control for pg_rewind, but neither clients
    /// nor the HA loop need wait for it.
    pub fn checkpoint_in_background(&self) -> tokio::task::JoinHandle<Result<(), PgError>> {
        let cfg = self.client_config();
        tokio::spawn(async move {
            let client = open(cfg).await?;
            timed("checkpoint", CHECKPOINT_TIMEOUT, client.batch_execute("CHECKPOINT")).await
        })
    }

    /// `CHECKPOINT` within `timeout`.
    pub async fn checkpoint_within(&self, timeout: Duration) -> Result<(), PgError> {
        let client = self.connect().await?;
        timed("checkpoint", timeout, client.batch_execute("CHECKPOINT")).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn slot_plans() {
        let existing: Vec<SlotRow> = vec![
            ("db2".into(), true, false),
            ("old".into(), false, false),
            ("busy_old".into(), true, false),
            ("pg_basebackup_123".into(), true, true),
            ("barman".into(), false, false),
        ];
        let owned = names(&["db2", "old", "busy_old", "pg_basebackup_123"]);
        let cases = [
            (
                names(&["db2", "db3"]),
                SlotPlan {
                    create: names(&["db3"]),
                    drop: names(&["old"]),
                    busy: names(&["busy_old"]),
                },
            ),
            (
                names(&["db3", "db3"]),
                SlotPlan {
                    create: names(&["db3"]),
                    drop: names(&["old"]),
                    busy: names(&["db2", "busy_old"]),
                },
            ),
            (names(&["db2", "old", "busy_old"]), SlotPlan::default()),
        ];
        for (wanted, want) in cases {
            assert_eq!(plan_slots(&existing, &wanted, &owned), want, "{wanted:?}");
        }
        // Nothing pgha did not create is ever dropped: a backup tool's slot, or everything when nothing is owned.
        assert_eq!(plan_slots(&existing, &names(&["db2"]), &[]).drop, Vec::<String>::new());
        assert!(!plan_slots(&existing, &[], &owned).drop.contains(&"barman".to_string()));
    }
}
