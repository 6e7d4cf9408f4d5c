//! `bench chaos`'s invariant checks against the running topology: every db member streaming from the leader again
//! (timed), the VIP settled on one edge, writes through the VIP resumed, no acknowledged write missing on the
//! primary, never two writable primaries. The verdicts are pure ([`super::rejoin`], [`super::vip_settle`],
//! [`super::writable_runs`], [`crate::harness::probe::lost`]); this module observes and keeps what a long run needs.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use super::rejoin::{rejoined, Steady};
use super::vip_settle::{VipSettle, VipVerdict};
use super::writable_runs::{Sample, WritableRuns};
use crate::harness::ns_probe::{Acks, NsProbe, Writability};
use crate::harness::probe::{lost, Target};
use crate::harness::six_hosts::{SixHosts, DBS, EDGES, PG_PORT};

/// Invariant 7: every member streams from the leader again this long after a fault ends.
pub const REJOIN: Duration = Duration::from_secs(30);
/// How long a rejoin is waited for at all (measured past [`REJOIN`]); the run stops after that.
pub const GIVE_UP: Duration = Duration::from_secs(180);
/// How long the VIP may take to settle once the db members are back (ttl + race + netlink, on 2 shared cores).
pub const VIP_MOVE: Duration = Duration::from_secs(15);
/// Acknowledged writes that make "writing again".
pub const STEADY: usize = 25;
const POLL: Duration = Duration::from_millis(100);
/// How long every member must stream on the same walsender before the rejoin counts.
const STEADY_FOR: Duration = Duration::from_secs(1);

/// What [`Checks::wait_rejoined`] found.
pub struct Rejoin {
    /// The leader every member streams from (None: not within [`GIVE_UP`]).
    pub leader: Option<String>,
    /// When the steady stretch began (or when the wait gave up).
    pub at: Instant,
    /// The last reason it was not rejoined yet.
    pub last: String,
}

/// What the checks keep across steps.
pub struct Checks {
    table: String,
    /// A read-write connection to the leader (from the machine, over the bridge), kept while it leads.
    leader: Option<(String, tokio_postgres::Client)>,
    runs: WritableRuns,
    reported_overlaps: HashSet<(usize, u64, usize, u64)>,
    known_lost: BTreeSet<i64>,
}

impl Checks {
    pub fn new(table: &str) -> Checks {
        Checks {
            table: table.into(),
            leader: None,
            runs: WritableRuns::default(),
            reported_overlaps: HashSet::new(),
            known_lost: BTreeSet::new(),
        }
    }

    async fn leader_client(&mut self, six: &SixHosts, leader: &str) -> Option<&tokio_postgres::Client> {
        let stale = match &self.leader {
            Some((name, c)) => name != leader || c.is_closed(),
            None => true,
        };
        if stale {
            self.leader = None;
            let target = Target {
                nodes: vec![(six.ip(leader).ok()?.to_string(), PG_PORT)],
                user: "postgres".into(),
                password: six.password.clone(),
            };
            self.leader = Some((leader.to_string(), target.primary().await?));
        }
        self.leader.as_ref().map(|(_, c)| c)
    }

    /// The members streaming on `leader` with their walsender's pid (`pg_stat_replication`); None when it does not
    /// answer.
    async fn streaming_on(&mut self, six: &SixHosts, leader: &str) -> Option<Vec<(String, i32)>> {
        let c = self.leader_client(six, leader).await?;
        let sql = "SELECT application_name, pid FROM pg_stat_replication WHERE state = 'streaming'";
        match tokio::time::timeout(Duration::from_secs(1), c.query(sql, &[])).await {
            Ok(Ok(rows)) => Some(rows.iter().map(|r| (r.get(0), r.get(1))).collect()),
            _ => {
                self.leader = None;
                None
            }
        }
    }

    /// Polls from `end` (the faults' end) until every db member has streamed from the leader on the same walsender
    /// for [`STEADY_FOR`] (within [`GIVE_UP`]); when that began is the rejoin.
    pub async fn wait_rejoined(&mut self, six: &SixHosts, end: Instant) -> Rejoin {
        let mut last = String::from("nothing read yet");
        let mut steady = Steady::new(STEADY_FOR);
        let rounds = GIVE_UP.as_millis() / POLL.as_millis() + 1;
        for _ in 0..rounds {
            if end.elapsed() >= GIVE_UP {
                break;
            }
            let mut seen = None;
            match six.view().await {
                Err(e) => last = format!("DCS view: {e}"),
                Ok(view) => {
                    let leader = view.leader_member().map(|m| m.name.clone());
                    let senders = match &leader {
                        Some(l) => self.streaming_on(six, l).await,
                        None => None,
                    };
                    let names: Option<Vec<String>> =
                        senders.as_ref().map(|s| s.iter().map(|(n, _)| n.clone()).collect());
                    match rejoined(&view, &DBS, names.as_deref()) {
                        Ok(l) => {
                            let wanted = senders
                                .unwrap_or_default()
                                .into_iter()
                                .filter(|(n, _)| DBS.contains(&n.as_str()));
                            seen = Some((l, wanted.collect()));
                        }
                        Err(why) => last = why,
                    }
                }
            }
            if let Some((leader, at)) = steady.observe(seen, Instant::now()) {
                return Rejoin {
                    leader: Some(leader),
                    at,
                    last,
                };
            }
            tokio::time::sleep(POLL).await;
        }
        Rejoin {
            leader: None,
            at: Instant::now(),
            last,
        }
    }

