//! The bounded queue: producers wait for room, consumers wait for items, each
//! in FIFO order, on the same waiters as the gauge.
//!
//! A waiting producer is granted a slot (a reservation of room) and a waiting
//! consumer is granted an item (a reservation of one stored item), the way
//! the gauge grants permits: the grant is counted under the lock, and a
//! caller cancelled after its grant gives the reservation back, so the next
//! one in line gets it. No item is ever lost or handed out twice.

use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use super::clock::{monotonic, Clock, OnAdvance};
use super::histogram::{Histogram, HistogramSnapshot};
use super::sorted::{locate, Layout, Sorted, Spot};
use super::store::{Order, Store};
use super::wait::{Deadline, Outcome, Poll, Refusal, Wait, Waker};
use super::waiter::Waiter;
use super::waitlist::Waitlist;

/// What a queue holds. Only a priority queue ever compares items, and it
/// does so outside any lock, since comparing may run user code.
pub trait Item: Sized {
    type Error;
    /// Runs `f` where `share` and `goes_before` may be called (for Python
    /// items: attached to the interpreter). The queue takes its lock only
    /// inside, so that order is always this first, the lock second.
    fn attached<R>(f: impl FnOnce() -> R) -> R {
        f()
    }
    /// Another handle to the same item, made under the queue's lock: it must
    /// not run user code.
    fn share(&self) -> Self;
    /// `self < other`, the one comparison used (as with `heapq`).
    fn goes_before(&self, other: &Self) -> Result<bool, Self::Error>;
}

/// What a put does when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// The producer waits for room.
    Block,
    /// The put fails at once.
    Reject,
    /// The new item is discarded.
    DropNew,
    /// The oldest item (in priority order, the lowest priority) is discarded.
    DropOld,
}

/// The three lines a caller can wait in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    Putters,
    Getters,
    Joiners,
}

/// What became of an item offered to the queue. Items that come back go to
/// the caller, who releases them (or hands them to `on_drop`) with no lock held.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer<T> {
    Stored,
    /// The overflow policy discarded this item (`drop_new`) or an old one
    /// (`drop_old`); it counts as done for `join`.
    Dropped(T),
    /// Full, and the caller may not wait.
    Full(T),
    /// Full; the caller may wait for a slot in the putters' line.
    MustWait(T),
    ShutDown(T),
    /// Priority order: the store changed since the spot was found; locate again.
    Stale(T),
}

/// The answer of taking without waiting.
#[derive(Debug, PartialEq, Eq)]
pub enum Take<T> {
    One(T),
    Empty,
    ShutDown,
}

/// Where a caller stands after asking to wait in a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Granted at once: nothing to wait for.
    Granted,
    Queued(u64),
    ShutDown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskDoneTooOften;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub maxsize: u64,
    pub size: u64,
    pub unfinished: u64,
    pub putters_waiting: u64,
    pub getters_waiting: u64,
    pub put: u64,
    pub got: u64,
    pub dropped: u64,
    pub rejected: u64,
    pub shut_down: bool,
    pub put_wait: HistogramSnapshot,
    pub get_wait: HistogramSnapshot,
}

/// How many items a queue may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capacity {
    Unbounded,
    Bounded(u64),
    /// None: a put goes through only to a consumer waiting for it, as on
    /// Go's unbuffered channel.
    Handover,
}

pub struct Queue<T> {
    state: Mutex<State<T>>,
    clock: Arc<dyn Clock>,
    maxsize: u64,
    capacity: Capacity,
    overflow: Overflow,
    /// Priority order: items must be located (compared) before insertion.
    sorted: bool,
    counters: Counters,
    waits: Waits,
}

struct State<T> {
    store: Store<T>,
    /// Slots granted to waiting producers that have not put their item yet.
    put_reserved: u64,
    /// Items taken so far: the number the next one taken gets.
    taken: u64,
    /// Stored items granted to consumers (waiting getters, lingering batches)
    /// that have not taken them yet. They stay in the store, and so within
    /// the bound, until taken; a consumer that gives up just lets go of them.
    get_reserved: u64,
    putters: Waitlist<Arc<Waiter>>,
    getters: Waitlist<Arc<Waiter>>,
    joiners: Waitlist<Arc<Waiter>>,
    unfinished: u64,
    shut_down: bool,
    /// Items stored so far (counted under the lock it holds anyway).
    put: u64,
}

