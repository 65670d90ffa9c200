//! A token or leaky bucket whose state lives in Redis: one GCRA script,
//! one round trip per decision, Redis's clock. Decisions asked for while
//! one call is out go together in the next (one script call for many keys),
//! so concurrent callers share round trips. Refusals Redis gave are
//! remembered here until they expire, so a flooded key costs one call per
//! refill instead of one per request.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::{Script, Value};
use tokio::sync::oneshot;

use super::backend::{Backend, Failure, OnError};
use super::call::Call;
use super::{int, limit_key, text};
use crate::core::bucket::{Acquire as LocalAcquire, Bucket, Shape};
use crate::core::clock::monotonic;
use crate::core::histogram::{Histogram, HistogramSnapshot};
use crate::core::keys::Key;
use crate::core::pace::Pace;
use crate::core::wait::{Outcome, Poll, Refusal, Wait, Waker};

static SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    // The plain-number path returns before the bignum helpers are defined.
    Script::new(concat!(
        include_str!("bucket.lua"),
        // Loaded only by a decision that needs them: inside `load_exact`.
        include_str!("bignum.lua"),
        include_str!("bucket_exact.lua")
    ))
});

/// The finest rate a shared bucket keeps: the script divides by the ticks
/// per nanosecond in Lua numbers, exact while ten times it stays below 2^53.
pub const MAX_TICKS_PER_NS: u128 = 100_000_000_000_000;

/// The most decisions one script call makes.
const MAX_BATCH: usize = 256;

/// The most script calls out at once per bucket: a few keep Redis and this
/// process both busy; past them, decisions wait to go in the next call.
const MAX_SENDERS: usize = 4;

/// Local refusals are forgotten in bulk past this many keys.
const MAX_REMEMBERED: usize = 65_536;

/// Why a remote decision failed, for the binding to raise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteError {
    /// Redis failed and the limiter raises (`on_error="raise"`).
    Backend(String),
    /// A limit of this name exists with other settings.
    Conflict { stored: String, ours: String },
}

/// Why a read of a key's state (`peek`) found nothing.
#[derive(Debug)]
pub enum PeekFailure {
    /// Redis could not answer; the limiter's `on_error` says what to answer.
    Failed(Failure),
    /// A limit of this name exists with other settings: always an error.
    Conflict(String),
}

impl From<super::call::NoRuntime> for PeekFailure {
    fn from(gone: super::call::NoRuntime) -> Self {
        Self::Failed(Failure::from(gone))
    }
}

/// What the script said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Taken,
    /// Its turn is `wait_ns` away; giving it back needs `tat`.
    Booked {
        wait_ns: u64,
        tat: String,
    },
    Refused {
        retry_after_ns: u64,
    },
    Conflict(String),
}

/// A decision and the Redis time it was made at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub decision: Decision,
    pub redis_now_ns: u64,
}

/// A refusal Redis gave: `n` or more tokens are refused until `until`.
#[derive(Clone, Copy)]
struct Known {
    n: u64,
    until: Instant,
}

