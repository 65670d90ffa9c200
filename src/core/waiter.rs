//! One waiting caller: how much it asked for, how to wake it, and who owns its
//! grant once the grant and a cancellation race each other.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::Thread;
use std::time::Duration;

/// How often a parked thread looks up to see if it was interrupted.
const INTERRUPT_POLL: Duration = Duration::from_millis(50);

/// What a parked thread does after looking at where its wait stands.
pub enum Look<R> {
    /// The wait is over, with this answer.
    Done(R),
    /// Sleep at most this long (None: until woken) and look again.
    Sleep(Option<Duration>),
}

/// Completes a waiter that is not a parked thread (an asyncio future, say).
/// Called without any core lock held. Returns `false` when the waiter can no
/// longer be reached (its event loop has closed): its grant is then given back.
pub trait Notify {
    fn notify(&self) -> bool;
}

/// A waiter that only a parked thread can wait on.
impl Notify for () {
    fn notify(&self) -> bool {
        true
    }
}

pub enum Wake<F> {
    Thread(Thread),
    Future(F),
}

const WAITING: u8 = 0;
const GRANTED: u8 = 1;
const TAKEN: u8 = 2;
const RETURNED: u8 = 3;

/// A waiter's life: `WAITING`, then (once the core has moved it out of the
/// wait list and counted its weight as held) `GRANTED`, then exactly one of
/// `TAKEN` (the caller got it) or `RETURNED` (the weight went back). The last
/// step is a compare-and-swap, so a grant racing a cancellation is settled
/// once: never lost, never counted twice.
pub struct Waiter<F> {
    pub weight: u64,
    state: AtomicU8,
    pub wake: Wake<F>,
}

impl<F> Waiter<F> {
    pub fn for_this_thread(weight: u64) -> Arc<Self> {
        Arc::new(Self {
            weight,
            state: AtomicU8::new(WAITING),
            wake: Wake::Thread(std::thread::current()),
        })
    }

    pub fn for_future(weight: u64, future: F) -> Arc<Self> {
        Arc::new(Self {
            weight,
            state: AtomicU8::new(WAITING),
            wake: Wake::Future(future),
        })
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
}

impl<F> Waiter<F> {
    /// Parks the calling thread, whose waiter this is, until `look` ends the
    /// wait. `interrupted` is asked every few milliseconds while no grant has
    /// come; when it says stop the answer is None, and the caller withdraws
    /// the waiter (giving back a grant that raced in).
    pub fn park<R>(
        &self,
        mut look: impl FnMut() -> Look<R>,
        mut interrupted: impl FnMut() -> bool,
    ) -> Option<R> {
        loop {
            let sleep = match look() {
                Look::Done(answer) => return Some(answer),
                Look::Sleep(most) => most.map_or(INTERRUPT_POLL, |d| d.min(INTERRUPT_POLL)),
            };
            std::thread::park_timeout(sleep);
            if !self.is_granted() && interrupted() {
                return None;
            }
        }
    }
}

impl<F: Notify> Waiter<F> {
    /// Wakes a waiter that is still waiting so that it looks again (its turn
    /// may have moved); it is not granted anything.
    pub fn kick(&self) {
        if self.state.load(Ordering::Acquire) != WAITING {
            return;
        }
        match &self.wake {
            Wake::Thread(thread) => thread.unpark(),
            Wake::Future(future) => {
                future.notify();
            }
        }
    }

    /// Marks a granted waiter and wakes it. Returns the weight to give back
    /// when the waiter could not be reached.
    pub fn wake_granted(&self) -> u64 {
        if !self.mark_granted() {
            return 0;
        }
        match &self.wake {
            Wake::Thread(thread) => {
                thread.unpark();
                0
            }
            Wake::Future(future) => {
                if future.notify() || !self.give_back() {
                    0
                } else {
                    self.weight
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Unreachable;
    impl Notify for Unreachable {
        fn notify(&self) -> bool {
            false
        }
    }

    #[test]
    fn a_grant_is_settled_once_between_taker_and_canceller() {
        let waiter = Waiter::<()>::for_this_thread(2);
        assert_eq!(waiter.wake_granted(), 0);
        assert!(waiter.is_granted());
        assert!(waiter.take());
        assert!(!waiter.give_back());
    }

    #[test]
    fn a_canceller_that_wins_before_the_mark_keeps_the_granter_quiet() {
        let waiter = Waiter::<()>::for_this_thread(1);
        assert!(waiter.give_back());
        assert_eq!(waiter.wake_granted(), 0);
        assert!(!waiter.is_granted());
        assert!(!waiter.take());
    }

    #[test]
    fn an_unreachable_waiter_hands_its_weight_back_once() {
        let waiter = Waiter::for_future(3, Unreachable);
        assert_eq!(waiter.wake_granted(), 3);
        assert!(!waiter.take());
        assert!(!waiter.give_back());
    }
}
