use super::*;
use crate::core::clock::{Clock, ManualClock};
use crate::core::queue::{Capacity, Overflow, Take};
use crate::core::store::Order;
use crate::core::waiter::tests::{bell, Bell};

const MS: u64 = 1_000_000;

type TestQueue = Queue<u32>;

fn queue_on(clock: &Arc<ManualClock>, maxsize: u64) -> TestQueue {
    let capacity = if maxsize == 0 {
        Capacity::Unbounded
    } else {
        Capacity::Bounded(maxsize)
    };
    let clock: Arc<dyn Clock> = clock.clone();
    Queue::with_clock(capacity, Order::Fifo, Overflow::Block, clock)
}

fn put(queue: &TestQueue, items: impl IntoIterator<Item = u32>) {
    for item in items {
        match queue.offer_located(item, false) {
            Ok(offer) => assert_eq!(offer, crate::core::queue::Offer::Stored),
            Err(never) => match never {},
        }
    }
}

fn ready<T: std::fmt::Debug>(poll: Poll<T>) -> T {
    match poll {
        Poll::Ready(value) => value,
        Poll::Pending(sleep) => panic!("still pending ({sleep:?})"),
    }
}

#[test]
fn linger_zero_takes_what_is_there_up_to_the_most() {
    let clock = Arc::new(ManualClock::new(0));
    let queue = queue_on(&clock, 0);
    put(&queue, 0..5);
    let mut batch = Batch::new(&queue, 3, Some(0), None);
    assert_eq!(ready(batch.poll(None)), Ok((0, vec![0, 1, 2])));
    let mut batch = Batch::new(&queue, 3, Some(0), None);
    assert_eq!(ready(batch.poll(None)), Ok((3, vec![3, 4])));
}

#[test]
fn a_batch_lingers_from_its_first_item_and_not_from_its_start() {
    let clock = Arc::new(ManualClock::new(0));
    let queue = queue_on(&clock, 0);
    let mut batch = Batch::new(&queue, 10, Some(100 * MS), None);
    assert_eq!(batch.poll(Some(&bell())), Poll::Pending(None));
    clock.advance(500 * MS);
    assert_eq!(
        batch.poll(Some(&bell())),
        Poll::Pending(None),
        "no item yet"
    );
    put(&queue, [1]);
    assert_eq!(batch.poll(Some(&bell())), Poll::Pending(None));
    assert_eq!(batch.reserved(), 1);
    clock.advance(60 * MS);
    put(&queue, [2]);
    assert_eq!(batch.poll(Some(&bell())), Poll::Pending(None));
    clock.advance(40 * MS);
    assert_eq!(ready(batch.poll(Some(&bell()))), Ok((0, vec![1, 2])));
}

#[test]
fn a_manual_clock_wakes_a_lingering_batch_when_its_linger_ends() {
    let clock = Arc::new(ManualClock::new(0));
    let queue = queue_on(&clock, 0);
    let bell_count = Arc::new(Bell::default());
    let waker: Waker = bell_count.clone();
    let mut batch = Batch::new(&queue, 10, Some(100 * MS), None);
    assert_eq!(batch.poll(Some(&waker)), Poll::Pending(None));
    put(&queue, [7]);
    let rings = || bell_count.rings.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(rings(), 1, "the first item wakes the batch");
    assert_eq!(batch.poll(Some(&waker)), Poll::Pending(None));
    clock.advance(100 * MS);
    assert!(rings() >= 2, "the clock wakes it again");
    assert_eq!(ready(batch.poll(Some(&waker))), Ok((0, vec![7])));
}

#[test]
fn a_batch_without_linger_waits_until_it_is_full() {
    let clock = Arc::new(ManualClock::new(0));
    let queue = queue_on(&clock, 0);
    let mut batch = Batch::new(&queue, 3, None, None);
    put(&queue, [1, 2]);
    assert_eq!(batch.poll(Some(&bell())), Poll::Pending(None));
    clock.advance(3_600_000 * MS);
    assert_eq!(batch.poll(Some(&bell())), Poll::Pending(None));
    put(&queue, [3, 4]);
    assert_eq!(ready(batch.poll(Some(&bell()))), Ok((0, vec![1, 2, 3])));
    assert_eq!(queue.take_one(), Take::One(4));
}

#[test]
fn a_batch_on_the_real_clock_sleeps_until_its_linger_ends() {
    let queue: TestQueue = Queue::new(0, Order::Fifo, Overflow::Block);
    put(&queue, [1]);
    let mut batch = Batch::new(&queue, 2, Some(5_000 * MS), None);
    match batch.poll(Some(&bell())) {
        Poll::Pending(Some(sleep)) => assert!(sleep <= std::time::Duration::from_secs(5)),
        other => panic!("should linger with a timer, got {other:?}"),
    }
}

