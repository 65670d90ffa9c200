//! A batch: up to `max_items` items of a queue taken in one go. It waits (up
//! to its timeout) for a first item, then lingers for more, as Kafka's
//! `linger.ms` does: `linger` counts from the batch's first item, 0 takes
//! what is there, None waits until the batch is full (or the queue shuts
//! down).
//!
//! Items are reserved as they come and stay in the queue, within its bound,
//! until the batch is taken; a batch that is abandoned lets go of them, and
//! they go to the next consumer in line, in order.

use std::ops::Deref;
use std::sync::Arc;

use super::queue::{Enqueued, Item, Line, Queue};
use super::wait::{Deadline, Outcome, Poll, Refusal, Wait, Waker};
use super::waiter::Waiter;

pub struct Batch<Q: Deref<Target = Queue<T>>, T: Item> {
    queue: Q,
    max_items: u64,
    linger_ns: Option<u64>,
    /// For the first item.
    deadline: Deadline,
    /// Set by the first item.
    linger_ends: Option<Deadline>,
    reserved: u64,
    queued: Option<(u64, Arc<Waiter>)>,
    /// When the batch first queued for an item (its items' wait starts).
    since_ns: Option<u64>,
}

impl<Q: Deref<Target = Queue<T>>, T: Item> Batch<Q, T> {
    /// `max_items` must be 1 or more. `timeout_ns` bounds the wait for the
    /// first item (None: no bound, 0: none allowed).
    pub fn new(queue: Q, max_items: u64, linger_ns: Option<u64>, timeout_ns: Option<u64>) -> Self {
        let deadline = Deadline::after(queue.clock(), timeout_ns);
        Self {
            queue,
            max_items: max_items.max(1),
            linger_ns,
            deadline,
            linger_ends: None,
            reserved: 0,
            queued: None,
            since_ns: None,
        }
    }

    /// The queue, as the wait holds it.
    pub fn queue(&self) -> &Q {
        &self.queue
    }

    /// Items reserved so far.
    #[cfg(test)]
    pub fn reserved(&self) -> u64 {
        self.reserved
    }

    /// Counts in a reservation the line has granted this batch.
    fn claim_grant(&mut self) {
        if let Some((_, waiter)) = &self.queued {
            if waiter.is_granted() && waiter.take() {
                self.queued = None;
                self.reserved += 1;
            }
        }
    }

    /// Leaves the line; a grant that raced in is kept if there is room for
    /// it, and given back otherwise.
    fn leave_line(&mut self) {
        if let Some((id, waiter)) = self.queued.take() {
            if self.queue.settle(Line::Getters, id, &waiter) {
                if self.reserved < self.max_items {
                    self.reserved += 1;
                } else {
                    self.queue.unreserve(1);
                }
            }
        }
    }

    fn finish(&mut self) -> Poll<Outcome<(u64, Vec<T>)>> {
        self.leave_line();
        let reserved = std::mem::take(&mut self.reserved);
        let (first, items) = self.queue.take_reserved_numbered(reserved);
        if let Some(since_ns) = self.since_ns {
            let waited = self.queue.clock().now_ns().saturating_sub(since_ns);
            self.queue
                .waits()
                .get
                .record_many(waited, items.len() as u64);
        }
        // An immediate shutdown may have removed the items meanwhile.
        Poll::Ready(if items.is_empty() {
            Err(Refusal::ShutDown)
        } else {
            Ok((first, items))
        })
    }

    /// Ends a batch that got nothing; a grant that raced in makes it one.
    fn give_up(&mut self, reason: Refusal) -> Poll<Outcome<(u64, Vec<T>)>> {
        self.leave_line();
        if self.reserved > 0 {
            return self.finish();
        }
        Poll::Ready(Err(reason))
    }
}

impl<Q: Deref<Target = Queue<T>>, T: Item> Wait for Batch<Q, T> {
    type Output = Outcome<(u64, Vec<T>)>;

    fn poll(&mut self, waker: Option<&Waker>) -> Poll<Self::Output> {
        loop {
            self.claim_grant();
            let queue = &*self.queue;
            let clock = queue.clock();
            self.reserved += queue.reserve_now(self.max_items - self.reserved);
            if self.reserved > 0 && self.linger_ends.is_none() {
                self.linger_ends = Some(Deadline::after(clock, self.linger_ns));
            }
            if self.reserved > 0 {
                let full = self.reserved >= self.max_items;
                let lingered = self.linger_ends.is_some_and(|end| end.passed(clock));
                if full || lingered || queue.is_shut_down() {
                    return self.finish();
                }
            } else if queue.is_shut_down() {
                return self.give_up(Refusal::ShutDown);
            } else if self.deadline.passed(clock) {
                let reason = if self.deadline == Deadline::Now {
                    Refusal::Busy {
                        retry_after_ns: None,
                    }
                } else {
                    Refusal::TimedOut
                };
                return self.give_up(reason);
            }
            let Some(waker) = waker else {
                return Poll::Pending(None);
            };
            if self.queued.is_none() {
                let watch = self.reserved > 0 || matches!(self.deadline, Deadline::At(_));
                let (enqueued, waiter) = queue.join_line(Line::Getters, waker, watch);
                match enqueued {
                    Enqueued::Granted => {
                        self.reserved += 1;
                        continue;
                    }
                    // Looked at again at the top: a shutdown ends the batch.
                    Enqueued::ShutDown => continue,
                    Enqueued::Queued(id) => {
                        self.queued = Some((id, waiter));
                        self.since_ns.get_or_insert_with(|| clock.now_ns());
                    }
                }
            }
            let sleep = match self.linger_ends {
                Some(end) => end.sleep(clock),
                None => self.deadline.sleep(clock),
            };
            return Poll::Pending(sleep);
        }
    }

    fn abandon(&mut self) {
        if let Some((id, waiter)) = self.queued.take() {
            self.queue.abandon(Line::Getters, id, &waiter);
        }
        let reserved = std::mem::take(&mut self.reserved);
        if reserved > 0 {
            self.queue.unreserve(reserved);
        }
    }
}

impl<Q: Deref<Target = Queue<T>>, T: Item> Drop for Batch<Q, T> {
    fn drop(&mut self) {
        self.abandon();
    }
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
