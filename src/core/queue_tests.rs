use std::time::Duration;

use super::*;
use crate::core::sorted::locate;

type TestQueue = Queue<u32, ()>;

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
    loop {
        let spot = queue.layout().map(|layout| {
            let read = |c, i| queue.read_sorted(layout.version, c, i, |x| *x);
            locate(&layout, read, |other| Ok::<_, ()>(item < *other))
                .unwrap()
                .unwrap()
        });
        match queue.offer(item, spot, false) {
            Offer::Stale(_) => continue,
            other => return other,
        }
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
    let first = Waiter::for_this_thread(1);
    let second = Waiter::for_this_thread(1);
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
    assert_eq!(queue.take_reserved(1), vec![7]);
    queue.abandon(Line::Getters, second_id, &second);
    assert_eq!(queue.snapshot().got, 1);
}

#[test]
fn a_granted_putter_that_gives_up_passes_the_slot_on() {
    let queue = fifo(1, Overflow::Block);
    assert_eq!(queue.offer(1, None, true), Offer::Stored);
    assert_eq!(queue.offer(2, None, true), Offer::MustWait(2));
    let first = Waiter::for_this_thread(1);
    let second = Waiter::for_this_thread(1);
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
    let putter = Waiter::for_this_thread(1);
    let Enqueued::Queued(id) = queue.enqueue(Line::Putters, &putter) else {
        panic!("a full queue must make a putter wait");
    };
    assert!(queue.shutdown(false).is_empty());
    assert_eq!(
        queue.settle(Line::Putters, id, &putter, Waited::ShutDown),
        Waited::ShutDown
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
    let joiner = Waiter::for_this_thread(1);
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
    let joiner = Waiter::for_this_thread(1);
    assert!(matches!(
        queue.enqueue(Line::Joiners, &joiner),
        Enqueued::Queued(_)
    ));
    assert_eq!(queue.task_done(), Ok(()));
    assert!(joiner.is_granted());
    assert_eq!(queue.task_done(), Err(TaskDoneTooOften));
}

#[test]
fn a_handover_put_goes_through_only_to_a_waiting_consumer() {
    let queue: TestQueue = Queue::with_capacity(Capacity::Handover, Order::Fifo, Overflow::Block);
    assert_eq!(queue.offer(1, None, false), Offer::Full(1));
    assert_eq!(queue.offer(1, None, true), Offer::MustWait(1));
    let getter = Waiter::for_this_thread(1);
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
    assert_eq!(queue.take_reserved(1), vec![1]);
    assert_eq!(queue.snapshot().size, 0);
}

#[test]
fn a_consumer_arriving_at_a_handover_lets_the_first_producer_in() {
    let queue: TestQueue = Queue::with_capacity(Capacity::Handover, Order::Fifo, Overflow::Block);
    let first = Waiter::for_this_thread(1);
    let second = Waiter::for_this_thread(1);
    assert!(matches!(
        queue.enqueue(Line::Putters, &first),
        Enqueued::Queued(_)
    ));
    assert!(matches!(
        queue.enqueue(Line::Putters, &second),
        Enqueued::Queued(_)
    ));
    let getter = Waiter::for_this_thread(1);
    assert!(matches!(
        queue.enqueue(Line::Getters, &getter),
        Enqueued::Queued(_)
    ));
    assert!(first.is_granted() && !second.is_granted());
    assert!(first.take());
    assert_eq!(queue.put_reserved(7, None), Offer::Stored);
    assert!(getter.is_granted());
    assert_eq!(queue.take_reserved(1), vec![7]);
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
    let never = || false;
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
                        let deadline = Instant::now() + Duration::from_micros(200);
                        if queue.wait_blocking(Line::Putters, Some(deadline), never)
                            == Waited::Granted
                        {
                            assert_eq!(queue.put_reserved(item, None), Offer::Stored);
                            break;
                        }
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
                        Take::Empty => match queue.wait_blocking(Line::Getters, None, never) {
                            Waited::Granted => {
                                let (number, items) = queue.take_reserved_numbered(1);
                                numbers.push(number);
                                seen.extend(items);
                            }
                            Waited::ShutDown => return (seen, numbers),
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
