// Token counts here are exact binary fractions: equality is the point.
#![allow(clippy::float_cmp)]

use super::*;
use crate::core::clock::ManualClock;
use crate::core::pace::{decimal_fraction, Pace};
use crate::core::wait::block_on;
use crate::core::waiter::tests::bell;

const MS: u64 = 1_000_000;
/// Go's x/time/rate tests step time in d = 100 ms.
const D: u64 = 100 * MS;

fn token_bucket(rate: f64, burst: u64) -> (Arc<Bucket>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(0));
    let pace = Pace::new(decimal_fraction(rate).unwrap(), 1_000_000_000).unwrap();
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    (
        Bucket::new(pace, Shape::Token { burst }, dyn_clock, None),
        clock,
    )
}

fn leaky_bucket(rate: f64, capacity: Option<u64>) -> (Arc<Bucket>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(0));
    let pace = Pace::new(decimal_fraction(rate).unwrap(), 1_000_000_000).unwrap();
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    (
        Bucket::new(pace, Shape::Leaky { capacity }, dyn_clock, None),
        clock,
    )
}

/// Plays an allow table: (time in d, n, expected), moving the clock forward.
fn run(bucket: &Bucket, clock: &ManualClock, table: &[(u64, u64, bool)]) {
    for (step, &(at, n, ok)) in table.iter().enumerate() {
        clock.advance(at * D - clock.now_ns());
        let got = bucket.try_acquire(Key::Shared, n);
        let allowed = got == Attempt::Acquired;
        if n > bucket.most().unwrap_or(u64::MAX) {
            assert!(matches!(got, Attempt::TooLarge { .. }), "step {step}");
            assert!(!ok, "step {step}");
        } else {
            assert_eq!(allowed, ok, "step {step}: allow(t{at}, {n})");
        }
    }
}

#[test]
fn go_allow_table_burst_1() {
    let (bucket, clock) = token_bucket(10.0, 1);
    #[rustfmt::skip]
    run(&bucket, &clock, &[
        (0, 1, true), (0, 1, false), (0, 1, false),
        (1, 1, true), (1, 1, false), (1, 1, false),
        (2, 2, false), (2, 1, true), (2, 1, false),
    ]);
}

#[test]
fn go_allow_table_burst_3() {
    let (bucket, clock) = token_bucket(10.0, 3);
    #[rustfmt::skip]
    run(&bucket, &clock, &[
        (0, 2, true), (0, 2, false), (0, 1, true), (0, 1, false),
        (1, 4, false), (2, 1, true), (3, 1, true), (4, 1, true), (4, 1, true),
        (4, 1, false), (4, 1, false), (9, 3, true),
    ]);
}

fn book(bucket: &Bucket, n: u64, max_wait_ns: Option<u64>) -> (Booking, Arc<Waiter>) {
    let waiter = Waiter::new(n, &bell());
    (bucket.book(&Key::Shared, &waiter, max_wait_ns), waiter)
}

#[test]
fn go_reserve_table_simple() {
    let (bucket, clock) = token_bucket(10.0, 2);
    assert_eq!(book(&bucket, 2, None).0, Booking::Acquired);
    let (second, waiter) = book(&bucket, 2, None);
    assert!(matches!(second, Booking::Queued { due_in_ns, .. } if due_in_ns == 2 * D));
    clock.advance(2 * D);
    bucket.clock_advanced();
    assert!(bucket.take_granted(&waiter));
    clock.advance(D);
    let (third, _) = book(&bucket, 2, None);
    assert!(matches!(third, Booking::Queued { due_in_ns, .. } if due_in_ns == D));
}

#[test]
fn go_reserve_table_max_wait() {
    let (bucket, _clock) = token_bucket(10.0, 2);
    assert_eq!(book(&bucket, 2, Some(D)).0, Booking::Acquired);
    assert!(
        matches!(book(&bucket, 1, Some(D)).0, Booking::Queued { due_in_ns, .. } if due_in_ns == D)
    );
    assert_eq!(
        book(&bucket, 1, Some(D)).0,
        Booking::Refused {
            retry_after_ns: 2 * D
        }
    );
}

#[test]
fn grants_at_saturation_are_exactly_burst_plus_rate_times_time() {
    // 3 per second does not divide a second into whole nanoseconds.
    let (bucket, clock) = token_bucket(3.0, 4);
    let mut granted = 0u64;
    for step in 0..=10_000u64 {
        while bucket.try_acquire(Key::Shared, 1) == Attempt::Acquired {
            granted += 1;
        }
        let elapsed_ns = u128::from(clock.now_ns());
        let expected = 4 + (3 * elapsed_ns / 1_000_000_000) as u64;
        assert_eq!(granted, expected, "at step {step}");
        clock.advance(7_777_777);
    }
}