#[derive(Default)]
struct Counters {
    acquired: AtomicU64,
    waited: AtomicU64,
    rejected: AtomicU64,
    rejected_locally: AtomicU64,
    cancelled: AtomicU64,
    failures: AtomicU64,
    waiting: AtomicU64,
    /// How long the callers that slept for their turn waited.
    waits: Histogram,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteSnapshot {
    pub acquired: u64,
    pub waited: u64,
    pub rejected: u64,
    pub rejected_locally: u64,
    pub cancelled: u64,
    pub backend_errors: u64,
    pub waiting: u64,
    pub wait: HistogramSnapshot,
}

/// What the script answered for one key: status, wait ticks, tat.
type Reply = (i64, String, String);

/// A decision waiting for the next script call.
struct Queued {
    key: String,
    args: [String; 6],
    answer: oneshot::Sender<Result<(Reply, u64), Failure>>,
}

#[derive(Default)]
struct Batch {
    queued: Vec<Queued>,
    /// Senders at work, each with at most one call out.
    senders: usize,
}

pub struct RemoteBucket {
    pub backend: Arc<Backend>,
    pub name: String,
    settings: String,
    pace: Pace,
    shape: Shape,
    /// Decides while Redis cannot (`on_error="local"`).
    pub fallback: Arc<Bucket>,
    known: Mutex<HashMap<Key, Known>>,
    counters: Counters,
    batch: Mutex<Batch>,
    /// The Redis time of the latest decision (0: none yet), for tests that
    /// replay decisions on a local bucket.
    last_redis_now_ns: AtomicU64,
}

fn key_suffix(key: &Key) -> String {
    fn hex(bytes: &[u8]) -> String {
        bytes
            .iter()
            .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
                let _ = write!(out, "{b:02x}");
                out
            })
    }
    fn short(bytes: &[u8]) -> &[u8] {
        let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        &bytes[..end]
    }
    match key {
        Key::Shared => String::new(),
        Key::Int(i) => format!(":i:{i}"),
        Key::BigInt(digits) => format!(":i:{digits}"),
        Key::ShortStr(bytes) => format!(":s:{}", String::from_utf8_lossy(short(bytes))),
        Key::Str(text) => format!(":s:{text}"),
        Key::ShortBytes(bytes) => format!(":b:{}", hex(short(bytes))),
        Key::Bytes(bytes) => format!(":b:{}", hex(bytes)),
    }
}

impl RemoteBucket {
    pub fn new(backend: Arc<Backend>, name: String, fallback: Arc<Bucket>) -> Arc<Self> {
        let pace = fallback.pace();
        let shape = fallback.shape();
        let settings = match shape {
            Shape::Token { burst } => format!(
                "token tpn={} interval={} burst={burst}",
                pace.ticks_per_ns(),
                pace.tokens(1)
            ),
            Shape::Leaky { capacity } => format!(
                "leaky tpn={} interval={} capacity={}",
                pace.ticks_per_ns(),
                pace.tokens(1),
                capacity.map_or_else(|| "none".to_owned(), |c| c.to_string())
            ),
        };
        Arc::new(Self {
            backend,
            name,
            settings,
            pace,
            shape,
            fallback,
            known: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            batch: Mutex::new(Batch::default()),
            last_redis_now_ns: AtomicU64::new(0),
        })
    }

    pub fn redis_key(&self, key: &Key) -> String {
        limit_key(&self.backend.prefix, &self.name, &key_suffix(key))
    }

    fn slack(&self, n: u64) -> u128 {
        match self.shape {
            Shape::Token { burst } => self.pace.tokens(burst.saturating_sub(n)),
            Shape::Leaky { .. } => 0,
        }
    }

    pub fn most(&self) -> Option<u64> {
        self.fallback.most()
    }

    /// The script's six arguments for `mode` on `n` tokens of one key.
    fn args(&self, mode: &str, n: u64, max_wait_ns: Option<u64>, tat: &str) -> [String; 6] {
        let capacity = match self.shape {
            Shape::Leaky { capacity: Some(c) } => self.pace.tokens(c).to_string(),
            _ => "-".to_owned(),
        };
        [
            mode.to_owned(),
            self.pace.tokens(n).to_string(),
            self.slack(n).to_string(),
            max_wait_ns.map_or_else(
                || "-".to_owned(),
                |ns| (u128::from(ns) * self.pace.ticks_per_ns()).to_string(),
            ),
            capacity,
            tat.to_owned(),
        ]
    }

