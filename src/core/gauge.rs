//! The gauge: at most `limit` units held at once; callers over the limit wait
//! in FIFO order.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use super::clock::{Clock, OnAdvance};
use super::histogram::{HistogramSnapshot, LazyHistogram};
use super::wait::{Deadline, Outcome, Poll, Refusal, Wait, Waker};
use super::waiter::Waiter;
use super::waitlist::Waitlist;

pub struct Gauge {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
    counters: Counters,
    /// How long callers that queued waited (those that did not are the
    /// zeros, `acquired - waited`).
    waits: LazyHistogram,
    holds: HoldSampler,
}

/// How long permits are held, measured on a sample of the blocks that pair
/// an acquisition with its release (`with`, `async with`, `@gauge`): at most
/// one block at a time, so that the cost stays off the fast path. A bare
/// `release()` cannot tell which acquisition it ends, so it is never timed.
#[derive(Default)]
struct HoldSampler {
    /// Set by every `SAMPLE_EVERY`th acquisition; the next block to start
    /// takes the sample. Which block that is does not depend on how long it
    /// holds, so the sample is fair, and the fast path pays one load.
    due: AtomicBool,
    /// Who holds the sample (a thread or a task, as the caller names it);
    /// 0 when nobody does.
    owner: AtomicUsize,
    /// Blocks the owner has open on this gauge (a block nested in the timed
    /// one, on the same thread or task, must not end the sample).
    depth: AtomicU64,
    start_ns: AtomicU64,
    holds: LazyHistogram,
}

/// A sample held longer than this is presumed abandoned (its task was
/// collected inside the block) and is taken over without being recorded.
const ABANDONED_SAMPLE_NS: u64 = 600_000_000_000;

/// One acquisition in this many makes a hold sample due.
const SAMPLE_EVERY: u64 = 256;

struct State {
    limit: u64,
    in_flight: u64,
    waiters: Waitlist<Arc<Waiter>>,
    /// Waiters granted but not yet back in their caller's hands. A newcomer
    /// queues behind them, so callers resume in the order they arrived (as
    /// asyncio's Semaphore does), not just receive grants in that order.
    resuming: u64,
    /// Acquisitions, and those that waited (counted under the lock they
    /// hold anyway).
    acquired: u64,
    waited: u64,
}

#[derive(Default)]
struct Counters {
    rejected: AtomicU64,
    timed_out: AtomicU64,
    cancelled: AtomicU64,
}

/// Whether a caller that finds no capacity free will wait for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patience {
    /// Gives up at once: needs the permits free and nobody queued. Granted
    /// waiters that have not resumed yet hold their own permits already, so
    /// a caller that takes a free one passes nobody.
    FailFast,
    /// Waits otherwise: also goes behind granted waiters that have not
    /// resumed yet, so that callers resume in the order they arrived.
    Waits,
}

/// The answer of an attempt that does not wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Acquired,
    Busy,
    /// `n` exceeds a non-zero limit: waiting would hang until the limit rises.
    TooLarge {
        limit: u64,
    },
}

/// Where a waiter stands after `enqueue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Capacity came free between the caller's check and the queue: no wait.
    Acquired,
    Queued(u64),
    TooLarge {
        limit: u64,
    },
}

/// Waiters a limit change admitted, not woken yet.
#[must_use = "granted waiters must be woken"]
pub struct Granted(Vec<Arc<Waiter>>);

impl Granted {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverRelease {
    pub held: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub limit: u64,
    pub in_flight: u64,
    pub available: u64,
    pub waiting: u64,
    pub acquired: u64,
    pub waited: u64,
    pub rejected: u64,
    pub timed_out: u64,
    pub cancelled: u64,
    pub wait: HistogramSnapshot,
    pub hold: HistogramSnapshot,
}

impl State {
    fn admits_now(&self, n: u64, patience: Patience) -> bool {
        let in_turn = patience == Patience::FailFast || self.resuming == 0;
        in_turn && self.in_flight + n <= self.limit && !self.anyone_in_line()
    }

    fn too_large(&self, n: u64) -> Option<u64> {
        (self.limit > 0 && n > self.limit).then_some(self.limit)
    }

