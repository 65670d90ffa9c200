//! A FIFO list of weighted waiters: the queue every waiting primitive shares.

use std::collections::BTreeMap;

/// Waiters in arrival order. Ids grow monotonically, so the map's order is the
/// arrival order, and a cancelled waiter leaves in O(log n) from any position.
#[derive(Debug)]
pub struct Waitlist<T> {
    entries: BTreeMap<u64, Entry<T>>,
    next_id: u64,
}

#[derive(Debug)]
struct Entry<T> {
    weight: u64,
    item: T,
}

impl<T> Default for Waitlist<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Waitlist<T> {
    pub fn new() -> Self {
        Self {
            entries: BTreeMap::new(),
            next_id: 0,
        }
    }

    /// Adds a waiter at the back and returns the id that withdraws it.
    pub fn push(&mut self, weight: u64, item: T) -> u64 {
        let id = self.next_id;
        self.push_as(id, weight, item);
        id
    }

    /// Adds a waiter at the back under an id given by the caller, who keeps
    /// ids unique and increasing across lists (a list that is dropped when
    /// empty and made again must never hand out an id a stale caller holds).
    pub fn push_as(&mut self, id: u64, weight: u64, item: T) {
        debug_assert!(id >= self.next_id, "ids must increase");
        self.next_id = id + 1;
        self.entries.insert(id, Entry { weight, item });
    }

    /// Takes a waiter out from wherever it stands; `None` if it already left.
    pub fn remove(&mut self, id: u64) -> Option<T> {
        self.entries.remove(&id).map(|entry| entry.item)
    }

    /// Takes out the waiter `id` only if it is the one `is_it` recognises.
    pub fn remove_if(&mut self, id: u64, is_it: impl FnOnce(&T) -> bool) -> Option<T> {
        match self.entries.get(&id) {
            Some(entry) if is_it(&entry.item) => self.remove(id),
            _ => None,
        }
    }

    /// Pops waiters from the front for as long as `admit` accepts the weight of
    /// the one at the head. A head that is refused blocks everyone behind it:
    /// that is what keeps a heavy waiter from being starved by light ones.
    pub fn pop_front_while(&mut self, mut admit: impl FnMut(u64) -> bool) -> Vec<T> {
        let mut popped = Vec::new();
        while let Some(entry) = self.entries.first_entry() {
            if !admit(entry.get().weight) {
                break;
            }
            popped.push(entry.remove().item);
        }
        popped
    }

    /// Total weight of the waiters ahead of `id`; `None` if `id` left.
    pub fn weight_before(&self, id: u64) -> Option<u64> {
        self.entries
            .contains_key(&id)
            .then(|| self.entries.range(..id).map(|(_, e)| e.weight).sum())
    }

    pub fn weight_of(&self, id: u64) -> Option<u64> {
        self.entries.get(&id).map(|entry| entry.weight)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<T: Clone> Waitlist<T> {
    /// Every waiter, in order.
    pub fn all(&self) -> Vec<T> {
        self.entries.values().map(|e| e.item.clone()).collect()
    }

    /// The waiters that arrived after `id`, in order.
    pub fn after(&self, id: u64) -> Vec<T> {
        self.entries
            .range(id + 1..)
            .map(|(_, e)| e.item.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_arrival_order() {
        let mut list = Waitlist::new();
        for name in ["a", "b", "c"] {
            list.push(1, name);
        }
        assert_eq!(list.pop_front_while(|_| true), vec!["a", "b", "c"]);
        assert!(list.is_empty());
    }

    #[test]
    fn refused_head_blocks_lighter_waiters_behind_it() {
        let mut list = Waitlist::new();
        list.push(5, "heavy");
        list.push(1, "light");
        assert!(list.pop_front_while(|weight| weight <= 2).is_empty());
        assert_eq!(list.len(), 2);
    }

    #[test]
    fn removal_from_the_middle_keeps_the_order_of_the_rest() {
        let mut list = Waitlist::new();
        let _a = list.push(1, "a");
        let b = list.push(1, "b");
        let _c = list.push(1, "c");
        assert_eq!(list.remove(b), Some("b"));
        assert_eq!(list.remove(b), None);
        assert_eq!(list.pop_front_while(|_| true), vec!["a", "c"]);
    }
}