    /// Runs one decision in the next script call, and waits (up to the
    /// backend's timeout) for its reply and the Redis time.
    async fn ask(
        self: &Arc<Self>,
        key: String,
        args: [String; 6],
    ) -> Result<(Reply, u64), Failure> {
        let (answer, reply) = oneshot::channel();
        let another = {
            let mut batch = self.batch.lock();
            batch.queued.push(Queued { key, args, answer });
            let another = batch.senders < MAX_SENDERS;
            batch.senders += usize::from(another);
            another
        };
        if another {
            let this = Arc::clone(self);
            if !Backend::spawn(async move { this.send_batches().await }) {
                let queued = {
                    let mut batch = self.batch.lock();
                    batch.senders -= 1;
                    std::mem::take(&mut batch.queued)
                };
                let failure = Failure::Unreachable("no thread for the Redis client".to_owned());
                for q in queued {
                    let _ = q.answer.send(Err(failure.clone()));
                }
            }
        }
        // Queued behind a call that is out, a decision waits for that one
        // too: the bound holds from the moment it was asked for.
        match tokio::time::timeout(self.backend.timeout, reply).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(Failure::Closed),
            Err(_) => Err(Failure::Unreachable(format!(
                "no answer within the timeout of {} s",
                self.backend.timeout.as_secs_f64()
            ))),
        }
    }

    /// Sends what is queued, one call at a time, until nothing is.
    async fn send_batches(self: Arc<Self>) {
        loop {
            let queued = {
                let mut batch = self.batch.lock();
                if batch.queued.is_empty() {
                    batch.senders -= 1;
                    return;
                }
                let take = batch.queued.len().min(MAX_BATCH);
                batch.queued.drain(..take).collect::<Vec<_>>()
            };
            let keys: Vec<String> = queued.iter().map(|q| q.key.clone()).collect();
            let mut args = Vec::with_capacity(2 + 6 * queued.len());
            args.push(self.settings.clone());
            args.push(self.pace.ticks_per_ns().to_string());
            for q in &queued {
                args.extend(q.args.iter().cloned());
            }
            let replies = match self.backend.invoke(&SCRIPT, &keys, &args).await {
                Ok(reply) => self.read(&reply, queued.len()),
                Err(failure) => Err(failure),
            };
            match replies {
                Ok((replies, now_ns)) => {
                    for (q, reply) in queued.into_iter().zip(replies) {
                        let _ = q.answer.send(Ok((reply, now_ns)));
                    }
                }
                Err(failure) => {
                    for q in queued {
                        let _ = q.answer.send(Err(failure.clone()));
                    }
                }
            }
        }
    }

    /// The replies for `count` keys, and the Redis time.
    fn read(&self, reply: &Value, count: usize) -> Result<(Vec<Reply>, u64), Failure> {
        let bad = || {
            Failure::Server(format!(
                "unexpected reply from the bucket script: {reply:?}"
            ))
        };
        let Value::Array(items) = reply else {
            return Err(bad());
        };
        if items.len() != 1 + 3 * count {
            return Err(bad());
        }
        let now_ns = text(items.first())
            .and_then(|t| t.parse().ok())
            .ok_or_else(bad)?;
        let replies = items[1..]
            .chunks(3)
            .map(|one| Some((int(one.first())?, text(one.get(1))?, text(one.get(2))?)))
            .collect::<Option<Vec<Reply>>>()
            .ok_or_else(bad)?;
        Ok((replies, now_ns))
    }

    fn ns(&self, ticks: &str) -> Result<u64, Failure> {
        ticks
            .parse::<u128>()
            .map(|t| self.pace.ns_ceil(t))
            .map_err(|_| Failure::Server(format!("unexpected tick count {ticks:?}")))
    }

    /// One decision on `n` tokens of `key`, waiting up to `max_wait_ns`.
    pub async fn decide(
        self: Arc<Self>,
        key: Key,
        n: u64,
        max_wait_ns: Option<u64>,
    ) -> Result<Answer, Failure> {
        let args = self.args("take", n, max_wait_ns, "");
        let ((status, a, b), redis_now_ns) = self.ask(self.redis_key(&key), args).await?;
        let decision = match status {
            1 => Decision::Taken,
            2 => Decision::Booked {
                wait_ns: self.ns(&a)?,
                tat: b,
            },
            0 => Decision::Refused {
                retry_after_ns: self.ns(&a)?,
            },
            -1 => Decision::Conflict(a),
            _ => return Err(Failure::Server(format!("unexpected status {status}"))),
        };
        self.last_redis_now_ns
            .store(redis_now_ns, Ordering::Relaxed);
        Ok(Answer {
            decision,
            redis_now_ns,
        })
    }

    /// The wait for `n` tokens now, and the ticks the key is in debt.
    pub async fn peek(self: Arc<Self>, key: Key, n: u64) -> Result<(u64, u128), PeekFailure> {
        let args = self.args("peek", n, None, "");
        let ((status, a, b), _) = self
            .ask(self.redis_key(&key), args)
            .await
            .map_err(PeekFailure::Failed)?;
        if status == -1 {
            return Err(PeekFailure::Conflict(self.conflict_message(&a)));
        }
        let debt = b.parse::<u128>().map_err(|_| {
            PeekFailure::Failed(Failure::Server(format!("unexpected tick count {b:?}")))
        })?;
        Ok((self.ns(&a).map_err(PeekFailure::Failed)?, debt))
    }

    /// Tokens there now, from the ticks the key is in debt.
    pub fn tokens_from_debt(&self, debt: u128) -> f64 {
        match self.shape {
            Shape::Token { burst } => burst as f64 - self.pace.as_tokens(debt),
            Shape::Leaky { .. } => 1.0 - self.pace.as_tokens(debt),
        }
    }

    /// Gives back a booking nobody will use, once Redis can be reached.
    fn cancel_booking(self: &Arc<Self>, key: Key, n: u64, tat: String) {
        let this = Arc::clone(self);
        Backend::spawn(async move {
            let args = this.args("cancel", n, None, &tat);
            let _ = this.ask(this.redis_key(&key), args).await;
        });
    }

    pub fn conflict_message(&self, stored: &str) -> String {
        format!(
            "a limit named {:?} exists in Redis with other settings ({stored}) than this one ({})",
            self.name, self.settings
        )
    }

    /// A refusal known here for `n` tokens of `key`: the time left.
    fn known_refusal(&self, key: &Key, n: u64) -> Option<Duration> {
        let known = self.known.lock();
        let entry = known.get(key)?;
        let now = Instant::now();
        (n >= entry.n && now < entry.until).then(|| entry.until - now)
    }

    fn learn_refusal(&self, key: Key, n: u64, until: Instant) {
        let mut known = self.known.lock();
        if known.len() >= MAX_REMEMBERED {
            let now = Instant::now();
            known.retain(|_, entry| entry.until > now);
            if known.len() >= MAX_REMEMBERED {
                known.clear();
            }
        }
        let entry = known.entry(key).or_insert(Known { n, until });
        // The refusal that covers more calls wins: a smaller n, or a later end.
        if n < entry.n || (n == entry.n && until > entry.until) || entry.until <= Instant::now() {
            *entry = Known { n, until };
        }
    }

    /// The Redis time of the latest decision Redis made for this bucket.
    pub fn last_redis_now_ns(&self) -> Option<u64> {
        Some(self.last_redis_now_ns.load(Ordering::Relaxed)).filter(|&ns| ns != 0)
    }

    /// Keys with a refusal remembered here.
    pub fn remembered(&self) -> usize {
        self.known.lock().len()
    }

    pub fn count_failure(&self) {
        self.counters.failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> RemoteSnapshot {
        let c = &self.counters;
        RemoteSnapshot {
            acquired: c.acquired.load(Ordering::Relaxed),
            waited: c.waited.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            rejected_locally: c.rejected_locally.load(Ordering::Relaxed),
            cancelled: c.cancelled.load(Ordering::Relaxed),
            backend_errors: c.failures.load(Ordering::Relaxed),
            waiting: c.waiting.load(Ordering::Relaxed),
            wait: c.waits.snapshot_of(c.acquired.load(Ordering::Relaxed)),
        }
    }

    /// The refill interval, as the retry hint of a refusal made without Redis.
    pub fn interval_ns(&self) -> u64 {
        self.pace.ns_ceil(self.pace.tokens(1))
    }
}

