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

    /// The key as messages show it: 'alice', b'ip', 42; a long one cut.
    pub fn describe(&self) -> String {
        const MOST: usize = 80;
        let full = self.describe_all();
        match full.char_indices().nth(MOST) {
            Some((at, _)) => format!("{}...", &full[..at]),
            None => full,
        }
    }

    fn describe_all(&self) -> String {
        fn trimmed(bytes: &[u8]) -> &[u8] {
            let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            &bytes[..end]
        }
        fn text(bytes: &[u8]) -> String {
            format!("'{}'", String::from_utf8_lossy(bytes).escape_debug())
        }
        fn data(bytes: &[u8]) -> String {
            format!("b'{}'", bytes.escape_ascii())
        }
        match self {
            Key::Shared => "None".to_owned(),
            Key::Int(n) => n.to_string(),
            Key::BigInt(digits) => digits.to_string(),
            Key::ShortStr(bytes) => text(trimmed(bytes)),
            Key::Str(string) => text(string.as_bytes()),
            Key::ShortBytes(bytes) => data(trimmed(bytes)),
            Key::Bytes(bytes) => data(bytes),
        }
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

/// A part of a key table, on its own: its map grows, and is swept, alone.
pub struct Shard<V> {
    slots: HashMap<Key, V>,
    /// With `max_keys`: each key's place in the recency order, and the order.
    max_keys: Option<usize>,
    recency_of: HashMap<Key, u64>,
    recency: BTreeMap<u64, Key>,
    next_recency: u64,
    live_after_sweep: usize,
    calls_since_sweep: usize,
    /// Sweeps wait for at least this many entries.
    sweep_floor: usize,
    next_sweep_ns: u64,
    sweep_period_ns: u64,
}

impl<V> Shard<V> {
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
            sweep_floor: SWEEP_FLOOR,
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
            self.sweep(now_ns, &is_idle, &can_forget);
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
        if len < self.sweep_floor {
            return false;
        }
        let grew = len >= 2 * self.live_after_sweep.max(self.sweep_floor);
        let paid = self.calls_since_sweep >= len / SWEEP_SHARE;
        grew || (now_ns >= self.next_sweep_ns && paid)
    }

    /// Drops every idle entry that `can_forget` allows (a bucket's key with
    /// callers queued must keep its schedule), and gives the memory back.
    pub fn sweep(
        &mut self,
        now_ns: u64,
        is_idle: &impl Fn(&V) -> bool,
        can_forget: &impl Fn(&Key, &V) -> bool,
    ) {
        let (recency, recency_of) = (&mut self.recency, &mut self.recency_of);
        self.slots.retain(|key, value| {
            let keep = !(is_idle(value) && can_forget(key, value));
            if !keep {
                if let Some(order) = recency_of.remove(key) {
                    recency.remove(&order);
                }
            }
            keep
        });
        if self.slots.capacity() > 4 * self.slots.len().max(self.sweep_floor) {
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

/// How many parts a table without `max_keys` is split into. A map that
/// grows rehashes every entry it holds, with the limiter's lock held: split
/// in 64, a table of 2,000,000 keys rehashes about 31,000 at a time.
const SHARDS: usize = 64;
/// Under `max_keys`, each part holds at least this many keys: a small cap
/// is one part, with an exact least-recently-used order.
const KEYS_PER_SHARD: usize = 4096;

/// FxHash's step, to pick a part (the map inside hashes on its own).
struct Mix(u64);

impl std::hash::Hasher for Mix {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn write_isize(&mut self, n: isize) {
        self.write_u64(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Which of `parts` parts `key` belongs in, by a hash of its own (the
/// maps inside hash on theirs).
pub fn part_of(key: &Key, parts: usize) -> usize {
    let mut mix = Mix(0);
    std::hash::Hash::hash(key, &mut mix);
    // The high bits are the best mixed.
    ((mix.0 >> 32) as usize) % parts
}

/// Per-key entries, split into parts by the key's hash so that no single
/// growth or sweep of the table holds its lock for long. Each part sweeps
/// its idle entries when it is touched and due; under `max_keys` each part
/// holds its share and forgets its own least recently used.
pub struct KeyTable<V> {
    shards: Vec<Shard<V>>,
}

impl<V> KeyTable<V> {
    /// `sweep_period_ns`: after this long untouched, every entry is idle.
    pub fn new(max_keys: Option<usize>, sweep_period_ns: u64) -> Self {
        let count = match max_keys {
            None => SHARDS,
            Some(max) => (max / KEYS_PER_SHARD).clamp(1, SHARDS),
        };
        let shards = (0..count)
            .map(|i| {
                // The cap split exactly: the first parts take the remainder.
                let cap = max_keys.map(|max| max / count + usize::from(i < max % count));
                let mut shard = Shard::new(cap, sweep_period_ns);
                shard.sweep_floor = (SWEEP_FLOOR / count).max(16);
                shard
            })
            .collect();
        Self { shards }
    }

    fn shard_of(&self, key: &Key) -> usize {
        if self.shards.len() == 1 {
            return 0;
        }
        part_of(key, self.shards.len())
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(Shard::len).sum()
    }

    /// Every entry, to rewrite them all at once.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.shards
            .iter_mut()
            .flat_map(|shard| shard.slots.values_mut())
    }

    pub fn get(&self, key: &Key) -> Option<&V> {
        self.shards[self.shard_of(key)].get(key)
    }

    pub fn get_mut(&mut self, key: &Key) -> Option<&mut V> {
        let shard = self.shard_of(key);
        self.shards[shard].get_mut(key)
    }

    /// Puts back an entry without counting a call (no sweep, no recency).
    pub fn insert(&mut self, key: Key, value: V) {
        let shard = self.shard_of(&key);
        self.shards[shard].insert(key, value);
    }

    /// The entry for `key`, made by `make` if absent (see `Shard::entry`).
    pub fn entry(
        &mut self,
        key: Key,
        now_ns: u64,
        make: impl FnOnce() -> V,
        is_idle: impl Fn(&V) -> bool,
        can_forget: impl Fn(&Key, &V) -> bool,
    ) -> &mut V {
        let shard = self.shard_of(&key);
        self.shards[shard].entry(key, now_ns, make, is_idle, can_forget)
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
        let mut table: Shard<u32> = Shard::new(None, 100);
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
    fn a_split_table_sweeps_each_part_as_it_is_touched() {
        let mut table: KeyTable<u32> = KeyTable::new(None, 100);
        for i in 0..100_000 {
            table.entry(Key::Int(i), 0, || 0, busy, |_, _| true);
        }
        assert_eq!(table.len(), 100_000);
        assert!(table.shards.iter().all(|s| s.len() > 1000), "keys spread");
        // Later, new keys touch every part: each sweeps its idle entries.
        for i in 0..1000 {
            table.entry(Key::Int(-1 - i), 1_000, || 1, |v| *v == 0, |_, _| true);
        }
        assert_eq!(table.len(), 1000);
    }

    #[test]
    fn no_part_grows_with_more_than_a_share_of_the_keys() {
        let mut table: KeyTable<u32> = KeyTable::new(None, u64::MAX);
        for i in 0..200_000 {
            table.entry(
                Key::text(&format!("client-{i}")),
                0,
                || 0,
                busy,
                |_, _| true,
            );
        }
        let most = table.shards.iter().map(Shard::len).max().unwrap();
        // A part rehashes at most its own entries: about 1/64 of them.
        assert!(most < 2 * 200_000 / SHARDS, "{most}");
    }

    #[test]
    fn a_large_cap_is_split_exactly_between_the_parts() {
        let table: KeyTable<u32> = KeyTable::new(Some(100_003), u64::MAX);
        let caps: usize = table.shards.iter().map(|s| s.max_keys.unwrap()).sum();
        assert_eq!(caps, 100_003);
        assert_eq!(table.shards.len(), 100_003 / KEYS_PER_SHARD);
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
