//! Which replication slots a primary keeps, and the record of the slots pgha created. pgha drops only its own slots
//! (recorded in `<node.data_dir>/slots.owned`, outside PGDATA so neither pg_basebackup nor pg_rewind copies it), never
//! a backup tool's; a member's slot outlives its member key for `member_slots_ttl_ms`, so a replica rebooting for a
//! kernel update finds its slot (and its WAL) when it comes back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::cluster::model::{ClusterView, PgRole, PgState, PublishedSlot};
use crate::postgres::{slot_name, SlotReport, SlotSync};

/// The slots this node created (as primary, or before its promotion), kept on disk.
#[derive(Debug)]
pub struct OwnedSlots {
    path: PathBuf,
    names: BTreeSet<String>,
    /// False until the record exists: the first lead after an upgrade adopts the members' slots.
    known: bool,
}

impl OwnedSlots {
    /// Reads the record; a missing or unreadable one is unknown (logged), never an error that stops the node.
    pub fn load(path: PathBuf) -> OwnedSlots {
        let parsed = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str::<BTreeSet<String>>(&text)
                .map_err(|e| tracing::warn!(file = %path.display(), "unreadable slot record, rebuilding it: {e}"))
                .ok(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!(file = %path.display(), "cannot read the slot record, rebuilding it: {e}");
                None
            }
        };
        OwnedSlots {
            path,
            known: parsed.is_some(),
            names: parsed.unwrap_or_default(),
        }
    }

    /// The slots pgha may drop.
    pub fn names(&self) -> Vec<String> {
        self.names.iter().cloned().collect()
    }

    /// Without a record (a pgha that predates it), the slots named after members are taken as pgha's: that is how
    /// it named them; anything else stays foreign.
    pub fn adopt_if_unknown(&mut self, member_slots: &[String]) -> std::io::Result<()> {
        if self.known {
            return Ok(());
        }
        self.known = true;
        self.names.extend(member_slots.iter().cloned());
        self.save()
    }

    /// Records what was created and dropped; writes the file only when it changed.
    pub fn record(&mut self, created: &[String], dropped: &[String]) -> std::io::Result<()> {
        let before = self.names.clone();
        self.names.extend(created.iter().cloned());
        for d in dropped {
            self.names.remove(d);
        }
        if self.names != before || !self.known {
            self.known = true;
            self.save()?;
        }
        Ok(())
    }

    fn save(&self) -> std::io::Result<()> {
        let text = serde_json::to_string(&self.names).map_err(std::io::Error::other)?;
        crate::postgres::files::write_atomic(&self.path, text.as_bytes(), 0o600, None)
            .map(|_| ())
            .map_err(std::io::Error::other)
    }
}

/// The member slots a primary keeps (pure): every other member in the view, and every member last seen less than
/// `ttl` ago (its key expired while it was away).
pub fn kept_member_slots<'a>(
    me: &str,
    present: impl Iterator<Item = &'a str>,
    last_seen: &BTreeMap<String, Instant>,
    now: Instant,
    ttl: Duration,
) -> Vec<String> {
    let mut kept: BTreeSet<String> = present.filter(|m| *m != me).map(slot_name).collect();
    kept.extend(
        last_seen
            .iter()
            .filter(|(m, seen)| m.as_str() != me && now.saturating_duration_since(**seen) < ttl)
            .map(|(m, _)| slot_name(m)),
    );
    kept.into_iter().collect()
}

/// The slots a standby named as the candidate of a due switchover keeps while the request stands and the key is
/// reserved for it: one per other member (the leader too: once stopped it follows the new primary). Made while the
/// leader checkpoints and stops, they are not made between taking the key and the promotion (each is a few fsyncs:
/// 10-40 ms on a busy host, all of it write downtime). A request that goes away unfulfilled leaves them to be dropped
/// on the next loop (they are not remembered like a member seen).
pub fn ahead_of_switchover(view: &ClusterView, me: &str, now_unix_ms: u64) -> Vec<String> {
    match &view.switchover {
        Some(sw) if sw.candidate == me && sw.leader.is_some() && sw.due(now_unix_ms) && sw.reserved(now_unix_ms) => {
            view.members.keys().filter(|m| *m != me).map(|m| slot_name(m)).collect()
        }
        _ => Vec::new(),
    }
}

