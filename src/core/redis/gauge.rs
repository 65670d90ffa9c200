//! A gauge whose permits are leases in Redis, shared by every process that
//! builds it with the same name. Held leases are renewed in the background
//! (the one task this crate runs on its own, and only while leases are held
//! or callers wait), so a crashed process's permits come back after `lease`.
//! A release publishes on the limit's channel; waiters here wake on it and
//! ask again, keeping their place in the shared arrival-ordered queue.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::{Script, Value};

use super::backend::{Backend, Failure, OnError};
use super::bucket::RemoteError;
use super::call::Call;
use super::{int, limit_key, text};
use crate::core::clock::monotonic;
use crate::core::gauge::{Acquire as LocalAcquire, Gauge};
use crate::core::histogram::{Histogram, HistogramSnapshot};
use crate::core::wait::{Deadline, Outcome, Poll, Refusal, Wait, Waker};

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("gauge.lua")));

/// Waiters look again at least this often, in case a release's message was
/// lost (pub/sub delivers at most once, and not across a reconnect).
const LOOK_AGAIN_AT_MOST: Duration = Duration::from_secs(5);

/// A permit this process holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Held {
    /// A lease in Redis, by its id.
    Lease(String),
    /// A lease Redis let go of (not renewed in time): nothing to give back.
    Lost,
    /// Granted by the local fallback while Redis could not be reached.
    Fallback,
    /// Granted without a limit while Redis could not be reached.
    Allowed,
}

#[derive(Default)]
struct Counters {
    acquired: AtomicU64,
    waited: AtomicU64,
    rejected: AtomicU64,
    timed_out: AtomicU64,
    cancelled: AtomicU64,
    failures: AtomicU64,
    leases_lost: AtomicU64,
    /// How long the callers that slept for their permits waited.
    waits: Histogram,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteGaugeSnapshot {
    pub limit: u64,
    pub held: u64,
    pub waiting: u64,
    pub acquired: u64,
    pub waited: u64,
    pub rejected: u64,
    pub timed_out: u64,
    pub cancelled: u64,
    pub backend_errors: u64,
    pub leases_lost: u64,
    pub wait: HistogramSnapshot,
}

pub type LostHook = Box<dyn Fn(u64) + Send + Sync>;

pub struct RemoteGauge {
    pub backend: Arc<Backend>,
    pub name: String,
    pub limit: u64,
    pub lease: Duration,
    keys: [String; 4],
    channel: String,
    /// Unique to this gauge object: lease and waiter ids start with it.
    owner: String,
    next_id: AtomicU64,
    held: Mutex<Vec<Held>>,
    /// This process's waiters, by id: renewed, and woken by a release.
    waiting: Mutex<HashMap<String, (Waker, Arc<AtomicBool>)>>,
    renewing: AtomicBool,
    subscribed: Mutex<Option<Arc<tokio::sync::OnceCell<()>>>>,
    pub fallback: Arc<Gauge>,
    counters: Counters,
    on_lost: Mutex<Option<Arc<LostHook>>>,
}

fn owner_id() -> String {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    format!("{:x}.{}.{nanos:x}.{n}", std::process::id(), hostname_hash())
}

/// Tells hosts apart in ids, without a dependency: the boot id where there
/// is one (Linux), else nothing (pid and time still make ids unique).
fn hostname_hash() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|id| id.trim().chars().take(8).collect())
        .unwrap_or_default()
}

impl RemoteGauge {
    pub fn new(backend: Arc<Backend>, name: String, limit: u64, lease: Duration) -> Arc<Self> {
        let key = |suffix: &str| limit_key(&backend.prefix, &name, suffix);
        let keys = [key(":holders"), key(":queue"), key(":alive"), key(":meta")];
        let channel = key(":released");
        Arc::new(Self {
            keys,
            channel,
            owner: owner_id(),
            next_id: AtomicU64::new(0),
            held: Mutex::new(Vec::new()),
            waiting: Mutex::new(HashMap::new()),
            renewing: AtomicBool::new(false),
            subscribed: Mutex::new(None),
            fallback: Arc::new(Gauge::with_clock(limit, monotonic())),
            counters: Counters::default(),
            on_lost: Mutex::new(None),
            backend,
            name,
            limit,
            lease,
        })
    }

