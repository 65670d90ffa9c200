//! Per-key state with memory bounded by the keys in use: an entry that is
//! idle (its bucket refilled, nobody waiting) answers exactly as a new one
//! would, so sweeps drop it; `max_keys` caps the table hard, least recently
//! used first.

use std::collections::{BTreeMap, HashMap};

/// The longest key kept inline, without an allocation of its own: client
/// ids and IPv4 addresses fit.
const INLINE: usize = 15;

/// A limiter key. 16 bytes: short keys live inline, zero-padded; a short key
/// that itself ends in a zero byte goes to the heap instead, so that padding
/// never makes two keys equal.
// The boxes are thin pointers on purpose: a `String` beside the inline bytes
// would make every key, and so every table slot, 8 bytes larger.
#[allow(clippy::box_collection)]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Shared,
    Int(i64),
    /// An int beyond 64 bits, by its decimal digits.
    BigInt(Box<String>),
    ShortStr([u8; INLINE]),
    ShortBytes([u8; INLINE]),
    Str(Box<String>),
    Bytes(Box<Vec<u8>>),
}

impl Key {
    pub fn text(text: &str) -> Self {
        match inline(text.as_bytes()) {
            Some(bytes) => Key::ShortStr(bytes),
            None => Key::Str(Box::new(text.to_owned())),
        }
    }

    pub fn bytes(data: &[u8]) -> Self {
        match inline(data) {
            Some(bytes) => Key::ShortBytes(bytes),
            None => Key::Bytes(Box::new(data.to_vec())),
        }
    }

    pub fn big_int(digits: &str) -> Self {
        Key::BigInt(Box::new(digits.to_owned()))
    }
}

fn inline(data: &[u8]) -> Option<[u8; INLINE]> {
    if data.len() > INLINE || data.last() == Some(&0) {
        return None;
    }
    let mut bytes = [0u8; INLINE];
    bytes[..data.len()].copy_from_slice(data);
    Some(bytes)
}

/// Sweeps wait for at least this many entries, and then for enough calls to
/// pay for them: each call carries at most 1/SWEEP_SHARE of a sweep's work.
const SWEEP_FLOOR: usize = 1024;
const SWEEP_SHARE: usize = 16;

pub struct KeyTable<V> {
    slots: HashMap<Key, V>,
    /// With `max_keys`: each key's place in the recency order, and the order.
    max_keys: Option<usize>,
    recency_of: HashMap<Key, u64>,
    recency: BTreeMap<u64, Key>,
    next_recency: u64,
    live_after_sweep: usize,
    calls_since_sweep: usize,
    next_sweep_ns: u64,
    sweep_period_ns: u64,
}

