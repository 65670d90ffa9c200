//! Limit algorithms for a gauge that finds its own limit: each reads one
//! sample (a call's round trip, or a drop) and proposes where the limit
//! should go. The formulas are those of Netflix's concurrency-limits, step
//! for step; the controller (`controller.rs`) owns the limit, keeps it in
//! bounds and decides which proposals it takes.

/// One finished call, as an algorithm sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// The call's round trip in nanoseconds; None for a drop, whose latency
    /// says nothing of the service (a fast failure is not a fast service).
    pub rtt_ns: Option<u64>,
    /// Calls in flight when it ended, itself included.
    pub inflight: u64,
}

impl Sample {
    #[cfg(test)]
    pub fn dropped(inflight: u64) -> Self {
        Self {
            rtt_ns: None,
            inflight,
        }
    }
}

/// What an algorithm knows of the round trip, in nanoseconds, for stats.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RttEstimates {
    /// The no-load RTT it compares against.
    pub no_load: Option<f64>,
    /// Gradient2's long-window average.
    pub long: Option<f64>,
}

pub trait LimitAlgorithm: Send {
    /// Reads `sample` into the algorithm's estimates and returns the limit it
    /// would move `limit` to (before bounds).
    fn propose(&mut self, sample: Sample, limit: f64) -> f64;
    /// Whether the algorithm compares round trips with a no-load RTT, which
    /// the controller then measures at a pinned low concurrency.
    fn uses_no_load(&self) -> bool {
        false
    }
    /// The no-load RTT the controller just measured.
    fn no_load_measured(&mut self, rtt_ns: u64) {
        let _ = rtt_ns;
    }
    /// Whether the proposal just made, if it shrinks the limit, is taken at
    /// once rather than waiting, as any other change does, for a call that
    /// started after the last change (see the controller).
    fn shrinks_at_once(&self) -> bool {
        false
    }
    fn rtt_estimates(&self) -> RttEstimates {
        RttEstimates::default()
    }
}

/// `max(1, floor(log10 limit))`: Netflix's `Log10RootFunction`, the step
/// Vegas grows and shrinks by.
fn log10_root(limit: f64) -> f64 {
    limit.max(1.0).log10().floor().max(1.0)
}

/// AIMD, as Netflix's `AIMDLimit` (concurrency-limits,
/// `limit/AIMDLimit.java`): a drop, or a round trip above `timeout`,
/// multiplies the limit by `backoff`; otherwise it grows by one while at
/// least half of it is in use.
pub struct Aimd {
    backoff: f64,
    timeout_ns: u64,
}

impl Aimd {
    pub fn new(backoff: f64, timeout_ns: u64) -> Self {
        Self {
            backoff,
            timeout_ns,
        }
    }
}

impl LimitAlgorithm for Aimd {
    fn propose(&mut self, sample: Sample, limit: f64) -> f64 {
        let slow = sample.rtt_ns.is_none_or(|rtt| rtt > self.timeout_ns);
        if slow {
            // At least one less, so that a small limit still backs off.
            (limit * self.backoff).floor().min(limit - 1.0)
        } else if sample.inflight as f64 * 2.0 >= limit {
            limit + 1.0
        } else {
            limit
        }
    }
}

/// TCP Vegas, as Netflix's `VegasLimit` (concurrency-limits,
/// `limit/VegasLimit.java`): the queue is estimated as
/// `limit × (1 − rtt_noload / rtt)`; at most `threshold` queued it grows by
/// `beta`, below `alpha` by log10(limit), above `beta` it shrinks by
/// log10(limit), and a drop shrinks it too. `alpha`, `beta` and `threshold`
/// are 3, 6 and 1 times log10(limit) unless given; `smoothing` weighs the new
/// limit against the old. The no-load RTT is the least RTT seen since the
/// controller last measured it (published, Vegas resets it to whatever
/// sample comes every ~30 × limit samples, loaded or not).
pub struct Vegas {
    smoothing: f64,
    alpha: Option<f64>,
    beta: Option<f64>,
    threshold: Option<f64>,
    rtt_noload: Option<u64>,
    /// Whether the last sample put the queue far above `beta`.
    far_above: bool,
}

pub struct VegasOptions {
    pub smoothing: f64,
    pub alpha: Option<f64>,
    pub beta: Option<f64>,
    pub threshold: Option<f64>,
}

impl Default for VegasOptions {
    fn default() -> Self {
        Self {
            smoothing: 1.0,
            alpha: None,
            beta: None,
            threshold: None,
        }
    }
}

