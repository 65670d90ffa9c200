//! A gauge per key (`Gauge.acquire(key=...)`): each key has `limit` permits of
//! its own, FIFO and cancel-safe as the plain gauge is, and costs memory only
//! while it is in use. A key whose permits are all back and whom nobody waits
//! for is forgotten at once; its counters are folded into the totals.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::clock::Clock;
use super::gauge::{Acquire, Admission, Gauge, Granted, OverRelease, Patience, Snapshot};
use super::histogram::HistogramSnapshot;
use super::keys::{part_of, Key};
use super::wait::{Outcome, Poll, Refusal, Wait, Waker};

pub struct KeyedGauges {
    limit: AtomicU64,
    max_keys: Option<usize>,
    clock: Arc<dyn Clock>,
    /// The keys, split by hash so that no growth or shrink of one map holds
    /// every caller up for long (a map rehashes all it holds as it grows).
    parts: Box<[Mutex<Table>]>,
    /// Keys in use, over every part.
    in_use: AtomicUsize,
    /// Callers refused because `max_keys` keys were in use.
    refused_keys: AtomicU64,
}

const PARTS: usize = 64;

#[derive(Default)]
struct Table {
    /// The keys in use. A gauge's `Arc` is cloned only by a wait (which
    /// looks again once it lets go of it) and by a release or a limit
    /// change that wakes waiters (which does too), so an entry held only
    /// here and idle may be forgotten.
    keys: HashMap<Key, Arc<Gauge>>,
    /// What forgotten keys did (their state was idle when forgotten).
    retired: Option<Snapshot>,
}

/// The totals over every key, with the number of keys in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyedSnapshot {
    pub totals: Snapshot,
    pub keys: u64,
    pub refused_keys: u64,
}

fn add(total: &mut Snapshot, s: &Snapshot) {
    total.in_flight += s.in_flight;
    total.available += s.available;
    total.waiting += s.waiting;
    total.acquired += s.acquired;
    total.waited += s.waited;
    total.rejected += s.rejected;
    total.timed_out += s.timed_out;
    total.cancelled += s.cancelled;
    total.wait = total.wait.merged(&s.wait);
    total.hold = total.hold.merged(&s.hold);
}

fn empty(limit: u64) -> Snapshot {
    Snapshot {
        limit,
        in_flight: 0,
        available: 0,
        waiting: 0,
        acquired: 0,
        waited: 0,
        rejected: 0,
        timed_out: 0,
        cancelled: 0,
        wait: HistogramSnapshot::default(),
        hold: HistogramSnapshot::default(),
    }
}

impl KeyedGauges {
    pub fn new(limit: u64, max_keys: Option<usize>, clock: Arc<dyn Clock>) -> Self {
        Self {
            limit: AtomicU64::new(limit),
            max_keys,
            clock,
            parts: (0..PARTS).map(|_| Mutex::new(Table::default())).collect(),
            in_use: AtomicUsize::new(0),
            refused_keys: AtomicU64::new(0),
        }
    }

    pub fn max_keys(&self) -> Option<usize> {
        self.max_keys
    }

    fn part(&self, key: &Key) -> &Mutex<Table> {
        &self.parts[part_of(key, PARTS)]
    }

    /// `n` above a non-zero limit could never be granted.
    fn too_large(&self, n: u64) -> Option<u64> {
        let limit = self.limit.load(Ordering::Relaxed);
        (limit > 0 && n > limit).then_some(limit)
    }

    /// The key's gauge, made if the key is new; None when `max_keys` keys are
    /// in use already (a refusal is counted).
    fn checkout(&self, key: &Key) -> Option<Arc<Gauge>> {
        let mut table = self.part(key).lock();
        self.entry(&mut table, key).map(Arc::clone)
    }