#[derive(Default)]
struct Counters {
    dropped: AtomicU64,
    rejected: AtomicU64,
}

/// How long producers and consumers waited, per item; items that went
/// through at once are the zeros (stored or taken, less those recorded).
#[derive(Default)]
pub struct Waits {
    pub put: Histogram,
    pub get: Histogram,
}

/// Waiters granted under the lock, to be woken once it is released.
struct Granted {
    putters: Vec<Arc<Waiter>>,
    getters: Vec<Arc<Waiter>>,
    joiners: Vec<Arc<Waiter>>,
}

impl<T> State<T> {
    fn free_slots(&self, capacity: Capacity) -> u64 {
        match capacity {
            Capacity::Unbounded => u64::MAX,
            Capacity::Bounded(maxsize) => {
                maxsize.saturating_sub(self.store.len() as u64 + self.put_reserved)
            }
            // Room only for consumers already waiting, each for one item.
            Capacity::Handover => {
                (self.getters.len() as u64).saturating_sub(self.put_reserved + self.available())
            }
        }
    }

    fn available(&self) -> u64 {
        (self.store.len() as u64).saturating_sub(self.get_reserved)
    }

    fn line(&mut self, line: Line) -> &mut Waitlist<Arc<Waiter>> {
        match line {
            Line::Putters => &mut self.putters,
            Line::Getters => &mut self.getters,
            Line::Joiners => &mut self.joiners,
        }
    }

    /// Grants whatever the queue can give now: room to producers, items to
    /// consumers, and the end of the wait to joiners once all work is done.
    /// None when nobody in any line can be granted anything (the common
    /// case, which costs no allocation).
    fn grant(&mut self, capacity: Capacity) -> Option<Granted> {
        let putters_can = !self.putters.is_empty() && self.free_slots(capacity) > 0;
        let getters_can = !self.getters.is_empty() && self.available() > 0;
        let joiners_can = !self.joiners.is_empty() && self.unfinished == 0;
        if !(putters_can || getters_can || joiners_can) {
            return None;
        }
        let mut room = self.free_slots(capacity);
        let putters = self.putters.pop_front_while(|_| {
            let fits = room > 0;
            room = room.saturating_sub(1);
            fits
        });
        self.put_reserved += putters.len() as u64;
        let mut ready = self.available();
        let getters = self.getters.pop_front_while(|_| {
            let fits = ready > 0;
            ready = ready.saturating_sub(1);
            fits
        });
        self.get_reserved += getters.len() as u64;
        let joiners = if self.unfinished == 0 {
            self.joiners.pop_front_while(|_| true)
        } else {
            Vec::new()
        };
        Some(Granted {
            putters,
            getters,
            joiners,
        })
    }

    fn take_items(&mut self, count: u64) -> Vec<T> {
        let mut items = Vec::with_capacity(count.min(1024) as usize);
        while (items.len() as u64) < count {
            match self.store.take() {
                Some(item) => items.push(item),
                None => break,
            }
        }
        self.taken += items.len() as u64;
        items
    }
}

impl<T: Item> Queue<T> {
    /// `maxsize` 0 means unbounded, as in asyncio.
    pub fn new(maxsize: u64, order: Order, overflow: Overflow) -> Self {
        let capacity = if maxsize == 0 {
            Capacity::Unbounded
        } else {
            Capacity::Bounded(maxsize)
        };
        Self::with_capacity(capacity, order, overflow)
    }

    pub fn with_capacity(capacity: Capacity, order: Order, overflow: Overflow) -> Self {
        Self::with_clock(capacity, order, overflow, monotonic())
    }

    /// A queue whose waits time out, and whose batches linger, on `clock`.
    pub fn with_clock(
        capacity: Capacity,
        order: Order,
        overflow: Overflow,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let maxsize = match capacity {
            Capacity::Bounded(maxsize) => maxsize,
            Capacity::Unbounded | Capacity::Handover => 0,
        };
        Self {
            state: Mutex::new(State {
                store: Store::new(order),
                put_reserved: 0,
                taken: 0,
                get_reserved: 0,
                putters: Waitlist::new(),
                getters: Waitlist::new(),
                joiners: Waitlist::new(),
                unfinished: 0,
                shut_down: false,
                put: 0,
            }),
            clock,
            maxsize,
            capacity,
            overflow,
            sorted: order == Order::Priority,
            counters: Counters::default(),
            waits: Waits::default(),
        }
    }

