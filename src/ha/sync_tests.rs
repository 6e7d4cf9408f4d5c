use std::collections::BTreeSet;

use super::*;

fn cfg(mode: SyncMode, strict: bool, count: u32) -> DynamicConfig {
    DynamicConfig {
        synchronous_mode: mode,
        synchronous_mode_strict: strict,
        synchronous_node_count: count,
        ..DynamicConfig::default()
    }
}

fn sb(name: &str, streaming: bool, eligible: bool, flush: u64) -> Standby {
    Standby {
        name: name.into(),
        streaming,
        eligible,
        flush_lsn: flush,
    }
}

fn q(k: u32, names: &[&str]) -> SyncSpec {
    SyncSpec::Quorum {
        k,
        names: names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>(),
    }
}

fn key(leader: &str, members: &[&str], quorum: u32) -> SyncState {
    SyncState {
        leader: leader.into(),
        members: members.iter().map(|n| n.to_string()).collect(),
        quorum,
    }
}

#[test]
fn render() {
    assert_eq!(SyncSpec::Async.render(), "");
    assert_eq!(SyncSpec::Blocking.render(), "ANY 1 (\"pgha_no_sync_standby\")");
    assert_eq!(q(1, &["db2", "db-3"]).render(), "ANY 1 (\"db-3\", \"db2\")");
}

#[test]
fn desired_table() {
    let two = [sb("db2", true, true, 100), sb("db3", true, true, 200)];
    type Case = (
        &'static str,
        DynamicConfig,
        Vec<Standby>,
        Option<SyncState>,
        bool,
        SyncSpec,
    );
    let cases: Vec<Case> = vec![
        (
            "off",
            cfg(SyncMode::Off, false, 1),
            two.to_vec(),
            None,
            false,
            SyncSpec::Async,
        ),
        (
            "on: most advanced",
            cfg(SyncMode::On, false, 1),
            two.to_vec(),
            None,
            false,
            q(1, &["db3"]),
        ),
        (
            "on: keep the current one",
            cfg(SyncMode::On, false, 1),
            two.to_vec(),
            Some(key("db1", &["db2"], 1)),
            false,
            q(1, &["db2"]),
        ),
        (
            "on: two",
            cfg(SyncMode::On, false, 2),
            two.to_vec(),
            None,
            false,
            q(2, &["db2", "db3"]),
        ),
        (
            "on: count above standbys",
            cfg(SyncMode::On, false, 3),
            two.to_vec(),
            None,
            false,
            q(2, &["db2", "db3"]),
        ),
        (
            "quorum: all of them",
            cfg(SyncMode::Quorum, false, 1),
            two.to_vec(),
            None,
            false,
            q(1, &["db2", "db3"]),
        ),
        (
            "not streaming or nofailover: skipped",
            cfg(SyncMode::Quorum, false, 1),
            vec![
                sb("db2", false, true, 100),
                sb("db3", true, false, 200),
                sb("db4", true, true, 50),
            ],
            None,
            false,
            q(1, &["db4"]),
        ),
        (
            "none: async",
            cfg(SyncMode::On, false, 1),
            vec![],
            None,
            false,
            SyncSpec::Async,
        ),
        (
            "none, strict: blocking",
            cfg(SyncMode::On, true, 1),
            vec![],
            None,
            false,
            SyncSpec::Blocking,
        ),
        (
            "none, held: blocking",
            cfg(SyncMode::Quorum, false, 1),
            vec![],
            None,
            true,
            SyncSpec::Blocking,
        ),
    ];
    for (case, config, standbys, k, hold, want) in cases {
        assert_eq!(desired(&config, &standbys, k.as_ref(), hold), want, "{case}");
    }
}

