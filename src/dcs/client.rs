//! DCS client for processes that are not members (edge, ctl) and for tests: given every member address, it fails
//! over between them on its own, and its watches resume on another member from the last delivered revision.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tonic::transport::{Channel, ClientTlsConfig};
use tonic::{Code, Status};

use super::channel::{dcs_client, lazy_stream_channel, ChannelPool};
use super::types::{Event, KeyValue, Op, Txn};
use super::watch::PROGRESS_INTERVAL;
use crate::proto;
use crate::proto::admin_client::AdminClient;
use crate::retry::{Backoff, FailureLog, LogNow};

/// A client-side failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("no DCS endpoint configured")]
    NoEndpoints,
    #[error("bad endpoint {addr:?}: {message}")]
    BadEndpoint { addr: String, message: String },
    #[error("no DCS member answered within {timeout:?} (last error from {addr}: {message})")]
    Unavailable {
        timeout: Duration,
        addr: String,
        message: String,
    },
    #[error("{addr}: {code:?}: {message}")]
    Rejected { addr: String, code: Code, message: String },
}

/// What a watch delivers.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchMessage {
    /// Events of one or more revisions, in order.
    Events(Vec<Event>),
    /// The requested revisions are gone: re-read with `get` and watch again from the read's revision + 1.
    Compacted { revision: i64 },
}

/// Outcome of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnOutcome {
    pub succeeded: bool,
    pub revision: i64,
}

/// A failover-capable DCS client. Cheap to share behind an `Arc`.
pub struct DcsClient {
    endpoints: Vec<String>,
    timeout: Duration,
    current: Rotation,
    channels: ChannelPool,
    /// Test-only partition: while on, only `local` is reachable.
    fault: Option<(super::fault::FaultSwitch, String)>,
    /// The caller this client acts for (the `pgha-on-behalf-of` header, honoured from voters only): a db node's REST
    /// API writing for the admin who called it.
    on_behalf: Option<tonic::metadata::AsciiMetadataValue>,
}

/// The member requests go to, shared by concurrent calls: the first caller to see it fail moves everyone on.
#[derive(Debug, Default)]
struct Rotation(AtomicUsize);

impl Rotation {
    /// The current member's index among `len`.
    fn get(&self, len: usize) -> usize {
        self.0.load(Ordering::Relaxed) % len.max(1)
    }

    /// Moves past `failed` unless another caller already has. The stored index stays below `len`: comparing a
    /// wrapped counter with an index would stop matching after one round and pin every call to one member.
    fn advance_from(&self, failed: usize, len: usize) {
        let _ = self
            .0
            .compare_exchange(failed, (failed + 1) % len.max(1), Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// The least time one attempt on one member gets before the client moves on.
const MIN_ATTEMPT: Duration = Duration::from_millis(500);
/// Within one call, the least time between the starts of two rounds over every member (doubling up to the cap):
/// the same member is never asked again sooner after a failure.
const ROUND_MIN: Duration = Duration::from_millis(100);
const ROUND_CAP: Duration = Duration::from_millis(400);
/// A watch that failed on every member waits this long before the next round (doubling up to the cap); it resumes on
/// another member at once after a single loss.
const WATCH_ROUND_MIN: Duration = Duration::from_millis(100);
const WATCH_ROUND_CAP: Duration = Duration::from_secs(1);

fn retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded
    )
}

impl DcsClient {
    /// A client for the members at `endpoints` (`host:port`); `timeout` bounds each call including failovers.
    pub fn new(
        endpoints: Vec<String>,
        tls: Option<ClientTlsConfig>,
        timeout: Duration,
    ) -> Result<DcsClient, ClientError> {
        if endpoints.is_empty() {
            return Err(ClientError::NoEndpoints);
        }
        let client = DcsClient {
            endpoints,
            timeout,
            current: Rotation::default(),
            channels: ChannelPool::new(tls, Some(timeout)),
            fault: None,
            on_behalf: None,
        };
        for addr in &client.endpoints {
            client.channel(addr)?;
        }
        Ok(client)
    }