    pub fn overflow(&self) -> Overflow {
        self.overflow
    }

    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    /// Where `item` goes in a priority store, found by comparing outside the
    /// lock; None for the other orders. Must run inside `T::attached`.
    fn locate(&self, item: &T) -> Result<Option<Spot>, T::Error> {
        loop {
            let Some(layout) = self.layout() else {
                return Ok(None);
            };
            let read = |chunk, index| self.read_sorted(layout.version, chunk, index, T::share);
            if let Some(spot) = locate(&layout, read, |other| item.goes_before(other))? {
                return Ok(Some(spot));
            }
        }
    }

    /// Joins `line` with a new waiter. `watch`: the waiter has a deadline,
    /// so a manual clock must wake it as it moves.
    pub fn join_line(&self, line: Line, waker: &Waker, watch: bool) -> (Enqueued, Arc<Waiter>) {
        let waiter = Waiter::new(1, waker);
        let enqueued = self.enqueue(line, &waiter);
        if watch && matches!(enqueued, Enqueued::Queued(_)) {
            self.clock
                .wake_on_advance(Arc::downgrade(&waiter) as Weak<dyn OnAdvance>);
        }
        (enqueued, waiter)
    }

    /// `offer`, locating the item first (and again, for as long as the
    /// store changes under the search). Never `Stale`.
    pub fn offer_located(&self, item: T, can_wait: bool) -> Result<Offer<T>, T::Error> {
        if !self.sorted {
            return Ok(self.offer(item, None, can_wait));
        }
        // Unplaced, it is refused or dropped if the queue is full, without
        // a comparison; otherwise it comes back stale, to be placed.
        let mut item = match self.offer(item, None, can_wait) {
            Offer::Stale(item) => item,
            other => return Ok(other),
        };
        T::attached(|| loop {
            let spot = self.locate(&item)?;
            match self.offer(item, spot, can_wait) {
                Offer::Stale(back) => item = back,
                other => return Ok(other),
            }
        })
    }

    /// `put_reserved`, locating the item first; a failed comparison gives
    /// the slot back. Never `Stale`.
    pub fn put_reserved_located(&self, item: T) -> Result<Offer<T>, T::Error> {
        if !self.sorted {
            return Ok(self.put_reserved(item, None));
        }
        T::attached(|| {
            let mut item = item;
            loop {
                let spot = match self.locate(&item) {
                    Ok(spot) => spot,
                    Err(err) => {
                        self.release_slot();
                        return Err(err);
                    }
                };
                match self.put_reserved(item, spot) {
                    Offer::Stale(back) => item = back,
                    other => return Ok(other),
                }
            }
        })
    }