impl<V> KeyTable<V> {
    /// `sweep_period_ns`: after this long untouched, every entry is idle.
    pub fn new(max_keys: Option<usize>, sweep_period_ns: u64) -> Self {
        Self {
            slots: HashMap::new(),
            max_keys,
            recency_of: HashMap::new(),
            recency: BTreeMap::new(),
            next_recency: 0,
            live_after_sweep: 0,
            calls_since_sweep: 0,
            next_sweep_ns: sweep_period_ns,
            sweep_period_ns: sweep_period_ns.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn get(&self, key: &Key) -> Option<&V> {
        self.slots.get(key)
    }

    pub fn get_mut(&mut self, key: &Key) -> Option<&mut V> {
        self.slots.get_mut(key)
    }

    /// Puts back an entry without counting a call (no sweep, no recency).
    pub fn insert(&mut self, key: Key, value: V) {
        self.slots.insert(key, value);
    }

    /// The entry for `key`, made by `make` if absent. Sweeps idle entries
    /// when that is due, and under `max_keys` forgets the least recently used
    /// entry that `can_forget` allows.
    pub fn entry(
        &mut self,
        key: Key,
        now_ns: u64,
        make: impl FnOnce() -> V,
        is_idle: impl Fn(&V) -> bool,
        can_forget: impl Fn(&Key, &V) -> bool,
    ) -> &mut V {
        self.calls_since_sweep += 1;
        if self.sweep_due(now_ns) {
            self.sweep(now_ns, &is_idle);
        }
        if self.max_keys.is_none() {
            // One hash, and the key moves into the table only if it is new.
            return self.slots.entry(key).or_insert_with(make);
        }
        let recency = self.next_recency;
        self.next_recency += 1;
        if self.slots.contains_key(&key) {
            self.touch(&key, recency);
        } else {
            let max = self.max_keys.unwrap_or(usize::MAX).max(1);
            while self.slots.len() >= max && self.forget_oldest(&can_forget) {}
            self.recency.insert(recency, key.clone());
            self.recency_of.insert(key.clone(), recency);
        }
        self.slots.entry(key).or_insert_with(make)
    }

    fn sweep_due(&self, now_ns: u64) -> bool {
        let len = self.slots.len();
        if len < SWEEP_FLOOR {
            return false;
        }
        let grew = len >= 2 * self.live_after_sweep.max(SWEEP_FLOOR);
        let paid = self.calls_since_sweep >= len / SWEEP_SHARE;
        grew || (now_ns >= self.next_sweep_ns && paid)
    }

    /// Drops every idle entry and gives the memory back.
    pub fn sweep(&mut self, now_ns: u64, is_idle: &impl Fn(&V) -> bool) {
        let (recency, recency_of) = (&mut self.recency, &mut self.recency_of);
        self.slots.retain(|key, value| {
            let keep = !is_idle(value);
            if !keep {
                if let Some(order) = recency_of.remove(key) {
                    recency.remove(&order);
                }
            }
            keep
        });
        if self.slots.capacity() > 4 * self.slots.len().max(SWEEP_FLOOR) {
            self.slots.shrink_to(2 * self.slots.len());
            self.recency_of.shrink_to(2 * self.recency_of.len());
        }
        self.live_after_sweep = self.slots.len();
        self.calls_since_sweep = 0;
        self.next_sweep_ns = now_ns.saturating_add(self.sweep_period_ns);
    }

    fn touch(&mut self, key: &Key, recency: u64) {
        if let Some(order) = self.recency_of.get_mut(key) {
            if let Some(k) = self.recency.remove(order) {
                self.recency.insert(recency, k);
            }
            *order = recency;
        }
    }

    /// Forgets the least recently used entry that may be forgotten.
    fn forget_oldest(&mut self, can_forget: &impl Fn(&Key, &V) -> bool) -> bool {
        let victim = self.recency.iter().find_map(|(&order, key)| {
            let value = self.slots.get(key)?;
            can_forget(key, value).then(|| (order, key.clone()))
        });
        match victim {
            Some((order, key)) => {
                self.recency.remove(&order);
                self.recency_of.remove(&key);
                self.slots.remove(&key);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::trivially_copy_pass_by_ref)] // the table passes entries by reference
    fn busy(_: &u32) -> bool {
        false
    }

    #[test]
    fn idle_entries_are_swept_once_their_period_has_passed() {
        let mut table: KeyTable<u32> = KeyTable::new(None, 100);
        for i in 0..5000 {
            table.entry(Key::Int(i), 0, || 0, busy, |_, _| true);
        }
        assert_eq!(table.len(), 5000, "nothing is idle yet");
        // Later, every entry has become idle: the next call sweeps them.
        table.entry(Key::Int(-1), 1_000, || 1, |v| *v == 0, |_, _| true);
        assert_eq!(table.len(), 1);
        assert!(table.slots.capacity() < 5000, "memory went back too");
    }

    #[test]
    fn max_keys_forgets_the_least_recently_used() {
        let mut table: KeyTable<u32> = KeyTable::new(Some(2), u64::MAX);
        table.entry(Key::Int(1), 0, || 1, busy, |_, _| true);
        table.entry(Key::Int(2), 0, || 2, busy, |_, _| true);
        table.entry(Key::Int(1), 0, || 9, busy, |_, _| true); // 1 is now the most recent
        table.entry(Key::Int(3), 0, || 3, busy, |_, _| true);
        assert!(table.get(&Key::Int(2)).is_none());
        assert_eq!(table.get(&Key::Int(1)), Some(&1));
        assert_eq!(table.get(&Key::Int(3)), Some(&3));
    }

    #[test]
    fn max_keys_never_forgets_an_entry_it_may_not() {
        let mut table: KeyTable<u32> = KeyTable::new(Some(1), u64::MAX);
        table.entry(Key::Int(1), 0, || 1, busy, |_, v| *v != 1);
        table.entry(Key::Int(2), 0, || 2, busy, |_, v| *v != 1);
        assert_eq!(table.get(&Key::Int(1)), Some(&1));
        assert_eq!(table.len(), 2);
    }
}

#[cfg(test)]
mod key_tests {
    use super::*;

    #[test]
    fn short_keys_are_inline_and_kinds_never_collide() {
        assert!(matches!(Key::text("255.255.255.255"), Key::ShortStr(_)));
        assert!(matches!(Key::text(&"x".repeat(16)), Key::Str(_)));
        assert_ne!(Key::text("a"), Key::bytes(b"a"));
        assert_eq!(Key::text("abc"), Key::text("abc"));
        assert_ne!(Key::text("ab"), Key::text("ab\0"));
        assert_ne!(Key::text(""), Key::text("\0"));
        assert_eq!(std::mem::size_of::<Key>(), 16);
    }
}
