//! The reorder window of an ordered stage: results finish in any order and
//! leave in the order their inputs were taken.
//!
//! A result is pushed with its input's number. Whoever pushes the result the
//! window waits for becomes the emitter and pops results in order until the
//! next one is missing; pushes that arrive meanwhile only wait their turn, so
//! one caller at a time emits and none waits for another to do so. The window
//! itself does not bound how far ahead a number may be: the stage admits at
//! most its window's worth of items before the oldest is emitted.

use std::collections::VecDeque;

use parking_lot::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// The caller now emits: pop until `None`.
    Emit,
    /// An earlier result is missing, or someone else is emitting.
    Wait,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlreadyPushed(pub u64);

pub struct Reorder<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    /// The number of the next result to leave.
    next: u64,
    /// Results from `next` on; `None` where one has not come yet.
    waiting: VecDeque<Option<T>>,
    emitting: bool,
}

impl<T> Default for Reorder<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Reorder<T> {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State {
                next: 0,
                waiting: VecDeque::new(),
                emitting: false,
            }),
        }
    }

    /// Adds the result of input `number`. The item comes back on error.
    pub fn push(&self, number: u64, item: T) -> Result<Pushed, (AlreadyPushed, T)> {
        let mut state = self.state.lock();
        let Some(offset) = number.checked_sub(state.next) else {
            return Err((AlreadyPushed(number), item));
        };
        let offset = offset as usize;
        if state.waiting.len() <= offset {
            state.waiting.resize_with(offset + 1, || None);
        }
        if state.waiting[offset].is_some() {
            return Err((AlreadyPushed(number), item));
        }
        state.waiting[offset] = Some(item);
        if !state.emitting && matches!(state.waiting.front(), Some(Some(_))) {
            state.emitting = true;
            return Ok(Pushed::Emit);
        }
        Ok(Pushed::Wait)
    }

    /// The emitter's next result in order; `None` ends its turn.
    pub fn pop(&self) -> Option<T> {
        let mut state = self.state.lock();
        if let Some(Some(_)) = state.waiting.front() {
            state.next += 1;
            return state.waiting.pop_front().flatten();
        }
        state.emitting = false;
        None
    }

    /// Results waiting for an earlier one (or for the emitter).
    pub fn waiting(&self) -> usize {
        self.state.lock().waiting.iter().flatten().count()
    }

    /// Takes every waiting result out (to be dropped with no lock held).
    pub fn drain(&self) -> Vec<T> {
        let mut state = self.state.lock();
        state.waiting.drain(..).flatten().collect()
    }

    /// Visits waiting results, unless the lock is busy (see `Queue::visit_items`).
    pub fn visit(&self, visit: impl FnMut(&T)) -> bool {
        match self.state.try_lock() {
            Some(state) => {
                state.waiting.iter().flatten().for_each(visit);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
#[path = "reorder_tests.rs"]
mod tests;
