//! How long something took, as counts in log-spaced buckets: one atomic add
//! per observation, no lock and no allocation.
//!
//! Bucket 0 holds the observations of exactly 0 (a caller that did not
//! wait); bucket `k` for `k` in `1..=LAST_FINITE` holds those above
//! `2^(k-2)` µs up to `2^(k-1)` µs (bucket 1: above 0 up to 1 µs); the last
//! bucket holds the rest (above about 67 s).

use std::sync::atomic::{AtomicU64, Ordering};

/// Buckets in all: zero, 27 finite ones from 1 µs to 2^26 µs, and infinity.
pub const BUCKETS: usize = 29;
const LAST_FINITE: usize = BUCKETS - 2;

/// The upper bound of bucket `k`, in nanoseconds (`u64::MAX` for the last).
pub fn upper_bound_ns(k: usize) -> u64 {
    match k {
        0 => 0,
        k if k <= LAST_FINITE => 1_000 << (k - 1),
        _ => u64::MAX,
    }
}

/// The bucket an observation of `ns` nanoseconds falls in.
pub fn bucket_of(ns: u64) -> usize {
    if ns == 0 {
        return 0;
    }
    let micros = ns.div_ceil(1_000);
    if micros <= 1 {
        return 1;
    }
    let k = 1 + (64 - (micros - 1).leading_zeros()) as usize;
    k.min(BUCKETS - 1)
}

pub struct Histogram {
    counts: [AtomicU64; BUCKETS],
    sum_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn record(&self, ns: u64) {
        self.record_many(ns, 1);
    }

    /// `count` observations of `ns` each (the items of one batch).
    pub fn record_many(&self, ns: u64, count: u64) {
        self.counts[bucket_of(ns)].fetch_add(count, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(ns.saturating_mul(count), Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
    }

    /// The counts so far, where `total` observations were made in all: those
    /// not recorded here were of 0.
    pub fn snapshot_of(&self, total: u64) -> HistogramSnapshot {
        let mut snapshot = self.snapshot(0);
        snapshot.counts[0] += total.saturating_sub(snapshot.count());
        snapshot
    }

    /// The counts so far, with `zeros` more observations of 0 that the owner
    /// counted itself (callers that did not wait cost it no add here).
    pub fn snapshot(&self, zeros: u64) -> HistogramSnapshot {
        let mut counts: [u64; BUCKETS] =
            std::array::from_fn(|k| self.counts[k].load(Ordering::Relaxed));
        counts[0] += zeros;
        HistogramSnapshot {
            counts,
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
            max_ns: self.max_ns.load(Ordering::Relaxed),
        }
    }
}

/// A histogram allocated at its first observation: a gauge per key keeps
/// one for its waits, and most keys never wait.
#[derive(Default)]
pub struct LazyHistogram(std::sync::OnceLock<Box<Histogram>>);

impl LazyHistogram {
    pub fn record(&self, ns: u64) {
        self.0.get_or_init(Box::default).record(ns);
    }

    /// As `Histogram::snapshot`.
    pub fn snapshot(&self, zeros: u64) -> HistogramSnapshot {
        if let Some(histogram) = self.0.get() {
            return histogram.snapshot(zeros);
        }
        let mut snapshot = HistogramSnapshot::default();
        snapshot.counts[0] = zeros;
        snapshot
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct HistogramSnapshot {
    /// Observations per bucket (not cumulative).
    pub counts: [u64; BUCKETS],
    pub sum_ns: u64,
    /// The longest observation.
    pub max_ns: u64,
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The `q` quantile (0..=1) in nanoseconds, interpolated linearly within
    /// its bucket and never above the longest observation; None with no
    /// observations. The open last bucket answers the longest observation.
    pub fn quantile_ns(&self, q: f64) -> Option<f64> {
        let count = self.count();
        if count == 0 || !q.is_finite() {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * count as f64;
        let mut below = 0u64;
        for (k, &n) in self.counts.iter().enumerate() {
            if n == 0 {
                continue;
            }
            if (below + n) as f64 >= rank {
                if k == 0 {
                    return Some(0.0);
                }
                let lower = if k == 1 {
                    0.0
                } else {
                    upper_bound_ns(k - 1) as f64
                };
                // The longest observation bounds the bucket it fell in (and
                // the open last bucket).
                let upper = (upper_bound_ns(k) as f64).min(self.max_ns as f64);
                let within = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
                return Some((lower + (upper - lower) * within).max(lower.min(upper)));
            }
            below += n;
        }
        None
    }

    /// Adds another snapshot's counts (a gauge's and its fallback's).
    pub fn merged(mut self, other: &Self) -> Self {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine += theirs;
        }
        self.sum_ns += other.sum_ns;
        self.max_ns = self.max_ns.max(other.max_ns);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_log_spaced_from_one_microsecond() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 1);
        assert_eq!(bucket_of(1_000), 1);
        assert_eq!(bucket_of(1_001), 2);
        assert_eq!(bucket_of(2_000), 2);
        assert_eq!(bucket_of(2_001), 3);
        assert_eq!(bucket_of(4_000), 3);
        assert_eq!(bucket_of(1_000_000_000), bucket_of(1_000 << 20));
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        for k in 1..BUCKETS - 1 {
            assert_eq!(bucket_of(upper_bound_ns(k)), k, "bucket {k}");
            assert_eq!(bucket_of(upper_bound_ns(k) + 1), k + 1, "bucket {k}");
        }
    }

    #[test]
    fn zeros_counted_by_the_owner_join_the_zero_bucket() {
        let h = Histogram::default();
        h.record(5_000);
        let s = h.snapshot(3);
        assert_eq!(s.counts[0], 3);
        assert_eq!(s.count(), 4);
        assert_eq!(s.sum_ns, 5_000);
        assert_eq!(s.quantile_ns(0.5), Some(0.0));
    }

    #[test]
    fn quantiles_fall_in_the_bucket_of_the_observation() {
        let h = Histogram::default();
        for _ in 0..99 {
            h.record(3_000_000); // 3 ms: bucket (2.048 ms, 4.096 ms]
        }
        h.record(900_000_000);
        let s = h.snapshot(0);
        let p50 = s.quantile_ns(0.5).unwrap();
        assert!((2_048_000.0..=4_096_000.0).contains(&p50), "{p50}");
        // Never above the longest observation.
        assert_eq!(s.quantile_ns(1.0), Some(900_000_000.0));
        let p995 = s.quantile_ns(0.995).unwrap();
        assert!((524_288_000.0..=900_000_000.0).contains(&p995), "{p995}");
        assert_eq!(Histogram::default().snapshot(0).quantile_ns(0.5), None);
    }
}
