//! The store of a priority queue: items kept in ascending order in chunks.
//!
//! Ordering items means calling their comparison, which is user code, and no
//! user code may run under a core lock. So the spot for a new item is found
//! outside the lock (`locate`, reading one item at a time) and then inserted
//! under it only if nothing moved meanwhile (the version is unchanged).

use std::collections::VecDeque;

/// Chunks split when they grow past twice this size, so an insertion moves
/// at most a few hundred pointers whatever the length of the queue.
const CHUNK: usize = 256;

#[derive(Debug)]
pub struct Sorted<T> {
    chunks: Vec<VecDeque<T>>,
    len: usize,
    version: u64,
}

/// The shape of the store when a search starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub version: u64,
    pub chunk_lens: Vec<usize>,
}

/// Where an item goes, valid only while the store still has `version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spot {
    version: u64,
    chunk: usize,
    index: usize,
}

impl<T> Default for Sorted<T> {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            len: 0,
            version: 0,
        }
    }
}

impl<T> Sorted<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn layout(&self) -> Layout {
        Layout {
            version: self.version,
            chunk_lens: self.chunks.iter().map(VecDeque::len).collect(),
        }
    }

    /// The item at `index` of `chunk`, if the store is still at `version`.
    pub fn peek(&self, version: u64, chunk: usize, index: usize) -> Option<&T> {
        if version != self.version {
            return None;
        }
        self.chunks.get(chunk)?.get(index)
    }

    /// Inserts at a spot found by `locate`; gives the item back if the store
    /// changed since (search again).
    pub fn insert(&mut self, spot: Spot, item: T) -> Result<(), T> {
        if spot.version != self.version {
            return Err(item);
        }
        if self.chunks.is_empty() {
            self.chunks.push(VecDeque::with_capacity(CHUNK));
        }
        let Some(chunk) = self.chunks.get_mut(spot.chunk) else {
            return Err(item);
        };
        if spot.index > chunk.len() {
            return Err(item);
        }
        chunk.insert(spot.index, item);
        if chunk.len() > 2 * CHUNK {
            let upper = chunk.split_off(CHUNK);
            self.chunks.insert(spot.chunk + 1, upper);
        }
        self.changed(1);
        Ok(())
    }

    /// Takes the smallest item.
    pub fn pop_first(&mut self) -> Option<T> {
        let first = self.chunks.first_mut()?;
        let item = first.pop_front()?;
        if first.is_empty() {
            self.chunks.remove(0);
        }
        self.changed(-1);
        Some(item)
    }

    /// Takes the largest item: the lowest priority.
    pub fn pop_last(&mut self) -> Option<T> {
        let last = self.chunks.last_mut()?;
        let item = last.pop_back()?;
        if last.is_empty() {
            self.chunks.pop();
        }
        self.changed(-1);
        Some(item)
    }

    pub fn drain(&mut self) -> Vec<T> {
        let items: Vec<T> = self.chunks.drain(..).flatten().collect();
        self.changed(-(items.len() as isize));
        items
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }

    fn changed(&mut self, by: isize) {
        self.len = self.len.saturating_add_signed(by);
        self.version += 1;
    }
}

/// Finds the spot after every item that does not sort after the new one (so
/// equal items leave in arrival order). `read(chunk, index)` fetches an item
/// (None once the store changed); `goes_before(other)` is `new < other`, the
/// only comparison used, as with `heapq`. Ok(None): the store changed, search
/// again with a new layout.
pub fn locate<U, E>(
    layout: &Layout,
    mut read: impl FnMut(usize, usize) -> Option<U>,
    mut goes_before: impl FnMut(&U) -> Result<bool, E>,
) -> Result<Option<Spot>, E> {
    let lens = &layout.chunk_lens;
    let spot = |chunk, index| Spot {
        version: layout.version,
        chunk,
        index,
    };
    if lens.is_empty() {
        return Ok(Some(spot(0, 0)));
    }
    // The first chunk whose last item sorts after the new one.
    let (mut low, mut high) = (0, lens.len());
    while low < high {
        let middle = usize::midpoint(low, high);
        let Some(last) = read(middle, lens[middle] - 1) else {
            return Ok(None);
        };
        if goes_before(&last)? {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    if low == lens.len() {
        return Ok(Some(spot(low - 1, lens[low - 1])));
    }
    let chunk = low;
    let (mut low, mut high) = (0, lens[chunk] - 1);
    while low < high {
        let middle = usize::midpoint(low, high);
        let Some(other) = read(chunk, middle) else {
            return Ok(None);
        };
        if goes_before(&other)? {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    Ok(Some(spot(chunk, low)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insert(store: &mut Sorted<(u32, u32)>, item: (u32, u32)) {
        let layout = store.layout();
        let spot = locate(
            &layout,
            |c, i| store.peek(layout.version, c, i).copied(),
            |other| Ok::<_, ()>(item.0 < other.0),
        )
        .unwrap()
        .unwrap();
        store.insert(spot, item).unwrap();
    }

    #[test]
    fn keeps_items_sorted_and_equal_ones_in_arrival_order() {
        let mut store = Sorted::default();
        let mut expected = Vec::new();
        for n in 0..3000u32 {
            let item = ((n * 7919) % 97, n);
            insert(&mut store, item);
            expected.push(item);
        }
        expected.sort_by_key(|&(priority, arrival)| (priority, arrival));
        assert_eq!(store.iter().copied().collect::<Vec<_>>(), expected);
        assert!(store.chunks.iter().all(|c| c.len() <= 2 * CHUNK));
        assert_eq!(store.pop_first(), Some(expected[0]));
        assert_eq!(store.pop_last(), expected.last().copied());
        assert_eq!(store.len(), 2998);
    }

    #[test]
    fn a_spot_found_before_a_change_is_refused() {
        let mut store = Sorted::default();
        insert(&mut store, (5, 0));
        let layout = store.layout();
        let spot = locate(
            &layout,
            |c, i| store.peek(layout.version, c, i).copied(),
            |other| Ok::<_, ()>(1 < other.0),
        )
        .unwrap()
        .unwrap();
        assert_eq!(store.pop_first(), Some((5, 0)));
        assert_eq!(store.insert(spot, (1, 1)), Err((1, 1)));
        assert_eq!(store.len(), 0);
    }
}
