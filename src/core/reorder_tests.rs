use std::sync::Arc;

use super::*;

#[test]
fn results_leave_in_input_order_whatever_order_they_finish_in() {
    let reorder = Reorder::new();
    assert_eq!(reorder.push(2, 'c'), Ok(Pushed::Wait));
    assert_eq!(reorder.push(1, 'b'), Ok(Pushed::Wait));
    assert_eq!(reorder.waiting(), 2);
    assert_eq!(reorder.push(0, 'a'), Ok(Pushed::Emit));
    let mut out = Vec::new();
    while let Some(c) = reorder.pop() {
        out.push(c);
    }
    assert_eq!(out, vec!['a', 'b', 'c']);
    assert_eq!(reorder.waiting(), 0);
    assert_eq!(reorder.push(3, 'd'), Ok(Pushed::Emit));
}

#[test]
fn one_emitter_at_a_time() {
    let reorder = Reorder::new();
    assert_eq!(reorder.push(0, 0), Ok(Pushed::Emit));
    assert_eq!(reorder.pop(), Some(0));
    // The emitter has not popped `None` yet: a newcomer only waits its turn,
    // and the emitter finds its result.
    assert_eq!(reorder.push(1, 1), Ok(Pushed::Wait));
    assert_eq!(reorder.pop(), Some(1));
    assert_eq!(reorder.pop(), None);
    assert_eq!(reorder.push(2, 2), Ok(Pushed::Emit));
}

#[test]
fn a_number_is_taken_once() {
    let reorder = Reorder::new();
    assert_eq!(reorder.push(1, 'x'), Ok(Pushed::Wait));
    assert_eq!(reorder.push(1, 'y'), Err((AlreadyPushed(1), 'y')));
    assert_eq!(reorder.push(0, 'a'), Ok(Pushed::Emit));
    assert_eq!(reorder.pop(), Some('a'));
    assert_eq!(reorder.push(0, 'z'), Err((AlreadyPushed(0), 'z')));
}

#[test]
fn threads_pushing_out_of_order_emit_everything_once_in_order() {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 20_000;
    let reorder = Arc::new(Reorder::new());
    let emitted = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let reorder = Arc::clone(&reorder);
            let emitted = Arc::clone(&emitted);
            std::thread::spawn(move || {
                for n in (t..THREADS * PER_THREAD).step_by(THREADS as usize) {
                    if reorder.push(n, n) == Ok(Pushed::Emit) {
                        while let Some(x) = reorder.pop() {
                            emitted.lock().push(x);
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    assert_eq!(
        *emitted.lock(),
        (0..THREADS * PER_THREAD).collect::<Vec<_>>()
    );
}