#[test]
fn retry_after_is_exactly_enough() {
    let (bucket, clock) = token_bucket(3.0, 1);
    assert_eq!(bucket.try_acquire(Key::Shared, 1), Attempt::Acquired);
    let wait = bucket.retry_after_ns(&Key::Shared, 1).unwrap();
    assert_eq!(wait, 333_333_334);
    clock.advance(wait - 1);
    assert!(bucket.try_acquire(Key::Shared, 1) != Attempt::Acquired);
    clock.advance(1);
    assert_eq!(bucket.try_acquire(Key::Shared, 1), Attempt::Acquired);
}

#[test]
fn queued_callers_are_granted_in_order_as_the_clock_moves() {
    let (bucket, clock) = token_bucket(10.0, 1);
    assert_eq!(bucket.try_acquire(Key::Shared, 1), Attempt::Acquired);
    let (_, first) = book(&bucket, 1, None);
    let (_, second) = book(&bucket, 1, None);
    // Later callers go behind the bookings.
    assert!(bucket.try_acquire(Key::Shared, 1) != Attempt::Acquired);
    clock.advance(D);
    assert!(first.is_granted() && !second.is_granted());
    clock.advance(D);
    assert!(second.is_granted());
}

#[test]
fn a_cancelled_booking_moves_those_behind_it_up() {
    let (bucket, clock) = token_bucket(10.0, 1);
    assert_eq!(bucket.try_acquire(Key::Shared, 1), Attempt::Acquired);
    let (Booking::Queued { id, .. }, first) = book(&bucket, 1, None) else {
        panic!("should queue")
    };
    let (
        Booking::Queued {
            id: second_id,
            due_in_ns,
        },
        second,
    ) = book(&bucket, 1, None)
    else {
        panic!("should queue")
    };
    assert_eq!(due_in_ns, 2 * D);
    bucket.abandon(&Key::Shared, id, &first);
    assert_eq!(bucket.due_in_ns(&Key::Shared, second_id), Some(D));
    clock.advance(D);
    assert!(second.is_granted());
    assert_eq!(bucket.snapshot().cancelled, 1);
}

#[test]
fn a_grant_cancelled_before_it_was_taken_gives_its_tokens_back() {
    let (bucket, clock) = token_bucket(10.0, 1);
    assert_eq!(bucket.try_acquire(Key::Shared, 1), Attempt::Acquired);
    let (Booking::Queued { id, .. }, waiter) = book(&bucket, 1, None) else {
        panic!("should queue")
    };
    clock.advance(D);
    assert!(waiter.is_granted());
    bucket.abandon(&Key::Shared, id, &waiter);
    assert_eq!(bucket.try_acquire(Key::Shared, 1), Attempt::Acquired);
}

#[test]
fn a_leaky_bucket_paces_exactly_and_bounds_its_queue() {
    let (bucket, clock) = leaky_bucket(2.0, Some(2));
    assert_eq!(bucket.try_acquire(Key::Shared, 1), Attempt::Acquired);
    // No burst: the next slot is one interval (500 ms) later.
    assert_eq!(
        bucket.try_acquire(Key::Shared, 1),
        Attempt::Later {
            retry_after_ns: 500 * MS
        }
    );
    let (_, a) = book(&bucket, 1, None);
    let (_, b) = book(&bucket, 1, None);
    assert!(matches!(book(&bucket, 1, None).0, Booking::Refused { .. }));
    clock.advance(500 * MS);
    assert!(a.is_granted() && !b.is_granted());
    clock.advance(500 * MS);
    assert!(b.is_granted());
}

#[test]
fn a_leaky_booking_of_n_takes_n_consecutive_slots() {
    let (bucket, clock) = leaky_bucket(10.0, None);
    assert_eq!(bucket.try_acquire(Key::Shared, 3), Attempt::Acquired);
    assert_eq!(
        bucket.try_acquire(Key::Shared, 1),
        Attempt::Later {
            retry_after_ns: 3 * D
        }
    );
    clock.advance(3 * D);
    assert_eq!(bucket.try_acquire(Key::Shared, 1), Attempt::Acquired);
}

#[test]
fn keys_have_their_own_buckets() {
    let (bucket, _clock) = token_bucket(1.0, 1);
    assert_eq!(bucket.try_acquire(Key::Int(1), 1), Attempt::Acquired);
    assert!(bucket.try_acquire(Key::Int(1), 1) != Attempt::Acquired);
    assert_eq!(bucket.try_acquire(Key::text("a"), 1), Attempt::Acquired);
    assert_eq!(bucket.try_acquire(Key::Shared, 1), Attempt::Acquired);
}

