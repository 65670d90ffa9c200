//! A FIFO list of weighted waiters: the queue every waiting primitive shares.

use std::collections::VecDeque;

/// Waiters in arrival order, under ids that grow with every arrival. A
/// waiter joins at the back in O(1), the head leaves in O(1), and one that
/// leaves from elsewhere (cancelled) is found by binary search and leaves a
/// gap, swept when the gaps outnumber the waiters: O(log n), amortized.
#[derive(Debug)]
pub struct Waitlist<T> {
    entries: VecDeque<Entry<T>>,
    live: usize,
    next_id: u64,
}

#[derive(Debug)]
struct Entry<T> {
    id: u64,
    weight: u64,
    /// None: the waiter left; a gap until swept.
    item: Option<T>,
}

impl<T> Default for Waitlist<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Waitlist<T> {
    pub fn new() -> Self {
        Self {
            entries: VecDeque::new(),
            live: 0,
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
        self.entries.push_back(Entry {
            id,
            weight,
            item: Some(item),
        });
        self.live += 1;
    }

    fn position(&self, id: u64) -> Option<usize> {
        let index = self.entries.binary_search_by_key(&id, |e| e.id).ok()?;
        self.entries[index].item.is_some().then_some(index)
    }

    /// Takes a waiter out from wherever it stands; `None` if it already left.
    pub fn remove(&mut self, id: u64) -> Option<T> {
        let index = self.position(id)?;
        let item = self.entries[index].item.take();
        self.live -= 1;
        self.sweep();
        item
    }

    /// Takes out the waiter `id` only if it is the one `is_it` recognises.
    pub fn remove_if(&mut self, id: u64, is_it: impl FnOnce(&T) -> bool) -> Option<T> {
        let index = self.position(id)?;
        if !self.entries[index].item.as_ref().is_some_and(is_it) {
            return None;
        }
        self.remove(id)
    }

    /// Drops the gaps at the head, and all of them once they outnumber the
    /// waiters.
    fn sweep(&mut self) {
        while self.entries.front().is_some_and(|e| e.item.is_none()) {
            self.entries.pop_front();
        }
        let gaps = self.entries.len() - self.live;
        if gaps > 16 && gaps > self.live {
            self.entries.retain(|e| e.item.is_some());
        }
    }

    /// Pops waiters from the front for as long as `admit` accepts the weight of
    /// the one at the head. A head that is refused blocks everyone behind it:
    /// that is what keeps a heavy waiter from being starved by light ones.
    pub fn pop_front_while(&mut self, mut admit: impl FnMut(u64) -> bool) -> Vec<T> {
        let mut popped = Vec::new();
        self.sweep();
        while let Some(head) = self.entries.front() {
            if !admit(head.weight) {
                break;
            }
            if let Some(item) = self.entries.pop_front().and_then(|e| e.item) {
                popped.push(item);
                self.live -= 1;
            }
            self.sweep();
        }
        popped
    }

    /// `pop_front_while` for a list whose head may be a waiter that can
    /// never be admitted as things stand (`passed_over` says which weights):
    /// those stay in line, and the first one behind them that `admit` refuses
    /// blocks the rest. Gaps are left where waiters were taken out.
    pub fn pop_passing_over(
        &mut self,
        passed_over: impl Fn(u64) -> bool,
        mut admit: impl FnMut(u64) -> bool,
    ) -> Vec<T> {
        let mut popped = Vec::new();
        for entry in &mut self.entries {
            if entry.item.is_none() || passed_over(entry.weight) {
                continue;
            }
            if !admit(entry.weight) {
                break;
            }
            popped.extend(entry.item.take());
        }
        self.live -= popped.len();
        self.sweep();
        popped
    }

    /// The weight of the first waiter, if any.
    pub fn head_weight(&self) -> Option<u64> {
        self.waiting().next().map(|e| e.weight)
    }

    /// True if some waiter's weight is not one of `passed_over`.
    pub fn any_but(&self, passed_over: impl Fn(u64) -> bool) -> bool {
        self.waiting().any(|e| !passed_over(e.weight))
    }

    fn waiting(&self) -> impl Iterator<Item = &Entry<T>> {
        self.entries.iter().filter(|e| e.item.is_some())
    }

    /// Total weight of the waiters ahead of `id`; `None` if `id` left.
    pub fn weight_before(&self, id: u64) -> Option<u64> {
        self.position(id)?;
        Some(
            self.waiting()
                .take_while(|e| e.id < id)
                .map(|e| e.weight)
                .sum(),
        )
    }

    pub fn weight_of(&self, id: u64) -> Option<u64> {
        self.position(id).map(|index| self.entries[index].weight)
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }
}

impl<T: Clone> Waitlist<T> {
    /// Every waiter, in order.
    pub fn all(&self) -> Vec<T> {
        self.waiting().filter_map(|e| e.item.clone()).collect()
    }

    /// Every waiter with its id and weight, in order.
    pub fn entries(&self) -> Vec<(u64, u64, T)> {
        self.waiting()
            .filter_map(|e| e.item.clone().map(|item| (e.id, e.weight, item)))
            .collect()
    }

    /// The waiters that arrived after `id`, in order.
    pub fn after(&self, id: u64) -> Vec<T> {
        self.waiting()
            .filter(|e| e.id > id)
            .filter_map(|e| e.item.clone())
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
        assert_eq!(list.weight_of(b), None);
        assert_eq!(list.pop_front_while(|_| true), vec!["a", "c"]);
    }

    #[test]
    fn gaps_left_by_many_removals_are_swept_and_the_rest_stays_in_order() {
        let mut list = Waitlist::new();
        let ids: Vec<u64> = (0..1000).map(|n| list.push(2, n)).collect();
        // The head stays while everyone behind it but every tenth leaves.
        for (n, &id) in ids.iter().enumerate().skip(1) {
            if n % 10 != 0 {
                assert_eq!(list.remove(id), Some(n));
            }
        }
        assert_eq!(list.len(), 100);
        assert!(list.entries.len() < 300, "gaps were swept");
        assert_eq!(list.weight_before(ids[50]), Some(2 * 5));
        assert_eq!(
            list.after(ids[900]),
            vec![910, 920, 930, 940, 950, 960, 970, 980, 990]
        );
        let popped = list.pop_front_while(|_| true);
        assert_eq!(popped, (0..1000).step_by(10).collect::<Vec<_>>());
        assert!(list.is_empty() && list.entries.is_empty());
    }
}