    /// True if a queued waiter could be granted under the limit as it
    /// stands. One queued for more than a lowered limit waits for the limit
    /// to rise again, but holds up nobody meanwhile: it is passed over.
    fn anyone_in_line(&self) -> bool {
        if self.waiters.is_empty() {
            return false;
        }
        let limit = self.limit;
        match self.waiters.head_weight() {
            None => false,
            Some(weight) if limit == 0 || weight <= limit => true,
            Some(_) => self.waiters.any_but(|weight| weight > limit),
        }
    }

    /// Moves waiters from the head of the list to `in_flight` while they
    /// fit, passing over those queued for more than a lowered limit.
    fn grant_waiters(&mut self) -> Vec<Arc<Waiter>> {
        let limit = self.limit;
        let in_flight = &mut self.in_flight;
        let mut admit = |weight: u64| {
            let fits = *in_flight + weight <= limit;
            if fits {
                *in_flight += weight;
            }
            fits
        };
        let mut granted = self.waiters.pop_front_while(&mut admit);
        if limit > 0 && self.waiters.head_weight().is_some_and(|w| w > limit) {
            granted.extend(self.waiters.pop_passing_over(|w| w > limit, admit));
        }
        self.resuming += granted.len() as u64;
        granted
    }

    /// Granted waiters gave their grants back (cancelled, or unreachable).
    fn grants_returned(&mut self, returned_weight: u64, count: u64) -> Vec<Arc<Waiter>> {
        self.resuming = self.resuming.saturating_sub(count);
        // Saturating: user code may already have released these permits on
        // the waiter's behalf (release() cannot tell whose permit it returns).
        self.in_flight = self.in_flight.saturating_sub(returned_weight);
        self.grant_waiters()
    }
}

impl Gauge {
    #[cfg(test)]
    pub fn new(limit: u64) -> Self {
        Self::with_clock(limit, super::clock::monotonic())
    }

    /// A gauge whose waits time out on `clock`.
    pub fn with_clock(limit: u64, clock: Arc<dyn Clock>) -> Self {
        Self {
            state: Mutex::new(State {
                limit,
                in_flight: 0,
                waiters: Waitlist::new(),
                resuming: 0,
                acquired: 0,
                waited: 0,
            }),
            clock,
            counters: Counters::default(),
            waits: LazyHistogram::default(),
            holds: HoldSampler::default(),
        }
    }

    fn count_for_sampling(&self, acquired: u64) {
        if acquired % SAMPLE_EVERY == 0 {
            self.holds.due.store(true, Ordering::Relaxed);
        }
    }

    /// True when the next block to start should be timed: it then calls
    /// `begin_hold_sample`.
    pub fn hold_sample_due(&self) -> bool {
        let due = &self.holds.due;
        due.load(Ordering::Relaxed) && due.swap(false, Ordering::Relaxed)
    }