#[test]
fn tokens_count_down_with_bookings_and_refill_with_time() {
    let (bucket, clock) = token_bucket(10.0, 2);
    assert_eq!(bucket.tokens(&Key::Shared), 2.0);
    bucket.try_acquire(Key::Shared, 2);
    assert_eq!(bucket.tokens(&Key::Shared), 0.0);
    clock.advance(D / 2);
    assert_eq!(bucket.tokens(&Key::Shared), 0.5);
    let _booked = book(&bucket, 2, None);
    assert_eq!(bucket.tokens(&Key::Shared), -1.5);
}

#[test]
fn a_blocking_wait_on_the_real_clock_lasts_the_interval() {
    let pace = Pace::new((20, 1), 1_000_000_000).unwrap();
    let bucket = Bucket::new(
        pace,
        Shape::Token { burst: 1 },
        crate::core::clock::monotonic(),
        None,
    );
    let started = std::time::Instant::now();
    for _ in 0..3 {
        let mut wait = Acquire::new(&*bucket, Key::Shared, 1, None);
        assert_eq!(block_on(&mut wait, None), Some(Ok(())));
    }
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
}

#[test]
fn a_stale_cancel_never_takes_out_a_later_waiter() {
    let (bucket, clock) = token_bucket(10.0, 1);
    assert_eq!(bucket.try_acquire(Key::Shared, 1), Attempt::Acquired);
    let (Booking::Queued { id: old_id, .. }, old) = book(&bucket, 1, None) else {
        panic!("should queue")
    };
    clock.advance(D); // `old` is granted and its queue, now empty, goes away
    assert!(old.is_granted());
    let (Booking::Queued { id: new_id, .. }, new) = book(&bucket, 1, None) else {
        panic!("should queue")
    };
    assert_ne!(old_id, new_id, "ids are never reused");
    // `old` is cancelled after its grant: its token comes back, and the new
    // waiter (which an id reused across queues used to orphan) takes it.
    bucket.abandon(&Key::Shared, old_id, &old);
    assert!(new.is_granted());
    assert_eq!(bucket.snapshot().waiting, 0);
}

#[test]
fn a_wait_longer_than_allowed_is_refused_at_once_with_its_length() {
    let (bucket, _clock) = token_bucket(10.0, 1);
    assert_eq!(bucket.try_acquire(Key::Shared, 1), Attempt::Acquired);
    let mut wait = Acquire::new(&*bucket, Key::Shared, 1, Some(D - 1));
    assert_eq!(
        wait.poll(None),
        Poll::Ready(Err(Refusal::Busy {
            retry_after_ns: Some(D)
        }))
    );
    assert_eq!(bucket.snapshot().rejected, 1);
}

#[test]
fn a_queued_wait_is_granted_as_a_manual_clock_moves() {
    let (bucket, clock) = token_bucket(10.0, 1);
    assert_eq!(bucket.try_acquire(Key::Shared, 1), Attempt::Acquired);
    let mut wait = Acquire::new(&*bucket, Key::Shared, 1, None);
    assert_eq!(wait.poll(None), Poll::Pending(None));
    assert_eq!(
        bucket.snapshot().waiting,
        0,
        "nothing queued without a waker"
    );
    assert_eq!(wait.poll(Some(&bell())), Poll::Pending(None));
    assert_eq!(bucket.snapshot().waiting, 1);
    clock.advance(D);
    assert_eq!(wait.poll(Some(&bell())), Poll::Ready(Ok(())));
    assert_eq!(bucket.snapshot().waited, 1);
}

#[test]
fn a_dropped_wait_gives_its_booking_back() {
    let (bucket, _clock) = token_bucket(10.0, 1);
    assert_eq!(bucket.try_acquire(Key::Shared, 1), Attempt::Acquired);
    let mut wait = Acquire::new(&*bucket, Key::Shared, 1, None);
    assert_eq!(wait.poll(Some(&bell())), Poll::Pending(None));
    assert_eq!(bucket.retry_after_ns(&Key::Shared, 1), Ok(2 * D));
    drop(wait);
    assert_eq!(bucket.retry_after_ns(&Key::Shared, 1), Ok(D));
    assert_eq!(bucket.snapshot().cancelled, 1);
}

/// A clock the test sets, that wakes nobody when it moves: as real time does.
struct SetClock(AtomicU64);