    /// Offers an item. `spot` is where `locate` placed it (priority order
    /// only). `can_wait`: a caller of a blocking queue that will wait for room
    /// gets `MustWait` rather than `Full`.
    pub fn offer(&self, item: T, spot: Option<Spot>, can_wait: bool) -> Offer<T> {
        let mut state = self.state.lock();
        if state.shut_down {
            return Offer::ShutDown(item);
        }
        let full = state.free_slots(self.capacity) == 0;
        if full && self.overflow != Overflow::DropOld {
            drop(state);
            return match self.overflow {
                Overflow::Block if can_wait => Offer::MustWait(item),
                Overflow::DropNew => {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    Offer::Dropped(item)
                }
                _ => {
                    self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                    Offer::Full(item)
                }
            };
        }
        if let Err(item) = state.store.insert(item, spot) {
            return Offer::Stale(item);
        }
        // drop_old: the new item goes in first, so that the spot found on
        // this layout holds; the evicted one counts as done and the new one
        // takes its place for `join`.
        let evicted = if full { state.store.evict() } else { None };
        if evicted.is_none() {
            state.unfinished += 1;
        }
        state.put += 1;
        let granted = state.grant(self.capacity);
        drop(state);
        self.wake(granted);
        match evicted {
            Some(evicted) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                Offer::Dropped(evicted)
            }
            None => Offer::Stored,
        }
    }

    /// Puts the item of a producer that holds a granted slot. On shutdown the
    /// slot goes back; a stale spot keeps it (locate again).
    pub fn put_reserved(&self, item: T, spot: Option<Spot>) -> Offer<T> {
        let mut state = self.state.lock();
        if state.shut_down {
            state.put_reserved = state.put_reserved.saturating_sub(1);
            let granted = state.grant(self.capacity);
            drop(state);
            self.wake(granted);
            return Offer::ShutDown(item);
        }
        if let Err(item) = state.store.insert(item, spot) {
            return Offer::Stale(item);
        }
        state.put_reserved = state.put_reserved.saturating_sub(1);
        state.unfinished += 1;
        state.put += 1;
        let granted = state.grant(self.capacity);
        drop(state);
        self.wake(granted);
        Offer::Stored
    }

    /// Takes the next item nobody else was granted, without waiting.
    #[cfg(test)]
    pub fn take_one(&self) -> Take<T> {
        match self.take_one_numbered() {
            Take::One((_, item)) => Take::One(item),
            Take::Empty => Take::Empty,
            Take::ShutDown => Take::ShutDown,
        }
    }

    /// `take_one`, with the item's place in the order items were taken
    /// (0 for the first item this queue ever handed out).
    pub fn take_one_numbered(&self) -> Take<(u64, T)> {
        let mut state = self.state.lock();
        if state.available() == 0 {
            return if state.shut_down {
                Take::ShutDown
            } else {
                Take::Empty
            };
        }
        let Some(item) = state.store.take() else {
            return Take::Empty;
        };
        let number = state.taken;
        state.taken += 1;
        let granted = state.grant(self.capacity);
        drop(state);
        self.wake(granted);
        Take::One((number, item))
    }

    /// Reserves up to `max` items nobody else was granted, leaving them in
    /// the store until `take_reserved`. Returns how many.
    pub fn reserve_now(&self, max: u64) -> u64 {
        let mut state = self.state.lock();
        let count = state.available().min(max);
        state.get_reserved += count;
        count
    }

    /// Takes `count` items this caller holds reservations for, with the
    /// number of the first. Fewer come back only if `shutdown(immediate=True)`
    /// removed them meanwhile.
    pub fn take_reserved_numbered(&self, count: u64) -> (u64, Vec<T>) {
        let mut state = self.state.lock();
        state.get_reserved = state.get_reserved.saturating_sub(count);
        let first = state.taken;
        let items = state.take_items(count);
        let granted = state.grant(self.capacity);
        drop(state);
        self.wake(granted);
        (first, items)
    }

    /// Gives back a granted slot whose item could not be put.
    pub fn release_slot(&self) {
        self.give_back(1, 0);
    }

    /// Lets go of item reservations: the next consumers in line get them.
    pub fn unreserve(&self, count: u64) {
        self.give_back(0, count);
    }

    /// Joins a line, unless the wait is already over (a slot or an item is
    /// free and nobody is ahead; all work is done), or the queue shut down.
    pub fn enqueue(&self, line: Line, waiter: &Arc<Waiter>) -> Enqueued {
        let mut state = self.state.lock();
        let granted_now = match line {
            Line::Putters if state.shut_down => return Enqueued::ShutDown,
            Line::Putters => state.putters.is_empty() && state.free_slots(self.capacity) > 0,
            Line::Getters => state.getters.is_empty() && state.available() > 0,
            Line::Joiners => state.unfinished == 0,
        };
        if granted_now {
            match line {
                Line::Putters => state.put_reserved += 1,
                Line::Getters => state.get_reserved += 1,
                Line::Joiners => {}
            }
            return Enqueued::Granted;
        }
        if line == Line::Getters && state.shut_down {
            return Enqueued::ShutDown;
        }
        let id = state.line(line).push(waiter.weight, Arc::clone(waiter));
        if line == Line::Getters && self.capacity == Capacity::Handover {
            // A waiting consumer is room for one producer's item.
            let granted = state.grant(self.capacity);
            drop(state);
            self.wake(granted);
        }
        Enqueued::Queued(id)
    }

    /// A waiter stops waiting (its time ran out, the queue shut down).
    /// Returns true if a grant raced in first: the waiter then holds it.
    pub fn settle(&self, line: Line, id: u64, waiter: &Waiter) -> bool {
        !self.withdraw(line, id) && waiter.take()
    }

    /// A waiter is cancelled; a grant that raced in goes back to the line.
    pub fn abandon(&self, line: Line, id: u64, waiter: &Waiter) {
        if !self.withdraw(line, id) && waiter.give_back() {
            match line {
                Line::Putters => self.give_back(1, 0),
                Line::Getters => self.give_back(0, 1),
                Line::Joiners => {}
            }
        }
    }

    fn withdraw(&self, line: Line, id: u64) -> bool {
        let removed = self.state.lock().line(line).remove(id);
        removed.is_some()
    }

    fn give_back(&self, slots: u64, items: u64) {
        let mut state = self.state.lock();
        state.put_reserved = state.put_reserved.saturating_sub(slots);
        state.get_reserved = state.get_reserved.saturating_sub(items);
        let granted = state.grant(self.capacity);
        drop(state);
        self.wake(granted);
    }

    pub fn is_shut_down(&self) -> bool {
        self.state.lock().shut_down
    }

    /// Marks `n` items got earlier as processed; more than are unfinished
    /// changes nothing and is an error.
    pub fn task_done(&self, n: u64) -> Result<(), TaskDoneTooOften> {
        let mut state = self.state.lock();
        if state.unfinished < n {
            return Err(TaskDoneTooOften);
        }
        state.unfinished -= n;
        let granted = state.grant(self.capacity);
        drop(state);
        self.wake(granted);
        Ok(())
    }

    pub fn unfinished(&self) -> u64 {
        self.state.lock().unfinished
    }

    /// Puts ends to new puts; with `immediate`, also removes every stored
    /// item (returned to the caller, counted as done). Waiting producers, and
    /// consumers who will find nothing more, are woken to fail.
    pub fn shutdown(&self, immediate: bool) -> Vec<T> {
        let mut state = self.state.lock();
        state.shut_down = true;
        let removed = if immediate {
            let removed = state.store.drain();
            state.get_reserved = 0;
            state.unfinished = state.unfinished.saturating_sub(removed.len() as u64);
            // Counted under the lock, as a drop on a full queue is.
            self.counters
                .dropped
                .fetch_add(removed.len() as u64, Ordering::Relaxed);
            removed
        } else {
            Vec::new()
        };
        let granted = state.grant(self.capacity);
        let mut kicked = state.putters.all();
        if state.available() == 0 {
            kicked.extend(state.getters.all());
        }
        drop(state);
        self.wake(granted);
        for waiter in kicked {
            waiter.kick();
        }
        removed
    }

    /// Wakes granted waiters with no lock held. Grants that cannot be
    /// delivered (a closed event loop) go back and are granted again.
    fn wake(&self, mut granted: Option<Granted>) {
        while let Some(now) = granted.take() {
            let slots: u64 = now.putters.iter().map(|w| w.wake_granted()).sum();
            let items: u64 = now.getters.iter().map(|w| w.wake_granted()).sum();
            for joiner in &now.joiners {
                joiner.wake_granted();
            }
            drop(now);
            if slots == 0 && items == 0 {
                break;
            }
            let mut state = self.state.lock();
            state.put_reserved = state.put_reserved.saturating_sub(slots);
            state.get_reserved = state.get_reserved.saturating_sub(items);
            granted = state.grant(self.capacity);
        }
    }

    /// The shape of a priority store, to `locate` a new item in; None (and
    /// no lock taken) for the other orders.
    pub fn layout(&self) -> Option<Layout> {
        if !self.sorted {
            return None;
        }
        self.state.lock().store.sorted().map(Sorted::layout)
    }

    /// Reads one item of a priority store at `version` through `share`
    /// (which must not run user code); None once the store changed.
    pub fn read_sorted<U>(
        &self,
        version: u64,
        chunk: usize,
        index: usize,
        share: impl FnOnce(&T) -> U,
    ) -> Option<U> {
        let state = self.state.lock();
        state.store.sorted()?.peek(version, chunk, index).map(share)
    }

    /// Visits every stored item, unless the lock is busy (then none: the
    /// garbage collector must not block, and missing references only keep
    /// objects alive).
    pub fn visit_items(&self, visit: impl FnMut(&T)) -> bool {
        match self.state.try_lock() {
            Some(state) => {
                state.store.for_each(visit);
                true
            }
            None => false,
        }
    }

    /// Removes every stored item (for breaking reference cycles).
    pub fn clear_items(&self) -> Vec<T> {
        let mut state = self.state.lock();
        let removed = state.store.drain();
        state.get_reserved = 0;
        removed
    }

    pub fn snapshot(&self) -> Snapshot {
        let state = self.state.lock();
        let c = &self.counters;
        Snapshot {
            maxsize: self.maxsize,
            size: state.available(),
            unfinished: state.unfinished,
            putters_waiting: state.putters.len() as u64,
            getters_waiting: state.getters.len() as u64,
            put: state.put,
            got: state.taken,
            dropped: c.dropped.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            shut_down: state.shut_down,
            put_wait: self.waits.put.snapshot_of(state.put),
            get_wait: self.waits.get.snapshot_of(state.taken),
        }
    }

    /// The wait times, for waits of this queue that record them.
    pub fn waits(&self) -> &Waits {
        &self.waits
    }

    /// Items a consumer could take now (not granted to anyone).
    pub fn size(&self) -> u64 {
        self.state.lock().available()
    }

    /// True when `put_nowait` would find no room.
    pub fn is_full(&self) -> bool {
        self.state.lock().free_slots(self.capacity) == 0
    }
}

