//! Where a queue keeps its items, in the order it hands them out.

use std::collections::VecDeque;

use super::sorted::{Sorted, Spot};

/// The order items leave a queue in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Fifo,
    Lifo,
    /// Smallest first; items are ordered by their comparison, found outside
    /// any lock (see `sorted`).
    Priority,
}

#[derive(Debug)]
pub enum Store<T> {
    Fifo(VecDeque<T>),
    Lifo(VecDeque<T>),
    Priority(Sorted<T>),
}

impl<T> Store<T> {
    pub fn new(order: Order) -> Self {
        match order {
            Order::Fifo => Self::Fifo(VecDeque::new()),
            Order::Lifo => Self::Lifo(VecDeque::new()),
            Order::Priority => Self::Priority(Sorted::default()),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Self::Fifo(items) | Self::Lifo(items) => items.len(),
            Self::Priority(items) => items.len(),
        }
    }

    /// Adds an item; a priority store needs the spot `locate` found for it,
    /// and gives the item back if that spot is stale (or missing).
    pub fn insert(&mut self, item: T, spot: Option<Spot>) -> Result<(), T> {
        match self {
            Self::Fifo(items) | Self::Lifo(items) => {
                items.push_back(item);
                Ok(())
            }
            Self::Priority(items) => match spot {
                Some(spot) => items.insert(spot, item),
                None => Err(item),
            },
        }
    }

    /// The next item a consumer gets.
    pub fn take(&mut self) -> Option<T> {
        match self {
            Self::Fifo(items) => items.pop_front(),
            Self::Lifo(items) => items.pop_back(),
            Self::Priority(items) => items.pop_first(),
        }
    }

    /// The item `drop_old` discards: the one that waited longest, or in
    /// priority order the lowest priority.
    pub fn evict(&mut self) -> Option<T> {
        match self {
            Self::Fifo(items) | Self::Lifo(items) => items.pop_front(),
            Self::Priority(items) => items.pop_last(),
        }
    }

    pub fn drain(&mut self) -> Vec<T> {
        match self {
            Self::Fifo(items) | Self::Lifo(items) => items.drain(..).collect(),
            Self::Priority(items) => items.drain(),
        }
    }

    pub fn sorted(&self) -> Option<&Sorted<T>> {
        match self {
            Self::Priority(items) => Some(items),
            _ => None,
        }
    }

    /// Every item, in no promised order (for garbage collection).
    pub fn for_each(&self, visit: impl FnMut(&T)) {
        match self {
            Self::Fifo(items) | Self::Lifo(items) => items.iter().for_each(visit),
            Self::Priority(items) => items.iter().for_each(visit),
        }
    }
}
