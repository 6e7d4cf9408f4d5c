//! The `history` key's length (pure): the last [`KEEP`] promotions, oldest dropped first.
//!
//! The key sits under the cluster prefix that every HA loop iteration and every edge reads whole, and the db role
//! rewrites it on each promotion: unbounded, a cluster's age would become the size of every read and of that write
//! (Patroni keeps every entry; 100 is years of failovers).

use crate::cluster::model::HistoryEntry;

/// Promotions the `history` key keeps.
pub const KEEP: usize = 100;

/// `list` with `entry` appended, cut to the last [`KEEP`] entries.
pub fn appended(list: Vec<HistoryEntry>, entry: HistoryEntry) -> Vec<HistoryEntry> {
    appended_keeping(list, entry, KEEP)
}

fn appended_keeping(mut list: Vec<HistoryEntry>, entry: HistoryEntry, keep: usize) -> Vec<HistoryEntry> {
    list.push(entry);
    let excess = list.len().saturating_sub(keep);
    list.drain(..excess);
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(timeline: u32) -> HistoryEntry {
        HistoryEntry {
            timeline,
            lsn: u64::from(timeline) << 24,
            reason: "test".into(),
            unix_ms: 0,
            new_leader: "db1".into(),
        }
    }

    fn timelines(list: &[HistoryEntry]) -> Vec<u32> {
        list.iter().map(|e| e.timeline).collect()
    }

    #[test]
    fn keeps_the_last_entries() {
        // (entries before, keep, timelines after appending timeline 100)
        let table: &[(u32, usize, &[u32])] = &[
            (0, 3, &[100]),
            (2, 3, &[1, 2, 100]),
            (3, 3, &[2, 3, 100]),
            (10, 3, &[9, 10, 100]), // an oversized key written before the cap shrinks at once
            (1, 1, &[100]),
        ];
        for (before, keep, after) in table {
            let list = (1..=*before).map(entry).collect();
            assert_eq!(
                timelines(&appended_keeping(list, entry(100), *keep)),
                *after,
                "{before} entries, keep {keep}"
            );
        }
        let full: Vec<HistoryEntry> = (1..=KEEP as u32).map(entry).collect();
        let after = appended(full, entry(1000));
        assert_eq!(after.len(), KEEP);
        assert_eq!((after[0].timeline, after[KEEP - 1].timeline), (2, 1000));
    }
}
