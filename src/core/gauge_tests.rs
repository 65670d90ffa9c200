use super::*;
use crate::core::clock::ManualClock;
use crate::core::wait::block_on;
use crate::core::waiter::tests::{bell, unreachable};
use std::sync::atomic::AtomicI64;
use std::sync::Barrier;
use std::thread;

type ThreadGauge = Gauge;

const MS: u64 = 1_000_000;

impl Gauge {
    /// An attempt by a caller that would wait if it failed.
    fn try_acquire_waiting(&self, n: u64) -> Admission {
        self.try_acquire(n, Patience::Waits)
    }
}

/// Waits in this thread, as `acquire_blocking` does.
fn acquire_blocking(gauge: &Gauge, n: u64, timeout_ns: Option<u64>) -> Outcome<()> {
    block_on(&mut Acquire::new(gauge, n, timeout_ns), None).expect("not interrupted")
}

/// Queues a waiter of `weight`; the test fails if it was not queued.
fn queue(gauge: &ThreadGauge, weight: u64) -> (u64, Arc<Waiter>) {
    let waiter = Waiter::new(weight, &bell());
    match gauge.enqueue(&waiter) {
        Enqueued::Queued(id) => (id, waiter),
        other => panic!("expected the waiter to queue, got {other:?}"),
    }
}

#[test]
fn admits_up_to_the_limit_then_reports_busy() {
    let gauge = ThreadGauge::new(2);
    assert_eq!(gauge.try_acquire_waiting(1), Admission::Acquired);
    assert_eq!(gauge.try_acquire_waiting(1), Admission::Acquired);
    assert_eq!(gauge.try_acquire_waiting(1), Admission::Busy);
    assert_eq!(gauge.snapshot().in_flight, 2);
}

#[test]
fn weight_above_a_nonzero_limit_is_refused_but_a_closed_gauge_waits() {
    let gauge = ThreadGauge::new(3);
    assert_eq!(
        gauge.try_acquire_waiting(4),
        Admission::TooLarge { limit: 3 }
    );
    let closed = ThreadGauge::new(0);
    assert_eq!(closed.try_acquire_waiting(1), Admission::Busy);
}

#[test]
fn releasing_more_than_is_held_is_an_error_and_changes_nothing() {
    let gauge = ThreadGauge::new(2);
    assert_eq!(gauge.try_acquire_waiting(1), Admission::Acquired);
    assert_eq!(gauge.release(2), Err(OverRelease { held: 1 }));
    assert_eq!(gauge.snapshot().in_flight, 1);
}

#[test]
fn a_heavy_waiter_at_the_head_is_not_overtaken() {
    let gauge = ThreadGauge::new(3);
    assert_eq!(gauge.try_acquire_waiting(2), Admission::Acquired);
    let (_, heavy) = queue(&gauge, 3);
    let (_, light) = queue(&gauge, 1);
    // One permit is free, but the light waiter must stay behind the heavy one.
    assert_eq!(gauge.try_acquire_waiting(1), Admission::Busy);
    assert!(!light.is_granted());
    gauge.release(2).unwrap();
    assert!(heavy.is_granted());
    assert!(!light.is_granted());
}

#[test]
fn withdrawing_a_blocking_head_grants_those_behind_it() {
    let gauge = ThreadGauge::new(3);
    assert_eq!(gauge.try_acquire_waiting(2), Admission::Acquired);
    let (heavy_id, heavy) = queue(&gauge, 3);
    let (_, light) = queue(&gauge, 1);
    gauge.abandon(heavy_id, &heavy);
    assert!(light.is_granted());
    assert_eq!(gauge.snapshot().in_flight, 3);
}

#[test]
fn a_grant_that_loses_to_a_cancellation_comes_back() {
    let gauge = ThreadGauge::new(1);
    assert_eq!(gauge.try_acquire_waiting(1), Admission::Acquired);
    let (id, waiter) = queue(&gauge, 1);
    gauge.release(1).unwrap();
    assert!(waiter.is_granted());
    gauge.abandon(id, &waiter);
    let snap = gauge.snapshot();
    assert_eq!((snap.in_flight, snap.waiting, snap.cancelled), (0, 0, 1));
}