/// The failover slot settings every member renders (pure; used on PostgreSQL 17+): with permanent logical slots,
/// standbys synchronize them, and the primary holds logical consumers back to what every streaming,
/// failover-eligible standby has flushed (`synchronized_standby_slots`). A standby that does not stream is left out:
/// listing it would stop every consumer until it returns; so is one that cascades from another replica (its slot on
/// the primary is unused: PostgreSQL synchronizes slots only on a standby of the primary).
pub fn slot_sync(me: &str, view: &ClusterView) -> SlotSync {
    if view.config.logical_slots().is_empty() {
        return SlotSync::default();
    }
    let standby_slots = view
        .members
        .values()
        .filter(|m| m.name != me && m.role == PgRole::Replica && m.state == PgState::Streaming && !m.nofailover)
        .filter(|m| !super::cascade::cascades(view, m))
        .map(|m| slot_name(&m.name))
        .collect();
    SlotSync {
        enabled: true,
        standby_slots,
    }
}

/// The slots as the leader publishes them (pure): ownership marked, retained WAL rounded down to 16 MiB.
pub fn published(report: &[SlotReport], owned: &[String]) -> Vec<PublishedSlot> {
    const SEGMENT: u64 = 16 << 20;
    report
        .iter()
        .map(|s| PublishedSlot {
            name: s.name.clone(),
            kind: s.kind.clone(),
            active: s.active,
            owned: owned.contains(&s.name),
            retained_bytes: s.retained_bytes / SEGMENT * SEGMENT,
        })
        .collect()
}