    /// The key's entry in `table`, made if the key is new and there is room.
    fn entry<'t>(&self, table: &'t mut Table, key: &Key) -> Option<&'t Arc<Gauge>> {
        // Looked up first, so that a key in use is neither cloned nor hashed twice.
        if !table.keys.contains_key(key) {
            let before = self.in_use.fetch_add(1, Ordering::Relaxed);
            if self.max_keys.is_some_and(|max| before >= max) {
                self.in_use.fetch_sub(1, Ordering::Relaxed);
                self.refused_keys.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            let gauge = Arc::new(Gauge::with_clock(
                self.stored_limit(),
                Arc::clone(&self.clock),
            ));
            table.keys.insert(key.clone(), gauge);
        }
        table.keys.get(key)
    }

    /// Forgets the key if nobody else holds its gauge and it is idle. Called
    /// by whoever may have made it idle, once it let go of its own clone.
    fn forget_if_idle(&self, key: &Key) {
        let mut table = self.part(key).lock();
        let idle = table
            .keys
            .get(key)
            .is_some_and(|gauge| Arc::strong_count(gauge) == 1 && gauge.is_idle());
        if idle {
            self.forget(&mut table, key);
        }
    }

    /// Removes an idle key, its counters folded into the totals.
    fn forget(&self, table: &mut Table, key: &Key) {
        let Some(gauge) = table.keys.remove(key) else {
            return;
        };
        self.in_use.fetch_sub(1, Ordering::Relaxed);
        let limit = self.limit.load(Ordering::Relaxed);
        let retired = table.retired.get_or_insert_with(|| empty(limit));
        gauge.add_counters_to(retired);
        let (len, capacity) = (table.keys.len(), table.keys.capacity());
        if capacity > 64 && capacity > 8 * len {
            table.keys.shrink_to(2 * len);
        }
    }

    /// Takes `n` of the key's permits if they are free and nobody is queued.
    pub fn try_acquire(&self, key: &Key, n: u64) -> KeyedAdmission {
        if let Some(limit) = self.too_large(n) {
            return KeyedAdmission::Gauge(Admission::TooLarge { limit });
        }
        let mut table = self.part(key).lock();
        let Some(gauge) = self.entry(&mut table, key) else {
            return KeyedAdmission::KeysFull;
        };
        let admission = gauge.try_acquire(n, Patience::FailFast);
        if admission != Admission::Acquired {
            if admission == Admission::Busy {
                gauge.count_rejected();
            }
            // A new key refused (too much asked, or a limit of 0) holds nothing.
            if Arc::strong_count(gauge) == 1 && gauge.is_idle() {
                self.forget(&mut table, key);
            }
        }
        KeyedAdmission::Gauge(admission)
    }

    /// Gives back `n` of the key's permits; more than it holds is an error.
    pub fn release(&self, key: &Key, n: u64) -> Result<(), OverRelease> {
        let woken = {
            let mut table = self.part(key).lock();
            let Some(gauge) = table.keys.get(key) else {
                return Err(OverRelease { held: 0 });
            };
            let (granted, idle) = gauge.release_granting(n)?;
            if granted.is_empty() {
                if idle && Arc::strong_count(gauge) == 1 {
                    self.forget(&mut table, key);
                }
                None
            } else {
                Some((Arc::clone(gauge), granted))
            }
        };
        // Waiters are woken with the table's lock not held.
        if let Some((gauge, granted)) = woken {
            gauge.wake_granted(granted);
            // A granted waiter that could not be reached gave its grant back.
            let idle = gauge.is_idle();
            drop(gauge);
            if idle {
                self.forget_if_idle(key);
            }
        }
        Ok(())
    }

    /// Sets every key's limit, and the limit of keys to come.
    #[cfg(test)]
    pub fn set_limit(&self, limit: u64) {
        self.store_limit(limit);
        self.apply_limit();
    }

    /// The limit of keys to come; `apply_limit` gives it to the keys in use.
    pub fn store_limit(&self, limit: u64) {
        self.limit.store(limit, Ordering::SeqCst);
    }

    /// The limit last stored.
    pub fn stored_limit(&self) -> u64 {
        self.limit.load(Ordering::SeqCst)
    }

    /// Gives every key in use the limit last stored. Each part reads it under
    /// its lock, so that when two threads set the limit at once (waking
    /// waiters lets the GIL pass between parts), every key ends with the
    /// last value stored, as keys made later do.
    pub fn apply_limit(&self) {
        for part in &*self.parts {
            let woken: Vec<(Key, Arc<Gauge>, Granted)> = {
                let table = part.lock();
                let limit = self.stored_limit();
                table
                    .keys
                    .iter()
                    .filter_map(|(key, gauge)| {
                        let granted = gauge.set_limit_granting(limit);
                        (!granted.is_empty()).then(|| (key.clone(), Arc::clone(gauge), granted))
                    })
                    .collect()
            };
            for (key, gauge, granted) in woken {
                gauge.wake_granted(granted);
                drop(gauge);
                self.forget_if_idle(&key);
            }
        }
    }

    /// One key's state; a key not in use answers as a new one.
    pub fn snapshot_of(&self, key: &Key) -> Snapshot {
        if let Some(gauge) = self.part(key).lock().keys.get(key) {
            return gauge.snapshot();
        }
        let limit = self.limit.load(Ordering::Relaxed);
        Snapshot {
            available: limit,
            ..empty(limit)
        }
    }

    /// The totals over every key, past and present (read part by part).
    pub fn snapshot(&self) -> KeyedSnapshot {
        let limit = self.limit.load(Ordering::Relaxed);
        let mut totals = empty(limit);
        let mut keys = 0;
        for part in &*self.parts {
            let table = part.lock();
            if let Some(retired) = &table.retired {
                add(&mut totals, retired);
            }
            for gauge in table.keys.values() {
                add(&mut totals, &gauge.snapshot());
            }
            keys += table.keys.len() as u64;
        }
        KeyedSnapshot {
            totals,
            keys,
            refused_keys: self.refused_keys.load(Ordering::Relaxed),
        }
    }

    /// Keys in use now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.in_use.load(Ordering::Relaxed)
    }
}

