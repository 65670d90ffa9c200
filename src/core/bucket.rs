//! Token and leaky buckets as a GCRA: each key keeps one theoretical arrival
//! time (`tat`, in ticks) and no thread or timer; tokens are computed from
//! the clock when asked. Callers that must wait queue per key in FIFO order;
//! a queued caller has booked its tokens, so later callers go behind it, and
//! one that leaves gives its booking back to those behind.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;

use super::clock::{Clock, OnAdvance};
use super::histogram::{Histogram, HistogramSnapshot};
use super::keys::{Key, KeyTable};
use super::pace::Pace;
use super::wait::{Outcome, Poll, Refusal, Wait, Waker};
use super::waiter::{Waiter, NEVER};
use super::waitlist::Waitlist;

/// Idle keys are swept no more often than this, whatever the refill time.
const MIN_SWEEP_PERIOD_NS: u64 = 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Holds up to `burst` tokens: bursts of up to `burst` pass at once.
    Token { burst: u64 },
    /// Grants exactly one interval apart; at most `capacity` callers queue.
    Leaky { capacity: Option<u64> },
}

struct Queue {
    waiters: Waitlist<Arc<Waiter>>,
    /// Tokens booked by everyone queued.
    weight: u64,
}

/// A key's whole state: its theoretical arrival time, in ticks, split in two
/// words to keep it 16 bytes and 8-aligned. A cell whose time has passed
/// answers as a new one (full), so it may be forgotten at any moment.
#[derive(Default)]
struct Cell {
    tat: [u64; 2],
}

impl Cell {
    fn tat(&self) -> u128 {
        (u128::from(self.tat[0]) << 64) | u128::from(self.tat[1])
    }

    fn set_tat(&mut self, tat: u128) {
        self.tat = [(tat >> 64) as u64, tat as u64];
    }
}

/// The answer of an attempt that does not wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Acquired,
    /// Not now; `retry_after_ns` from now it could be (behind those queued).
    Later {
        retry_after_ns: u64,
    },
    /// `n` is more than the bucket can ever hold at once.
    TooLarge {
        most: u64,
    },
}

/// Where a caller stands after asking to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Booking {
    Acquired,
    /// Queued; its turn comes `due_in_ns` from now unless those ahead leave.
    Queued {
        id: u64,
        due_in_ns: u64,
    },
    /// The wait needed is longer than allowed, or the queue is full.
    Refused {
        retry_after_ns: u64,
    },
    TooLarge {
        most: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketSnapshot {
    pub keys: u64,
    pub waiting: u64,
    pub acquired: u64,
    pub waited: u64,
    pub rejected: u64,
    pub cancelled: u64,
    pub wait: HistogramSnapshot,
}

#[derive(Default)]
struct Counters {
    waited: AtomicU64,
    rejected: AtomicU64,
    cancelled: AtomicU64,
}

/// A bucket's rate and shape. `reshape` may change them, so they are read
/// under the table's lock, together with the state they measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub pace: Pace,
    pub shape: Shape,
}

impl Rate {
    /// The most tokens one call can take.
    pub fn most(self) -> Option<u64> {
        match self.shape {
            Shape::Token { burst } => Some(burst),
            Shape::Leaky { .. } => None,
        }
    }

    fn too_large(self, n: u64) -> Option<u64> {
        self.most().filter(|&most| n > most)
    }

    /// Tolerance, in ticks, before a take of `n` must wait.
    fn slack(self, n: u64) -> u128 {
        match self.shape {
            Shape::Token { burst } => self.pace.tokens(burst.saturating_sub(n)),
            Shape::Leaky { .. } => 0,
        }
    }

    /// When a take of `n` behind `queued` booked tokens starts. Queued
    /// callers hold their turns on the booked schedule, from `tat`, whether
    /// or not they have run yet: one whose task cannot run (its loop busy or
    /// gone) does not push back those behind it.
    fn start(self, tat: u128, queued: u64, now: u128) -> u128 {
        if queued == 0 {
            tat.max(now)
        } else {
            tat + self.pace.tokens(queued)
        }
    }