#[test]
fn a_grant_given_back_after_someone_released_it_does_not_underflow() {
    let gauge = ThreadGauge::new(1);
    assert_eq!(gauge.try_acquire_waiting(1), Admission::Acquired);
    let (id, waiter) = queue(&gauge, 1);
    gauge.release(1).unwrap();
    // The waiter's permit is released by someone else before it resumes ...
    gauge.release(1).unwrap();
    // ... and then the waiter is cancelled and gives it back again.
    gauge.abandon(id, &waiter);
    let snap = gauge.snapshot();
    assert_eq!((snap.in_flight, snap.waiting), (0, 0));
    assert_eq!(gauge.try_acquire_waiting(1), Admission::Acquired);
}

#[test]
fn a_timeout_that_loses_to_the_grant_keeps_the_permit() {
    let gauge = ThreadGauge::new(1);
    assert_eq!(gauge.try_acquire_waiting(1), Admission::Acquired);
    let (id, waiter) = queue(&gauge, 1);
    gauge.release(1).unwrap();
    assert!(gauge.settle_timeout(id, &waiter));
    assert_eq!(gauge.snapshot().in_flight, 1);
}

#[test]
fn raising_the_limit_grants_waiters_at_once_and_lowering_waits_for_releases() {
    let gauge = ThreadGauge::new(1);
    assert_eq!(gauge.try_acquire_waiting(1), Admission::Acquired);
    let (_, waiter) = queue(&gauge, 1);
    gauge.set_limit(2);
    assert!(waiter.is_granted());
    assert!(gauge.take_granted(&waiter));
    gauge.set_limit(1);
    assert_eq!(gauge.snapshot().in_flight, 2);
    gauge.release(1).unwrap();
    assert_eq!(gauge.try_acquire_waiting(1), Admission::Busy);
    gauge.release(1).unwrap();
    assert_eq!(gauge.try_acquire_waiting(1), Admission::Acquired);
}

#[test]
fn a_waiter_heavier_than_a_lowered_limit_is_passed_over_until_the_limit_rises() {
    let gauge = ThreadGauge::new(2);
    assert_eq!(gauge.try_acquire_waiting(2), Admission::Acquired);
    let (_, heavy) = queue(&gauge, 2);
    let (_, light) = queue(&gauge, 1);
    gauge.set_limit(1);
    gauge.release(2).unwrap();
    // The heavy one could never fit a limit of 1: the light one behind it
    // goes first, and a newcomer finds the permit taken, not the line.
    assert!(!heavy.is_granted() && light.is_granted());
    assert!(gauge.take_granted(&light));
    assert_eq!(gauge.try_acquire(1, Patience::FailFast), Admission::Busy);
    gauge.release(1).unwrap();
    assert_eq!(
        gauge.try_acquire(1, Patience::FailFast),
        Admission::Acquired
    );
    gauge.release(1).unwrap();
    assert_eq!(gauge.try_acquire_waiting(1), Admission::Acquired);
    let (_, later) = queue(&gauge, 1);
    // Back to 2: the heavy one has its place again, ahead of `later`.
    gauge.set_limit(2);
    assert!(!heavy.is_granted() && !later.is_granted());
    gauge.release(1).unwrap();
    assert!(heavy.is_granted() && !later.is_granted());
    assert!(gauge.take_granted(&heavy));
    assert_eq!(gauge.snapshot().in_flight, 2);
    gauge.release(2).unwrap();
    assert!(later.is_granted());
}

#[test]
fn a_limit_of_zero_holds_every_waiter() {
    let gauge = ThreadGauge::new(1);
    assert_eq!(gauge.try_acquire_waiting(1), Admission::Acquired);
    let (_, waiter) = queue(&gauge, 1);
    gauge.set_limit(0);
    gauge.release(1).unwrap();
    assert!(!waiter.is_granted());
    assert_eq!(gauge.try_acquire(1, Patience::FailFast), Admission::Busy);
    gauge.set_limit(1);
    assert!(waiter.is_granted());
}

