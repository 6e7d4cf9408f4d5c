//! [`Postgres::status`]: one query describing role, timeline, LSNs and replication, parsed by a pure function.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::names::parse_lsn;
use super::sql::{timed, SQL_TIMEOUT};
use super::{PgError, Postgres};

/// A snapshot of a running instance.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgStatus {
    /// `pg_is_in_recovery()`.
    pub in_recovery: bool,
    /// Current timeline: from the current WAL file name on a primary (exact right after promotion), else the
    /// WAL receiver's `received_tli`, else the last checkpoint's.
    pub timeline: u32,
    /// Timeline of the last checkpoint (`pg_control_checkpoint()`): behind `timeline` right after a promotion,
    /// until the first checkpoint on the new timeline (pg_rewind reads the source's timeline from there).
    #[serde(default)]
    pub checkpoint_timeline: u32,
    /// `pg_current_wal_lsn()` (primary only).
    pub current_lsn: Option<u64>,
    /// `pg_last_wal_receive_lsn()` (standby only).
    pub receive_lsn: Option<u64>,
    /// `pg_last_wal_replay_lsn()` (standby only).
    pub replay_lsn: Option<u64>,
    /// `pg_control_system().system_identifier`.
    pub system_identifier: u64,
    /// Whether any setting waits for a restart.
    pub pending_restart: bool,
    /// `synchronous_standby_names` in effect.
    pub synchronous_standby_names: String,
    /// `pg_stat_wal_receiver` (standby with a running WAL receiver).
    pub wal_receiver: Option<WalReceiver>,
    /// `pg_stat_replication` rows (primary), by application_name.
    pub replication: Vec<ReplicationPeer>,
}

impl PgStatus {
    /// The most advanced WAL position known: current on a primary, max(receive, replay) on a standby.
    pub fn wal_position(&self) -> u64 {
        self.current_lsn
            .unwrap_or_else(|| self.receive_lsn.max(self.replay_lsn).unwrap_or(0))
    }

    /// Whether the WAL receiver is streaming.
    pub fn is_streaming(&self) -> bool {
        self.wal_receiver.as_ref().is_some_and(|w| w.status == "streaming")
    }
}

/// The standby's WAL receiver.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalReceiver {
    /// "streaming", "starting", "waiting", ...
    pub status: String,
    /// Host it streams from.
    pub sender_host: Option<String>,
    /// Port it streams from.
    pub sender_port: Option<u16>,
    /// Timeline of the last received WAL.
    pub received_tli: Option<u32>,
    /// Last WAL position flushed to disk.
    pub flushed_lsn: Option<u64>,
    /// Slot in use.
    pub slot_name: Option<String>,
}

/// One replica connected to the primary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationPeer {
    /// The replica's application_name (its member name).
    pub application_name: String,
    /// Its address (None over a unix socket).
    pub client_addr: Option<String>,
    /// "streaming", "catchup", "startup", ...
    pub state: String,
    /// "async", "sync", "potential", "quorum".
    pub sync_state: String,
    /// Last WAL position sent.
    pub sent_lsn: Option<u64>,
    /// Last position written by the replica.
    pub write_lsn: Option<u64>,
    /// Last position flushed by the replica.
    pub flush_lsn: Option<u64>,
    /// Last position replayed by the replica.
    pub replay_lsn: Option<u64>,
}

/// The status query: one row, one JSON text column (pure parsing in [`parse_status`]).
pub const STATUS_SQL: &str = "
SELECT json_build_object(
  'in_recovery', r.rec,
  'current_lsn', CASE WHEN r.rec THEN NULL ELSE pg_current_wal_lsn()::text END,
  'receive_lsn', pg_last_wal_receive_lsn()::text,
  'replay_lsn', pg_last_wal_replay_lsn()::text,
  'timeline', CASE WHEN r.rec
      THEN coalesce((SELECT received_tli FROM pg_stat_wal_receiver), (SELECT timeline_id FROM pg_control_checkpoint()))
      ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END,
  'checkpoint_timeline', (SELECT timeline_id FROM pg_control_checkpoint()),
  'system_identifier', (SELECT system_identifier::text FROM pg_control_system()),
  'pending_restart', EXISTS (SELECT 1 FROM pg_settings WHERE pending_restart),
  'synchronous_standby_names', current_setting('synchronous_standby_names'),
  'wal_receiver', (SELECT json_build_object('status', status, 'sender_host', sender_host,
      'sender_port', sender_port, 'received_tli', received_tli, 'flushed_lsn', flushed_lsn::text,
      'slot_name', slot_name) FROM pg_stat_wal_receiver),
  'replication', (SELECT coalesce(json_agg(json_build_object('application_name', application_name,
      'client_addr', host(client_addr), 'state', state, 'sync_state', sync_state, 'sent_lsn', sent_lsn::text,
      'write_lsn', write_lsn::text, 'flush_lsn', flush_lsn::text, 'replay_lsn', replay_lsn::text)
      ORDER BY application_name), '[]'::json) FROM pg_stat_replication)
)::text FROM (SELECT pg_is_in_recovery() AS rec) r";