    /// Ticks from now until `n` more could be taken behind `queued` tokens.
    fn wait_ticks(self, cell: &Cell, queued: u64, n: u64, now: u128) -> u128 {
        let start = self.start(cell.tat(), queued, now);
        start.saturating_sub(self.slack(n)).saturating_sub(now)
    }

    fn take(self, cell: &mut Cell, n: u64, now: u128) {
        let tat = cell.tat().max(now) + self.pace.tokens(n);
        cell.set_tat(tat);
    }

    /// How long until the bucket is full again after it was emptied.
    fn full_after_ns(self) -> u64 {
        match self.shape {
            Shape::Token { burst } => self.pace.ns_ceil(self.pace.tokens(burst)),
            Shape::Leaky { .. } => self.pace.ns_ceil(self.pace.tokens(1)),
        }
    }

    /// The tokens a key owes at `now` under this rate (`tat` − now, in
    /// ticks), carried over to `to`: a key keeps what it owes, as a number of
    /// tokens, no more than a smaller burst. So a full bucket stays full (as
    /// an idle key, which may be forgotten at any time, comes back full), and
    /// one short of k tokens stays k short.
    fn carry(self, owed: u128, to: Self) -> u128 {
        let (from_interval, to_interval) = (self.pace.tokens(1), to.pace.tokens(1));
        let whole = owed / from_interval;
        let part = owed % from_interval;
        let part = part.checked_mul(to_interval).map_or_else(
            || ((part as f64 / from_interval as f64) * to_interval as f64).ceil() as u128,
            |product| product.div_ceil(from_interval),
        );
        let owed = whole.saturating_mul(to_interval).saturating_add(part);
        match to.shape {
            Shape::Token { burst } => owed.min(to.pace.tokens(burst)),
            Shape::Leaky { .. } => owed,
        }
    }
}

struct Table {
    rate: Rate,
    /// How many times `reshape` changed the rate.
    reshapes: u64,
    cells: KeyTable<Cell>,
    /// The keys with callers queued, apart: few, and they must not be forgotten.
    queues: HashMap<Key, Queue>,
    /// Waiter ids, unique across every queue this bucket ever made: a queue
    /// is dropped when it empties, and a late caller's id must never match
    /// someone else's in the next one.
    next_id: u64,
    /// Acquisitions that did not wait (counted under the lock they hold).
    acquired_at_once: u64,
}

impl Table {
    fn queued_weight(&self, key: &Key) -> u64 {
        self.queues.get(key).map_or(0, |q| q.weight)
    }

    /// The cell of `key`; a forgotten one comes back full, as it was.
    fn cell_mut(&mut self, key: &Key) -> &mut Cell {
        if self.cells.get(key).is_none() {
            self.cells.insert(key.clone(), Cell::default());
        }
        self.cells.get_mut(key).expect("inserted above")
    }

    /// The cell of `key`, made if new; sweeps idle cells when that is due.
    fn cell(&mut self, key: Key, now_ns: u64) -> &mut Cell {
        let now = self.rate.pace.ticks(now_ns);
        let Table { cells, queues, .. } = self;
        cells.entry(
            key,
            now_ns,
            Cell::default,
            |cell| cell.tat() <= now,
            // A hard cap may forget a key in debt, but not one with callers queued.
            |key, _| !queues.contains_key(key),
        )
    }
}

pub struct Bucket {
    clock: Arc<dyn Clock>,
    table: Mutex<Table>,
    counters: Counters,
    /// How long callers that queued waited for their turn (those served at
    /// once are the zeros, `acquired_at_once`).
    waits: Histogram,
}

impl Bucket {
    pub fn new(
        pace: Pace,
        shape: Shape,
        clock: Arc<dyn Clock>,
        max_keys: Option<usize>,
    ) -> Arc<Self> {
        let rate = Rate { pace, shape };
        let bucket = Arc::new(Self {
            clock,
            table: Mutex::new(Table {
                rate,
                reshapes: 0,
                cells: KeyTable::new(max_keys, rate.full_after_ns().max(MIN_SWEEP_PERIOD_NS)),
                queues: HashMap::new(),
                next_id: 0,
                acquired_at_once: 0,
            }),
            counters: Counters::default(),
            waits: Histogram::default(),
        });
        if let Some(manual) = bucket.clock.as_manual() {
            let weak: Weak<dyn OnAdvance> = Arc::downgrade(&bucket) as Weak<dyn OnAdvance>;
            manual.subscribe(weak);
        }
        bucket
    }