enum Stage {
    Start,
    Asking {
        call: Call<Result<Answer, Failure>>,
        sent_at: Instant,
    },
    /// Booked: the turn comes at `until`.
    Sleeping {
        until: Instant,
        tat: String,
    },
    Local(LocalAcquire<Arc<Bucket>>),
    Done,
}

/// A decision as a wait: ask Redis, then sleep locally until a booked turn.
pub struct RemoteAcquire {
    bucket: Arc<RemoteBucket>,
    key: Key,
    n: u64,
    max_wait_ns: Option<u64>,
    stage: Stage,
    /// The failure met, for the binding to log (taken once).
    pub failure: Option<Failure>,
    /// The decision's Redis time, for tests that compare with a local bucket.
    pub redis_now_ns: Option<u64>,
    started_ns: u64,
}

impl RemoteAcquire {
    pub fn new(bucket: Arc<RemoteBucket>, key: Key, n: u64, max_wait_ns: Option<u64>) -> Self {
        Self {
            started_ns: monotonic().now_ns(),
            bucket,
            key,
            n,
            max_wait_ns,
            stage: Stage::Start,
            failure: None,
            redis_now_ns: None,
        }
    }

    pub fn bucket(&self) -> &RemoteBucket {
        &self.bucket
    }

    fn refuse(&self, retry_after_ns: u64) -> Outcome<(), RemoteError> {
        self.bucket
            .counters
            .rejected
            .fetch_add(1, Ordering::Relaxed);
        Err(Refusal::Busy {
            retry_after_ns: Some(retry_after_ns),
        })
    }