/// How a waiter in line stands: granted (it now holds the grant), given up
/// for `reason` (shutdown, timeout), or still waiting.
enum InLine {
    Granted,
    GaveUp(Refusal),
    Waiting,
}

/// Looks where a waiter in `line` stands; one that gives up leaves the line
/// (taking a grant that raced in instead).
fn look_in_line<T: Item>(
    queue: &Queue<T>,
    line: Line,
    id: u64,
    waiter: &Waiter,
    deadline: Deadline,
) -> InLine {
    if waiter.is_granted() && waiter.take() {
        return InLine::Granted;
    }
    let reason = if line != Line::Joiners && queue.is_shut_down() {
        Refusal::ShutDown
    } else if deadline.passed(queue.clock()) {
        Refusal::TimedOut
    } else {
        return InLine::Waiting;
    };
    if queue.settle(line, id, waiter) {
        InLine::Granted
    } else {
        InLine::GaveUp(reason)
    }
}

/// `put`: stores an item, waiting for room in FIFO order if the queue is
/// full and its overflow policy is to block. Ready with the item an overflow
/// policy discarded, if any (the new one, or an old one), for `on_drop`.
/// A put whose wait runs out is `TimedOut`; one allowed no wait, `Busy`.
pub struct Put<Q: Deref<Target = Queue<T>>, T: Item> {
    queue: Q,
    item: Option<T>,
    deadline: Deadline,
    /// The waiter's id in line, the waiter, and when it queued.
    queued: Option<(u64, Arc<Waiter>, u64)>,
    /// Granted a slot, not yet used.
    holds_slot: bool,
}

