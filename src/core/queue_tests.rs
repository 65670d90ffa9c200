use std::convert::Infallible;

use super::*;
use crate::core::clock::ManualClock;
use crate::core::wait::block_on;
use crate::core::waiter::tests::bell;

type TestQueue = Queue<u32>;

impl Item for u32 {
    type Error = Infallible;
    fn share(&self) -> Self {
        *self
    }
    fn goes_before(&self, other: &Self) -> Result<bool, Infallible> {
        Ok(self < other)
    }
}

const MS: u64 = 1_000_000;

fn fifo(maxsize: u64, overflow: Overflow) -> TestQueue {
    Queue::new(maxsize, Order::Fifo, overflow)
}

/// Takes up to `max` items without waiting, as a consumer would one by one.
fn take_up_to(queue: &TestQueue, max: usize) -> Vec<u32> {
    let mut items = Vec::new();
    while items.len() < max {
        match queue.take_one() {
            Take::One(item) => items.push(item),
            _ => break,
        }
    }
    items
}

#[test]
fn items_leave_in_the_order_of_the_queue_kind() {
    for (order, expected) in [
        (Order::Fifo, vec![1, 3, 2]),
        (Order::Lifo, vec![2, 3, 1]),
        (Order::Priority, vec![1, 2, 3]),
    ] {
        let queue: TestQueue = Queue::new(0, order, Overflow::Block);
        for item in [1, 3, 2] {
            put_sorted(&queue, item);
        }
        assert_eq!(take_up_to(&queue, 10), expected);
    }
}

fn put_sorted(queue: &TestQueue, item: u32) -> Offer<u32> {
    match queue.offer_located(item, false) {
        Ok(offer) => offer,
        Err(never) => match never {},
    }
}

#[test]
fn a_full_queue_refuses_drops_new_or_drops_old_as_told() {
    let cases = [
        (Overflow::Block, Offer::Full(3), vec![1, 2]),
        (Overflow::Reject, Offer::Full(3), vec![1, 2]),
        (Overflow::DropNew, Offer::Dropped(3), vec![1, 2]),
        (Overflow::DropOld, Offer::Dropped(1), vec![2, 3]),
    ];
    for (overflow, answer, left) in cases {
        let queue = fifo(2, overflow);
        assert_eq!(queue.offer(1, None, false), Offer::Stored);
        assert_eq!(queue.offer(2, None, false), Offer::Stored);
        assert_eq!(queue.offer(3, None, false), answer);
        assert_eq!(take_up_to(&queue, 5), left);
        // A dropped item counts as done; what is left must be marked done.
        assert_eq!(queue.unfinished(), 2);
    }
}

#[test]
fn drop_old_in_priority_order_drops_the_lowest_priority() {
    let queue: TestQueue = Queue::new(2, Order::Priority, Overflow::DropOld);
    put_sorted(&queue, 5);
    put_sorted(&queue, 1);
    assert_eq!(put_sorted(&queue, 3), Offer::Dropped(5));
    assert_eq!(take_up_to(&queue, 5), vec![1, 3]);
}

#[test]
fn a_granted_getter_that_gives_up_passes_the_item_on() {
    let queue = fifo(0, Overflow::Block);
    let first = Waiter::new(1, &bell());
    let second = Waiter::new(1, &bell());
    let Enqueued::Queued(first_id) = queue.enqueue(Line::Getters, &first) else {
        panic!("an empty queue must make a getter wait");
    };
    let Enqueued::Queued(second_id) = queue.enqueue(Line::Getters, &second) else {
        panic!("the second getter must wait too");
    };
    assert_eq!(queue.offer(7, None, false), Offer::Stored);
    assert!(first.is_granted() && !second.is_granted());
    assert_eq!(queue.size(), 0, "the item is promised to the first getter");
    queue.abandon(Line::Getters, first_id, &first);
    assert!(second.is_granted());
    assert!(second.take());
    assert_eq!(queue.take_reserved_numbered(1).1, vec![7]);
    queue.abandon(Line::Getters, second_id, &second);
    assert_eq!(queue.snapshot().got, 1);
}

#[test]
fn a_granted_putter_that_gives_up_passes_the_slot_on() {
    let queue = fifo(1, Overflow::Block);
    assert_eq!(queue.offer(1, None, true), Offer::Stored);
    assert_eq!(queue.offer(2, None, true), Offer::MustWait(2));
    let first = Waiter::new(1, &bell());
    let second = Waiter::new(1, &bell());
    let Enqueued::Queued(first_id) = queue.enqueue(Line::Putters, &first) else {
        panic!("a full queue must make a putter wait");
    };
    assert!(matches!(
        queue.enqueue(Line::Putters, &second),
        Enqueued::Queued(_)
    ));
    assert_eq!(take_up_to(&queue, 1), vec![1]);
    assert!(first.is_granted());
    assert!(
        queue.is_full(),
        "the freed slot is promised to the first putter"
    );
    queue.abandon(Line::Putters, first_id, &first);
    assert!(second.is_granted() && second.take());
    assert_eq!(queue.put_reserved(2, None), Offer::Stored);
    assert_eq!(queue.take_one(), Take::One(2));
}