#[test]
fn the_first_item_is_awaited_up_to_the_timeout() {
    let clock = Arc::new(ManualClock::new(0));
    let queue = queue_on(&clock, 0);
    let nothing = Refusal::Busy {
        retry_after_ns: None,
    };
    assert_eq!(
        ready(Batch::new(&queue, 3, Some(0), Some(0)).poll(None)),
        Err(nothing)
    );
    let mut batch = Batch::new(&queue, 3, Some(0), Some(50 * MS));
    assert_eq!(batch.poll(Some(&bell())), Poll::Pending(None));
    clock.advance(50 * MS);
    assert_eq!(ready(batch.poll(Some(&bell()))), Err(Refusal::TimedOut));
    assert_eq!(queue.snapshot().getters_waiting, 0);
}

#[test]
fn an_abandoned_batch_lets_its_items_go_to_the_next_consumer_in_order() {
    let clock = Arc::new(ManualClock::new(0));
    let queue = queue_on(&clock, 0);
    let mut batch = Batch::new(&queue, 5, None, None);
    put(&queue, [1, 2]);
    assert_eq!(batch.poll(Some(&bell())), Poll::Pending(None));
    assert_eq!(batch.reserved(), 2);
    assert_eq!(
        queue.take_one(),
        Take::Empty,
        "reserved items are spoken for"
    );
    let mut next = Batch::new(&queue, 5, Some(0), None);
    assert_eq!(next.poll(Some(&bell())), Poll::Pending(None));
    drop(batch);
    assert_eq!(ready(next.poll(Some(&bell()))), Ok((0, vec![1, 2])));
}

#[test]
fn shutdown_ends_a_partial_batch_with_what_it_has_and_an_empty_one_with_shutdown() {
    let clock = Arc::new(ManualClock::new(0));
    let queue = queue_on(&clock, 0);
    let mut partial = Batch::new(&queue, 5, None, None);
    put(&queue, [1]);
    assert_eq!(partial.poll(Some(&bell())), Poll::Pending(None));
    queue.shutdown(false);
    assert_eq!(ready(partial.poll(Some(&bell()))), Ok((0, vec![1])));
    let mut empty = Batch::new(&queue, 5, None, None);
    assert_eq!(ready(empty.poll(Some(&bell()))), Err(Refusal::ShutDown));
}

#[test]
fn reservations_keep_a_bounded_queue_full_until_the_batch_is_taken() {
    let clock = Arc::new(ManualClock::new(0));
    let queue = queue_on(&clock, 2);
    let mut batch = Batch::new(&queue, 5, None, None);
    put(&queue, [1, 2]);
    assert_eq!(batch.poll(Some(&bell())), Poll::Pending(None));
    assert!(
        queue.is_full(),
        "reserved items still count against the bound"
    );
    queue.shutdown(false);
    assert_eq!(ready(batch.poll(Some(&bell()))), Ok((0, vec![1, 2])));
    assert!(!queue.is_full());
}

#[test]
fn an_immediate_shutdown_under_a_batch_leaves_it_nothing() {
    let clock = Arc::new(ManualClock::new(0));
    let queue = queue_on(&clock, 0);
    let mut batch = Batch::new(&queue, 5, None, None);
    put(&queue, [1, 2]);
    assert_eq!(batch.poll(Some(&bell())), Poll::Pending(None));
    assert_eq!(queue.shutdown(true), vec![1, 2]);
    assert_eq!(ready(batch.poll(Some(&bell()))), Err(Refusal::ShutDown));
}

#[test]
fn threads_batching_against_producers_take_every_item_once() {
    let queue: Arc<TestQueue> = Arc::new(Queue::new(16, Order::Fifo, Overflow::Block));
    let producers: Vec<_> = (0..3u32)
        .map(|p| {
            let queue = Arc::clone(&queue);
            std::thread::spawn(move || {
                for n in 0..5_000 {
                    let mut put = crate::core::queue::Put::new(&*queue, p * 5_000 + n, None);
                    let done = crate::core::wait::block_on(&mut put, None);
                    assert_eq!(done, Some(Ok(None)));
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|c| {
            let queue = Arc::clone(&queue);
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                loop {
                    // Every third batch gives up early, letting its items go.
                    let timeout = (seen.len() % 3 == c).then_some(20_000);
                    let mut batch = Batch::new(&*queue, 7, Some(50_000), timeout);
                    match crate::core::wait::block_on(&mut batch, None) {
                        Some(Ok((_, items))) => seen.extend(items),
                        Some(Err(Refusal::ShutDown)) => return seen,
                        Some(Err(Refusal::TimedOut)) => {}
                        other => panic!("unexpected {other:?}"),
                    }
                }
            })
        })
        .collect();
    for producer in producers {
        producer.join().unwrap();
    }
    queue.shutdown(false);
    let mut all: Vec<u32> = consumers
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..15_000).collect::<Vec<_>>());
}