/// Slots whose retained WAL passed `threshold` since the last report (pure); `warned` remembers them until they
/// drop back under it, so each crossing is logged once.
pub fn newly_over(report: &[SlotReport], threshold: u64, warned: &mut BTreeSet<String>) -> Vec<(String, u64)> {
    let over: BTreeSet<&str> = report
        .iter()
        .filter(|s| threshold > 0 && s.retained_bytes >= threshold)
        .map(|s| s.name.as_str())
        .collect();
    warned.retain(|n| over.contains(n.as_str()));
    report
        .iter()
        .filter(|s| over.contains(s.name.as_str()) && warned.insert(s.name.clone()))
        .map(|s| (s.name.clone(), s.retained_bytes))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_ahead_of_a_switchover() {
        use crate::cluster::model::{MemberInfo, SwitchoverRequest};
        let mut view = ClusterView::default();
        for (n, role) in [
            ("db1", PgRole::Primary),
            ("db2", PgRole::Replica),
            ("db3", PgRole::Replica),
        ] {
            view.members
                .insert(n.into(), MemberInfo::for_test(n, role, PgState::Running, 1));
        }
        let request = |leader: Option<&str>, candidate: &str, scheduled: Option<u64>| SwitchoverRequest {
            leader: leader.map(str::to_string),
            candidate: candidate.into(),
            scheduled_unix_ms: scheduled,
            created_unix_ms: 1_000,
        };
        let cases: Vec<(&str, Option<SwitchoverRequest>, u64, Vec<&str>)> = vec![
            ("no request", None, 2_000, vec![]),
            (
                "the candidate of a due switchover: every other member, the leader too",
                Some(request(Some("db1"), "db2", None)),
                2_000,
                vec!["db1", "db3"],
            ),
            (
                "another member is the candidate",
                Some(request(Some("db1"), "db3", None)),
                2_000,
                vec![],
            ),
            (
                "a failover (no leader hands over)",
                Some(request(None, "db2", None)),
                2_000,
                vec![],
            ),
            (
                "scheduled later",
                Some(request(Some("db1"), "db2", Some(9_000))),
                2_000,
                vec![],
            ),
            (
                "past the reservation window: the others race",
                Some(request(Some("db1"), "db2", None)),
                1_000 + crate::cluster::model::SWITCHOVER_WINDOW_MS,
                vec![],
            ),
        ];
        for (name, sw, now, want) in cases {
            view.switchover = sw;
            let want: Vec<String> = want.into_iter().map(slot_name).collect();
            assert_eq!(ahead_of_switchover(&view, "db2", now), want, "{name}");
        }
    }

    #[test]
    fn kept_slots_table() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(1800);
        let seen: BTreeMap<String, Instant> = [
            ("db1".to_string(), t0),
            ("db3".to_string(), t0),
            ("db4".to_string(), t0),
        ]
        .into();
        let later = |s: u64| t0 + Duration::from_secs(s);
        let cases = [
            // (present members, now, kept)
            (vec!["db1", "db2"], later(0), vec!["db2", "db3", "db4"]),
            (vec!["db1", "db2"], later(1799), vec!["db2", "db3", "db4"]),
            (vec!["db1", "db2"], later(1800), vec!["db2"]),
            (vec!["db1", "db3"], later(3600), vec!["db3"]),
        ];
        for (present, now, kept) in cases {
            assert_eq!(
                kept_member_slots("db1", present.iter().copied(), &seen, now, ttl),
                kept,
                "{present:?}"
            );
        }
    }

    #[test]
    fn slot_sync_lists_streaming_promotable_standbys_only_with_logical_slots() {
        use crate::cluster::model::{MemberInfo, PermanentSlot, SlotKind};
        let mut view = ClusterView::default();
        let mut add = |name: &str, role, state, nofailover| {
            let mut m = MemberInfo::for_test(name, role, state, 0);
            m.nofailover = nofailover;
            view.members.insert(name.into(), m);
        };
        add("db1", PgRole::Primary, PgState::Running, false);
        add("db2", PgRole::Replica, PgState::Streaming, false);
        add("db3", PgRole::Replica, PgState::Streaming, true);
        add("db4", PgRole::Replica, PgState::Starting, false);
        add("db5", PgRole::Replica, PgState::Streaming, false);
        assert_eq!(
            slot_sync("db1", &view),
            SlotSync::default(),
            "no logical slot: nothing to sync"
        );
        view.config.slots.insert(
            "cdc".into(),
            PermanentSlot {
                kind: SlotKind::Logical,
                plugin: Some("pgoutput".into()),
                database: Some("app".into()),
            },
        );
        let want = |slots: &[&str]| SlotSync {
            enabled: true,
            standby_slots: slots.iter().map(|s| s.to_string()).collect(),
        };
        assert_eq!(slot_sync("db1", &view), want(&["db2", "db5"]));
        assert_eq!(slot_sync("db2", &view), want(&["db5"]), "never its own slot");
    }

    #[test]
    fn retained_wal_warnings_once_per_crossing() {
        let slot = |name: &str, retained_bytes| SlotReport {
            name: name.into(),
            kind: "physical".into(),
            active: false,
            retained_bytes,
        };
        let mut warned = BTreeSet::new();
        assert_eq!(
            newly_over(&[slot("a", 10), slot("b", 200)], 100, &mut warned),
            vec![("b".to_string(), 200)]
        );
        assert!(
            newly_over(&[slot("a", 10), slot("b", 300)], 100, &mut warned).is_empty(),
            "once"
        );
        assert!(newly_over(&[slot("b", 50)], 100, &mut warned).is_empty(), "back under");
        assert_eq!(
            newly_over(&[slot("b", 150)], 100, &mut warned).len(),
            1,
            "a new crossing"
        );
        assert!(
            newly_over(&[slot("b", 150)], 0, &mut BTreeSet::new()).is_empty(),
            "0 = off"
        );
    }

    #[test]
    fn ownership_record_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("slots.owned");
        let mut owned = OwnedSlots::load(path.clone());
        assert!(owned.names().is_empty());
        owned.adopt_if_unknown(&["db2".into()]).expect("adopt");
        owned.record(&["db3".into()], &["db2".into()]).expect("record");
        let again = OwnedSlots::load(path.clone());
        assert_eq!(again.names(), vec!["db3".to_string()]);
        let mut again = again;
        again
            .adopt_if_unknown(&["db9".into()])
            .expect("adopt is a no-op once known");
        assert_eq!(again.names(), vec!["db3".to_string()]);
        std::fs::write(&path, "not json").expect("garble");
        assert!(
            OwnedSlots::load(path).names().is_empty(),
            "an unreadable record is rebuilt"
        );
    }
}