impl<Q: Deref<Target = Queue<T>>, T: Item> Put<Q, T> {
    /// `timeout_ns`: None waits as long as it takes, 0 allows no wait.
    pub fn new(queue: Q, item: T, timeout_ns: Option<u64>) -> Self {
        let deadline = Deadline::after(queue.clock(), timeout_ns);
        Self {
            queue,
            item: Some(item),
            deadline,
            queued: None,
            holds_slot: false,
        }
    }

    /// The queue, as the wait holds it.
    pub fn queue(&self) -> &Q {
        &self.queue
    }

    /// The item the put still holds (for the garbage collector).
    pub fn item(&self) -> Option<&T> {
        self.item.as_ref()
    }

    /// Lets go of the item of a put that is over.
    pub fn take_item(&mut self) -> Option<T> {
        self.item.take()
    }

    fn put_with_slot(&mut self) -> Poll<Outcome<Option<T>, T::Error>> {
        self.holds_slot = false;
        let Some(item) = self.item.take() else {
            self.queue.release_slot();
            return Poll::Ready(Err(Refusal::ShutDown));
        };
        Poll::Ready(match self.queue.put_reserved_located(item) {
            Ok(Offer::ShutDown(_)) => Err(Refusal::ShutDown),
            Ok(_) => Ok(None),
            Err(err) => Err(Refusal::Failed(err)),
        })
    }
}

impl<Q: Deref<Target = Queue<T>>, T: Item> Wait for Put<Q, T> {
    type Output = Outcome<Option<T>, T::Error>;