#[derive(Deserialize)]
struct RawStatus {
    in_recovery: bool,
    current_lsn: Option<String>,
    receive_lsn: Option<String>,
    replay_lsn: Option<String>,
    timeline: Option<i64>,
    #[serde(default)]
    checkpoint_timeline: Option<i64>,
    system_identifier: String,
    pending_restart: bool,
    #[serde(default)]
    synchronous_standby_names: String,
    wal_receiver: Option<RawReceiver>,
    replication: Vec<RawPeer>,
}

#[derive(Deserialize)]
struct RawReceiver {
    status: Option<String>,
    sender_host: Option<String>,
    sender_port: Option<i64>,
    received_tli: Option<i64>,
    flushed_lsn: Option<String>,
    slot_name: Option<String>,
}

#[derive(Deserialize)]
struct RawPeer {
    application_name: Option<String>,
    client_addr: Option<String>,
    state: Option<String>,
    sync_state: Option<String>,
    sent_lsn: Option<String>,
    write_lsn: Option<String>,
    flush_lsn: Option<String>,
    replay_lsn: Option<String>,
}

const STEP: &str = "reading the status";

fn bad(what: &str, detail: impl ToString) -> PgError {
    PgError::Parse {
        step: STEP,
        what: what.to_string(),
        detail: detail.to_string(),
    }
}

fn lsn(what: &str, text: Option<String>) -> Result<Option<u64>, PgError> {
    text.map(|t| parse_lsn(&t).ok_or_else(|| bad(what, format!("{t:?} is not an LSN"))))
        .transpose()
}

/// Parses the JSON row of [`STATUS_SQL`].
pub fn parse_status(json: &str) -> Result<PgStatus, PgError> {
    let raw: RawStatus = serde_json::from_str(json).map_err(|e| bad("the status row", e))?;
    let sysid = &raw.system_identifier;
    // bigint on the SQL side: identifiers above i64::MAX come back negative.
    let system_identifier = sysid
        .parse::<u64>()
        .or_else(|_| sysid.parse::<i64>().map(|v| v as u64))
        .map_err(|_| bad("system_identifier", format!("{sysid:?}")))?;
    let timeline = raw.timeline.and_then(|t| u32::try_from(t).ok()).unwrap_or(0);
    let wal_receiver = match raw.wal_receiver {
        None => None,
        Some(w) => Some(WalReceiver {
            status: w.status.unwrap_or_default(),
            sender_host: w.sender_host,
            sender_port: w.sender_port.and_then(|p| u16::try_from(p).ok()),
            received_tli: w.received_tli.and_then(|t| u32::try_from(t).ok()),
            flushed_lsn: lsn("flushed_lsn", w.flushed_lsn)?,
            slot_name: w.slot_name,
        }),
    };
    let replication = raw
        .replication
        .into_iter()
        .map(|p| {
            Ok(ReplicationPeer {
                application_name: p.application_name.unwrap_or_default(),
                client_addr: p.client_addr,
                state: p.state.unwrap_or_default(),
                sync_state: p.sync_state.unwrap_or_default(),
                sent_lsn: lsn("sent_lsn", p.sent_lsn)?,
                write_lsn: lsn("write_lsn", p.write_lsn)?,
                flush_lsn: lsn("flush_lsn", p.flush_lsn)?,
                replay_lsn: lsn("replay_lsn", p.replay_lsn)?,
            })
        })
        .collect::<Result<Vec<_>, PgError>>()?;
    Ok(PgStatus {
        in_recovery: raw.in_recovery,
        timeline,
        checkpoint_timeline: raw.checkpoint_timeline.and_then(|t| u32::try_from(t).ok()).unwrap_or(0),
        current_lsn: lsn("current_lsn", raw.current_lsn)?,
        receive_lsn: lsn("receive_lsn", raw.receive_lsn)?,
        replay_lsn: lsn("replay_lsn", raw.replay_lsn)?,
        system_identifier,
        pending_restart: raw.pending_restart,
        synchronous_standby_names: raw.synchronous_standby_names,
        wal_receiver,
        replication,
    })
}