#[test]
fn shutdown_fails_producers_and_lets_consumers_drain() {
    let queue = fifo(1, Overflow::Block);
    queue.offer(1, None, false);
    let putter = Waiter::new(1, &bell());
    let Enqueued::Queued(id) = queue.enqueue(Line::Putters, &putter) else {
        panic!("a full queue must make a putter wait");
    };
    assert!(queue.shutdown(false).is_empty());
    assert!(
        !queue.settle(Line::Putters, id, &putter),
        "nothing was granted"
    );
    assert_eq!(queue.offer(2, None, false), Offer::ShutDown(2));
    assert_eq!(queue.take_one(), Take::One(1));
    assert_eq!(queue.take_one(), Take::ShutDown);
}

#[test]
fn immediate_shutdown_removes_items_and_counts_them_done() {
    let queue = fifo(0, Overflow::Block);
    for item in 0..3 {
        queue.offer(item, None, false);
    }
    let joiner = Waiter::new(1, &bell());
    assert!(matches!(
        queue.enqueue(Line::Joiners, &joiner),
        Enqueued::Queued(_)
    ));
    assert_eq!(queue.shutdown(true), vec![0, 1, 2]);
    assert_eq!(queue.unfinished(), 0);
    assert!(joiner.is_granted());
    assert_eq!(queue.take_one(), Take::ShutDown);
}

#[test]
fn task_done_ends_join_and_refuses_to_go_below_zero() {
    let queue = fifo(0, Overflow::Block);
    queue.offer(1, None, false);
    let joiner = Waiter::new(1, &bell());
    assert!(matches!(
        queue.enqueue(Line::Joiners, &joiner),
        Enqueued::Queued(_)
    ));
    assert_eq!(queue.task_done(1), Ok(()));
    assert!(joiner.is_granted());
    assert_eq!(queue.task_done(1), Err(TaskDoneTooOften));
}

#[test]
fn a_handover_put_goes_through_only_to_a_waiting_consumer() {
    let queue: TestQueue = Queue::with_capacity(Capacity::Handover, Order::Fifo, Overflow::Block);
    assert_eq!(queue.offer(1, None, false), Offer::Full(1));
    assert_eq!(queue.offer(1, None, true), Offer::MustWait(1));
    let getter = Waiter::new(1, &bell());
    assert!(matches!(
        queue.enqueue(Line::Getters, &getter),
        Enqueued::Queued(_)
    ));
    assert_eq!(queue.offer(1, None, false), Offer::Stored);
    assert!(getter.is_granted(), "the item went to the waiting consumer");
    assert_eq!(
        queue.offer(2, None, false),
        Offer::Full(2),
        "one item per consumer"
    );
    assert_eq!(queue.take_reserved_numbered(1).1, vec![1]);
    assert_eq!(queue.snapshot().size, 0);
}

#[test]
fn a_consumer_arriving_at_a_handover_lets_the_first_producer_in() {
    let queue: TestQueue = Queue::with_capacity(Capacity::Handover, Order::Fifo, Overflow::Block);
    let first = Waiter::new(1, &bell());
    let second = Waiter::new(1, &bell());
    assert!(matches!(
        queue.enqueue(Line::Putters, &first),
        Enqueued::Queued(_)
    ));
    assert!(matches!(
        queue.enqueue(Line::Putters, &second),
        Enqueued::Queued(_)
    ));
    let getter = Waiter::new(1, &bell());
    assert!(matches!(
        queue.enqueue(Line::Getters, &getter),
        Enqueued::Queued(_)
    ));
    assert!(first.is_granted() && !second.is_granted());
    assert!(first.take());
    assert_eq!(queue.put_reserved(7, None), Offer::Stored);
    assert!(getter.is_granted());
    assert_eq!(queue.take_reserved_numbered(1).1, vec![7]);
}