    fn poll(&mut self, waker: Option<&Waker>) -> Poll<Self::Output> {
        if let Some((id, waiter, since_ns)) = &self.queued {
            match look_in_line(&self.queue, Line::Putters, *id, waiter, self.deadline) {
                InLine::Waiting => return Poll::Pending(self.deadline.sleep(self.queue.clock())),
                InLine::Granted => {
                    let waited = self.queue.clock().now_ns().saturating_sub(*since_ns);
                    self.queued = None;
                    let put = self.put_with_slot();
                    if matches!(put, Poll::Ready(Ok(_))) {
                        self.queue.waits.put.record(waited);
                    }
                    return put;
                }
                InLine::GaveUp(reason) => {
                    self.queued = None;
                    return Poll::Ready(Err(reason.widen()));
                }
            }
        }
        let Some(item) = self.item.take() else {
            return Poll::Ready(Err(Refusal::ShutDown));
        };
        let queue = &*self.queue;
        let can_wait = queue.overflow() == Overflow::Block && self.deadline != Deadline::Now;
        let item = match queue.offer_located(item, can_wait) {
            Err(err) => return Poll::Ready(Err(Refusal::Failed(err))),
            Ok(Offer::Stored | Offer::Stale(_)) => return Poll::Ready(Ok(None)),
            Ok(Offer::Dropped(item)) => return Poll::Ready(Ok(Some(item))),
            Ok(Offer::Full(_)) => {
                return Poll::Ready(Err(Refusal::Busy {
                    retry_after_ns: None,
                }))
            }
            Ok(Offer::ShutDown(_)) => return Poll::Ready(Err(Refusal::ShutDown)),
            Ok(Offer::MustWait(item)) => item,
        };
        self.item = Some(item);
        let Some(waker) = waker else {
            return Poll::Pending(None);
        };
        match queue.join_line(
            Line::Putters,
            waker,
            matches!(self.deadline, Deadline::At(_)),
        ) {
            (Enqueued::Granted, _) => self.put_with_slot(),
            (Enqueued::ShutDown, _) => Poll::Ready(Err(Refusal::ShutDown)),
            (Enqueued::Queued(id), waiter) => {
                self.queued = Some((id, waiter, queue.clock().now_ns()));
                // Even if granted in line already, it resumes behind those
                // granted before it: its driver polls again once woken.
                Poll::Pending(self.deadline.sleep(self.queue.clock()))
            }
        }
    }

    fn abandon(&mut self) {
        if let Some((id, waiter, _)) = self.queued.take() {
            self.queue.abandon(Line::Putters, id, &waiter);
        }
        if std::mem::take(&mut self.holds_slot) {
            self.queue.release_slot();
        }
    }
}

impl<Q: Deref<Target = Queue<T>>, T: Item> Drop for Put<Q, T> {
    fn drop(&mut self) {
        self.abandon();
    }
}

/// `get`: takes the next item, with its number (items are numbered in the
/// order they leave), waiting for one in FIFO order. `ShutDown` once the
/// queue is shut down and empty; `TimedOut` when the wait runs out; `Busy`
/// when no wait was allowed and there was nothing.
pub struct Get<Q: Deref<Target = Queue<T>>, T: Item> {
    queue: Q,
    deadline: Deadline,
    /// The waiter's id in line, the waiter, and when it queued.
    queued: Option<(u64, Arc<Waiter>, u64)>,
}

impl<Q: Deref<Target = Queue<T>>, T: Item> Get<Q, T> {
    pub fn new(queue: Q, timeout_ns: Option<u64>) -> Self {
        let deadline = Deadline::after(queue.clock(), timeout_ns);
        Self {
            queue,
            deadline,
            queued: None,
        }
    }

    /// The queue, as the wait holds it.
    pub fn queue(&self) -> &Q {
        &self.queue
    }

    /// Takes the item a grant reserved; an immediate shutdown may have
    /// removed it meanwhile.
    fn take_granted(&self) -> Poll<Outcome<(u64, T)>> {
        let (number, items) = self.queue.take_reserved_numbered(1);
        Poll::Ready(match items.into_iter().next() {
            Some(item) => Ok((number, item)),
            None => Err(Refusal::ShutDown),
        })
    }
}

impl<Q: Deref<Target = Queue<T>>, T: Item> Wait for Get<Q, T> {
    type Output = Outcome<(u64, T)>;