/// Runs [`STATUS_SQL`] on an existing connection within `timeout` (for callers polling with one client).
pub async fn query_status(client: &Client, timeout: Duration) -> Result<PgStatus, PgError> {
    let row = timed(STEP, timeout, client.query_one(STATUS_SQL, &[])).await?;
    parse_status(&row.get::<_, String>(0))
}

impl Postgres {
    /// Runs the status query (on the kept connection: the HA loop asks every iteration, the race at once).
    pub async fn status(&self) -> Result<PgStatus, PgError> {
        self.with_kept_client(|client| async move { query_status(&client, SQL_TIMEOUT).await })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIMARY: &str = r#"{"in_recovery" : false, "current_lsn" : "0/3000148", "receive_lsn" : null,
        "replay_lsn" : null, "timeline" : 2, "checkpoint_timeline" : 1, "system_identifier" : "7312345678901234567",
        "pending_restart" : false,
        "wal_receiver" : null, "replication" : [{"application_name" : "db2", "client_addr" : "127.0.0.1",
        "state" : "streaming", "sync_state" : "async", "sent_lsn" : "0/3000148", "write_lsn" : "0/3000148",
        "flush_lsn" : "0/3000148", "replay_lsn" : null}]}"#;
    const REPLICA: &str = r#"{"in_recovery" : true, "current_lsn" : null, "receive_lsn" : "0/5000000",
        "replay_lsn" : "0/4FFFFF0", "timeline" : 1, "system_identifier" : "-2", "pending_restart" : true,
        "wal_receiver" : {"status" : "streaming", "sender_host" : "10.0.0.1", "sender_port" : 5432,
        "received_tli" : 1, "flushed_lsn" : "0/5000000", "slot_name" : "db2"}, "replication" : []}"#;

    #[test]
    fn parses_primary_and_replica_rows() {
        let p = parse_status(PRIMARY).expect("primary");
        assert!(!p.in_recovery && p.timeline == 2 && p.system_identifier == 7312345678901234567);
        assert_eq!(p.checkpoint_timeline, 1, "promoted, not checkpointed yet");
        assert_eq!(
            (p.current_lsn, p.wal_position(), p.is_streaming()),
            (Some(0x3000148), 0x3000148, false)
        );
        assert_eq!(p.replication.len(), 1);
        assert_eq!(p.replication[0].application_name, "db2");
        assert_eq!(
            (p.replication[0].flush_lsn, p.replication[0].replay_lsn),
            (Some(0x3000148), None)
        );

        let r = parse_status(REPLICA).expect("replica");
        assert!(r.in_recovery && r.pending_restart && r.is_streaming());
        assert_eq!(r.system_identifier, u64::MAX - 1);
        assert_eq!(r.checkpoint_timeline, 0, "absent from the row: unknown");
        assert_eq!(r.wal_position(), 0x5000000);
        let w = r.wal_receiver.expect("receiver");
        assert_eq!(
            (w.sender_port, w.received_tli, w.slot_name.as_deref()),
            (Some(5432), Some(1), Some("db2"))
        );
    }

    #[test]
    fn rejects_malformed_rows() {
        for (from, to) in [
            ("\"0/3000148\", \"receive", "\"zz\", \"receive"),
            ("7312345678901234567", "x"),
            ("{", "["),
        ] {
            let text = PRIMARY.replacen(from, to, 1);
            assert!(matches!(parse_status(&text), Err(PgError::Parse { .. })), "{text}");
        }
    }
}