#[test]
fn taken_items_are_numbered_in_the_order_they_leave() {
    let queue = fifo(0, Overflow::Block);
    for item in [10, 11, 12, 13] {
        assert_eq!(queue.offer(item, None, false), Offer::Stored);
    }
    assert_eq!(queue.take_one_numbered(), Take::One((0, 10)));
    assert_eq!(queue.reserve_now(2), 2);
    assert_eq!(queue.take_reserved_numbered(2), (1, vec![11, 12]));
    assert_eq!(queue.take_one_numbered(), Take::One((3, 13)));
    assert_eq!(queue.take_one_numbered(), Take::Empty);
}

#[test]
fn threads_move_every_item_exactly_once_in_producer_order() {
    move_every_item_exactly_once(Capacity::Bounded(8));
}

#[test]
fn threads_hand_over_every_item_exactly_once_in_producer_order() {
    move_every_item_exactly_once(Capacity::Handover);
}

fn move_every_item_exactly_once(capacity: Capacity) {
    const PRODUCERS: u32 = 4;
    const PER_PRODUCER: u32 = 20_000;
    let queue: Arc<TestQueue> =
        Arc::new(Queue::with_capacity(capacity, Order::Fifo, Overflow::Block));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let queue = Arc::clone(&queue);
            std::thread::spawn(move || {
                for n in 0..PER_PRODUCER {
                    let mut item = p * PER_PRODUCER + n;
                    loop {
                        match queue.offer(item, None, true) {
                            Offer::Stored => break,
                            Offer::MustWait(back) => item = back,
                            other => panic!("unexpected {other:?}"),
                        }
                        // Short timeouts mix timed-out waits into the run.
                        let mut put = Put::new(&*queue, item, Some(200_000));
                        match block_on(&mut put, None).expect("not interrupted") {
                            Ok(None) => break,
                            Err(Refusal::TimedOut) => {}
                            other => panic!("unexpected {other:?}"),
                        }
                        item = p * PER_PRODUCER + n;
                    }
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let queue = Arc::clone(&queue);
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let mut numbers = Vec::new();
                loop {
                    match queue.take_one_numbered() {
                        Take::One((number, item)) => {
                            numbers.push(number);
                            seen.push(item);
                        }
                        Take::ShutDown => return (seen, numbers),
                        Take::Empty => match block_on(&mut Get::new(&*queue, None), None) {
                            Some(Ok((number, item))) => {
                                numbers.push(number);
                                seen.push(item);
                            }
                            Some(Err(Refusal::ShutDown)) => return (seen, numbers),
                            other => panic!("unexpected {other:?}"),
                        },
                    }
                }
            })
        })
        .collect();
    for producer in producers {
        producer.join().unwrap();
    }
    queue.shutdown(false);
    let mut all = Vec::new();
    let mut all_numbers = Vec::new();
    for consumer in consumers {
        let (seen, numbers) = consumer.join().unwrap();
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "numbers rise");
        all_numbers.extend(numbers);
        for p in 0..PRODUCERS {
            let mine: Vec<_> = seen.iter().filter(|&&x| x / PER_PRODUCER == p).collect();
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "FIFO per producer");
        }
        all.extend(seen);
    }
    all.sort_unstable();
    assert_eq!(all, (0..PRODUCERS * PER_PRODUCER).collect::<Vec<_>>());
    all_numbers.sort_unstable();
    let expected: Vec<u64> = (0..u64::from(PRODUCERS * PER_PRODUCER)).collect();
    assert_eq!(all_numbers, expected, "every number handed out once");
    let end = queue.snapshot();
    assert_eq!(
        (end.size, end.putters_waiting, end.getters_waiting),
        (0, 0, 0)
    );
}

#[test]
fn a_put_waits_for_room_and_a_get_for_an_item_in_line() {
    let queue = fifo(1, Overflow::Block);
    let mut first = Put::new(&queue, 1, None);
    assert_eq!(first.poll(None), Poll::Ready(Ok(None)));
    let mut second = Put::new(&queue, 2, None);
    assert_eq!(second.poll(None), Poll::Pending(None));
    assert_eq!(queue.snapshot().putters_waiting, 0, "no waker: not in line");
    assert_eq!(second.poll(Some(&bell())), Poll::Pending(None));
    assert_eq!(queue.snapshot().putters_waiting, 1);
    let mut get = Get::new(&queue, None);
    assert_eq!(get.poll(None), Poll::Ready(Ok((0, 1))));
    assert_eq!(second.poll(Some(&bell())), Poll::Ready(Ok(None)));
    assert_eq!(
        Get::new(&queue, Some(0)).poll(None),
        Poll::Ready(Ok((1, 2)))
    );
    assert_eq!(
        Get::new(&queue, Some(0)).poll(None),
        Poll::Ready(Err(Refusal::Busy {
            retry_after_ns: None
        }))
    );
}