impl Clock for SetClock {
    fn now_ns(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn leaky_on_set_clock(rate: f64) -> (Arc<Bucket>, Arc<SetClock>) {
    let clock = Arc::new(SetClock(AtomicU64::new(0)));
    let pace = Pace::new(decimal_fraction(rate).unwrap(), 1_000_000_000).unwrap();
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let bucket = Bucket::new(pace, Shape::Leaky { capacity: None }, dyn_clock, None);
    (bucket, clock)
}

#[test]
fn a_waiter_that_never_looks_does_not_push_back_the_one_behind_it() {
    let (bucket, clock) = leaky_on_set_clock(10.0);
    assert_eq!(bucket.try_acquire(Key::Shared, 1), Attempt::Acquired);
    // The first waiter's task never runs: nobody polls it.
    let mut stuck = Acquire::new(&*bucket, Key::Shared, 1, None);
    assert_eq!(
        stuck.poll(Some(&bell())),
        Poll::Pending(Some(Duration::from_nanos(D)))
    );
    let mut behind = Acquire::new(&*bucket, Key::Shared, 1, None);
    assert_eq!(
        behind.poll(Some(&bell())),
        Poll::Pending(Some(Duration::from_nanos(2 * D)))
    );
    // Well past the first turn, at its own: the one behind is served, and
    // grants the stuck one its turn on the way.
    clock.0.store(2 * D, Ordering::SeqCst);
    assert_eq!(behind.poll(Some(&bell())), Poll::Ready(Ok(())));
    assert_eq!(stuck.poll(Some(&bell())), Poll::Ready(Ok(())));
    // The schedule held: the next slot is the one after both.
    assert_eq!(bucket.retry_after_ns(&Key::Shared, 1), Ok(D));
}

#[test]
fn a_caller_that_finds_waiters_past_their_turn_grants_them() {
    let (bucket, clock) = leaky_on_set_clock(10.0);
    assert_eq!(bucket.try_acquire(Key::Shared, 1), Attempt::Acquired);
    let mut stuck = Acquire::new(&*bucket, Key::Shared, 1, None);
    assert!(matches!(stuck.poll(Some(&bell())), Poll::Pending(Some(_))));
    clock.0.store(5 * D, Ordering::SeqCst);
    // A caller that does not wait moves the queue, then finds room.
    assert_eq!(bucket.try_acquire(Key::Shared, 1), Attempt::Acquired);
    assert_eq!(bucket.snapshot().waiting, 0);
    assert_eq!(stuck.poll(Some(&bell())), Poll::Ready(Ok(())));
}

#[test]
fn a_late_grant_given_back_returns_only_what_lies_ahead() {
    let (bucket, clock) = token_bucket(1.0, 1);
    assert_eq!(bucket.try_acquire(Key::Shared, 1), Attempt::Acquired);
    let mut late = Acquire::new(&*bucket, Key::Shared, 1, None);
    assert!(matches!(late.poll(Some(&bell())), Poll::Pending(_)));
    // Granted at 10 s on its booked turn, [1 s, 2 s): wholly in the past.
    clock.advance(10_000 * MS);
    assert_eq!(bucket.try_acquire(Key::Shared, 1), Attempt::Acquired);
    // It leaves without taking it: nothing of that turn is still ahead.
    late.abandon();
    assert!(matches!(
        bucket.try_acquire(Key::Shared, 1),
        Attempt::Later { .. }
    ));
}

#[test]
fn a_key_with_callers_queued_is_never_swept() {
    let (bucket, clock) = leaky_on_set_clock(10.0);
    let start = 1000 * D;
    clock.0.store(start, Ordering::SeqCst);
    let k = Key::text("k");
    assert_eq!(bucket.try_acquire(k.clone(), 1), Attempt::Acquired);
    let mut waiting: Vec<_> = (0..30)
        .map(|_| Acquire::new(&*bucket, k.clone(), 1, None))
        .collect();
    for wait in &mut waiting {
        assert!(matches!(wait.poll(Some(&bell())), Poll::Pending(_)));
    }
    // Two turns pass unpolled; traffic on other keys sweeps their parts.
    clock.0.store(start + 2 * D, Ordering::SeqCst);
    for i in 0..20_000 {
        bucket.try_acquire(Key::Int(i), 1);
    }
    assert_eq!(bucket.snapshot().waiting, 30);
    let granted = waiting
        .iter_mut()
        .map(|wait| wait.poll(Some(&bell())))
        .filter(|poll| *poll == Poll::Ready(Ok(())))
        .count();
    // The two whose turns passed, not everyone since a blank schedule.
    assert_eq!(granted, 2);
}