#[test]
fn plan_table() {
    let caught_up = [sb("db2", true, true, 500), sb("db3", true, true, 500)];
    let behind = [sb("db2", true, true, 100), sb("db3", true, true, 100)];
    type Case<'a> = (
        &'a str,
        Option<SyncState>,
        SyncSpec,
        SyncSpec,
        Option<u64>,
        &'a [Standby],
        SyncStep,
    );
    let cases: Vec<Case> = vec![
        (
            "first set: key before PostgreSQL",
            None,
            SyncSpec::Blocking,
            q(1, &["db2"]),
            None,
            &caught_up,
            SyncStep::WriteKey(key("db1", &["db2"], 1)),
        ),
        (
            "key covers: apply",
            Some(key("db1", &["db2"], 1)),
            SyncSpec::Blocking,
            q(1, &["db2"]),
            None,
            &caught_up,
            SyncStep::Apply(q(1, &["db2"])),
        ),
        (
            "applied and exact: steady",
            Some(key("db1", &["db2"], 1)),
            q(1, &["db2"]),
            q(1, &["db2"]),
            None,
            &caught_up,
            SyncStep::Steady,
        ),
        (
            "replace db2 by db3: grow the key first",
            Some(key("db1", &["db2"], 1)),
            q(1, &["db2"]),
            q(1, &["db3"]),
            None,
            &caught_up,
            SyncStep::WriteKey(key("db1", &["db2", "db3"], 1)),
        ),
        (
            "then apply",
            Some(key("db1", &["db2", "db3"], 1)),
            q(1, &["db2"]),
            q(1, &["db3"]),
            None,
            &caught_up,
            SyncStep::Apply(q(1, &["db3"])),
        ),
        (
            "then note the switch position",
            Some(key("db1", &["db2", "db3"], 1)),
            q(1, &["db3"]),
            q(1, &["db3"]),
            None,
            &caught_up,
            SyncStep::MarkSwitch,
        ),
        (
            "shrink only once the new set passed the switch",
            Some(key("db1", &["db2", "db3"], 1)),
            q(1, &["db3"]),
            q(1, &["db3"]),
            Some(300),
            &behind,
            SyncStep::AwaitCatchUp { have: 0, need: 1 },
        ),
        (
            "shrink",
            Some(key("db1", &["db2", "db3"], 1)),
            q(1, &["db3"]),
            q(1, &["db3"]),
            Some(300),
            &caught_up,
            SyncStep::WriteKey(key("db1", &["db3"], 1)),
        ),
        (
            "new leader: the old key's members stay until the new set caught up",
            Some(key("db1", &["db2", "db3"], 1)),
            SyncSpec::Blocking,
            q(1, &["db3"]),
            None,
            &caught_up,
            SyncStep::WriteKey(key("db2", &["db2", "db3"], 1)),
        ),
        (
            "quorum grows from 1 to 2: the key keeps the lower quorum",
            Some(key("db1", &["db2"], 1)),
            q(1, &["db2"]),
            q(2, &["db2", "db3"]),
            None,
            &caught_up,
            SyncStep::WriteKey(key("db1", &["db2", "db3"], 1)),
        ),
        (
            "blocking keeps the key",
            Some(key("db1", &["db2"], 1)),
            SyncSpec::Blocking,
            SyncSpec::Blocking,
            None,
            &[],
            SyncStep::Steady,
        ),
        (
            "to blocking: apply at once",
            Some(key("db1", &["db2"], 1)),
            q(1, &["db2"]),
            SyncSpec::Blocking,
            None,
            &[],
            SyncStep::Apply(SyncSpec::Blocking),
        ),
        (
            "async: the key goes",
            Some(key("db1", &["db2"], 1)),
            SyncSpec::Async,
            SyncSpec::Async,
            None,
            &[],
            SyncStep::DeleteKey,
        ),
        (
            "async, no key",
            None,
            SyncSpec::Async,
            SyncSpec::Async,
            None,
            &[],
            SyncStep::Steady,
        ),
    ];
    for (case, k, applied, wanted, switch, standbys, want) in cases {
        let me = if case.starts_with("new leader") { "db2" } else { "db1" };
        assert_eq!(
            plan(me, k.as_ref(), Some(&applied), &wanted, switch, standbys),
            want,
            "{case}"
        );
    }
}

#[test]
fn unknown_spec_is_reapplied_once_the_key_covers_it() {
    let k = key("db1", &["db2"], 1);
    assert_eq!(
        plan("db1", Some(&k), None, &q(1, &["db2"]), None, &[]),
        SyncStep::Apply(q(1, &["db2"]))
    );
    assert_eq!(
        plan("db1", Some(&k), None, &q(1, &["db3"]), None, &[]),
        SyncStep::WriteKey(key("db1", &["db2", "db3"], 1))
    );
}

#[test]
fn switch_is_known_at_apply_only_when_leaving_blocking() {
    let cases = [
        (Some(SyncSpec::Blocking), q(1, &["db2"]), Some(500)),
        (Some(SyncSpec::Blocking), SyncSpec::Async, None),
        (Some(q(1, &["db2"])), q(1, &["db3"]), None),
        (Some(SyncSpec::Async), q(1, &["db2"]), None),
        (None, q(1, &["db2"]), None),
    ];
    for (previous, next, want) in cases {
        assert_eq!(
            switch_at_apply(previous.as_ref(), &next, 500),
            want,
            "{previous:?} -> {next:?}"
        );
    }
}