    // An outcome, as `refuse` gives one: the callers return either.
    #[allow(clippy::unnecessary_wraps)]
    fn granted(&self, waited: bool) -> Outcome<(), RemoteError> {
        let c = &self.bucket.counters;
        c.acquired.fetch_add(1, Ordering::Relaxed);
        if waited {
            c.waited.fetch_add(1, Ordering::Relaxed);
            c.waits
                .record(monotonic().now_ns().saturating_sub(self.started_ns));
        }
        Ok(())
    }

    fn send(&mut self, waker: &Waker) -> Poll<Outcome<(), RemoteError>> {
        let bucket = Arc::clone(&self.bucket);
        let work = Arc::clone(&bucket).decide(self.key.clone(), self.n, self.max_wait_ns);
        let (key, n) = (self.key.clone(), self.n);
        let orphan = move |answer: Result<Answer, Failure>| {
            if let Ok(Answer {
                decision: Decision::Booked { tat, .. },
                ..
            }) = answer
            {
                bucket.cancel_booking(key, n, tat);
            }
        };
        self.stage = Stage::Asking {
            call: Call::new(work, orphan),
            sent_at: Instant::now(),
        };
        self.poll(Some(waker))
    }

    fn answered(
        &mut self,
        answer: Result<Answer, Failure>,
        sent_at: Instant,
        waker: &Waker,
    ) -> Poll<Outcome<(), RemoteError>> {
        let answer = match answer {
            Ok(answer) => answer,
            Err(failure) => return self.failed(failure, waker),
        };
        self.redis_now_ns = Some(answer.redis_now_ns);
        match answer.decision {
            Decision::Taken => Poll::Ready(self.granted(false)),
            Decision::Booked { wait_ns, tat } => {
                // Counted from the answer, not the request: never early.
                let until = Instant::now() + Duration::from_nanos(wait_ns);
                self.bucket.counters.waiting.fetch_add(1, Ordering::Relaxed);
                self.stage = Stage::Sleeping { until, tat };
                self.poll(Some(waker))
            }
            Decision::Refused { retry_after_ns } => {
                // Counted from the request: Redis decided after it was sent.
                let until = sent_at + Duration::from_nanos(retry_after_ns);
                self.bucket.learn_refusal(self.key.clone(), self.n, until);
                Poll::Ready(self.refuse(retry_after_ns))
            }
            Decision::Conflict(stored) => {
                Poll::Ready(Err(Refusal::Failed(RemoteError::Conflict {
                    stored,
                    ours: self.bucket.settings.clone(),
                })))
            }
        }
    }

