//! Limit algorithms for a gauge that finds its own limit: each reads one
//! sample (a call's round trip, or a drop) and moves a limit kept within
//! [min, max]. These are the published algorithms of Netflix's
//! concurrency-limits, step for step; what the adaptive gauge adds around
//! them (which samples reach them) lives with the gauge.
#![cfg_attr(not(test), allow(dead_code))]

/// One finished call, as an algorithm sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// The call's round trip in nanoseconds; None for a drop, whose latency
    /// says nothing of the service (a fast failure is not a fast service).
    pub rtt_ns: Option<u64>,
    /// Calls in flight when it started, itself included.
    pub inflight: u64,
}

impl Sample {
    pub fn dropped(inflight: u64) -> Self {
        Self {
            rtt_ns: None,
            inflight,
        }
    }
}

pub trait LimitAlgorithm: Send {
    /// Reads `sample` and returns the new limit.
    fn update(&mut self, sample: Sample) -> u64;
    fn limit(&self) -> u64;
    /// The algorithm's RTT estimates in nanoseconds, for stats: (short or
    /// no-load, long), as far as it keeps them.
    fn rtt_estimates(&self) -> (Option<f64>, Option<f64>) {
        (None, None)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub min: u64,
    pub max: u64,
}

impl Bounds {
    fn clamp(self, limit: f64) -> f64 {
        if limit.is_nan() {
            return self.min as f64;
        }
        limit.clamp(self.min as f64, self.max as f64)
    }
}

/// `max(1, floor(log10 limit))`: Netflix's `Log10RootFunction`, the step
/// Vegas grows and shrinks by.
fn log10_root(limit: f64) -> f64 {
    limit.max(1.0).log10().floor().max(1.0)
}

/// AIMD, as Netflix's `AIMDLimit`: a drop, or a round trip above `timeout`,
/// multiplies the limit by `backoff` (at least one less); otherwise it grows
/// by one while at least half of it is in use.
pub struct Aimd {
    limit: u64,
    bounds: Bounds,
    backoff: f64,
    timeout_ns: u64,
}

impl Aimd {
    pub fn new(initial: u64, bounds: Bounds, backoff: f64, timeout_ns: u64) -> Self {
        Self {
            limit: initial.clamp(bounds.min, bounds.max),
            bounds,
            backoff,
            timeout_ns,
        }
    }
}

impl LimitAlgorithm for Aimd {
    fn update(&mut self, sample: Sample) -> u64 {
        let limit = self.limit;
        let slow = sample.rtt_ns.is_none_or(|rtt| rtt > self.timeout_ns);
        let next = if slow {
            ((limit as f64 * self.backoff) as u64).min(limit.saturating_sub(1))
        } else if sample.inflight * 2 >= limit {
            limit + 1
        } else {
            return limit;
        };
        self.limit = next.clamp(self.bounds.min, self.bounds.max);
        self.limit
    }

    fn limit(&self) -> u64 {
        self.limit
    }
}

/// TCP Vegas, as Netflix's `VegasLimit`: the queue is estimated as
/// `limit × (1 − rtt_noload / rtt)`; at most `threshold` queued it grows by
/// `beta`, below `alpha` by log10(limit), above `beta` it shrinks by
/// log10(limit), and a drop shrinks it too. `alpha`, `beta` and `threshold`
/// are 3, 6 and 1 times log10(limit) unless given. The no-load RTT is the
/// least RTT seen, taken afresh (probed) every ~`probe` × limit samples.
pub struct Vegas {
    limit: f64,
    bounds: Bounds,
    smoothing: f64,
    alpha: Option<f64>,
    beta: Option<f64>,
    threshold: Option<f64>,
    rtt_noload: Option<u64>,
    probe_multiplier: f64,
    probe_count: u64,
    /// In [0.5, 1), as Netflix's random jitter, drawn from a counter so that
    /// runs repeat exactly.
    probe_jitter: f64,
    draws: u64,
}

pub struct VegasOptions {
    pub smoothing: f64,
    pub alpha: Option<f64>,
    pub beta: Option<f64>,
    pub threshold: Option<f64>,
    pub probe_multiplier: f64,
}

impl Default for VegasOptions {
    fn default() -> Self {
        Self {
            smoothing: 1.0,
            alpha: None,
            beta: None,
            threshold: None,
            probe_multiplier: 30.0,
        }
    }
}

impl Vegas {
    pub fn new(initial: u64, bounds: Bounds, options: &VegasOptions) -> Self {
        let mut vegas = Self {
            limit: bounds.clamp(initial as f64),
            bounds,
            smoothing: options.smoothing,
            alpha: options.alpha,
            beta: options.beta,
            threshold: options.threshold,
            rtt_noload: None,
            probe_multiplier: options.probe_multiplier,
            probe_count: 0,
            probe_jitter: 0.5,
            draws: 0,
        };
        vegas.new_jitter();
        vegas
    }