#[test]
fn a_newcomer_queues_behind_granted_waiters_that_have_not_resumed() {
    let gauge = ThreadGauge::new(2);
    assert_eq!(gauge.try_acquire_waiting(2), Admission::Acquired);
    let (_, early) = queue(&gauge, 1);
    gauge.release(2).unwrap();
    assert!(early.is_granted());
    // One permit is free, but `early` has not resumed yet: a caller that
    // would wait goes behind it.
    assert_eq!(gauge.try_acquire_waiting(1), Admission::Busy);
    assert!(gauge.would_wait(1));
    let (_, late) = queue(&gauge, 1);
    assert!(
        late.is_granted(),
        "granted at once, to resume after `early`"
    );
    assert!(gauge.take_granted(&early) && gauge.take_granted(&late));
    assert_eq!(gauge.release(2), Ok(2));
    assert_eq!(gauge.try_acquire_waiting(1), Admission::Acquired);
}

#[test]
fn a_fail_fast_caller_takes_a_free_permit_while_a_granted_waiter_resumes() {
    let gauge = ThreadGauge::new(2);
    assert_eq!(gauge.try_acquire_waiting(2), Admission::Acquired);
    let (_, early) = queue(&gauge, 1);
    gauge.release(2).unwrap();
    // `early` holds its own permit already: taking the free one passes nobody.
    assert_eq!(
        gauge.try_acquire(1, Patience::FailFast),
        Admission::Acquired
    );
    assert!(gauge.take_granted(&early));
    assert_eq!(gauge.snapshot().in_flight, 2);
}

#[test]
fn an_unreachable_waiter_passes_its_grant_to_the_next() {
    let gauge = Gauge::new(1);
    assert_eq!(gauge.try_acquire_waiting(1), Admission::Acquired);
    let dead = Waiter::new(1, &unreachable());
    let alive = Waiter::new(1, &bell());
    gauge.enqueue(&dead);
    gauge.enqueue(&alive);
    gauge.release(1).unwrap();
    assert!(alive.is_granted());
    assert!(!dead.take());
    assert_eq!(gauge.snapshot().in_flight, 1);
}

#[test]
fn blocking_waiters_are_served_in_arrival_order() {
    let gauge = Arc::new(ThreadGauge::new(1));
    assert_eq!(gauge.try_acquire_waiting(1), Admission::Acquired);
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for i in 0..8 {
        let (g, o) = (Arc::clone(&gauge), Arc::clone(&order));
        handles.push(thread::spawn(move || {
            assert_eq!(acquire_blocking(&g, 1, None), Ok(()));
            o.lock().push(i);
            g.release(1).unwrap();
        }));
        // Each thread must be queued before the next one starts.
        while gauge.snapshot().waiting < i + 1 {
            thread::yield_now();
        }
    }
    gauge.release(1).unwrap();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(*order.lock(), (0..8).collect::<Vec<_>>());
}

#[test]
fn a_blocking_wait_times_out_and_leaves_nothing_behind() {
    let gauge = ThreadGauge::new(1);
    assert_eq!(gauge.try_acquire_waiting(1), Admission::Acquired);
    assert_eq!(
        acquire_blocking(&gauge, 1, Some(20 * MS)),
        Err(Refusal::TimedOut)
    );
    let snap = gauge.snapshot();
    assert_eq!((snap.in_flight, snap.waiting, snap.timed_out), (1, 0, 1));
}

#[test]
fn a_wait_allowed_no_time_is_refused_at_once() {
    let gauge = ThreadGauge::new(1);
    assert_eq!(gauge.try_acquire_waiting(1), Admission::Acquired);
    let mut wait = Acquire::new(&gauge, 1, Some(0));
    assert_eq!(
        wait.poll(Some(&bell())),
        Poll::Ready(Err(Refusal::Busy {
            retry_after_ns: None
        }))
    );
    let snap = gauge.snapshot();
    assert_eq!((snap.waiting, snap.rejected), (0, 1));
}