    pub fn rate(&self) -> Rate {
        self.table.lock().rate
    }

    pub fn pace(&self) -> Pace {
        self.rate().pace
    }

    pub fn shape(&self) -> Shape {
        self.rate().shape
    }

    /// The most tokens one call can take.
    pub fn most(&self) -> Option<u64> {
        self.rate().most()
    }

    /// Changes the rate and the shape from now on; returns how many changes
    /// there have been, this one included. Each key keeps what it owes (no
    /// more than a smaller burst); queued callers keep their places and are
    /// re-booked at the new rate: their turns come by it, none is lost or
    /// granted twice. Those whose turn had come are granted first. `None`
    /// keeps the pace or the shape in force, read under the lock, so that
    /// changes of each made at once from two threads both hold.
    pub fn reshape(&self, pace: Option<Pace>, shape: Option<Shape>) -> u64 {
        let now_ns = self.clock.now_ns();
        let mut table = self.table.lock();
        let old = table.rate;
        let new = Rate {
            pace: pace.unwrap_or(old.pace),
            shape: shape.unwrap_or(old.shape),
        };
        table.reshapes += 1;
        let generation = table.reshapes;
        if old == new {
            return generation;
        }
        let (from_now, to_now) = (old.pace.ticks(now_ns), new.pace.ticks(now_ns));
        let keys: Vec<Key> = table.queues.keys().cloned().collect();
        // Those whose turn came under the old rate are granted at it.
        let mut woken: Vec<(Key, Vec<Arc<Waiter>>)> = keys
            .iter()
            .map(|key| (key.clone(), self.grant_due(&mut table, key, from_now)))
            .collect();
        for cell in table.cells.values_mut() {
            let owed = cell.tat().saturating_sub(from_now);
            cell.set_tat(to_now + old.carry(owed, new));
        }
        table.rate = new;
        let mut others = Vec::new();
        let mut refused = Vec::new();
        for (key, granted) in &mut woken {
            granted.extend(self.grant_due(&mut table, key, to_now));
            // In queue order, so that those behind a refused caller move up
            // before their own turns are judged.
            refused.extend(self.refuse_past_deadline(&mut table, key, now_ns, to_now));
            granted.extend(self.grant_due(&mut table, key, to_now));
            // The others look again: their turn may have moved either way.
            if let Some(queue) = table.queues.get(key) {
                others.extend(queue.waiters.all());
            }
        }
        drop(table);
        // Wakes reach Python (an event loop's caller): never under the lock.
        for waiter in refused {
            waiter.notify_refused();
        }
        for (key, granted) in woken {
            self.wake(&key, granted);
        }
        // The others look again (on a manual clock they are granted as the
        // clock moves).
        if self.clock.as_manual().is_none() {
            for waiter in others {
                waiter.kick();
            }
        }
        generation
    }

    /// After a new rate: the queued callers of `key` whose turn now lies past
    /// their deadline leave the queue, refused with the wait they would need,
    /// and those behind them move up. A turn within a microsecond of its
    /// deadline is kept: a change of rate can round a turn booked at exactly
    /// its deadline by a tick. Returns the refused callers to wake once the
    /// lock is released.
    fn refuse_past_deadline(
        &self,
        table: &mut Table,
        key: &Key,
        now_ns: u64,
        now: u128,
    ) -> Vec<Arc<Waiter>> {
        const ROUNDING_NS: u64 = 1_000;
        let rate = table.rate;
        let tat = table.cells.get(key).map_or(0, Cell::tat);
        let mut refused = Vec::new();
        let Some(queue) = table.queues.get_mut(key) else {
            return refused;
        };
        let mut ahead = 0;
        for (id, n, waiter) in queue.waiters.entries() {
            let ready = rate.start(tat, ahead, now).saturating_sub(rate.slack(n));
            let due_ns = rate.pace.ns_ceil(ready.saturating_sub(now));
            let deadline = waiter.deadline_ns();
            if deadline != NEVER
                && now_ns.saturating_add(due_ns) > deadline.saturating_add(ROUNDING_NS)
            {
                queue.waiters.remove(id);
                queue.weight -= n;
                self.count_rejected();
                if waiter.refuse(due_ns) {
                    refused.push(waiter);
                }
            } else {
                ahead += n;
            }
        }
        if queue.waiters.is_empty() {
            table.queues.remove(key);
        }
        refused
    }

