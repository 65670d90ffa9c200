//! One waiting caller: how much it asked for, how to wake it, and who owns its
//! grant once the grant and a cancellation race each other.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use super::clock::OnAdvance;
use super::wait::Waker;

const WAITING: u8 = 0;
const GRANTED: u8 = 1;
const TAKEN: u8 = 2;
const RETURNED: u8 = 3;

/// A waiter's life: `WAITING`, then (once the core has moved it out of the
/// wait list and counted its weight as held) `GRANTED`, then exactly one of
/// `TAKEN` (the caller got it) or `RETURNED` (the weight went back). The last
/// step is a compare-and-swap, so a grant racing a cancellation is settled
/// once: never lost, never counted twice.
pub struct Waiter {
    pub weight: u64,
    state: AtomicU8,
    waker: Waker,
    /// For a bucket: when the turn it was granted ends, in the clock's
    /// nanoseconds. A grant given back returns only what is still ahead.
    slot_end_ns: AtomicU64,
    /// For a bucket: the latest time its turn may come (`NEVER`: no bound).
    deadline_ns: AtomicU64,
    /// For a bucket: set, with the wait it would need, when a new rate
    /// moved its turn past its deadline and it left the queue, refused.
    refused_ns: AtomicU64,
}

/// No deadline, or not refused.
pub const NEVER: u64 = u64::MAX;

impl Waiter {
    pub fn new(weight: u64, waker: &Waker) -> Arc<Self> {
        Arc::new(Self {
            weight,
            state: AtomicU8::new(WAITING),
            waker: Arc::clone(waker),
            slot_end_ns: AtomicU64::new(0),
            deadline_ns: AtomicU64::new(NEVER),
            refused_ns: AtomicU64::new(NEVER),
        })
    }

    pub fn set_deadline_ns(&self, deadline_ns: u64) {
        self.deadline_ns.store(deadline_ns, Ordering::Release);
    }

    pub fn deadline_ns(&self) -> u64 {
        self.deadline_ns.load(Ordering::Acquire)
    }

    /// Settles a waiter that its core took out of the wait list as refused
    /// (it was never granted). Returns true if the caller must be woken to
    /// learn so, with `notify_refused`, once the core's lock is released:
    /// waking an event loop's caller calls into Python.
    pub fn refuse(&self, retry_after_ns: u64) -> bool {
        self.refused_ns
            .store(retry_after_ns.min(NEVER - 1), Ordering::Release);
        self.give_back()
    }

    /// Wakes a refused waiter to see its refusal.
    pub fn notify_refused(&self) {
        self.waker.notify();
    }

    /// The wait a refused waiter would have needed, or None.
    pub fn refused(&self) -> Option<u64> {
        let ns = self.refused_ns.load(Ordering::Acquire);
        (ns != NEVER).then_some(ns)
    }

    pub fn set_slot_end_ns(&self, end_ns: u64) {
        self.slot_end_ns.store(end_ns, Ordering::Release);
    }

    pub fn slot_end_ns(&self) -> u64 {
        self.slot_end_ns.load(Ordering::Acquire)
    }

    /// True once a granter has marked this waiter; the caller may take it.
    pub fn is_granted(&self) -> bool {
        self.state.load(Ordering::Acquire) == GRANTED
    }

    /// The granter's mark. Fails if the waiter already settled (it gave the
    /// grant back after finding itself out of the list).
    fn mark_granted(&self) -> bool {
        self.settle(WAITING, GRANTED)
    }

    /// Claims the grant for the caller. Only valid once the waiter is known to
    /// be out of the wait list by a grant (withdrawal failed, or `is_granted`).
    pub fn take(&self) -> bool {
        self.settle(WAITING, TAKEN) || self.settle(GRANTED, TAKEN)
    }

    /// Claims the grant for giving back; the caller must then release `weight`.
    pub fn give_back(&self) -> bool {
        self.settle(WAITING, RETURNED) || self.settle(GRANTED, RETURNED)
    }

    fn settle(&self, from: u8, to: u8) -> bool {
        self.state
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Wakes a waiter that is still waiting so that it looks again (its turn
    /// may have moved, the queue shut down); it is not granted anything.
    pub fn kick(&self) {
        if self.state.load(Ordering::Acquire) == WAITING {
            self.waker.notify();
        }
    }

    /// Marks a granted waiter and wakes it. Returns the weight to give back
    /// when the waiter could not be reached.
    pub fn wake_granted(&self) -> u64 {
        if !self.mark_granted() {
            return 0;
        }
        if self.waker.notify() || !self.give_back() {
            0
        } else {
            self.weight
        }
    }
}

/// A manual clock moved: a waiter with a deadline looks again.
impl OnAdvance for Waiter {
    fn clock_advanced(&self) {
        self.kick();
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::core::wait::Notify;

    /// A waker that counts its calls and answers as told.
    #[derive(Default)]
    pub struct Bell {
        pub rings: std::sync::atomic::AtomicU32,
        pub unreachable: bool,
    }

    impl Notify for Bell {
        fn notify(&self) -> bool {
            self.rings.fetch_add(1, Ordering::SeqCst);
            !self.unreachable
        }
    }

    pub fn bell() -> Waker {
        Arc::new(Bell::default())
    }

    pub fn unreachable() -> Waker {
        Arc::new(Bell {
            unreachable: true,
            ..Bell::default()
        })
    }

    #[test]
    fn a_grant_is_settled_once_between_taker_and_canceller() {
        let waiter = Waiter::new(2, &bell());
        assert_eq!(waiter.wake_granted(), 0);
        assert!(waiter.is_granted());
        assert!(waiter.take());
        assert!(!waiter.give_back());
    }

    #[test]
    fn a_canceller_that_wins_before_the_mark_keeps_the_granter_quiet() {
        let waiter = Waiter::new(1, &bell());
        assert!(waiter.give_back());
        assert_eq!(waiter.wake_granted(), 0);
        assert!(!waiter.is_granted());
        assert!(!waiter.take());
    }

    #[test]
    fn an_unreachable_waiter_hands_its_weight_back_once() {
        let waiter = Waiter::new(3, &unreachable());
        assert_eq!(waiter.wake_granted(), 3);
        assert!(!waiter.take());
        assert!(!waiter.give_back());
    }
}