    pub fn set_on_lost(&self, hook: LostHook) {
        *self.on_lost.lock() = Some(Arc::new(hook));
    }

    fn new_id(&self) -> String {
        format!(
            "{}.{}",
            self.owner,
            self.next_id.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn lease_ms(&self) -> String {
        self.lease.as_millis().max(1).to_string()
    }

    fn args(&self, mode: &str, rest: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut args = vec![mode.to_owned(), self.limit.to_string(), self.lease_ms()];
        args.extend(rest);
        args
    }

    /// Permits this process holds.
    pub fn held(&self) -> u64 {
        self.held.lock().len() as u64
    }

    /// Gives back `n` permits; Err(held) if fewer are held.
    pub fn release(self: &Arc<Self>, n: u64) -> Result<(), u64> {
        let taken: Vec<Held> = {
            let mut held = self.held.lock();
            let count = held.len() as u64;
            if n > count {
                return Err(count);
            }
            let at = held.len() - n as usize;
            held.split_off(at)
        };
        let mut leases = Vec::new();
        for permit in taken {
            match permit {
                Held::Lease(id) => leases.push(id),
                Held::Fallback => {
                    let _ = self.fallback.release(1);
                }
                Held::Lost | Held::Allowed => {}
            }
        }
        if !leases.is_empty() {
            self.give_back(leases, None);
        }
        Ok(())
    }

    /// Frees `leases` and takes `waiter` out of the queue, retrying until
    /// Redis answers or the leases would have lapsed anyway: after an outage
    /// no permit is left held by nobody for longer than needed.
    fn give_back(self: &Arc<Self>, leases: Vec<String>, waiter: Option<String>) {
        let this = Arc::clone(self);
        Backend::spawn(async move {
            let give_up = Instant::now() + this.lease;
            let mut pause = Duration::from_millis(50);
            loop {
                let mut done = true;
                if !leases.is_empty() {
                    let mut args = vec![this.channel.clone()];
                    args.extend(leases.iter().cloned());
                    let args = this.args("release", args);
                    done &= this
                        .backend
                        .invoke(&SCRIPT, &this.keys, &args)
                        .await
                        .is_ok();
                }
                if let Some(waiter) = &waiter {
                    let args = this.args("leave", [this.channel.clone(), waiter.clone()]);
                    done &= this
                        .backend
                        .invoke(&SCRIPT, &this.keys, &args)
                        .await
                        .is_ok();
                }
                if done || this.backend.is_closed() || Instant::now() >= give_up {
                    return;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        });
    }

    /// Wakes this process's waiters: a release may have freed permits.
    /// Wakes every waiter here to ask again. One that can no longer be
    /// reached (its loop has closed) leaves the queue: it would hold the
    /// line for the waiters behind it, everywhere.
    fn wake_waiters(self: &Arc<Self>) {
        let wakers: Vec<(String, Waker)> = self
            .waiting
            .lock()
            .iter()
            .map(|(id, (waker, woken))| {
                woken.store(true, Ordering::Release);
                (id.clone(), Arc::clone(waker))
            })
            .collect();
        for (id, waker) in wakers {
            if !waker.notify() {
                self.waiting.lock().remove(&id);
                self.give_back(Vec::new(), Some(id));
            }
        }
    }

    /// The subscription to the release channel, made once.
    fn subscription(self: &Arc<Self>) -> Arc<tokio::sync::OnceCell<()>> {
        let mut slot = self.subscribed.lock();
        if let Some(cell) = &*slot {
            return Arc::clone(cell);
        }
        let cell = Arc::new(tokio::sync::OnceCell::new());
        *slot = Some(Arc::clone(&cell));
        cell
    }

    async fn subscribe(self: Arc<Self>) -> Result<(), Failure> {
        let cell = self.subscription();
        let weak = Arc::downgrade(&self);
        cell.get_or_try_init(|| async {
            let listener: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
                if let Some(gauge) = weak.upgrade() {
                    gauge.wake_waiters();
                }
            });
            self.backend.subscribe(&self.channel, listener).await
        })
        .await
        .copied()
    }

    /// Keeps the leases held and the places queued alive, while there are any.
    fn keep_renewing(self: &Arc<Self>) {
        if self.renewing.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(self);
        let period = self.lease / 3;
        Backend::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(this) = weak.upgrade() else { return };
                if !this.renew().await {
                    this.renewing.store(false, Ordering::Release);
                    // Something may have come in between the look and the flag.
                    if this.is_idle() || this.renewing.swap(true, Ordering::AcqRel) {
                        return;
                    }
                }
            }
        });
    }

    fn is_idle(&self) -> bool {
        let leases = self.held.lock().iter().any(|h| matches!(h, Held::Lease(_)));
        !leases && self.waiting.lock().is_empty()
    }

    /// One renewal; false when there was nothing to renew.
    async fn renew(self: &Arc<Self>) -> bool {
        let leases: Vec<String> = self
            .held
            .lock()
            .iter()
            .filter_map(|h| match h {
                Held::Lease(id) => Some(id.clone()),
                _ => None,
            })
            .collect();
        let waiters: Vec<String> = self.waiting.lock().keys().cloned().collect();
        if leases.is_empty() && waiters.is_empty() {
            return false;
        }
        let mut rest = vec![waiters.len().to_string()];
        rest.extend(waiters);
        rest.extend(leases);
        let Ok(Value::Array(reply)) = self
            .backend
            .invoke(&SCRIPT, &self.keys, &self.args("renew", rest))
            .await
        else {
            // Not renewed this time; the next try comes a third of a lease later.
            return true;
        };
        let lost: Vec<String> = match reply.get(1) {
            Some(Value::Array(ids)) => ids.iter().filter_map(|v| text(Some(v))).collect(),
            _ => Vec::new(),
        };
        if !lost.is_empty() {
            let mut count = 0;
            for permit in self.held.lock().iter_mut() {
                if matches!(permit, Held::Lease(id) if lost.contains(id)) {
                    *permit = Held::Lost;
                    count += 1;
                }
            }
            self.counters
                .leases_lost
                .fetch_add(count, Ordering::Relaxed);
            let hook = self.on_lost.lock().clone();
            if let (Some(hook), true) = (hook, count > 0) {
                hook(count);
            }
        }
        true
    }

    /// One attempt: Some(ms to the first lease's expiry, or -1) if not granted.
    async fn take(
        self: Arc<Self>,
        waiter: String,
        leases: Vec<String>,
        may_queue: bool,
    ) -> Result<TakeAnswer, Failure> {
        let n = leases.len().to_string();
        let mut rest = vec![
            self.channel.clone(),
            waiter,
            n,
            if may_queue { "1" } else { "0" }.to_owned(),
        ];
        rest.extend(leases);
        let reply = self
            .backend
            .invoke(&SCRIPT, &self.keys, &self.args("take", rest))
            .await?;
        let bad = || Failure::Server(format!("unexpected reply from the gauge script: {reply:?}"));
        let Value::Array(items) = &reply else {
            return Err(bad());
        };
        match int(items.first()).ok_or_else(bad)? {
            1 => Ok(TakeAnswer::Granted),
            0 => Ok(TakeAnswer::Full {
                next_expiry_ms: int(items.get(1)).ok_or_else(bad)?,
            }),
            -1 => Ok(TakeAnswer::Conflict(text(items.get(1)).ok_or_else(bad)?)),
            _ => Err(bad()),
        }
    }

    pub fn snapshot(&self) -> RemoteGaugeSnapshot {
        let c = &self.counters;
        RemoteGaugeSnapshot {
            limit: self.limit,
            held: self.held(),
            waiting: self.waiting.lock().len() as u64,
            acquired: c.acquired.load(Ordering::Relaxed),
            waited: c.waited.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            timed_out: c.timed_out.load(Ordering::Relaxed),
            cancelled: c.cancelled.load(Ordering::Relaxed),
            backend_errors: c.failures.load(Ordering::Relaxed),
            leases_lost: c.leases_lost.load(Ordering::Relaxed),
            wait: c.waits.snapshot_of(c.acquired.load(Ordering::Relaxed)),
        }
    }

    pub fn count_failure(&self) {
        self.counters.failures.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
enum TakeAnswer {
    Granted,
    Full { next_expiry_ms: i64 },
    Conflict(String),
}

enum Stage {
    Start,
    Subscribing(Call<Result<(), Failure>>),
    Asking(Call<Result<TakeAnswer, Failure>>),
    /// Queued in Redis; asks again when woken or at `until`.
    Sleeping {
        until: Instant,
    },
    Local(LocalAcquire<Arc<Gauge>>),
    Done,
}

/// Waiting for `n` permits of a shared gauge, up to a deadline.
pub struct RemoteGaugeAcquire {
    gauge: Arc<RemoteGauge>,
    n: u64,
    timeout_ns: Option<u64>,
    deadline: Deadline,
    waiter: String,
    leases: Vec<String>,
    /// Registered as a waiter here (and so maybe queued in Redis).
    queued: bool,
    /// Set by a release heard on the channel.
    woken: Arc<AtomicBool>,
    /// It slept at least once before its grant.
    slept: bool,
    asked: bool,
    stage: Stage,
    pub failure: Option<Failure>,
    started_ns: u64,
}

fn clock_now() -> u64 {
    monotonic().now_ns()
}

impl RemoteGaugeAcquire {
    pub fn new(gauge: Arc<RemoteGauge>, n: u64, timeout_ns: Option<u64>) -> Self {
        let clock = monotonic();
        let deadline = Deadline::after(&*clock, timeout_ns);
        let leases = (0..n).map(|_| gauge.new_id()).collect();
        // Its place in the queue says how many permits it waits for.
        let waiter = format!("{}|{n}", gauge.new_id());
        Self {
            gauge,
            n,
            timeout_ns,
            deadline,
            waiter,
            leases,
            queued: false,
            woken: Arc::new(AtomicBool::new(false)),
            slept: false,
            asked: false,
            stage: Stage::Start,
            failure: None,
            started_ns: clock.now_ns(),
        }
    }

    pub fn gauge(&self) -> &RemoteGauge {
        &self.gauge
    }

    fn may_wait(&self) -> bool {
        !matches!(self.deadline, Deadline::Now) && !self.deadline.passed(&*monotonic())
    }

    fn ask(&mut self, waker: &Waker) -> Poll<Outcome<(), RemoteError>> {
        let gauge = Arc::clone(&self.gauge);
        let may_queue = self.may_wait();
        if may_queue && !self.queued {
            self.queued = true;
            gauge.waiting.lock().insert(
                self.waiter.clone(),
                (Arc::clone(waker), Arc::clone(&self.woken)),
            );
            gauge.keep_renewing();
        }
        let work = Arc::clone(&gauge).take(self.waiter.clone(), self.leases.clone(), may_queue);
        let (leases, waiter) = (self.leases.clone(), self.waiter.clone());
        let orphan = move |answer: Result<TakeAnswer, Failure>| match answer {
            Ok(TakeAnswer::Granted) => gauge.give_back(leases, None),
            Ok(_) => gauge.give_back(Vec::new(), Some(waiter)),
            // Unknown whether it was granted: give back whatever it might hold.
            Err(_) => gauge.give_back(leases, Some(waiter)),
        };
        self.asked = true;
        self.stage = Stage::Asking(Call::new(work, orphan));
        self.poll(Some(waker))
    }

    fn unregister(&mut self) {
        if self.queued {
            self.queued = false;
            self.gauge.waiting.lock().remove(&self.waiter);
        }
    }

    fn granted(&mut self, permits: Vec<Held>) -> Poll<Outcome<(), RemoteError>> {
        let waited = self.slept;
        self.unregister();
        let gauge = &self.gauge;
        let has_lease = permits.iter().any(|p| matches!(p, Held::Lease(_)));
        gauge.held.lock().extend(permits);
        if has_lease {
            gauge.keep_renewing();
        }
        gauge.counters.acquired.fetch_add(1, Ordering::Relaxed);
        if waited {
            gauge.counters.waited.fetch_add(1, Ordering::Relaxed);
            let waited_ns = clock_now().saturating_sub(self.started_ns);
            gauge.counters.waits.record(waited_ns);
        }
        self.stage = Stage::Done;
        Poll::Ready(Ok(()))
    }

    fn answered(
        &mut self,
        answer: Result<TakeAnswer, Failure>,
        waker: &Waker,
    ) -> Poll<Outcome<(), RemoteError>> {
        match answer {
            Ok(TakeAnswer::Granted) => {
                let permits = self.leases.iter().cloned().map(Held::Lease).collect();
                self.granted(permits)
            }
            Ok(TakeAnswer::Conflict(stored)) => {
                self.leave();
                Poll::Ready(Err(Refusal::Failed(RemoteError::Conflict {
                    stored,
                    ours: self.gauge.limit.to_string(),
                })))
            }
            Ok(TakeAnswer::Full { next_expiry_ms }) => {
                let clock = monotonic();
                if !self.queued || self.deadline.passed(&*clock) {
                    let timed_out = self.queued;
                    self.leave();
                    return Poll::Ready(Err(if timed_out {
                        self.gauge
                            .counters
                            .timed_out
                            .fetch_add(1, Ordering::Relaxed);
                        Refusal::TimedOut
                    } else {
                        self.gauge.counters.rejected.fetch_add(1, Ordering::Relaxed);
                        Refusal::Busy {
                            retry_after_ns: None,
                        }
                    }));
                }
                let mut sleep = LOOK_AGAIN_AT_MOST.min(self.gauge.lease / 3);
                if next_expiry_ms >= 0 {
                    sleep = sleep.min(Duration::from_millis(next_expiry_ms as u64 + 1));
                }
                if let Some(left) = self.deadline.sleep(&*clock) {
                    sleep = sleep.min(left);
                }
                self.slept = true;
                self.stage = Stage::Sleeping {
                    until: Instant::now() + sleep,
                };
                Poll::Pending(Some(sleep))
            }
            Err(failure) => self.failed(failure, waker),
        }
    }

    fn failed(&mut self, failure: Failure, waker: &Waker) -> Poll<Outcome<(), RemoteError>> {
        self.gauge.count_failure();
        let message = failure.message();
        self.failure = Some(failure);
        // The attempt may have been granted in Redis without its answer
        // reaching here: its leases and place go back.
        let leases = std::mem::take(&mut self.leases);
        self.gauge
            .give_back(leases, self.queued.then(|| self.waiter.clone()));
        self.unregister();
        match self.gauge.backend.on_error {
            OnError::Raise => {
                self.stage = Stage::Done;
                Poll::Ready(Err(Refusal::Failed(RemoteError::Backend(message))))
            }
            OnError::Allow => self.granted(vec![Held::Allowed; self.n as usize]),
            OnError::Deny => {
                self.stage = Stage::Done;
                self.gauge.counters.rejected.fetch_add(1, Ordering::Relaxed);
                Poll::Ready(Err(Refusal::Busy {
                    retry_after_ns: None,
                }))
            }
            OnError::Local => {
                let left = match self.deadline {
                    Deadline::Now => Some(0),
                    Deadline::Never => None,
                    Deadline::At(at) => Some(at.saturating_sub(clock_now())),
                };
                let _ = self.timeout_ns;
                self.stage = Stage::Local(LocalAcquire::new(
                    Arc::clone(&self.gauge.fallback),
                    self.n,
                    left,
                ));
                self.poll(Some(waker))
            }
        }
    }

    /// Leaves the shared queue, if it joined it.
    fn leave(&mut self) {
        self.stage = Stage::Done;
        if self.queued {
            self.unregister();
            self.gauge.give_back(Vec::new(), Some(self.waiter.clone()));
        }
    }
}

impl Wait for RemoteGaugeAcquire {
    type Output = Outcome<(), RemoteError>;

    fn poll(&mut self, waker: Option<&Waker>) -> Poll<Self::Output> {
        match &mut self.stage {
            Stage::Start => {
                if self.n > self.gauge.limit {
                    self.stage = Stage::Done;
                    return Poll::Ready(Err(Refusal::TooLarge {
                        most: self.gauge.limit,
                    }));
                }
                let Some(waker) = waker else {
                    return Poll::Pending(None);
                };
                if self.may_wait() {
                    let work = Arc::clone(&self.gauge).subscribe();
                    self.stage = Stage::Subscribing(Call::new(work, |_| {}));
                    self.poll(Some(waker))
                } else {
                    self.ask(waker)
                }
            }
            Stage::Subscribing(call) => {
                match call.poll_with(waker, || Failure::Unreachable("no runtime".to_owned())) {
                    Poll::Pending(sleep) => Poll::Pending(sleep),
                    Poll::Ready(outcome) => {
                        let Some(waker) = waker else {
                            return Poll::Pending(None);
                        };
                        match outcome {
                            Ok(()) => self.ask(waker),
                            Err(failure) => self.failed(failure, waker),
                        }
                    }
                }
            }
            Stage::Asking(call) => {
                match call.poll_with(waker, || Failure::Unreachable("no runtime".to_owned())) {
                    Poll::Pending(sleep) => Poll::Pending(sleep),
                    Poll::Ready(answer) => {
                        let Some(waker) = waker else {
                            return Poll::Pending(None);
                        };
                        self.answered(answer, waker)
                    }
                }
            }
            Stage::Sleeping { until } => {
                let until = *until;
                let Some(waker) = waker else {
                    return Poll::Pending(None);
                };
                let now = Instant::now();
                // Woken by a release, or its time came: ask again.
                if self.woken.swap(false, Ordering::AcqRel)
                    || now >= until
                    || self.deadline.passed(&*monotonic())
                {
                    return self.ask(waker);
                }
                Poll::Pending(Some(until - now))
            }
            Stage::Local(wait) => match wait.poll(waker) {
                Poll::Ready(outcome) => {
                    self.stage = Stage::Done;
                    match outcome {
                        Ok(()) => self.granted(vec![Held::Fallback; self.n as usize]),
                        Err(refusal) => Poll::Ready(Err(refusal.widen())),
                    }
                }
                Poll::Pending(sleep) => Poll::Pending(sleep),
            },
            Stage::Done => Poll::Pending(None),
        }
    }

    fn abandon(&mut self) {
        match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Asking(mut call) => {
                self.gauge
                    .counters
                    .cancelled
                    .fetch_add(1, Ordering::Relaxed);
                // Its answer goes to the orphan, which gives back what it got.
                call.abandon();
                self.unregister();
            }
            Stage::Sleeping { .. } | Stage::Subscribing(_) => {
                self.gauge
                    .counters
                    .cancelled
                    .fetch_add(1, Ordering::Relaxed);
                self.leave();
            }
            Stage::Local(mut wait) => wait.abandon(),
            Stage::Start | Stage::Done => {}
        }
    }
}

impl Drop for RemoteGaugeAcquire {
    fn drop(&mut self) {
        self.abandon();
    }
}