    /// Takes `key` by value: on this hot path a new key moves into the table
    /// without a copy.
    pub fn try_acquire(&self, key: Key, n: u64) -> Attempt {
        let now_ns = self.clock.now_ns();
        let mut table = self.table.lock();
        let rate = table.rate;
        if let Some(most) = rate.too_large(n) {
            return Attempt::TooLarge { most };
        }
        let now = rate.pace.ticks(now_ns);
        if table.queues.contains_key(&key) {
            // Callers queued whose turn has passed are granted first, by
            // whoever comes by: a queue whose waiters cannot run still moves.
            let granted = self.grant_due(&mut table, &key, now);
            let queued = table.queues.get(&key).map(|q| q.weight);
            let cell = table.cell(key.clone(), now_ns);
            let wait = rate.wait_ticks(cell, queued.unwrap_or(0), n, now);
            let attempt = if wait == 0 && queued.is_none() {
                rate.take(cell, n, now);
                table.acquired_at_once += 1;
                Attempt::Acquired
            } else {
                Attempt::Later {
                    retry_after_ns: rate.pace.ns_ceil(wait),
                }
            };
            drop(table);
            self.wake(&key, granted);
            return attempt;
        }
        let cell = table.cell(key, now_ns);
        let wait = rate.wait_ticks(cell, 0, n, now);
        if wait == 0 {
            rate.take(cell, n, now);
            table.acquired_at_once += 1;
            Attempt::Acquired
        } else {
            Attempt::Later {
                retry_after_ns: rate.pace.ns_ceil(wait),
            }
        }
    }