    fn new_jitter(&mut self) {
        // A Weyl sequence: spread over [0.5, 1) and the same in every run.
        self.draws += 1;
        let golden = 0.618_033_988_749_895;
        self.probe_jitter = 0.5 + 0.5 * ((self.draws as f64 * golden) % 1.0);
    }

    fn shrunk(&self) -> f64 {
        self.limit - log10_root(self.limit)
    }
}

impl LimitAlgorithm for Vegas {
    fn update(&mut self, sample: Sample) -> u64 {
        let next = match sample.rtt_ns {
            None => self.shrunk(),
            Some(rtt) => {
                let rtt = rtt.max(1);
                self.probe_count += 1;
                if self.probe_jitter * self.probe_multiplier * self.limit <= self.probe_count as f64
                {
                    self.new_jitter();
                    self.probe_count = 0;
                    self.rtt_noload = Some(rtt);
                    return self.limit();
                }
                let noload = match self.rtt_noload {
                    Some(noload) if rtt >= noload => noload,
                    _ => {
                        self.rtt_noload = Some(rtt);
                        return self.limit();
                    }
                };
                if (sample.inflight as f64) * 2.0 < self.limit {
                    return self.limit();
                }
                let queue = (self.limit * (1.0 - noload as f64 / rtt as f64)).ceil();
                let step = log10_root(self.limit);
                let alpha = self.alpha.unwrap_or(3.0 * step);
                let beta = self.beta.unwrap_or(6.0 * step);
                let threshold = self.threshold.unwrap_or(step);
                if queue <= threshold {
                    self.limit + beta
                } else if queue < alpha {
                    self.limit + step
                } else if queue > beta {
                    self.shrunk()
                } else {
                    return self.limit();
                }
            }
        };
        let next = self.bounds.clamp(next);
        self.limit = (1.0 - self.smoothing) * self.limit + self.smoothing * next;
        self.limit()
    }

    fn limit(&self) -> u64 {
        self.limit as u64
    }

    fn rtt_estimates(&self) -> (Option<f64>, Option<f64>) {
        (self.rtt_noload.map(|ns| ns as f64), None)
    }
}

/// Gradient2, as Netflix's `Gradient2Limit`: the short RTT (the latest
/// sample) against the long one (an exponential average over
/// `long_window` samples, the first ten averaged plainly) gives the
/// gradient `rtt_tolerance × long / short`, clamped to [0.5, 1]; the limit
/// becomes `limit × gradient + queue_size`, smoothed by `smoothing`. A long
/// RTT more than twice the short one decays by 5 % a sample. Published, a
/// drop is an ordinary sample; here a drop carries no RTT and counts as the
/// steepest gradient (0.5), leaving the RTT estimates alone.
pub struct Gradient2 {
    limit: f64,
    bounds: Bounds,
    smoothing: f64,
    rtt_tolerance: f64,
    long_window: f64,
    queue_size: f64,
    short_rtt: Option<f64>,
    long_rtt: f64,
    long_count: u32,
    long_sum: f64,
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
    pub fn new(initial: u64, bounds: Bounds, options: &Gradient2Options) -> Self {
        Self {
            limit: bounds.clamp(initial as f64),
            bounds,
            smoothing: options.smoothing,
            rtt_tolerance: options.rtt_tolerance,
            long_window: f64::from(options.long_window),
            queue_size: f64::from(options.queue_size),
            short_rtt: None,
            long_rtt: 0.0,
            long_count: 0,
            long_sum: 0.0,
        }
    }

    fn add_long(&mut self, rtt: f64) -> f64 {
        if self.long_count < LONG_WARMUP {
            self.long_count += 1;
            self.long_sum += rtt;
            self.long_rtt = self.long_sum / f64::from(self.long_count);
        } else {
            let factor = 2.0 / (self.long_window + 1.0);
            self.long_rtt = self.long_rtt * (1.0 - factor) + rtt * factor;
        }
        self.long_rtt
    }

    /// Moves the limit towards `limit × gradient + queue_size`.
    fn step(&mut self, gradient: f64) -> u64 {
        let target = self.limit * gradient + self.queue_size;
        let next = self.limit * (1.0 - self.smoothing) + target * self.smoothing;
        self.limit = self.bounds.clamp(next);
        self.limit()
    }

    pub fn long_rtt(&self) -> f64 {
        self.long_rtt
    }
}

impl LimitAlgorithm for Gradient2 {
    fn update(&mut self, sample: Sample) -> u64 {
        let Some(rtt) = sample.rtt_ns else {
            return self.step(0.5);
        };
        let short = rtt.max(1) as f64;
        self.short_rtt = Some(short);
        let long = self.add_long(short);
        if long / short > 2.0 {
            self.long_rtt *= 0.95;
        }
        if (sample.inflight as f64) < self.limit / 2.0 {
            return self.limit();
        }
        let gradient = (self.rtt_tolerance * long / short).clamp(0.5, 1.0);
        self.step(gradient)
    }

    fn limit(&self) -> u64 {
        self.limit as u64
    }