#[test]
fn new_primary_leaves_its_own_key_once_a_standby_passes_its_promotion() {
    // db2 was promoted while the key named db2 and db3; it grows the key over its new set, applies it, and with the
    // switch known at apply the shrink follows as soon as db3 or db1 holds everything up to its position.
    let old = key("db1", &["db2", "db3"], 1);
    let want = q(1, &["db1", "db3"]);
    let grown = key("db2", &["db1", "db2", "db3"], 1);
    assert_eq!(
        plan("db2", Some(&old), Some(&SyncSpec::Blocking), &want, None, &[]),
        SyncStep::WriteKey(grown.clone())
    );
    assert_eq!(
        plan("db2", Some(&grown), Some(&SyncSpec::Blocking), &want, None, &[]),
        SyncStep::Apply(want.clone())
    );
    let switch = switch_at_apply(Some(&SyncSpec::Blocking), &want, 900);
    let behind = [sb("db1", true, true, 800), sb("db3", true, true, 899)];
    assert_eq!(
        plan("db2", Some(&grown), Some(&want), &want, switch, &behind),
        SyncStep::AwaitCatchUp { have: 0, need: 1 }
    );
    let caught_up = [sb("db1", true, true, 800), sb("db3", true, true, 900)];
    assert_eq!(
        plan("db2", Some(&grown), Some(&want), &want, switch, &caught_up),
        SyncStep::WriteKey(key("db2", &["db1", "db3"], 1))
    );
}