#[test]
fn a_put_that_may_not_wait_is_refused_and_one_that_times_out_leaves_the_line() {
    let clock = Arc::new(ManualClock::new(0));
    let queue: TestQueue = Queue::with_clock(
        Capacity::Bounded(1),
        Order::Fifo,
        Overflow::Block,
        clock.clone(),
    );
    assert_eq!(Put::new(&queue, 1, None).poll(None), Poll::Ready(Ok(None)));
    assert_eq!(
        Put::new(&queue, 2, Some(0)).poll(Some(&bell())),
        Poll::Ready(Err(Refusal::Busy {
            retry_after_ns: None
        }))
    );
    let mut put = Put::new(&queue, 3, Some(10 * MS));
    assert_eq!(put.poll(Some(&bell())), Poll::Pending(None));
    clock.advance(10 * MS);
    assert_eq!(put.poll(Some(&bell())), Poll::Ready(Err(Refusal::TimedOut)));
    let end = queue.snapshot();
    assert_eq!((end.size, end.putters_waiting), (1, 0));
}

#[test]
fn a_cancelled_put_passes_its_granted_slot_on() {
    let queue = fifo(1, Overflow::Block);
    assert_eq!(Put::new(&queue, 1, None).poll(None), Poll::Ready(Ok(None)));
    let mut first = Put::new(&queue, 2, None);
    let mut second = Put::new(&queue, 3, None);
    assert_eq!(first.poll(Some(&bell())), Poll::Pending(None));
    assert_eq!(second.poll(Some(&bell())), Poll::Pending(None));
    assert_eq!(queue.take_one(), Take::One(1));
    // `first` was granted the slot, and is dropped before it used it.
    drop(first);
    assert_eq!(second.poll(Some(&bell())), Poll::Ready(Ok(None)));
    assert_eq!(queue.take_one(), Take::One(3));
}

#[test]
fn waiters_in_line_end_at_shutdown_and_getters_drain_first() {
    let queue = fifo(1, Overflow::Block);
    assert_eq!(Put::new(&queue, 1, None).poll(None), Poll::Ready(Ok(None)));
    let mut put = Put::new(&queue, 2, None);
    assert_eq!(put.poll(Some(&bell())), Poll::Pending(None));
    queue.shutdown(false);
    assert_eq!(put.poll(Some(&bell())), Poll::Ready(Err(Refusal::ShutDown)));
    assert_eq!(Get::new(&queue, None).poll(None), Poll::Ready(Ok((0, 1))));
    let mut get = Get::new(&queue, None);
    assert_eq!(get.poll(Some(&bell())), Poll::Ready(Err(Refusal::ShutDown)));
}

#[test]
fn join_waits_for_every_item_to_be_done() {
    let queue = fifo(0, Overflow::Block);
    assert_eq!(Join::new(&queue, None).poll(None), Poll::Ready(Ok(())));
    queue.offer(1, None, false);
    let mut join = Join::new(&queue, None);
    assert_eq!(join.poll(Some(&bell())), Poll::Pending(None));
    assert_eq!(
        Join::new(&queue, Some(0)).poll(None),
        Poll::Ready(Err(Refusal::TimedOut))
    );
    assert_eq!(queue.task_done(1), Ok(()));
    assert_eq!(join.poll(Some(&bell())), Poll::Ready(Ok(())));
}

/// A priority item whose comparison fails for one value.
#[derive(Debug, PartialEq, Eq)]
struct Touchy(u32);

impl Item for Touchy {
    type Error = &'static str;
    fn share(&self) -> Self {
        Touchy(self.0)
    }
    fn goes_before(&self, other: &Self) -> Result<bool, &'static str> {
        if self.0 == 13 || other.0 == 13 {
            return Err("unlucky");
        }
        Ok(self.0 < other.0)
    }
}

#[test]
fn a_priority_put_whose_comparison_fails_fails_and_leaves_the_queue_as_it_was() {
    let queue: Queue<Touchy> = Queue::new(2, Order::Priority, Overflow::Block);
    for n in [5, 3] {
        assert_eq!(
            Put::new(&queue, Touchy(n), None).poll(None),
            Poll::Ready(Ok(None))
        );
    }
    assert_eq!(
        Put::new(&queue, Touchy(13), Some(0)).poll(None),
        Poll::Ready(Err(Refusal::Busy {
            retry_after_ns: None
        })),
        "full: refused before any comparison"
    );
    assert_eq!(queue.take_one(), Take::One(Touchy(3)));
    assert_eq!(
        Put::new(&queue, Touchy(13), None).poll(None),
        Poll::Ready(Err(Refusal::Failed("unlucky")))
    );
    let end = queue.snapshot();
    assert_eq!((end.size, end.unfinished), (1, 2));
}
