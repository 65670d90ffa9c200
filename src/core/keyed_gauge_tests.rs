use super::*;
use crate::core::clock::monotonic;
use crate::core::wait::block_on;
use crate::core::waiter::tests::bell;
use std::sync::Barrier;
use std::thread;

fn gauges(limit: u64, max_keys: Option<usize>) -> Arc<KeyedGauges> {
    Arc::new(KeyedGauges::new(limit, max_keys, monotonic()))
}

fn acquire_blocking(gauges: &Arc<KeyedGauges>, key: &Key, timeout_ns: Option<u64>) -> Outcome<()> {
    let mut wait = KeyedAcquire::new(Arc::clone(gauges), key.clone(), 1, timeout_ns);
    block_on(&mut wait, None).expect("not interrupted")
}

#[test]
fn each_key_has_its_own_permits_and_an_idle_key_is_forgotten() {
    let g = gauges(2, None);
    let (a, b) = (Key::text("a"), Key::text("b"));
    for _ in 0..2 {
        assert_eq!(
            g.try_acquire(&a, 1),
            KeyedAdmission::Gauge(Admission::Acquired)
        );
    }
    assert_eq!(g.try_acquire(&a, 1), KeyedAdmission::Gauge(Admission::Busy));
    assert_eq!(
        g.try_acquire(&b, 1),
        KeyedAdmission::Gauge(Admission::Acquired)
    );
    assert_eq!(g.len(), 2);
    g.release(&b, 1).unwrap();
    assert_eq!(g.len(), 1, "b holds nothing: forgotten");
    g.release(&a, 2).unwrap();
    assert_eq!(g.len(), 0);
    let s = g.snapshot();
    assert_eq!((s.totals.acquired, s.totals.rejected, s.keys), (3, 1, 0));
    assert_eq!(g.release(&a, 1), Err(OverRelease { held: 0 }));
}

#[test]
fn a_refused_or_too_large_attempt_leaves_no_key_behind() {
    let g = gauges(1, None);
    let k = Key::Int(7);
    assert_eq!(
        g.try_acquire(&k, 2),
        KeyedAdmission::Gauge(Admission::TooLarge { limit: 1 })
    );
    assert_eq!(g.len(), 0);
    assert_eq!(acquire_blocking(&g, &k, Some(0)), Ok(()));
    assert_eq!(
        acquire_blocking(&g, &k, Some(0)),
        Err(Refusal::Busy {
            retry_after_ns: None
        })
    );
    assert_eq!(g.len(), 1);
    g.release(&k, 1).unwrap();
    assert_eq!(g.len(), 0);
}

#[test]
fn max_keys_refuses_a_new_key_while_that_many_are_in_use() {
    let g = gauges(1, Some(1));
    assert_eq!(
        g.try_acquire(&Key::Int(1), 1),
        KeyedAdmission::Gauge(Admission::Acquired)
    );
    assert_eq!(g.try_acquire(&Key::Int(2), 1), KeyedAdmission::KeysFull);
    let mut wait = KeyedAcquire::new(Arc::clone(&g), Key::Int(2), 1, None);
    assert!(matches!(
        wait.poll(None),
        Poll::Ready(Err(Refusal::Busy { .. }))
    ));
    assert!(wait.keys_full());
    g.release(&Key::Int(1), 1).unwrap();
    assert_eq!(
        g.try_acquire(&Key::Int(2), 1),
        KeyedAdmission::Gauge(Admission::Acquired)
    );
    assert_eq!(g.snapshot().refused_keys, 2);
}