    /// Makes the client honour a node's partition switch: while on, only the `local` endpoint answers.
    pub fn with_fault(mut self, fault: super::fault::FaultSwitch, local: String) -> DcsClient {
        self.fault = Some((fault, local));
        self
    }

    /// A client with the same members and TLS identity whose requests are made for `caller`: the member that
    /// receives them authorizes `caller` (this node's certificate must be a voter's), and its writes are recorded as
    /// `caller`'s (`Command::As`).
    pub fn acting_for(&self, caller: &crate::dcs::authz::Principal) -> Result<DcsClient, ClientError> {
        let value = crate::dcs::authz::principal::header_value(caller);
        let header = value.parse().map_err(|_| ClientError::BadEndpoint {
            addr: String::new(),
            message: format!("caller {value:?} cannot be sent as a header"),
        })?;
        let mut client = DcsClient::new(self.endpoints.clone(), self.channels.tls().cloned(), self.timeout)?;
        client.fault = self.fault.clone();
        client.on_behalf = Some(header);
        Ok(client)
    }

    /// `message` as a request, naming the caller this client acts for.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        if let Some(value) = &self.on_behalf {
            req.metadata_mut()
                .insert(crate::dcs::authz::principal::ON_BEHALF_HEADER, value.clone());
        }
        req
    }

    fn cut_off(&self, addr: &str) -> bool {
        self.fault
            .as_ref()
            .is_some_and(|(f, local)| addr != local && f.partitioned())
    }

    /// The configured member addresses.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// A channel to one member address (cached).
    pub fn channel(&self, addr: &str) -> Result<Channel, ClientError> {
        self.channels.get(addr).map_err(|e| ClientError::BadEndpoint {
            addr: addr.to_string(),
            message: e.to_string(),
        })
    }

    /// Runs `f` against the current member, moving to the next one on transport errors, until the budget is spent.
    /// An attempt may use the whole remaining budget: a request that is not safe to repeat (a CAS that committed
    /// but whose answer was slow would fail when retried elsewhere) is only repeated after a clear failure.
    async fn call<T, F, Fut>(&self, f: F) -> Result<T, ClientError>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        self.call_with(None, f).await
    }

    /// Like [`DcsClient::call`] for requests safe to repeat (reads, keepalives): one silent member (cut off,
    /// frozen) must not eat the whole budget, so each attempt gets a share of it, still enough to ride out an
    /// election on a healthy member.
    async fn call_idempotent<T, F, Fut>(&self, f: F) -> Result<T, ClientError>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let share = (self.timeout / self.endpoints.len() as u32).max(MIN_ATTEMPT);
        self.call_with(Some(share), f).await
    }

    async fn call_with<T, F, Fut>(&self, share: Option<Duration>, f: F) -> Result<T, ClientError>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let deadline = Instant::now() + self.timeout;
        let mut last = (String::new(), String::from("not tried"));
        let mut attempt = 0usize;
        let mut pause = Backoff::new(ROUND_MIN, ROUND_CAP);
        let mut round_started = Instant::now();
        while Instant::now() < deadline {
            let index = self.current.get(self.endpoints.len());
            let addr = &self.endpoints[index];
            let remaining = deadline.saturating_duration_since(Instant::now());
            let remaining = share.map_or(remaining, |s| remaining.min(s));
            let outcome = if self.cut_off(addr) {
                Ok(Err(super::fault::partitioned_status()))
            } else {
                tokio::time::timeout(remaining, f(self.channel(addr)?)).await
            };
            match outcome {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(status)) if !retryable(&status) => {
                    return Err(ClientError::Rejected {
                        addr: addr.clone(),
                        code: status.code(),
                        message: status.message().to_string(),
                    })
                }
                Ok(Err(status)) => last = (addr.clone(), status.message().to_string()),
                Err(_) => last = (addr.clone(), "timed out".to_string()),
            }
            // Move on at once (the next member may answer). Once every member was tried, the next round starts no
            // sooner than the pause after this round's start: members that all refuse at once (every one down)
            // are not hammered, while rounds slowed by timeouts go on without extra waiting.
            self.current.advance_from(index, self.endpoints.len());
            attempt += 1;
            if attempt % self.endpoints.len() == 0 {
                pause.failed();
                let next_round = (round_started + pause.delay()).min(deadline);
                tokio::time::sleep_until(next_round.into()).await;
                round_started = Instant::now();
            }
        }
        Err(ClientError::Unavailable {
            timeout: self.timeout,
            addr: last.0,
            message: last.1,
        })
    }

    async fn range(&self, key: &[u8], prefix: bool, serializable: bool) -> Result<(Vec<KeyValue>, i64), ClientError> {
        let resp = self
            .call_idempotent(|ch| {
                let req = self.request(proto::RangeRequest {
                    key: key.to_vec(),
                    prefix,
                    serializable,
                });
                async move { dcs_client(ch).range(req).await }
            })
            .await?
            .into_inner();
        Ok((resp.kvs.into_iter().map(Into::into).collect(), resp.revision))
    }

    /// Linearizable read of a key (or every key under a prefix), with the revision it reflects.
    pub async fn get(&self, key: &[u8], prefix: bool) -> Result<(Vec<KeyValue>, i64), ClientError> {
        self.range(key, prefix, false).await
    }

    /// Read of the answering member's local view (may lag; never use it to decide anything).
    pub async fn get_local(&self, key: &[u8], prefix: bool) -> Result<(Vec<KeyValue>, i64), ClientError> {
        self.range(key, prefix, true).await
    }

    /// Runs a transaction.
    pub async fn txn(&self, txn: Txn) -> Result<TxnOutcome, ClientError> {
        let req: proto::TxnRequest = txn.into();
        let resp = self
            .call(|ch| {
                let req = self.request(req.clone());
                async move { dcs_client(ch).txn(req).await }
            })
            .await?
            .into_inner();
        Ok(TxnOutcome {
            succeeded: resp.succeeded,
            revision: resp.revision,
        })
    }

    /// Puts a key (bound to `lease` unless 0); returns the new revision.
    pub async fn put(&self, key: &[u8], value: &[u8], lease: i64) -> Result<i64, ClientError> {
        let op = Op::Put {
            key: key.to_vec(),
            value: value.to_vec(),
            lease,
        };
        Ok(self
            .txn(Txn {
                success: vec![op],
                ..Txn::default()
            })
            .await?
            .revision)
    }

    /// Deletes a key or a prefix; returns how many keys went away.
    pub async fn delete(&self, key: &[u8], prefix: bool) -> Result<u64, ClientError> {
        let op = Op::Delete {
            key: key.to_vec(),
            prefix,
        };
        let req: proto::TxnRequest = Txn {
            success: vec![op],
            ..Txn::default()
        }
        .into();
        Ok(self
            .call(|ch| {
                let req = self.request(req.clone());
                async move { dcs_client(ch).txn(req).await }
            })
            .await?
            .into_inner()
            .deleted)
    }

    /// Grants a lease; returns (id, ttl actually granted).
    pub async fn lease_grant(&self, ttl: Duration) -> Result<(i64, Duration), ClientError> {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let resp = self
            .call(|ch| {
                let req = proto::LeaseGrantRequest { ttl_ms };
                async move { dcs_client(ch).lease_grant(req).await }
            })
            .await?;
        let resp = resp.into_inner();
        Ok((resp.id, Duration::from_millis(u64::try_from(resp.ttl_ms).unwrap_or(0))))
    }

    /// Renews a lease; `None` when it no longer exists. The holder may count the TTL from when it SENT this call.
    pub async fn lease_keepalive(&self, id: i64) -> Result<Option<Duration>, ClientError> {
        let resp = self
            .call_idempotent(|ch| {
                let req = proto::LeaseKeepAliveRequest { id };
                async move { dcs_client(ch).lease_keep_alive(req).await }
            })
            .await?;
        let resp = resp.into_inner();
        Ok(resp
            .found
            .then(|| Duration::from_millis(u64::try_from(resp.ttl_ms).unwrap_or(0))))
    }

    /// Refreshes a lease on every member directly, without the Raft log (`lease_quorum.rs`), so it works while the
    /// members elect a leader. `Some(ttl)` when a quorum of every voter set of one membership found the lease: the
    /// holder may count that TTL from when it SENT this call. `None` says only that no quorum answered so (not that
    /// the lease is gone: a follower may not have applied its grant yet); [`DcsClient::lease_keepalive`] decides that.
    pub async fn lease_refresh_quorum(&self, id: i64, budget: Duration) -> Option<Duration> {
        let asks = self
            .endpoints
            .iter()
            .filter(|addr| !self.cut_off(addr))
            .map(|addr| async move {
                let mut req = tonic::Request::new(proto::LeaseRefreshRequest { id });
                req.set_timeout(budget);
                let channel = self.channel(addr).ok()?;
                let resp = tokio::time::timeout(budget, dcs_client(channel).lease_refresh(req))
                    .await
                    .ok()?
                    .ok()?
                    .into_inner();
                Some(super::lease_quorum::RefreshAck {
                    node_id: resp.node_id,
                    found: resp.found && resp.id == id,
                    ttl: Duration::from_millis(u64::try_from(resp.ttl_ms).unwrap_or(0)),
                    membership: resp.membership,
                    voters: resp.voters.into_iter().map(|v| v.ids.into_iter().collect()).collect(),
                })
            });
        // Done as soon as the answers form a quorum: a dead member must not hold every round up for the budget.
        let mut pending: futures::stream::FuturesUnordered<_> = asks.collect();
        let mut acks = Vec::new();
        while let Some(answer) = futures::StreamExt::next(&mut pending).await {
            acks.extend(answer);
            if let Some(ttl) = super::lease_quorum::refresh_quorum(&acks) {
                return Some(ttl);
            }
        }
        None
    }

    /// Renews a lease the way every holder should: directly on a quorum of voters first (within `direct`; it needs
    /// no Raft leader), else through the log, which also tells whether the lease is gone (`Ok(None)`). The holder
    /// may count the returned TTL from when it sent this call.
    pub async fn lease_renew(&self, id: i64, direct: Duration) -> Result<Option<Duration>, ClientError> {
        match self.lease_refresh_quorum(id, direct).await {
            Some(ttl) => Ok(Some(ttl)),
            None => self.lease_keepalive(id).await,
        }
    }

    /// Revokes a lease and deletes its keys; false when it did not exist.
    pub async fn lease_revoke(&self, id: i64) -> Result<bool, ClientError> {
        let resp = self
            .call_idempotent(|ch| {
                let req = proto::LeaseRevokeRequest { id };
                async move { dcs_client(ch).lease_revoke(req).await }
            })
            .await?;
        Ok(resp.into_inner().found)
    }

    /// Status of the member at `addr` (not failed over: asks exactly that member).
    pub async fn status_of(&self, addr: &str, timeout: Duration) -> Result<proto::StatusResponse, ClientError> {
        let mut req = tonic::Request::new(proto::StatusRequest {});
        req.set_timeout(timeout);
        let mut client = AdminClient::new(self.channel(addr)?);
        match tokio::time::timeout(timeout, client.status(req)).await {
            Ok(Ok(resp)) => Ok(resp.into_inner()),
            Ok(Err(s)) => Err(ClientError::Unavailable {
                timeout,
                addr: addr.into(),
                message: s.message().into(),
            }),
            Err(_) => Err(ClientError::Unavailable {
                timeout,
                addr: addr.into(),
                message: "timed out".into(),
            }),
        }
    }

    /// Status of whichever member answers first.
    pub async fn status(&self) -> Result<proto::StatusResponse, ClientError> {
        Ok(self
            .call(|ch| {
                let req = proto::StatusRequest {};
                async move { AdminClient::new(ch).status(req).await }
            })
            .await?
            .into_inner())
    }

    /// Adds a member (learner first, then voter).
    pub async fn add_member(&self, name: &str, addr: &str) -> Result<Vec<proto::Member>, ClientError> {
        let req = proto::AddMemberRequest {
            name: name.into(),
            addr: addr.into(),
        };
        Ok(self
            .call(|ch| {
                let req = req.clone();
                async move { AdminClient::new(ch).add_member(req).await }
            })
            .await?
            .into_inner()
            .members)
    }

    /// Removes a member.
    pub async fn remove_member(&self, name: &str) -> Result<Vec<proto::Member>, ClientError> {
        let req = proto::RemoveMemberRequest { name: name.into() };
        Ok(self
            .call(|ch| {
                let req = req.clone();
                async move { AdminClient::new(ch).remove_member(req).await }
            })
            .await?
            .into_inner()
            .members)
    }

    /// Watches a key or prefix from `start_revision` (0 = from now). Events arrive in revision order without gaps,
    /// across member failures; the channel closes after a `Compacted` message or when the receiver is dropped.
    pub fn watch(&self, key: &[u8], prefix: bool, start_revision: i64) -> mpsc::Receiver<WatchMessage> {
        self.watch_task(key, prefix, start_revision, None)
    }

    /// [`DcsClient::watch`] that also reports the watched member's progress messages (every 500 ms): the revision
    /// the member had applied when it sent one, all matching events up to it already delivered (modulo events of
    /// that very instant, which follow at once).
    pub fn watch_with_progress(
        &self,
        key: &[u8],
        prefix: bool,
        start_revision: i64,
    ) -> (mpsc::Receiver<WatchMessage>, tokio::sync::watch::Receiver<i64>) {
        let (progress, progress_rx) = tokio::sync::watch::channel(0);
        (
            self.watch_task(key, prefix, start_revision, Some(progress)),
            progress_rx,
        )
    }

    fn watch_task(
        &self,
        key: &[u8],
        prefix: bool,
        start_revision: i64,
        progress: Option<tokio::sync::watch::Sender<i64>>,
    ) -> mpsc::Receiver<WatchMessage> {
        let (tx, rx) = mpsc::channel(256);
        let task = WatchTask {
            endpoints: self.endpoints.clone(),
            tls: self.channels.tls().cloned(),
            start: self.current.get(self.endpoints.len()),
            key: key.to_vec(),
            prefix,
            next: start_revision,
            progress,
        };
        tokio::spawn(task.run(tx));
        rx
    }
}