    pub fn count_rejected(&self) {
        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes `n` now, or queues `waiter` if its turn comes within
    /// `max_wait_ns` (None: no bound) and, for a leaky bucket, there is room.
    pub fn book(&self, key: &Key, waiter: &Arc<Waiter>, max_wait_ns: Option<u64>) -> Booking {
        let n = waiter.weight;
        let now_ns = self.clock.now_ns();
        let mut table = self.table.lock();
        if let Some(most) = table.rate.too_large(n) {
            return Booking::TooLarge { most };
        }
        let now = table.rate.pace.ticks(now_ns);
        let granted = self.grant_due(&mut table, key, now);
        if !granted.is_empty() {
            drop(table);
            self.wake(key, granted);
            table = self.table.lock();
        }
        // Read again: the lock may have been let go.
        let rate = table.rate;
        if let Some(most) = rate.too_large(n) {
            return Booking::TooLarge { most };
        }
        let now = rate.pace.ticks(now_ns);
        let (queued, queue_len) = table
            .queues
            .get(key)
            .map_or((0, 0), |q| (q.weight, q.waiters.len()));
        let cell = table.cell(key.clone(), now_ns);
        let wait = rate.wait_ticks(cell, queued, n, now);
        if wait == 0 && queue_len == 0 {
            rate.take(cell, n, now);
            table.acquired_at_once += 1;
            return Booking::Acquired;
        }
        let due_in_ns = rate.pace.ns_ceil(wait);
        let queue_full = match rate.shape {
            Shape::Leaky {
                capacity: Some(capacity),
            } => queue_len as u64 >= capacity,
            _ => false,
        };
        if queue_full || max_wait_ns.is_some_and(|most| due_in_ns > most) {
            drop(table);
            self.count_rejected();
            return Booking::Refused {
                retry_after_ns: due_in_ns,
            };
        }
        let Table {
            queues, next_id, ..
        } = &mut *table;
        let queue = queues.entry(key.clone()).or_insert_with(|| Queue {
            waiters: Waitlist::new(),
            weight: 0,
        });
        queue.weight += n;
        if let Some(most) = max_wait_ns {
            waiter.set_deadline_ns(now_ns.saturating_add(most));
        }
        let id = *next_id;
        *next_id += 1;
        queue.waiters.push_as(id, n, Arc::clone(waiter));
        Booking::Queued { id, due_in_ns }
    }

    /// Grants, in order, the queued callers of `key` whose turn has come.
    fn grant_due(&self, table: &mut Table, key: &Key, now: u128) -> Vec<Arc<Waiter>> {
        if !table.queues.contains_key(key) {
            return Vec::new();
        }
        let rate = table.rate;
        let mut tat = table.cell_mut(key).tat();
        let Some(queue) = table.queues.get_mut(key) else {
            return Vec::new();
        };
        let pace = rate.pace;
        // On the booked schedule (see `Rate::start`): a caller granted late,
        // its task busy, takes its turn as booked, and those behind keep theirs.
        let mut slot_end = tat;
        let granted = queue.waiters.pop_front_while(|n| {
            let ready = tat.saturating_sub(rate.slack(n)) <= now;
            if ready {
                tat += pace.tokens(n);
            }
            ready
        });
        for waiter in &granted {
            slot_end += pace.tokens(waiter.weight);
            waiter.set_slot_end_ns(pace.ns_ceil(slot_end));
        }
        queue.weight -= granted.iter().map(|w| w.weight).sum::<u64>();
        if queue.waiters.is_empty() {
            table.queues.remove(key);
        }
        table.cell_mut(key).set_tat(tat);
        granted
    }

    /// Grants whoever's turn has come for `key`, and wakes them.
    pub fn poll(&self, key: &Key) {
        let now_ns = self.clock.now_ns();
        let mut table = self.table.lock();
        let now = table.rate.pace.ticks(now_ns);
        let granted = self.grant_due(&mut table, key, now);
        drop(table);
        self.wake(key, granted);
    }

    /// How long until the queued caller `id` of `key` is due, or None if it
    /// is no longer queued (granted, or gone).
    pub fn due_in_ns(&self, key: &Key, id: u64) -> Option<u64> {
        let now_ns = self.clock.now_ns();
        let table = self.table.lock();
        let rate = table.rate;
        let now = rate.pace.ticks(now_ns);
        let queue = table.queues.get(key)?;
        let ahead = queue.waiters.weight_before(id)?;
        let n = queue.waiters.weight_of(id)?;
        let tat = table.cells.get(key).map_or(0, Cell::tat);
        let start = rate.start(tat, ahead, now);
        let ready = start.saturating_sub(rate.slack(n));
        Some(rate.pace.ns_ceil(ready.saturating_sub(now)))
    }

    pub fn take_granted(&self, waiter: &Waiter) -> bool {
        let taken = waiter.take();
        if taken {
            self.counters.waited.fetch_add(1, Ordering::Relaxed);
        }
        taken
    }

    /// A queued caller leaves (cancelled, dropped, interrupted): its booking
    /// goes back, even if it was granted in the same instant, and those
    /// behind it move up. One that a new rate already refused left the queue
    /// then, counted as rejected: it is not counted again.
    pub fn abandon(&self, key: &Key, id: u64, waiter: &Waiter) {
        let now_ns = self.clock.now_ns();
        let mut table = self.table.lock();
        // Refusals are made under this lock, so this reads the final word.
        if waiter.refused().is_some() {
            return;
        }
        self.counters.cancelled.fetch_add(1, Ordering::Relaxed);
        let now = table.rate.pace.ticks(now_ns);
        let mut behind = Vec::new();
        let mut removed = None;
        if let Some(queue) = table.queues.get_mut(key) {
            removed = queue
                .waiters
                .remove_if(id, |found| std::ptr::eq(Arc::as_ptr(found), waiter));
            if removed.is_some() {
                queue.weight -= waiter.weight;
                behind = queue.waiters.after(id);
            }
        }
        if removed.is_none() && waiter.give_back() {
            Self::give_back_granted(&mut table, key, waiter, now);
        }
        let granted = self.grant_due(&mut table, key, now);
        drop(table);
        drop(removed);
        self.wake(key, granted);
        // Those behind are due earlier now: they look again.
        if self.clock.as_manual().is_none() {
            for waiter in behind {
                waiter.kick();
            }
        }
    }

    /// Gives back a granted turn that nobody took: only the part of it that
    /// is still ahead of `now`. A turn granted late, on the booked schedule,
    /// may lie wholly in the past: giving it back must not make room now.
    /// (A turn granted before a `reshape` gives back at most its tokens at
    /// the new rate, and only what lies ahead.)
    fn give_back_granted(table: &mut Table, key: &Key, waiter: &Waiter, now: u128) {
        let pace = table.rate.pace;
        let end = pace.ticks(waiter.slot_end_ns());
        let ahead = end.saturating_sub(now).min(pace.tokens(waiter.weight));
        if let Some(cell) = table.cells.get_mut(key) {
            cell.set_tat(cell.tat().saturating_sub(ahead));
        }
    }

    fn wake(&self, key: &Key, mut granted: Vec<Arc<Waiter>>) {
        while !granted.is_empty() {
            let unreached: Vec<Arc<Waiter>> =
                granted.drain(..).filter(|w| w.wake_granted() > 0).collect();
            if unreached.is_empty() {
                break;
            }
            let now_ns = self.clock.now_ns();
            let mut table = self.table.lock();
            let now = table.rate.pace.ticks(now_ns);
            for waiter in &unreached {
                Self::give_back_granted(&mut table, key, waiter, now);
            }
            granted = self.grant_due(&mut table, key, now);
        }
    }

    /// Seconds (as ns, rounded up) until `n` could be granted, 0 if now.
    pub fn retry_after_ns(&self, key: &Key, n: u64) -> Result<u64, u64> {
        let now_ns = self.clock.now_ns();
        let table = self.table.lock();
        let rate = table.rate;
        if let Some(most) = rate.too_large(n) {
            return Err(most);
        }
        let now = rate.pace.ticks(now_ns);
        let blank = Cell::default();
        let cell = table.cells.get(key).unwrap_or(&blank);
        let wait = rate.wait_ticks(cell, table.queued_weight(key), n, now);
        Ok(rate.pace.ns_ceil(wait))
    }

    /// Tokens available now, less those booked by queued callers (so it may
    /// be negative).
    pub fn tokens(&self, key: &Key) -> f64 {
        let now_ns = self.clock.now_ns();
        let table = self.table.lock();
        let Rate {
            pace,
            shape: Shape::Token { burst },
        } = table.rate
        else {
            return 0.0;
        };
        let now = pace.ticks(now_ns);
        let tat = table.cells.get(key).map_or(0, Cell::tat);
        let owed = tat.saturating_sub(now) + pace.tokens(table.queued_weight(key));
        let full = pace.tokens(burst);
        if owed <= full {
            pace.as_tokens(full - owed)
        } else {
            -pace.as_tokens(owed - full)
        }
    }

    pub fn snapshot(&self) -> BucketSnapshot {
        let table = self.table.lock();
        let waiting = table.queues.values().map(|q| q.waiters.len() as u64).sum();
        let c = &self.counters;
        BucketSnapshot {
            keys: table.cells.len() as u64,
            waiting,
            acquired: table.acquired_at_once + c.waited.load(Ordering::Relaxed),
            waited: c.waited.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            cancelled: c.cancelled.load(Ordering::Relaxed),
            wait: self.waits.snapshot(table.acquired_at_once),
        }
    }
}

impl OnAdvance for Bucket {
    /// A manual clock moved: grant every queued caller whose time has come.
    fn clock_advanced(&self) {
        let keys: Vec<Key> = self.table.lock().queues.keys().cloned().collect();
        for key in keys {
            self.poll(&key);
        }
    }
}

/// Waiting for `n` tokens of `key` from a bucket (held by reference or by
/// `Arc`). The wait needed is known when the caller books its turn: one
/// longer than `max_wait_ns` is refused at once with `Busy`, with the wait
/// it would have taken.
pub struct Acquire<B: Deref<Target = Bucket>> {
    bucket: B,
    key: Key,
    n: u64,
    max_wait_ns: Option<u64>,
    /// The waiter's id in its key's line, the waiter, and when it queued.
    queued: Option<(u64, Arc<Waiter>, u64)>,
}

impl<B: Deref<Target = Bucket>> Acquire<B> {
    pub fn new(bucket: B, key: Key, n: u64, max_wait_ns: Option<u64>) -> Self {
        Self {
            bucket,
            key,
            n,
            max_wait_ns,
            queued: None,
        }
    }

    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    /// How long to sleep until due: on a manual clock, until the clock
    /// moves (it grants as it goes).
    fn sleep(&self, due_in_ns: u64) -> Poll<Outcome<()>> {
        let manual = self.bucket.clock.is_manual();
        Poll::Pending((!manual).then(|| Duration::from_nanos(due_in_ns)))
    }