    /// Starts timing the block `owner` (non-zero) just entered, unless
    /// another block is being timed. Returns whether this one is.
    pub fn begin_hold_sample(&self, owner: usize) -> bool {
        let h = &self.holds;
        let now = self.clock.now_ns();
        let current = h.owner.load(Ordering::Acquire);
        if current != 0 {
            let stale =
                now.saturating_sub(h.start_ns.load(Ordering::Relaxed)) > ABANDONED_SAMPLE_NS;
            if !stale
                || h.owner
                    .compare_exchange(current, 0, Ordering::AcqRel, Ordering::Relaxed)
                    .is_err()
            {
                return false;
            }
        }
        if h.owner
            .compare_exchange(0, owner, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        h.start_ns.store(now, Ordering::Relaxed);
        h.depth.store(1, Ordering::Relaxed);
        true
    }

    /// A block starts while one is timed: if it is the owner's, nested in
    /// the timed one, the sample ends with the outer block.
    pub fn nested_hold_sample(&self, owner: usize) {
        let h = &self.holds;
        if h.owner.load(Ordering::Acquire) == owner {
            h.depth.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// True while some block is being timed: only then does a block's end
    /// need to say who it is.
    pub fn hold_sampling(&self) -> bool {
        self.holds.owner.load(Ordering::Relaxed) != 0
    }

    /// Ends the sample if `owner` holds it, recording how long it held.
    pub fn end_hold_sample(&self, owner: usize) {
        let h = &self.holds;
        if h.owner.load(Ordering::Acquire) != owner {
            return;
        }
        if h.depth.fetch_sub(1, Ordering::Relaxed) > 1 {
            return;
        }
        let held = self
            .clock
            .now_ns()
            .saturating_sub(h.start_ns.load(Ordering::Relaxed));
        h.holds.record(held);
        h.owner.store(0, Ordering::Release);
    }

    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    pub fn try_acquire(&self, n: u64, patience: Patience) -> Admission {
        let mut state = self.state.lock();
        if let Some(limit) = state.too_large(n) {
            return Admission::TooLarge { limit };
        }
        if !state.admits_now(n, patience) {
            return Admission::Busy;
        }
        state.in_flight += n;
        state.acquired += 1;
        self.count_for_sampling(state.acquired);
        Admission::Acquired
    }

    /// Counts a call that gave up without waiting (`try_acquire` said no, or
    /// the caller allowed no wait).
    pub fn count_rejected(&self) {
        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Queues `waiter`, unless capacity is free now (then it is held at once).
    /// A queued waiter may be granted at once, behind others still resuming.
    pub fn enqueue(&self, waiter: &Arc<Waiter>) -> Enqueued {
        let n = waiter.weight;
        let mut state = self.state.lock();
        if let Some(limit) = state.too_large(n) {
            return Enqueued::TooLarge { limit };
        }
        if state.admits_now(n, Patience::Waits) {
            state.in_flight += n;
            state.acquired += 1;
            self.count_for_sampling(state.acquired);
            return Enqueued::Acquired;
        }
        let id = state.waiters.push(n, Arc::clone(waiter));
        let granted = state.grant_waiters();
        drop(state);
        self.wake(granted);
        Enqueued::Queued(id)
    }

    /// Claims a waiter's grant for its caller once it was woken.
    pub fn take_granted(&self, waiter: &Waiter) -> bool {
        let taken = waiter.take();
        if taken {
            // No capacity changes hands, so nobody new can be granted here.
            let mut state = self.state.lock();
            state.resuming = state.resuming.saturating_sub(1);
            state.acquired += 1;
            state.waited += 1;
            self.count_for_sampling(state.acquired);
        }
        taken
    }

    /// A waiter's time ran out. Returns true if it was granted meanwhile and
    /// now holds its permits after all (the grant won the race).
    pub fn settle_timeout(&self, id: u64, waiter: &Waiter) -> bool {
        if self.withdraw(id) {
            self.counters.timed_out.fetch_add(1, Ordering::Relaxed);
            false
        } else {
            self.take_granted(waiter)
        }
    }

    /// A waiter is cancelled (task cancelled, coroutine closed or dropped,
    /// thread interrupted). If it was granted meanwhile, the grant goes back.
    pub fn abandon(&self, id: u64, waiter: &Waiter) {
        self.counters.cancelled.fetch_add(1, Ordering::Relaxed);
        if !self.withdraw(id) && waiter.give_back() {
            self.give_back_weight(waiter.weight);
        }
    }

    /// Takes a waiter out of the list; false if a grant already took it out.
    fn withdraw(&self, id: u64) -> bool {
        let mut state = self.state.lock();
        let Some(removed) = state.waiters.remove(id) else {
            return false;
        };
        // The one leaving may have been the head that blocked lighter waiters.
        let granted = state.grant_waiters();
        drop(state);
        drop(removed);
        self.wake(granted);
        true
    }

    /// Gives back `n` permits; returns how many were held before.
    pub fn release(&self, n: u64) -> Result<u64, OverRelease> {
        let mut state = self.state.lock();
        let held = state.in_flight;
        if n > held {
            return Err(OverRelease { held });
        }
        state.in_flight -= n;
        let granted = state.grant_waiters();
        drop(state);
        self.wake(granted);
        Ok(held)
    }

    /// `release`, for a caller holding a lock of its own: returns the waiters
    /// admitted, to be woken with `wake_granted` once that lock is dropped,
    /// and whether the gauge is idle now.
    pub fn release_granting(&self, n: u64) -> Result<(Granted, bool), OverRelease> {
        let mut state = self.state.lock();
        let held = state.in_flight;
        if n > held {
            return Err(OverRelease { held });
        }
        state.in_flight -= n;
        let granted = state.grant_waiters();
        let idle = state.in_flight == 0 && state.waiters.is_empty() && state.resuming == 0;
        Ok((Granted(granted), idle))
    }

    /// Adds this gauge's counters and wait histogram to `total` (a gauge
    /// being forgotten). Its hold histogram is not read: keyed blocks are
    /// not timed.
    pub fn add_counters_to(&self, total: &mut Snapshot) {
        let state = self.state.lock();
        let c = &self.counters;
        total.acquired += state.acquired;
        total.waited += state.waited;
        total.rejected += c.rejected.load(Ordering::Relaxed);
        total.timed_out += c.timed_out.load(Ordering::Relaxed);
        total.cancelled += c.cancelled.load(Ordering::Relaxed);
        let zeros = state.acquired - state.waited;
        if state.waited == 0 {
            total.wait.counts[0] += zeros;
        } else {
            total.wait = total.wait.merged(&self.waits.snapshot(zeros));
        }
    }

    /// Raising the limit admits waiters at once; lowering it takes effect as
    /// permits come back. A waiter queued for more than a lowered limit keeps
    /// its place for when the limit rises again, and is passed over until
    /// then.
    #[cfg(test)]
    pub fn set_limit(&self, limit: u64) {
        let granted = self.set_limit_granting(limit);
        self.wake_granted(granted);
    }

    /// Sets the limit and returns the waiters it admitted, to be woken with
    /// `wake_granted` once the caller has let go of its own locks.
    pub fn set_limit_granting(&self, limit: u64) -> Granted {
        self.set_limit_granting_to(|| limit)
    }

    /// Sets the limit `limit` gives, read under the gauge's lock (the latest
    /// of several set at once), and wakes the waiters it admits.
    pub fn set_limit_to(&self, limit: impl FnOnce() -> u64) {
        let granted = self.set_limit_granting_to(limit);
        self.wake_granted(granted);
    }

    fn set_limit_granting_to(&self, limit: impl FnOnce() -> u64) -> Granted {
        let mut state = self.state.lock();
        state.limit = limit();
        Granted(state.grant_waiters())
    }

    pub fn wake_granted(&self, granted: Granted) {
        self.wake(granted.0);
    }

    fn give_back_weight(&self, weight: u64) {
        let granted = self.state.lock().grants_returned(weight, 1);
        self.wake(granted);
    }

    /// Wakes granted waiters with no lock held; the weight of any that can no
    /// longer be reached goes back and may grant others in turn.
    fn wake(&self, mut granted: Vec<Arc<Waiter>>) {
        while !granted.is_empty() {
            let (mut weight, mut count) = (0, 0);
            for waiter in granted.drain(..) {
                let returned = waiter.wake_granted();
                if returned > 0 {
                    weight += returned;
                    count += 1;
                }
            }
            if count == 0 {
                break;
            }
            granted = self.state.lock().grants_returned(weight, count);
        }
    }

    pub fn limit(&self) -> u64 {
        self.state.lock().limit
    }

    /// Nothing held, nobody queued or resuming: the gauge answers as a new
    /// one would.
    pub fn is_idle(&self) -> bool {
        let state = self.state.lock();
        state.in_flight == 0 && state.waiters.is_empty() && state.resuming == 0
    }

    /// True when a caller asking for `n` now, willing to wait, would wait.
    pub fn would_wait(&self, n: u64) -> bool {
        !self.state.lock().admits_now(n, Patience::Waits)
    }

    pub fn snapshot(&self) -> Snapshot {
        let state = self.state.lock();
        let c = &self.counters;
        Snapshot {
            limit: state.limit,
            in_flight: state.in_flight,
            available: state.limit.saturating_sub(state.in_flight),
            waiting: state.waiters.len() as u64,
            acquired: state.acquired,
            waited: state.waited,
            rejected: c.rejected.load(Ordering::Relaxed),
            timed_out: c.timed_out.load(Ordering::Relaxed),
            cancelled: c.cancelled.load(Ordering::Relaxed),
            wait: self.waits.snapshot(state.acquired - state.waited),
            hold: self.holds.holds.snapshot(0),
        }
    }

    /// Records the wait of a caller that queued and got its permits.
    fn count_wait(&self, since_ns: u64) {
        let waited = self.clock.now_ns().saturating_sub(since_ns);
        self.waits.record(waited);
    }
}

/// Waiting for `n` permits of a gauge (held by reference or by `Arc`), up to
/// a deadline: `Busy` if no wait was allowed, `TimedOut` once it passed.
pub struct Acquire<G: Deref<Target = Gauge>> {
    gauge: G,
    n: u64,
    deadline: Deadline,
    /// The waiter's id in the list, the waiter, and when it queued.
    queued: Option<(u64, Arc<Waiter>, u64)>,
}

impl<G: Deref<Target = Gauge>> Acquire<G> {
    /// `timeout_ns`: None waits as long as it takes, 0 allows no wait.
    pub fn new(gauge: G, n: u64, timeout_ns: Option<u64>) -> Self {
        let deadline = Deadline::after(gauge.clock(), timeout_ns);
        Self {
            gauge,
            n,
            deadline,
            queued: None,
        }
    }

    pub fn gauge(&self) -> &Gauge {
        &self.gauge
    }

    fn refused_at_once(&self) -> Poll<Outcome<()>> {
        self.gauge.count_rejected();
        Poll::Ready(Err(Refusal::Busy {
            retry_after_ns: None,
        }))
    }
}

impl<G: Deref<Target = Gauge>> Wait for Acquire<G> {
    type Output = Outcome<()>;

    fn poll(&mut self, waker: Option<&Waker>) -> Poll<Outcome<()>> {
        let gauge = &*self.gauge;
        let clock = gauge.clock();
        if let Some((id, waiter, since_ns)) = &self.queued {
            let outcome = if waiter.is_granted() && gauge.take_granted(waiter) {
                Ok(())
            } else if !self.deadline.passed(clock) {
                return Poll::Pending(self.deadline.sleep(clock));
            } else if gauge.settle_timeout(*id, waiter) {
                Ok(())
            } else {
                Err(Refusal::TimedOut)
            };
            if outcome.is_ok() {
                gauge.count_wait(*since_ns);
            }
            self.queued = None;
            return Poll::Ready(outcome);
        }
        // A deadline already passed (a tiny timeout) allows no wait either.
        let no_wait = self.deadline.passed(clock);
        let patience = if no_wait {
            Patience::FailFast
        } else {
            Patience::Waits
        };
        let waker = match waker {
            // Queueing checks the capacity itself.
            Some(waker) if !no_wait => waker,
            _ => {
                return match gauge.try_acquire(self.n, patience) {
                    Admission::Acquired => Poll::Ready(Ok(())),
                    Admission::TooLarge { limit } => {
                        Poll::Ready(Err(Refusal::TooLarge { most: limit }))
                    }
                    Admission::Busy if no_wait => self.refused_at_once(),
                    Admission::Busy => Poll::Pending(None),
                }
            }
        };
        let waiter = Waiter::new(self.n, waker);
        match gauge.enqueue(&waiter) {
            Enqueued::Acquired => Poll::Ready(Ok(())),
            Enqueued::TooLarge { limit } => Poll::Ready(Err(Refusal::TooLarge { most: limit })),
            Enqueued::Queued(id) => {
                if matches!(self.deadline, Deadline::At(_)) {
                    clock.wake_on_advance(Arc::downgrade(&waiter) as Weak<dyn OnAdvance>);
                }
                self.queued = Some((id, waiter, clock.now_ns()));
                // Even if granted in line already, it resumes behind those
                // granted before it: its driver polls again once woken.
                Poll::Pending(self.deadline.sleep(clock))
            }
        }
    }

    fn abandon(&mut self) {
        if let Some((id, waiter, _)) = self.queued.take() {
            self.gauge.abandon(id, &waiter);
        }
    }
}

impl<G: Deref<Target = Gauge>> Drop for Acquire<G> {
    fn drop(&mut self) {
        self.abandon();
    }
}

#[cfg(test)]
#[path = "gauge_tests.rs"]
mod tests;