#[test]
fn an_abandoned_waiter_leaves_its_key_and_nothing_leaks() {
    let g = gauges(1, None);
    let k = Key::text("k");
    assert_eq!(
        g.try_acquire(&k, 1),
        KeyedAdmission::Gauge(Admission::Acquired)
    );
    let waker = bell();
    let mut wait = KeyedAcquire::new(Arc::clone(&g), k.clone(), 1, None);
    assert!(matches!(wait.poll(Some(&waker)), Poll::Pending(_)));
    assert_eq!(g.snapshot_of(&k).waiting, 1);
    // Granted by the release, then dropped before it resumed: the grant goes back.
    g.release(&k, 1).unwrap();
    assert_eq!(g.len(), 1, "a granted waiter keeps the key");
    drop(wait);
    assert_eq!(g.len(), 0, "its grant came back, and the key was forgotten");
    assert_eq!(g.snapshot().totals.cancelled, 1);
}

#[test]
fn threads_on_many_keys_never_exceed_a_key_limit_and_leave_nothing() {
    let g = gauges(2, None);
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let most = Arc::new(AtomicU64::new(0));
    let held: Arc<Vec<AtomicU64>> = Arc::new((0..3).map(|_| AtomicU64::new(0)).collect());
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (g, barrier, most, held) = (g.clone(), barrier.clone(), most.clone(), held.clone());
            thread::spawn(move || {
                barrier.wait();
                for i in 0..2000 {
                    let slot = (t + i) % 3;
                    let key = Key::Int(slot as i64);
                    acquire_blocking(&g, &key, None).unwrap();
                    let now = held[slot].fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    held[slot].fetch_sub(1, Ordering::SeqCst);
                    g.release(&key, 1).unwrap();
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    assert!(most.load(Ordering::SeqCst) <= 2);
    assert_eq!(g.len(), 0);
    assert_eq!(g.snapshot().totals.acquired, 8 * 2000);
}

#[test]
fn a_snapshot_taken_while_a_wait_ends_never_keeps_an_idle_key() {
    // A wait that ends idle (a closed gauge, a timeout) while another
    // thread reads the totals: the key must still be forgotten.
    let g = Arc::new(KeyedGauges::new(0, Some(2), monotonic()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (g, stop) = (Arc::clone(&g), Arc::clone(&stop));
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = g.snapshot();
                let _ = g.snapshot_of(&Key::Int(1));
            }
        })
    };
    for i in 0..2000 {
        let key = Key::Int(i % 4);
        assert!(acquire_blocking(&g, &key, Some(10_000)).is_err());
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    assert_eq!(g.len(), 0);
    g.set_limit(1);
    assert_eq!(
        g.try_acquire(&Key::Int(9), 1),
        KeyedAdmission::Gauge(Admission::Acquired)
    );
}

#[test]
fn n_is_checked_even_when_max_keys_are_in_use() {
    let g = gauges(1, Some(1));
    assert_eq!(
        g.try_acquire(&Key::Int(1), 1),
        KeyedAdmission::Gauge(Admission::Acquired)
    );
    assert_eq!(
        g.try_acquire(&Key::Int(2), 5),
        KeyedAdmission::Gauge(Admission::TooLarge { limit: 1 })
    );
    let mut wait = KeyedAcquire::new(Arc::clone(&g), Key::Int(2), 5, None);
    assert!(matches!(
        wait.poll(None),
        Poll::Ready(Err(Refusal::TooLarge { most: 1 }))
    ));
}

#[test]
fn keys_spread_over_the_parts_and_all_are_counted() {
    let g = gauges(1, None);
    for i in 0..10_000 {
        assert_eq!(
            g.try_acquire(&Key::Int(i), 1),
            KeyedAdmission::Gauge(Admission::Acquired)
        );
    }
    assert!(g.parts.iter().all(|part| !part.lock().keys.is_empty()));
    let s = g.snapshot();
    assert_eq!((s.keys, s.totals.in_flight), (10_000, 10_000));
    for i in 0..10_000 {
        g.release(&Key::Int(i), 1).unwrap();
    }
    let s = g.snapshot();
    assert_eq!(
        (s.keys, s.totals.in_flight, s.totals.acquired),
        (0, 0, 10_000)
    );
}