    /// A queued caller looks where its turn stands, and grants whoever is
    /// due (itself included) once its own time has come.
    fn look(&mut self, id: u64, waiter: &Waiter, since_ns: u64) -> Poll<Outcome<()>> {
        let bucket = &*self.bucket;
        for _ in 0..2 {
            if waiter.is_granted() && bucket.take_granted(waiter) {
                let wait_ns = bucket.clock.now_ns().saturating_sub(since_ns);
                bucket.waits.record(wait_ns);
                self.queued = None;
                return Poll::Ready(Ok(()));
            }
            // A new rate moved its turn past its deadline: it left, refused.
            if let Some(retry_after_ns) = waiter.refused() {
                self.queued = None;
                return Poll::Ready(Err(Refusal::Busy {
                    retry_after_ns: Some(retry_after_ns),
                }));
            }
            if bucket.clock.is_manual() {
                return Poll::Pending(None);
            }
            match bucket.due_in_ns(&self.key, id) {
                Some(0) => bucket.poll(&self.key),
                Some(due) => return self.sleep(due),
                // Granted since the first look.
                None => {}
            }
        }
        Poll::Pending(None)
    }
}

impl<B: Deref<Target = Bucket>> Wait for Acquire<B> {
    type Output = Outcome<()>;

    fn poll(&mut self, waker: Option<&Waker>) -> Poll<Outcome<()>> {
        if let Some((id, waiter, since_ns)) = self.queued.clone() {
            return self.look(id, &waiter, since_ns);
        }
        let bucket = &*self.bucket;
        let Some(waker) = waker else {
            return match bucket.try_acquire(self.key.clone(), self.n) {
                Attempt::Acquired => Poll::Ready(Ok(())),
                Attempt::TooLarge { most } => Poll::Ready(Err(Refusal::TooLarge { most })),
                Attempt::Later { retry_after_ns } => {
                    if self.max_wait_ns.is_some_and(|most| retry_after_ns > most) {
                        bucket.count_rejected();
                        Poll::Ready(Err(Refusal::Busy {
                            retry_after_ns: Some(retry_after_ns),
                        }))
                    } else {
                        Poll::Pending(None)
                    }
                }
            };
        };
        let waiter = Waiter::new(self.n, waker);
        match bucket.book(&self.key, &waiter, self.max_wait_ns) {
            Booking::Acquired => Poll::Ready(Ok(())),
            Booking::Refused { retry_after_ns } => Poll::Ready(Err(Refusal::Busy {
                retry_after_ns: Some(retry_after_ns),
            })),
            Booking::TooLarge { most } => Poll::Ready(Err(Refusal::TooLarge { most })),
            Booking::Queued { id, due_in_ns } => {
                self.queued = Some((id, waiter, bucket.clock.now_ns()));
                self.sleep(due_in_ns)
            }
        }
    }

    fn abandon(&mut self) {
        if let Some((id, waiter, _)) = self.queued.take() {
            self.bucket.abandon(&self.key, id, &waiter);
        }
    }
}

impl<B: Deref<Target = Bucket>> Drop for Acquire<B> {
    fn drop(&mut self) {
        self.abandon();
    }
}

#[cfg(test)]
#[path = "bucket_tests.rs"]
mod tests;