struct WatchTask {
    endpoints: Vec<String>,
    tls: Option<ClientTlsConfig>,
    start: usize,
    key: Vec<u8>,
    prefix: bool,
    /// Next revision to deliver (0 until the first member told us where "now" is).
    next: i64,
    /// Where progress messages are reported, when the caller asked for them.
    progress: Option<tokio::sync::watch::Sender<i64>>,
}

enum StreamEnd {
    ReceiverGone,
    Compacted,
    Broken,
}

/// Logs a watch's failure transitions at debug level: a lost stream that resumes on another member is routine (the
/// edge's follower reports at warn when its view suffers), but a watch failing on every member must not log per try.
fn log_watch(key: &[u8], now: LogNow) {
    let key = String::from_utf8_lossy(key);
    match now {
        LogNow::Failing {
            message,
            repeats_before,
        } => {
            tracing::debug!(event = "dcs_watch_failing", %key, repeats_before, "DCS watch: {message} (resuming; repeats are not logged)")
        }
        LogNow::Recovered { last, count } => {
            tracing::debug!(event = "dcs_watch_resumed", %key, count, "DCS watch resumed after {count} lost streams (last: {last})")
        }
        LogNow::Quiet => {}
    }
}

impl WatchTask {
    async fn run(mut self, tx: mpsc::Sender<WatchMessage>) {
        let mut index = self.start;
        let mut failures = 0usize;
        let mut pause = Backoff::new(WATCH_ROUND_MIN, WATCH_ROUND_CAP);
        let mut log = FailureLog::default();
        loop {
            let addr = self.endpoints[index % self.endpoints.len()].clone();
            let mut answered = false;
            match self.follow(&addr, &tx, &mut log, &mut answered).await {
                StreamEnd::ReceiverGone | StreamEnd::Compacted => return,
                StreamEnd::Broken => {
                    let what = format!("stream from {addr} lost at revision {}", self.next);
                    log_watch(&self.key, log.failed("stream lost", &what));
                }
            }
            // A member that answered resets the count: only rounds in which no member answered are paced.
            if answered {
                failures = 0;
                pause.succeeded();
            }
            index += 1;
            failures += 1;
            if failures % self.endpoints.len() == 0 {
                pause.failed();
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(pause.delay()) => {}
                }
            }
        }
    }

    /// Follows the stream of one member until it ends; `answered` is set once the member sent a message.
    async fn follow(
        &mut self,
        addr: &str,
        tx: &mpsc::Sender<WatchMessage>,
        log: &mut FailureLog,
        answered: &mut bool,
    ) -> StreamEnd {
        let Ok(channel) = lazy_stream_channel(addr, self.tls.as_ref()) else {
            return StreamEnd::Broken;
        };
        let req = proto::WatchRequest {
            key: self.key.clone(),
            prefix: self.prefix,
            start_revision: self.next,
        };
        let silence = PROGRESS_INTERVAL * 4;
        let mut stream = match tokio::time::timeout(silence, dcs_client(channel).watch(req)).await {
            Ok(Ok(resp)) => resp.into_inner(),
            _ => return StreamEnd::Broken,
        };
        loop {
            // Members send progress messages; silence means the member or the path to it is gone.
            let msg = tokio::select! {
                _ = tx.closed() => return StreamEnd::ReceiverGone,
                msg = tokio::time::timeout(silence, stream.message()) => msg,
            };
            let resp = match msg {
                Ok(Ok(Some(resp))) => resp,
                _ => return StreamEnd::Broken,
            };
            if !*answered {
                *answered = true;
                log_watch(&self.key, log.succeeded());
            }
            if resp.compact_revision > 0 {
                let _ = tx
                    .send(WatchMessage::Compacted {
                        revision: resp.compact_revision,
                    })
                    .await;
                return StreamEnd::Compacted;
            }
            if self.next <= 0 {
                self.next = resp.revision + 1;
            }
            let events: Vec<Event> = resp
                .events
                .into_iter()
                .map(Event::from)
                .filter(|e| e.revision() >= self.next)
                .collect();
            if let Some(last) = events.last() {
                self.next = last.revision() + 1;
                if tx.send(WatchMessage::Events(events)).await.is_err() {
                    return StreamEnd::ReceiverGone;
                }
            } else if let Some(progress) = &self.progress {
                progress.send_replace(resp.revision);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rotation;

    #[test]
    fn rotation_keeps_moving_after_a_full_round() {
        let r = Rotation::default();
        let mut seen = Vec::new();
        for _ in 0..7 {
            let i = r.get(3);
            seen.push(i);
            r.advance_from(i, 3);
        }
        assert_eq!(seen, [0, 1, 2, 0, 1, 2, 0]);
        // A second caller that saw the same failure does not skip the next member.
        let r = Rotation::default();
        r.advance_from(0, 3);
        r.advance_from(0, 3);
        assert_eq!(r.get(3), 1);
    }
}
