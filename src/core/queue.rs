//! The bounded queue: producers wait for room, consumers wait for items, each
//! in FIFO order, on the same waiters as the gauge.
//!
//! A waiting producer is granted a slot (a reservation of room) and a waiting
//! consumer is granted an item (a reservation of one stored item), the way
//! the gauge grants permits: the grant is counted under the lock, and a
//! caller cancelled after its grant gives the reservation back, so the next
//! one in line gets it. No item is ever lost or handed out twice.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use super::sorted::{Layout, Spot};
use super::store::{Order, Store};
use super::waiter::{Look, Notify, Waiter};
use super::waitlist::Waitlist;

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

/// How a wait in a line ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    Granted,
    TimedOut,
    Interrupted,
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

pub struct Queue<T, F> {
    state: Mutex<State<T, F>>,
    maxsize: u64,
    capacity: Capacity,
    overflow: Overflow,
    /// Priority order: items must be located (compared) before insertion.
    sorted: bool,
    counters: Counters,
}

struct State<T, F> {
    store: Store<T>,
    /// Slots granted to waiting producers that have not put their item yet.
    put_reserved: u64,
    /// Items taken so far: the number the next one taken gets.
    taken: u64,
    /// Stored items granted to consumers (waiting getters, lingering batches)
    /// that have not taken them yet. They stay in the store, and so within
    /// the bound, until taken; a consumer that gives up just lets go of them.
    get_reserved: u64,
    putters: Waitlist<Arc<Waiter<F>>>,
    getters: Waitlist<Arc<Waiter<F>>>,
    joiners: Waitlist<Arc<Waiter<F>>>,
    unfinished: u64,
    shut_down: bool,
}

#[derive(Default)]
struct Counters {
    put: AtomicU64,
    got: AtomicU64,
    dropped: AtomicU64,
    rejected: AtomicU64,
}

/// Waiters granted under the lock, to be woken once it is released.
struct Granted<F> {
    putters: Vec<Arc<Waiter<F>>>,
    getters: Vec<Arc<Waiter<F>>>,
    joiners: Vec<Arc<Waiter<F>>>,
}

impl<F> Granted<F> {
    fn is_empty(&self) -> bool {
        self.putters.is_empty() && self.getters.is_empty() && self.joiners.is_empty()
    }
}

impl<T, F> State<T, F> {
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

    fn line(&mut self, line: Line) -> &mut Waitlist<Arc<Waiter<F>>> {
        match line {
            Line::Putters => &mut self.putters,
            Line::Getters => &mut self.getters,
            Line::Joiners => &mut self.joiners,
        }
    }

    /// Grants whatever the queue can give now: room to producers, items to
    /// consumers, and the end of the wait to joiners once all work is done.
    fn grant(&mut self, capacity: Capacity) -> Granted<F> {
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
        Granted {
            putters,
            getters,
            joiners,
        }
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

impl<T, F: Notify> Queue<T, F> {
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
            }),
            maxsize,
            capacity,
            overflow,
            sorted: order == Order::Priority,
            counters: Counters::default(),
        }
    }

    pub fn overflow(&self) -> Overflow {
        self.overflow
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
        let granted = state.grant(self.capacity);
        drop(state);
        self.counters.put.fetch_add(1, Ordering::Relaxed);
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
        let granted = state.grant(self.capacity);
        drop(state);
        self.counters.put.fetch_add(1, Ordering::Relaxed);
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
        self.counters.got.fetch_add(1, Ordering::Relaxed);
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

    /// Takes `count` items this caller holds reservations for. Fewer come
    /// back only if `shutdown(immediate=True)` removed them meanwhile.
    pub fn take_reserved(&self, count: u64) -> Vec<T> {
        self.take_reserved_numbered(count).1
    }

    /// `take_reserved`, with the number of the first item taken.
    pub fn take_reserved_numbered(&self, count: u64) -> (u64, Vec<T>) {
        let mut state = self.state.lock();
        state.get_reserved = state.get_reserved.saturating_sub(count);
        let first = state.taken;
        let items = state.take_items(count);
        let granted = state.grant(self.capacity);
        drop(state);
        self.counters
            .got
            .fetch_add(items.len() as u64, Ordering::Relaxed);
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
    pub fn enqueue(&self, line: Line, waiter: &Arc<Waiter<F>>) -> Enqueued {
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

    /// A waiter stops waiting for `reason` (its time ran out, the queue shut
    /// down). If a grant raced in first, the waiter takes it instead.
    pub fn settle(&self, line: Line, id: u64, waiter: &Waiter<F>, reason: Waited) -> Waited {
        if self.withdraw(line, id) || !waiter.take() {
            reason
        } else {
            Waited::Granted
        }
    }

    /// A waiter is cancelled; a grant that raced in goes back to the line.
    pub fn abandon(&self, line: Line, id: u64, waiter: &Waiter<F>) {
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

    pub fn task_done(&self) -> Result<(), TaskDoneTooOften> {
        let mut state = self.state.lock();
        if state.unfinished == 0 {
            return Err(TaskDoneTooOften);
        }
        state.unfinished -= 1;
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
    fn wake(&self, mut granted: Granted<F>) {
        while !granted.is_empty() {
            let slots: u64 = granted.putters.drain(..).map(|w| w.wake_granted()).sum();
            let items: u64 = granted.getters.drain(..).map(|w| w.wake_granted()).sum();
            for joiner in granted.joiners.drain(..) {
                joiner.wake_granted();
            }
            if slots == 0 && items == 0 {
                break;
            }
            let mut state = self.state.lock();
            state.put_reserved = state.put_reserved.saturating_sub(slots);
            state.get_reserved = state.get_reserved.saturating_sub(items);
            granted = state.grant(self.capacity);
        }
    }

    /// Waits in this thread in `line` until granted, `deadline` passes, the
    /// queue shuts down (producers and consumers), or `interrupted` (asked
    /// every few milliseconds) says to stop.
    pub fn wait_blocking(
        &self,
        line: Line,
        deadline: Option<Instant>,
        interrupted: impl FnMut() -> bool,
    ) -> Waited {
        let waiter = Waiter::for_this_thread(1);
        let id = match self.enqueue(line, &waiter) {
            Enqueued::Granted => return Waited::Granted,
            Enqueued::ShutDown => return Waited::ShutDown,
            Enqueued::Queued(id) => id,
        };
        let look = || {
            if waiter.is_granted() && waiter.take() {
                return Look::Done(Waited::Granted);
            }
            if line != Line::Joiners && self.is_shut_down() {
                return Look::Done(self.settle(line, id, &waiter, Waited::ShutDown));
            }
            let Some(deadline) = deadline else {
                return Look::Sleep(None);
            };
            let now = Instant::now();
            if deadline > now {
                return Look::Sleep(Some(deadline - now));
            }
            Look::Done(self.settle(line, id, &waiter, Waited::TimedOut))
        };
        waiter.park(look, interrupted).unwrap_or_else(|| {
            self.abandon(line, id, &waiter);
            Waited::Interrupted
        })
    }

    /// The shape of a priority store, to `locate` a new item in; None (and
    /// no lock taken) for the other orders.
    pub fn layout(&self) -> Option<Layout> {
        if !self.sorted {
            return None;
        }
        self.state.lock().store.sorted().map(|s| s.layout())
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
            put: c.put.load(Ordering::Relaxed),
            got: c.got.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            shut_down: state.shut_down,
        }
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

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