    fn failed(&mut self, failure: Failure, waker: &Waker) -> Poll<Outcome<(), RemoteError>> {
        self.bucket.count_failure();
        let message = failure.message();
        self.failure = Some(failure);
        match self.bucket.backend.on_error {
            OnError::Raise => Poll::Ready(Err(Refusal::Failed(RemoteError::Backend(message)))),
            OnError::Allow => Poll::Ready(self.granted(false)),
            OnError::Deny => Poll::Ready(self.refuse(self.bucket.interval_ns())),
            OnError::Local => {
                let fallback = Arc::clone(&self.bucket.fallback);
                self.stage = Stage::Local(LocalAcquire::new(
                    fallback,
                    self.key.clone(),
                    self.n,
                    self.max_wait_ns,
                ));
                self.poll(Some(waker))
            }
        }
    }
}

impl Wait for RemoteAcquire {
    type Output = Outcome<(), RemoteError>;

    fn poll(&mut self, waker: Option<&Waker>) -> Poll<Self::Output> {
        match &mut self.stage {
            Stage::Start => {
                if let Some(most) = self.bucket.most().filter(|&most| self.n > most) {
                    self.stage = Stage::Done;
                    return Poll::Ready(Err(Refusal::TooLarge { most }));
                }
                if let Some(left) = self.bucket.known_refusal(&self.key, self.n) {
                    let left_ns = left.as_nanos() as u64;
                    if self.max_wait_ns.is_some_and(|most| left_ns > most) {
                        self.stage = Stage::Done;
                        self.bucket
                            .counters
                            .rejected_locally
                            .fetch_add(1, Ordering::Relaxed);
                        return Poll::Ready(self.refuse(left_ns));
                    }
                }
                match waker {
                    None => Poll::Pending(None),
                    Some(waker) => self.send(waker),
                }
            }
            Stage::Asking { call, sent_at } => {
                let sent_at = *sent_at;
                match call.poll_with(waker, || Failure::Unreachable("no runtime".to_owned())) {
                    Poll::Pending(sleep) => Poll::Pending(sleep),
                    Poll::Ready(answer) => {
                        self.stage = Stage::Done;
                        let Some(waker) = waker else {
                            return Poll::Pending(None);
                        };
                        self.answered(answer, sent_at, waker)
                    }
                }
            }
            Stage::Sleeping { until, .. } => {
                let now = Instant::now();
                if now >= *until {
                    self.stage = Stage::Done;
                    self.bucket.counters.waiting.fetch_sub(1, Ordering::Relaxed);
                    return Poll::Ready(self.granted(true));
                }
                Poll::Pending(Some(*until - now))
            }
            Stage::Local(wait) => match wait.poll(waker) {
                Poll::Ready(outcome) => {
                    self.stage = Stage::Done;
                    Poll::Ready(outcome.map_err(Refusal::widen))
                }
                Poll::Pending(sleep) => Poll::Pending(sleep),
            },
            Stage::Done => Poll::Pending(None),
        }
    }

    fn abandon(&mut self) {
        match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Asking { mut call, .. } => {
                self.bucket
                    .counters
                    .cancelled
                    .fetch_add(1, Ordering::Relaxed);
                call.abandon();
            }
            Stage::Sleeping { tat, .. } => {
                let c = &self.bucket.counters;
                c.cancelled.fetch_add(1, Ordering::Relaxed);
                c.waiting.fetch_sub(1, Ordering::Relaxed);
                self.bucket.cancel_booking(self.key.clone(), self.n, tat);
            }
            Stage::Local(mut wait) => wait.abandon(),
            Stage::Start | Stage::Done => {}
        }
    }
}

impl Drop for RemoteAcquire {
    fn drop(&mut self) {
        self.abandon();
    }
}