    /// Polls until every edge publishes itself healthy and one edge holds the VIP that the `vip` key names, stable
    /// for a second, by `deadline`: (holder, when); an error at once when two edges hold it.
    pub async fn wait_vip(&self, six: &SixHosts, deadline: Instant) -> Result<(String, Instant), String> {
        let mut settle = VipSettle::new(Duration::from_secs(1));
        let mut last = String::from("nothing read yet");
        let rounds = (deadline.saturating_duration_since(Instant::now()).as_millis() / 50 + 2) as usize;
        for _ in 0..rounds {
            let healthy = six.healthy_edges().await;
            let holders = six.vip_holders();
            let key = six.vip_key().await;
            match settle.observe(&holders, key.as_deref(), Instant::now()) {
                VipVerdict::TwoHolders(h) => return Err(format!("several edges hold the VIP at once: {h:?}")),
                VipVerdict::Settled(h) if healthy.len() == EDGES.len() => return Ok((h, Instant::now())),
                _ => last = format!("VIP holders {holders:?}, vip key {key:?}, healthy edges {healthy:?}"),
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("not settled in time: {last}"))
    }

    /// Waits for [`STEADY`] more acknowledged writes through the VIP within `within`.
    pub async fn wait_writes(probe: &NsProbe, within: Duration) -> Result<(), String> {
        let (before, start) = (probe.count(), Instant::now());
        let rounds = within.as_millis() / 20 + 1;
        for _ in 0..rounds {
            if probe.count() >= before + STEADY {
                return Ok(());
            }
            if start.elapsed() >= within {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(format!(
            "writes through the VIP did not resume within {within:?} ({} new acknowledgements)",
            probe.count() - before
        ))
    }

    /// Two writable primaries in the pollers' answers since the last call, each pair reported once.
    pub fn new_two_writable(&mut self, pollers: &Writability) -> Vec<String> {
        for (node, samples) in pollers.drain().into_iter().enumerate() {
            for p in samples {
                self.runs.add(Sample {
                    node,
                    conn: p.conn,
                    at: p.server_s,
                    writable: p.writable,
                });
            }
        }
        self.runs
            .overlaps(&DBS)
            .into_iter()
            .filter(|o| self.reported_overlaps.insert(o.key))
            .map(|o| format!("two writable primaries: {}", o.text))
            .collect()
    }

    /// The ids on whichever db host accepts writes now (retried for [`REJOIN`]): (its address, ids), or what went
    /// wrong last.
    async fn present_ids(&self, six: &SixHosts) -> Result<(String, Vec<i64>), String> {
        let target = six.direct().map_err(|e| e.to_string())?;
        let sql = format!("SELECT id FROM {} ORDER BY id", self.table);
        let deadline = Instant::now() + REJOIN;
        let mut last = String::from("not tried");
        for _ in 0..REJOIN.as_millis() / POLL.as_millis() + 1 {
            match target.primary().await {
                None => last = "no db host accepts a read-write connection".into(),
                Some(c) => match tokio::time::timeout(Duration::from_secs(10), c.query(&sql, &[])).await {
                    Ok(Ok(rows)) => {
                        let addr = c
                            .query_one("SELECT host(inet_server_addr())", &[])
                            .await
                            .map_or_else(|_| "?".into(), |r| r.get::<_, String>(0));
                        let host = DBS
                            .iter()
                            .find(|d| six.ip(d).is_ok_and(|ip| ip.to_string() == addr))
                            .map_or(addr, |d| d.to_string());
                        return Ok((host, rows.iter().map(|r| r.get(0)).collect()));
                    }
                    Ok(Err(e)) => last = format!("query: {e}"),
                    Err(_) => last = "query: no answer within 10 s".into(),
                },
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        Err(last)
    }

    /// Acknowledged ids missing on the primary that were not reported before: (primary's address, ids).
    pub async fn new_lost(&mut self, six: &SixHosts, acked: &Acks) -> Result<(String, Vec<i64>), String> {
        let (host, present) = self
            .present_ids(six)
            .await
            .map_err(|why| format!("reading the acknowledged ids on the primary within {REJOIN:?}: {why}"))?;
        let new = lost(acked, &present)
            .into_iter()
            .filter(|id| self.known_lost.insert(*id))
            .collect();
        Ok((host, new))
    }

    /// Every acknowledged id found missing so far.
    pub fn lost_so_far(&self) -> usize {
        self.known_lost.len()
    }
}

/// The last `n` warnings and errors in `host`'s log from byte `from` on, shortened: what a member said while it did
/// not rejoin.
pub fn warnings(six: &SixHosts, host: &str, from: u64, n: usize) -> Vec<String> {
    let text = six.log_since(host, from);
    let lines: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            let level = v.get("level")?.as_str()?;
            matches!(level, "WARN" | "ERROR").then(|| {
                let fields = v.get("fields").map(|f| f.to_string()).unwrap_or_default();
                let mut s = format!("{host} {level} {fields}");
                if s.len() > 300 {
                    let cut = (0..=300).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
                    s.truncate(cut);
                    s.push('…');
                }
                s
            })
        })
        .collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}