#[test]
fn polled_without_a_waker_a_wait_queues_nothing() {
    let gauge = ThreadGauge::new(1);
    assert_eq!(gauge.try_acquire_waiting(1), Admission::Acquired);
    let mut wait = Acquire::new(&gauge, 1, None);
    assert_eq!(wait.poll(None), Poll::Pending(None));
    assert_eq!(gauge.snapshot().waiting, 0);
    assert_eq!(wait.poll(Some(&bell())), Poll::Pending(None));
    assert_eq!(gauge.snapshot().waiting, 1);
    gauge.release(1).unwrap();
    assert_eq!(wait.poll(Some(&bell())), Poll::Ready(Ok(())));
    assert_eq!(gauge.snapshot().in_flight, 1);
}

#[test]
fn a_timeout_on_a_manual_clock_ends_as_the_clock_moves() {
    let clock = Arc::new(ManualClock::new(0));
    let gauge = Gauge::with_clock(1, clock.clone());
    assert_eq!(gauge.try_acquire_waiting(1), Admission::Acquired);
    let waker = Arc::new(crate::core::waiter::tests::Bell::default());
    let dyn_waker: Waker = waker.clone();
    let mut wait = Acquire::new(&gauge, 1, Some(100 * MS));
    assert_eq!(wait.poll(Some(&dyn_waker)), Poll::Pending(None));
    clock.advance(99 * MS);
    assert_eq!(waker.rings.load(Ordering::SeqCst), 1, "woken to look");
    assert_eq!(wait.poll(Some(&dyn_waker)), Poll::Pending(None));
    clock.advance(MS);
    assert_eq!(
        wait.poll(Some(&dyn_waker)),
        Poll::Ready(Err(Refusal::TimedOut))
    );
    assert_eq!(gauge.snapshot().timed_out, 1);
}

#[test]
fn an_interrupted_blocking_wait_leaves_the_queue() {
    let gauge = ThreadGauge::new(1);
    assert_eq!(gauge.try_acquire_waiting(1), Admission::Acquired);
    let mut stop = || true;
    let check: &mut dyn FnMut() -> bool = &mut stop;
    let mut wait = Acquire::new(&gauge, 1, None);
    assert_eq!(
        block_on(
            &mut wait,
            Some((check, std::time::Duration::from_millis(1)))
        ),
        None
    );
    assert_eq!(gauge.snapshot().waiting, 0);
}

#[test]
fn a_dropped_wait_leaves_the_queue_and_returns_a_grant_that_raced_in() {
    let gauge = ThreadGauge::new(1);
    assert_eq!(gauge.try_acquire_waiting(1), Admission::Acquired);
    let mut wait = Acquire::new(&gauge, 1, None);
    assert_eq!(wait.poll(Some(&bell())), Poll::Pending(None));
    gauge.release(1).unwrap();
    drop(wait);
    let snap = gauge.snapshot();
    assert_eq!((snap.in_flight, snap.waiting, snap.cancelled), (0, 0, 1));
}

#[test]
fn threads_hammering_with_timeouts_never_exceed_the_limit_nor_leak() {
    const LIMIT: u64 = 3;
    let gauge = Arc::new(ThreadGauge::new(LIMIT));
    let inside = Arc::new(AtomicI64::new(0));
    let peak = Arc::new(AtomicI64::new(0));
    let start = Arc::new(Barrier::new(6));
    let handles: Vec<_> = (0..6)
        .map(|t| {
            let (g, inside, peak, start) =
                (gauge.clone(), inside.clone(), peak.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                for i in 0..2000u64 {
                    let n = 1 + (i + t) % 2;
                    let timeout = (i % 3 == 0).then_some(50_000);
                    if acquire_blocking(&g, n, timeout).is_ok() {
                        let now = inside.fetch_add(n as i64, Ordering::SeqCst) + n as i64;
                        peak.fetch_max(now, Ordering::SeqCst);
                        inside.fetch_sub(n as i64, Ordering::SeqCst);
                        g.release(n).unwrap();
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let snap = gauge.snapshot();
    assert_eq!((snap.in_flight, snap.waiting), (0, 0));
    assert!(peak.load(Ordering::SeqCst) <= LIMIT as i64);
    assert!(peak.load(Ordering::SeqCst) >= 2);
}