impl Vegas {
    pub fn new(options: &VegasOptions) -> Self {
        Self {
            smoothing: options.smoothing,
            alpha: options.alpha,
            beta: options.beta,
            threshold: options.threshold,
            rtt_noload: None,
            far_above: false,
        }
    }

    fn smoothed(&self, limit: f64, next: f64) -> f64 {
        (1.0 - self.smoothing) * limit + self.smoothing * next.max(1.0)
    }
}

impl LimitAlgorithm for Vegas {
    fn propose(&mut self, sample: Sample, limit: f64) -> f64 {
        self.far_above = false;
        let Some(rtt) = sample.rtt_ns else {
            return self.smoothed(limit, limit - log10_root(limit));
        };
        let rtt = rtt.max(1);
        let noload = match self.rtt_noload {
            Some(noload) if rtt >= noload => noload,
            _ => {
                self.rtt_noload = Some(rtt);
                return limit;
            }
        };
        if (sample.inflight as f64) * 2.0 < limit {
            return limit;
        }
        let queue = (limit * (1.0 - noload as f64 / rtt as f64)).ceil();
        let step = log10_root(limit);
        let alpha = self.alpha.unwrap_or(3.0 * step);
        let beta = self.beta.unwrap_or(6.0 * step);
        let threshold = self.threshold.unwrap_or(step);
        let next = if queue <= threshold {
            limit + beta
        } else if queue < alpha {
            limit + step
        } else if queue > beta {
            self.far_above = queue > 2.0 * beta;
            limit - step
        } else {
            return limit;
        };
        self.smoothed(limit, next)
    }

    fn uses_no_load(&self) -> bool {
        true
    }

    fn no_load_measured(&mut self, rtt_ns: u64) {
        self.rtt_noload = Some(rtt_ns.max(1));
    }

    /// Far above its target (an estimated queue of more than 2 × `beta`)
    /// Vegas shrinks by log10(limit) on every sample: one step a round trip
    /// would take hundreds of round trips to come down from a limit ten
    /// times too high. Its queue estimate scales with the limit, so this
    /// stops by itself; nearer, a step waits for a round trip as the others
    /// do, or samples of calls that queued under the old limit would keep
    /// shrinking a limit that already fell.
    fn shrinks_at_once(&self) -> bool {
        self.far_above
    }

    fn rtt_estimates(&self) -> RttEstimates {
        RttEstimates {
            no_load: self.rtt_noload.map(|ns| ns as f64),
            long: None,
        }
    }
}

/// Gradient2, as Netflix's `Gradient2Limit` (concurrency-limits,
/// `limit/Gradient2Limit.java`): the short RTT (the latest sample) against
/// the long one (an exponential average over `long_window` samples, the
/// first ten averaged plainly) gives the gradient
/// `rtt_tolerance × long / short`, clamped to [0.5, 1]; the limit becomes
/// `limit × gradient + queue_size`, smoothed by `smoothing`. A long RTT more
/// than twice the short one decays by 5 % a sample.
///
/// Two deviations. Published, the long RTT follows a steady queue up until
/// the gradient is 1 again and the queue term grows the limit without end
/// (concurrency-limits PR #134); here the long RTT is capped by the no-load
/// RTT the controller measures at a pinned low concurrency, so a standing
/// queue keeps the gradient below 1. Published, a drop is an ordinary
/// sample; here a drop carries no RTT and counts as the steepest gradient
/// (0.5), leaving the RTT estimates alone.
pub struct Gradient2 {
    smoothing: f64,
    rtt_tolerance: f64,
    long_window: f64,
    queue_size: f64,
    long_rtt: f64,
    long_count: u32,
    long_sum: f64,
    rtt_noload: Option<f64>,
}

pub struct Gradient2Options {
    pub smoothing: f64,
    pub rtt_tolerance: f64,
    pub long_window: u32,
    pub queue_size: u32,
}

impl Default for Gradient2Options {
    fn default() -> Self {
        Self {
            smoothing: 0.2,
            rtt_tolerance: 1.5,
            long_window: 600,
            queue_size: 4,
        }
    }
}

const LONG_WARMUP: u32 = 10;

impl Gradient2 {
    pub fn new(options: &Gradient2Options) -> Self {
        Self {
            smoothing: options.smoothing,
            rtt_tolerance: options.rtt_tolerance,
            long_window: f64::from(options.long_window),
            queue_size: f64::from(options.queue_size),
            long_rtt: 0.0,
            long_count: 0,
            long_sum: 0.0,
            rtt_noload: None,
        }
    }

