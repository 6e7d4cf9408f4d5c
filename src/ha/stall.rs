//! Whether a standby's WAL receiver really streams (pure): one that streams an older timeline than the leader's
//! without getting further has WAL that forked from the leader's.

/// What the WAL receiver shows, against the leader's timeline. `high` is the highest position flushed during the
/// current stall clock; returns whether the receiver counts as streaming, and the new high-water mark.
///
/// PostgreSQL re-connects a receiver whose WAL forked every few hundred ms, streams up to the fork and is cut: each
/// attempt shows "streaming" and a flushed position that restarts lower, so only a new high counts as progress.
pub fn really_streaming(
    titled_streaming: bool,
    received_tli: Option<u32>,
    leader_tli: Option<u32>,
    flushed: Option<u64>,
    high: Option<u64>,
) -> (bool, Option<u64>) {
    let old_timeline = received_tli.zip(leader_tli).is_some_and(|(mine, leader)| mine < leader);
    let progressing = flushed.is_some_and(|lsn| high.is_none_or(|h| lsn > h));
    let high = if progressing { flushed } else { high };
    (titled_streaming && (!old_timeline || progressing), high)
}

#[cfg(test)]
mod tests {
    use super::really_streaming;

    #[test]
    fn table() {
        // (streaming title, receiver timeline, leader timeline, flushed, high) -> (streaming, high)
        let cases = [
            (
                "same timeline",
                (true, Some(3), Some(3), Some(100), Some(200)),
                (true, Some(200)),
            ),
            (
                "not streaming",
                (false, Some(3), Some(3), Some(300), None),
                (false, Some(300)),
            ),
            (
                "old timeline, first look",
                (true, Some(2), Some(3), Some(100), None),
                (true, Some(100)),
            ),
            (
                "old timeline, getting further",
                (true, Some(2), Some(3), Some(150), Some(100)),
                (true, Some(150)),
            ),
            (
                "old timeline, cut and back lower",
                (true, Some(2), Some(3), Some(50), Some(150)),
                (false, Some(150)),
            ),
            (
                "old timeline, stuck at the fork",
                (true, Some(2), Some(3), Some(150), Some(150)),
                (false, Some(150)),
            ),
            (
                "no leader timeline",
                (true, Some(2), None, Some(10), Some(150)),
                (true, Some(150)),
            ),
        ];
        for (what, (title, mine, leader, flushed, high), want) in cases {
            assert_eq!(really_streaming(title, mine, leader, flushed, high), want, "{what}");
        }
    }
}