    fn rtt_estimates(&self) -> (Option<f64>, Option<f64>) {
        (
            self.short_rtt,
            (self.long_count > 0).then_some(self.long_rtt),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const WIDE: Bounds = Bounds { min: 1, max: 1000 };

    fn ok(rtt_ms: u64, inflight: u64) -> Sample {
        Sample {
            rtt_ns: Some(rtt_ms * MS),
            inflight,
        }
    }

    #[test]
    fn aimd_grows_by_one_and_backs_off() {
        let mut aimd = Aimd::new(20, WIDE, 0.9, 5_000 * MS);
        assert_eq!(aimd.update(ok(1, 20)), 21);
        let mut aimd = Aimd::new(30, WIDE, 0.9, 5_000 * MS);
        assert_eq!(aimd.update(Sample::dropped(30)), 27);
        // A round trip past the timeout is a drop too; at least one less.
        let mut aimd = Aimd::new(5, WIDE, 0.9, 5_000 * MS);
        assert_eq!(aimd.update(ok(6_000, 5)), 4);
        // Less than half in use: no growth.
        assert_eq!(aimd.update(ok(1, 1)), 4);
        let mut floor = Aimd::new(1, WIDE, 0.9, 5_000 * MS);
        assert_eq!(floor.update(Sample::dropped(1)), 1);
    }

    fn vegas() -> Vegas {
        let options = VegasOptions {
            alpha: Some(3.0),
            beta: Some(6.0),
            ..VegasOptions::default()
        };
        Vegas::new(10, Bounds { min: 1, max: 20 }, &options)
    }

    #[test]
    fn vegas_grows_by_beta_without_a_queue() {
        let mut vegas = vegas();
        assert_eq!(vegas.update(ok(10, 10)), 10); // the no-load RTT
        assert_eq!(vegas.update(ok(10, 10)), 16);
    }

    #[test]
    fn vegas_shrinks_once_the_queue_passes_beta() {
        let mut vegas = vegas();
        assert_eq!(vegas.update(ok(10, 10)), 10);
        // queue = ceil(10 × (1 − 10/50)) = 8 > beta: 10 − log10(10).
        assert_eq!(vegas.update(ok(50, 11)), 9);
        assert_eq!(vegas.update(Sample::dropped(9)), 8);
    }

    #[test]
    fn vegas_leaves_the_sweet_spot_alone() {
        let mut vegas = vegas();
        vegas.update(ok(10, 10));
        // queue = ceil(10 × (1 − 10/20)) = 5: between alpha and beta.
        assert_eq!(vegas.update(ok(20, 10)), 10);
        // Less than half in use: no change.
        assert_eq!(vegas.update(ok(10, 4)), 10);
    }

    #[test]
    fn gradient2_holds_with_steady_latency_and_falls_when_it_rises() {
        let mut g = Gradient2::new(20, WIDE, &Gradient2Options::default());
        // Steady RTT: gradient 1 (tolerance), the queue term grows it.
        assert_eq!(g.update(ok(10, 20)), 20); // 20 × 0.8 + (20 + 4) × 0.2 = 20.8
        assert!((g.long_rtt() - 10.0 * MS as f64).abs() < 1e-6);
        // A sample a hundred times slower: long = (10 + 1000) / 2 ms, and
        // the gradient 1.5 × 505 / 1000 = 0.7575 outweighs the queue term.
        let before = g.limit;
        g.update(ok(1000, 20));
        let expected = before * 0.8 + (before * 0.7575 + 4.0) * 0.2;
        assert!((g.limit - expected).abs() < 1e-9);
        assert!(g.limit < before);
        // A drop is the steepest gradient and leaves the RTTs alone.
        let (short, long_before) = g.rtt_estimates();
        let before = g.limit;
        g.update(Sample::dropped(20));
        assert!((g.limit - (before * 0.8 + (before * 0.5 + 4.0) * 0.2)).abs() < 1e-9);
        assert_eq!(g.rtt_estimates(), (short, long_before));
    }

    #[test]
    fn limits_stay_in_bounds_and_finite_whatever_the_samples() {
        let bounds = Bounds { min: 3, max: 50 };
        let mut algorithms: Vec<Box<dyn LimitAlgorithm>> = vec![
            Box::new(Aimd::new(500, bounds, 0.9, 10 * MS)),
            Box::new(Vegas::new(0, bounds, &VegasOptions::default())),
            Box::new(Gradient2::new(20, bounds, &Gradient2Options::default())),
        ];
        let mut seed = 12_345_u64;
        for _ in 0..20_000 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let rtt = match seed >> 60 {
                0 => None,
                1 => Some(0),
                2 => Some(u64::MAX),
                _ => Some((seed >> 20) % (100 * MS)),
            };
            let inflight = (seed >> 8) % 80;
            for algorithm in &mut algorithms {
                let limit = algorithm.update(Sample {
                    rtt_ns: rtt,
                    inflight,
                });
                assert!((3..=50).contains(&limit), "{limit}");
            }
        }
    }
}