    fn add_long(&mut self, rtt: f64) {
        if self.long_count < LONG_WARMUP {
            self.long_count += 1;
            self.long_sum += rtt;
            self.long_rtt = self.long_sum / f64::from(self.long_count);
        } else {
            let factor = 2.0 / (self.long_window + 1.0);
            self.long_rtt = self.long_rtt * (1.0 - factor) + rtt * factor;
        }
    }

    /// Moves the limit towards `limit × gradient + queue_size`.
    fn step(&self, limit: f64, gradient: f64) -> f64 {
        let target = limit * gradient + self.queue_size;
        limit * (1.0 - self.smoothing) + target * self.smoothing
    }

    #[cfg(test)]
    pub fn long_rtt(&self) -> f64 {
        self.long_rtt
    }
}

impl LimitAlgorithm for Gradient2 {
    fn propose(&mut self, sample: Sample, limit: f64) -> f64 {
        let Some(rtt) = sample.rtt_ns else {
            return self.step(limit, 0.5);
        };
        let short = rtt.max(1) as f64;
        self.add_long(short);
        if self.long_rtt / short > 2.0 {
            self.long_rtt *= 0.95;
        }
        if let Some(noload) = self.rtt_noload {
            self.long_rtt = self.long_rtt.min(noload);
        }
        if (sample.inflight as f64) < limit / 2.0 {
            return limit;
        }
        let gradient = (self.rtt_tolerance * self.long_rtt / short).clamp(0.5, 1.0);
        self.step(limit, gradient)
    }

    fn uses_no_load(&self) -> bool {
        true
    }

    fn no_load_measured(&mut self, rtt_ns: u64) {
        self.rtt_noload = Some(rtt_ns.max(1) as f64);
    }

