//! Checks an InstallSnapshot chunk before openraft sees it (pure).
//!
//! openraft writes a chunk at its offset into a `Cursor<Vec<u8>>`: a chunk whose offset lies far past the bytes
//! received so far makes it grow the vector to that offset (1 TiB means an abort). A leader sends chunks in order
//! and re-sends one only at an offset it sent before, so a chunk may start anywhere up to the end of the furthest
//! chunk received for the same snapshot, never beyond; and no snapshot is larger than the largest state a leader
//! may hold ([`super::limits::max_snapshot_bytes`]).

/// What to do with a chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkVerdict {
    /// Hand it to openraft: it allocates at most what was received plus this chunk.
    Accept,
    /// It does not continue the snapshot being received: answer as openraft answers a mismatch, so a real leader
    /// starts the snapshot again from offset 0.
    Restart,
    /// The snapshot would end past the largest one any leader may send.
    TooLarge { end: u64, max: u64 },
}

/// The snapshot being received: its id and the end of the furthest chunk accepted.
#[derive(Debug, Default)]
pub struct ChunkGuard {
    receiving: Option<(String, u64)>,
}

impl ChunkGuard {
    /// Checks the chunk of snapshot `id` holding `len` bytes at `offset`, against a largest snapshot of `max` bytes.
    pub fn check(&mut self, id: &str, offset: u64, len: u64, max: u64) -> ChunkVerdict {
        let end = offset.saturating_add(len);
        if end > max {
            return ChunkVerdict::TooLarge { end, max };
        }
        if offset == 0 {
            // openraft starts a new stream for a new id at offset 0 (and rewrites the current one from its start).
            self.receiving = Some((id.to_string(), end));
            return ChunkVerdict::Accept;
        }
        match &mut self.receiving {
            Some((current, received)) if current == id && offset <= *received => {
                *received = (*received).max(end);
                ChunkVerdict::Accept
            }
            _ => ChunkVerdict::Restart,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = 1 << 30;
    const TIB: u64 = 1 << 40;

    #[test]
    fn chunks_are_accepted_in_order_and_resent_but_never_past_what_arrived() {
        use ChunkVerdict::*;
        // (snapshot id, offset, len, expected), applied in order to one guard.
        let table: &[(&str, u64, u64, ChunkVerdict)] = &[
            ("s1", 100, 10, Restart), // nothing received yet: a chunk past 0 cannot continue anything
            ("s1", 0, 100, Accept),   // a snapshot starts
            ("s1", 100, 100, Accept), // the next chunk
            ("s1", 100, 100, Accept), // re-sent after a lost reply
            ("s1", 50, 10, Accept),   // an earlier offset only rewrites received bytes
            ("s1", 201, 10, Restart), // one byte past the received end
            // 1 TiB: refused outright.
            ("s1", TIB, 1, TooLarge { end: TIB + 1, max: MAX }),
            ("s2", 200, 10, Restart), // another snapshot's chunk does not continue s1
            ("s1", 200, 56, Accept),  // s1 goes on where it was
            ("s2", 0, 64, Accept),    // a new snapshot replaces s1
            ("s1", 256, 10, Restart), // s1 is no longer being received
            ("s2", 64, 64, Accept),
            ("s2", MAX - 10, 11, TooLarge { end: MAX + 1, max: MAX }),
            ("s2", 0, MAX + 1, TooLarge { end: MAX + 1, max: MAX }), // even a first chunk
            (
                "s2",
                u64::MAX,
                1,
                TooLarge {
                    end: u64::MAX,
                    max: MAX,
                },
            ), // no overflow
        ];
        let mut guard = ChunkGuard::default();
        for (i, (id, offset, len, expected)) in table.iter().enumerate() {
            assert_eq!(
                &guard.check(id, *offset, *len, MAX),
                expected,
                "row {i}: {id} at {offset} (+{len})"
            );
        }
    }
}