/// The answer of an attempt that does not wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyedAdmission {
    Gauge(Admission),
    /// `max_keys` keys are in use, and this one is not among them.
    KeysFull,
}

/// Waiting for `n` of one key's permits. The key's gauge is found when the
/// wait is first polled, and let go of once the wait is over.
pub struct KeyedAcquire {
    gauges: Arc<KeyedGauges>,
    key: Key,
    n: u64,
    timeout_ns: Option<u64>,
    wait: Option<Acquire<Arc<Gauge>>>,
    keys_full: bool,
}

impl KeyedAcquire {
    pub fn new(gauges: Arc<KeyedGauges>, key: Key, n: u64, timeout_ns: Option<u64>) -> Self {
        Self {
            gauges,
            key,
            n,
            timeout_ns,
            wait: None,
            keys_full: false,
        }
    }

    pub fn key(&self) -> &Key {
        &self.key
    }

    pub fn gauges(&self) -> &KeyedGauges {
        &self.gauges
    }

    /// True if the wait was refused because `max_keys` keys were in use.
    pub fn keys_full(&self) -> bool {
        self.keys_full
    }

    fn finish(&mut self) {
        if let Some(mut wait) = self.wait.take() {
            wait.abandon();
            drop(wait);
            self.gauges.forget_if_idle(&self.key);
        }
    }
}

impl Wait for KeyedAcquire {
    type Output = Outcome<()>;

    fn poll(&mut self, waker: Option<&Waker>) -> Poll<Outcome<()>> {
        if self.wait.is_none() {
            // Checked before a key is made: `n` is checked however full.
            if let Some(most) = self.gauges.too_large(self.n) {
                return Poll::Ready(Err(Refusal::TooLarge { most }));
            }
            let Some(gauge) = self.gauges.checkout(&self.key) else {
                self.keys_full = true;
                return Poll::Ready(Err(Refusal::Busy {
                    retry_after_ns: None,
                }));
            };
            self.wait = Some(Acquire::new(gauge, self.n, self.timeout_ns));
        }
        let polled = self.wait.as_mut().map(|wait| wait.poll(waker));
        match polled {
            Some(Poll::Pending(sleep)) => Poll::Pending(sleep),
            Some(Poll::Ready(Ok(()))) => {
                // It holds permits: the key stays, no need to look.
                self.wait = None;
                Poll::Ready(Ok(()))
            }
            Some(Poll::Ready(outcome)) => {
                self.finish();
                Poll::Ready(outcome)
            }
            None => Poll::Ready(Err(Refusal::TimedOut)),
        }
    }

    fn abandon(&mut self) {
        self.finish();
    }
}

impl Drop for KeyedAcquire {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
#[path = "keyed_gauge_tests.rs"]
mod tests;