    fn rtt_estimates(&self) -> RttEstimates {
        RttEstimates {
            no_load: self.rtt_noload,
            long: (self.long_count > 0).then_some(self.long_rtt),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn ok(rtt_ms: u64, inflight: u64) -> Sample {
        Sample {
            rtt_ns: Some(rtt_ms * MS),
            inflight,
        }
    }

    /// Applies one sample as published: every proposal taken, in [1, max].
    fn step(algorithm: &mut dyn LimitAlgorithm, limit: &mut f64, max: f64, sample: Sample) -> u64 {
        *limit = algorithm.propose(sample, *limit).clamp(1.0, max);
        *limit as u64
    }

    #[test]
    fn aimd_grows_by_one_and_backs_off() {
        let mut aimd = Aimd::new(0.9, 5_000 * MS);
        let mut limit = 20.0;
        assert_eq!(step(&mut aimd, &mut limit, 1e3, ok(1, 20)), 21);
        let mut limit = 30.0;
        assert_eq!(step(&mut aimd, &mut limit, 1e3, Sample::dropped(30)), 27);
        // A round trip past the timeout is a drop too; at least one less.
        let mut limit = 5.0;
        assert_eq!(step(&mut aimd, &mut limit, 1e3, ok(6_000, 5)), 4);
        // Less than half in use: no growth.
        assert_eq!(step(&mut aimd, &mut limit, 1e3, ok(1, 1)), 4);
        let mut limit = 1.0;
        assert_eq!(step(&mut aimd, &mut limit, 1e3, Sample::dropped(1)), 1);
    }

    fn vegas() -> Vegas {
        Vegas::new(&VegasOptions {
            alpha: Some(3.0),
            beta: Some(6.0),
            ..VegasOptions::default()
        })
    }

    #[test]
    fn vegas_grows_by_beta_without_a_queue() {
        let mut vegas = vegas();
        let mut limit = 10.0;
        assert_eq!(step(&mut vegas, &mut limit, 20.0, ok(10, 10)), 10); // the no-load RTT
        assert_eq!(step(&mut vegas, &mut limit, 20.0, ok(10, 10)), 16);
    }

    #[test]
    fn vegas_shrinks_once_the_queue_passes_beta() {
        let mut vegas = vegas();
        let mut limit = 10.0;
        assert_eq!(step(&mut vegas, &mut limit, 20.0, ok(10, 10)), 10);
        // queue = ceil(10 × (1 − 10/50)) = 8 > beta: 10 − log10(10).
        assert_eq!(step(&mut vegas, &mut limit, 20.0, ok(50, 11)), 9);
        assert_eq!(step(&mut vegas, &mut limit, 20.0, Sample::dropped(9)), 8);
    }

    #[test]
    fn vegas_leaves_the_sweet_spot_alone() {
        let mut vegas = vegas();
        let mut limit = 10.0;
        step(&mut vegas, &mut limit, 20.0, ok(10, 10));
        // queue = ceil(10 × (1 − 10/20)) = 5: between alpha and beta.
        assert_eq!(step(&mut vegas, &mut limit, 20.0, ok(20, 10)), 10);
        // Less than half in use: no change.
        assert_eq!(step(&mut vegas, &mut limit, 20.0, ok(10, 4)), 10);
    }

    #[test]
    fn vegas_takes_a_measured_no_load_rtt() {
        let mut vegas = vegas();
        vegas.no_load_measured(10 * MS);
        let mut limit = 10.0;
        // No first sample spent on the no-load RTT: it grows at once.
        assert_eq!(step(&mut vegas, &mut limit, 20.0, ok(10, 10)), 16);
        assert_eq!(vegas.rtt_estimates().no_load, Some(10.0 * MS as f64));
    }

    #[test]
    fn gradient2_holds_with_steady_latency_and_falls_when_it_rises() {
        let mut g = Gradient2::new(&Gradient2Options::default());
        let mut limit = 20.0;
        // Steady RTT: gradient 1 (tolerance), the queue term grows it.
        assert_eq!(step(&mut g, &mut limit, 1e3, ok(10, 20)), 20); // 20 × 0.8 + (20 + 4) × 0.2 = 20.8
        assert!((g.long_rtt() - 10.0 * MS as f64).abs() < 1e-6);
        // A sample a hundred times slower: long = (10 + 1000) / 2 ms, and
        // the gradient 1.5 × 505 / 1000 = 0.7575 outweighs the queue term.
        let before = limit;
        step(&mut g, &mut limit, 1e3, ok(1000, 20));
        let expected = before * 0.8 + (before * 0.7575 + 4.0) * 0.2;
        assert!((limit - expected).abs() < 1e-9);
        assert!(limit < before);
        // A drop is the steepest gradient and leaves the RTTs alone.
        let estimates = g.rtt_estimates();
        let before = limit;
        step(&mut g, &mut limit, 1e3, Sample::dropped(20));
        assert!((limit - (before * 0.8 + (before * 0.5 + 4.0) * 0.2)).abs() < 1e-9);
        assert_eq!(g.rtt_estimates(), estimates);
    }

    #[test]
    fn gradient2_with_a_no_load_rtt_does_not_grow_under_a_standing_queue() {
        // Published, the long RTT follows a steady 30 ms queue up to 30 ms
        // and the gradient returns to 1: the limit grows by the queue term
        // each sample. Capped by the 10 ms no-load RTT, the gradient stays
        // 1.5 × 10 / 30 = 0.5 and the limit falls towards 8.
        let mut published = Gradient2::new(&Gradient2Options::default());
        let mut capped = Gradient2::new(&Gradient2Options::default());
        capped.no_load_measured(10 * MS);
        let (mut runaway, mut held) = (40.0, 40.0);
        for _ in 0..2_000 {
            step(&mut published, &mut runaway, 1e6, ok(30, 1_000_000));
            step(&mut capped, &mut held, 1e6, ok(30, 1_000_000));
        }
        assert!(runaway > 1_000.0, "{runaway}");
        assert!((held - 8.0).abs() < 0.01, "{held}");
    }

    #[test]
    fn proposals_stay_finite_whatever_the_samples() {
        let mut algorithms: Vec<Box<dyn LimitAlgorithm>> = vec![
            Box::new(Aimd::new(0.9, 10 * MS)),
            Box::new(Vegas::new(&VegasOptions::default())),
            Box::new(Gradient2::new(&Gradient2Options::default())),
        ];
        let mut limits = [500.0, 1.0, 20.0];
        let mut seed = 12_345_u64;
        for i in 0..20_000 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let rtt = match seed >> 60 {
                0 => None,
                1 => Some(0),
                2 => Some(u64::MAX),
                _ => Some((seed >> 20) % (100 * MS)),
            };
            let inflight = (seed >> 8) % 80;
            for (algorithm, limit) in algorithms.iter_mut().zip(&mut limits) {
                if i % 997 == 0 {
                    algorithm.no_load_measured(seed % (200 * MS));
                }
                let next = step(
                    &mut **algorithm,
                    limit,
                    50.0,
                    Sample {
                        rtt_ns: rtt,
                        inflight,
                    },
                );
                assert!((1..=50).contains(&next), "{next}");
                assert!(limit.is_finite());
            }
        }
    }
}