    fn poll(&mut self, waker: Option<&Waker>) -> Poll<Self::Output> {
        let queue = &*self.queue;
        if let Some((id, waiter, since_ns)) = &self.queued {
            let waited = queue.clock().now_ns().saturating_sub(*since_ns);
            let got = match look_in_line(queue, Line::Getters, *id, waiter, self.deadline) {
                InLine::Waiting => return Poll::Pending(self.deadline.sleep(queue.clock())),
                InLine::Granted => {
                    self.queued = None;
                    self.take_granted()
                }
                InLine::GaveUp(reason) => {
                    self.queued = None;
                    // Out of line: an item put back (a batch letting go) is
                    // still there for the taking.
                    Poll::Ready(match queue.take_one_numbered() {
                        Take::One(numbered) => Ok(numbered),
                        _ => Err(reason),
                    })
                }
            };
            if matches!(got, Poll::Ready(Ok(_))) {
                queue.waits.get.record(waited);
            }
            return got;
        }
        match queue.take_one_numbered() {
            Take::One(numbered) => return Poll::Ready(Ok(numbered)),
            Take::ShutDown => return Poll::Ready(Err(Refusal::ShutDown)),
            Take::Empty => {}
        }
        if self.deadline.passed(queue.clock()) {
            return Poll::Ready(Err(Refusal::Busy {
                retry_after_ns: None,
            }));
        }
        let Some(waker) = waker else {
            return Poll::Pending(None);
        };
        match queue.join_line(
            Line::Getters,
            waker,
            matches!(self.deadline, Deadline::At(_)),
        ) {
            (Enqueued::Granted, _) => self.take_granted(),
            (Enqueued::ShutDown, _) => Poll::Ready(Err(Refusal::ShutDown)),
            (Enqueued::Queued(id), waiter) => {
                self.queued = Some((id, waiter, queue.clock().now_ns()));
                // Even if granted in line already, it resumes behind those
                // granted before it: its driver polls again once woken.
                Poll::Pending(self.deadline.sleep(self.queue.clock()))
            }
        }
    }

    fn abandon(&mut self) {
        if let Some((id, waiter, _)) = self.queued.take() {
            self.queue.abandon(Line::Getters, id, &waiter);
        }
    }
}

impl<Q: Deref<Target = Queue<T>>, T: Item> Drop for Get<Q, T> {
    fn drop(&mut self) {
        self.abandon();
    }
}

/// `join`: waits until every item put has been marked done; `TimedOut` if
/// the wait runs out first.
pub struct Join<Q: Deref<Target = Queue<T>>, T: Item> {
    queue: Q,
    deadline: Deadline,
    queued: Option<(u64, Arc<Waiter>)>,
}

impl<Q: Deref<Target = Queue<T>>, T: Item> Join<Q, T> {
    pub fn new(queue: Q, timeout_ns: Option<u64>) -> Self {
        let deadline = Deadline::after(queue.clock(), timeout_ns);
        Self {
            queue,
            deadline,
            queued: None,
        }
    }

    /// The queue, as the wait holds it.
    pub fn queue(&self) -> &Q {
        &self.queue
    }
}

impl<Q: Deref<Target = Queue<T>>, T: Item> Wait for Join<Q, T> {
    type Output = Outcome<()>;

    fn poll(&mut self, waker: Option<&Waker>) -> Poll<Self::Output> {
        let queue = &*self.queue;
        if let Some((id, waiter)) = &self.queued {
            let outcome = match look_in_line(queue, Line::Joiners, *id, waiter, self.deadline) {
                InLine::Waiting => return Poll::Pending(self.deadline.sleep(queue.clock())),
                InLine::Granted => Ok(()),
                InLine::GaveUp(reason) => Err(reason),
            };
            self.queued = None;
            return Poll::Ready(outcome);
        }
        if queue.unfinished() == 0 {
            return Poll::Ready(Ok(()));
        }
        if self.deadline.passed(queue.clock()) {
            return Poll::Ready(Err(Refusal::TimedOut));
        }
        let Some(waker) = waker else {
            return Poll::Pending(None);
        };
        match queue.join_line(
            Line::Joiners,
            waker,
            matches!(self.deadline, Deadline::At(_)),
        ) {
            (Enqueued::Granted | Enqueued::ShutDown, _) => Poll::Ready(Ok(())),
            (Enqueued::Queued(id), waiter) => {
                self.queued = Some((id, waiter));
                // Even if granted in line already, it resumes behind those
                // granted before it: its driver polls again once woken.
                Poll::Pending(self.deadline.sleep(self.queue.clock()))
            }
        }
    }

    fn abandon(&mut self) {
        if let Some((id, waiter)) = self.queued.take() {
            self.queue.abandon(Line::Joiners, id, &waiter);
        }
    }
}

impl<Q: Deref<Target = Queue<T>>, T: Item> Drop for Join<Q, T> {
    fn drop(&mut self) {
        self.abandon();
    }
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