#[test]
fn promotion_table() {
    let on = key("db1", &["db2"], 1);
    let quorum = key("db1", &["db2", "db3"], 1);
    type Case = (&'static str, Option<SyncState>, &'static str, Vec<&'static str>, bool);
    let cases: Vec<Case> = vec![
        ("no key", None, "db3", vec![], true),
        ("empty key", Some(key("db1", &[], 0)), "db3", vec![], true),
        ("on: the sync standby", Some(on.clone()), "db2", vec![], true),
        ("on: not the sync standby", Some(on), "db3", vec!["db2"], false),
        (
            "quorum: alone is not enough",
            Some(quorum.clone()),
            "db2",
            vec![],
            false,
        ),
        (
            "quorum: heard the other",
            Some(quorum.clone()),
            "db2",
            vec!["db3"],
            true,
        ),
        (
            "quorum: a non-member does not count",
            Some(quorum),
            "db2",
            vec!["db4"],
            false,
        ),
        (
            "new leader in the key, then it died",
            Some(key("db2", &["db2", "db3"], 1)),
            "db3",
            vec![],
            false,
        ),
    ];
    for (case, k, me, answered, ok) in cases {
        assert_eq!(may_promote(k.as_ref(), me, &answered).is_ok(), ok, "{case}");
    }
}

#[test]
fn sync_mode_words() {
    let parse = |t: &str| serde_json::from_str::<SyncMode>(t).ok();
    assert_eq!(parse("true"), Some(SyncMode::On));
    assert_eq!(parse("false"), Some(SyncMode::Off));
    assert_eq!(parse("\"quorum\""), Some(SyncMode::Quorum));
    assert_eq!(parse("\"on\""), Some(SyncMode::On));
    assert_eq!(parse("\"sometimes\""), None);
}

#[test]
fn a_new_standby_joins_a_streaming_set_only_once_settled() {
    use std::time::{Duration, Instant};
    let t0 = Instant::now();
    let settle = Duration::from_secs(1);
    let since: std::collections::BTreeMap<String, Instant> = [
        ("db2".to_string(), t0),
        ("db3".to_string(), t0 + Duration::from_millis(900)),
    ]
    .into();
    let at = |ms| t0 + Duration::from_millis(ms);
    let key = |m: &[&str]| m.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let cases: &[(&str, Vec<String>, u64, &[&str])] = &[
        (
            "a key standby streams: the newcomer waits",
            key(&["db1", "db2"]),
            1000,
            &["db2"],
        ),
        ("settled: it joins", key(&["db1", "db2"]), 1900, &["db2", "db3"]),
        (
            "nobody of the key streams: both count at once",
            key(&["db1"]),
            950,
            &["db2", "db3"],
        ),
        ("no key yet: both count at once", key(&[]), 950, &["db2", "db3"]),
    ];
    for (what, members, now, want) in cases {
        let got = settled_streaming("db1", &["db2", "db3"], &since, members, settle, at(*now));
        assert_eq!(got, want.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "{what}");
    }
}

#[test]
fn at_promotion_table() {
    let names = |v: &[&str]| v.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    type Case = (
        &'static str,
        DynamicConfig,
        Option<SyncState>,
        Vec<String>,
        Option<(SyncState, SyncSpec)>,
    );
    let cases: Vec<Case> = vec![
        (
            "asynchronous: nothing to name",
            cfg(SyncMode::Off, false, 1),
            Some(key("db1", &["db2", "db3"], 1)),
            names(&["db1", "db3"]),
            None,
        ),
        (
            "nobody else: commits wait for the first loop",
            cfg(SyncMode::Quorum, false, 1),
            Some(key("db1", &["db2"], 1)),
            names(&["db2"]),
            None,
        ),
        (
            "switchover db1 -> db2: the old primary and db3 named, the key grows to cover them",
            cfg(SyncMode::Quorum, false, 1),
            Some(key("db1", &["db2", "db3"], 1)),
            names(&["db1", "db3"]),
            Some((key("db2", &["db1", "db2", "db3"], 1), q(1, &["db1", "db3"]))),
        ),
        (
            "on mode, two to confirm, only one other: k is what can confirm",
            cfg(SyncMode::On, false, 2),
            Some(key("db1", &["db2", "db3"], 2)),
            names(&["db3"]),
            Some((key("db2", &["db2", "db3"], 1), q(1, &["db3"]))),
        ),
        (
            "no key yet (it was asynchronous): the key is exactly the named",
            cfg(SyncMode::Quorum, true, 1),
            None,
            names(&["db1", "db3"]),
            Some((key("db2", &["db1", "db3"], 1), q(1, &["db1", "db3"]))),
        ),
        (
            "a higher old quorum is lowered to what PostgreSQL will wait for",
            cfg(SyncMode::Quorum, false, 1),
            Some(key("db1", &["db2", "db3", "db4"], 2)),
            names(&["db3", "db4"]),
            Some((key("db2", &["db2", "db3", "db4"], 1), q(1, &["db3", "db4"]))),
        ),
    ];
    for (name, config, old, others, want) in cases {
        let got = at_promotion(&config, "db2", old.as_ref(), &others);
        assert_eq!(got, want, "{name}");
        // Whatever is named, the key covers it: the invariant of `plan` holds from the first commit.
        if let Some((state, spec)) = got {
            assert!(covers(Some(&state), "db2", &spec), "{name}: key covers the spec");
        }
    }
}

#[test]
fn keep_applied_table() {
    let eligible = |v: &[&str]| v.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    type Case = (&'static str, SyncSpec, Option<SyncSpec>, Vec<String>, SyncSpec);
    let cases: Vec<Case> = vec![
        (
            "no streaming standby yet after the promotion: the named ones stay",
            SyncSpec::Blocking,
            Some(q(1, &["db1", "db3"])),
            eligible(&["db1", "db3"]),
            q(1, &["db1", "db3"]),
        ),
        (
            "one of them is no longer eligible (nofailover, nosync, gone): block",
            SyncSpec::Blocking,
            Some(q(1, &["db1", "db3"])),
            eligible(&["db3"]),
            SyncSpec::Blocking,
        ),
        (
            "blocking already",
            SyncSpec::Blocking,
            Some(SyncSpec::Blocking),
            eligible(&["db3"]),
            SyncSpec::Blocking,
        ),
        (
            "nothing applied yet",
            SyncSpec::Blocking,
            None,
            eligible(&["db3"]),
            SyncSpec::Blocking,
        ),
        (
            "a streaming candidate: what desired chose",
            q(1, &["db3"]),
            Some(q(1, &["db1", "db3"])),
            eligible(&["db1", "db3"]),
            q(1, &["db3"]),
        ),
        (
            "asynchronous wanted (grace over): not kept",
            SyncSpec::Async,
            Some(q(1, &["db3"])),
            eligible(&["db3"]),
            SyncSpec::Async,
        ),
    ];
    for (name, wanted, applied, eligible, want) in cases {
        assert_eq!(keep_applied(wanted, applied.as_ref(), &eligible), want, "{name}");
    }
}
