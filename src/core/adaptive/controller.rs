//! The adaptive gauge: a gauge whose limit a limit algorithm moves, one
//! finished call at a time.
//!
//! Two rules of our own sit between the samples and the algorithm, because
//! the published algorithms, applied to every sample, overshoot: C calls end
//! per round trip, so a limit that moves on each of them has moved C times
//! before the latency shows the first move.
//! - A proposal is taken only from a call that started after the last change
//!   (one decision per round trip, as TCP moves its window once per window);
//!   a proposal to shrink only from one that started after the last decrease,
//!   so that growth in the meantime never hides a drop.
//!   Vegas, far above its target, shrinks on every sample (its shrinking
//!   stops by itself as the limit falls).
//! - The no-load RTT that Vegas and Gradient2 compare against is measured now
//!   and then with the limit pinned low (`probe_limit`), so that no queue of
//!   ours is in it (Envoy's adaptive concurrency filter does the same). Until
//!   the first such probe it is the least RTT seen. A probe counts the calls
//!   that started once the calls in flight had drained to the pinned limit,
//!   a pinned limit's worth of them (at least 2), and takes their least RTT.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::algorithms::{LimitAlgorithm, RttEstimates, Sample};
use crate::core::clock::Clock;
use crate::core::gauge::{Gauge, OverRelease, Snapshot};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min: u64,
    pub max: u64,
}

impl Bounds {
    pub fn clamp(self, limit: f64) -> f64 {
        if limit.is_nan() {
            return self.min as f64;
        }
        limit.clamp(self.min as f64, self.max as f64)
    }
}

/// When and how the no-load RTT is measured.
#[derive(Debug, Clone, Copy)]
pub struct ProbeSettings {
    /// The pinned limit while measuring.
    pub limit: u64,
    /// A probe comes every `multiplier × limit` samples, times a jitter in
    /// [0.5, 1) (Vegas's `probeMultiplier`).
    pub multiplier: f64,
}

/// How a call ended, as `release` is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// No sample: the permits only go back.
    Unmeasured,
    /// The call took `rtt_ns`.
    Measured { rtt_ns: u64 },
    /// The call was dropped (it failed in a way that says the service is
    /// overloaded: a timeout, a refusal). Its duration, if known, dates its
    /// start but is not a latency sample.
    Dropped { rtt_ns: Option<u64> },
}

pub struct AdaptiveGauge {
    gauge: Arc<Gauge>,
    control: Mutex<Control>,
    /// Set while the limit is pinned for a probe: then every release is
    /// looked at, sample or not, to see the calls in flight drain.
    probing: AtomicBool,
}

enum Probe {
    /// The algorithm needs no no-load RTT.
    Never,
    Counting {
        samples_left: f64,
    },
    Pinned {
        pinned: u64,
        /// When the calls in flight had fallen to `pinned`: calls started
        /// from then on meet no queue of ours.
        drained_ns: Option<u64>,
        least_ns: Option<u64>,
        counted: u64,
    },
}

struct Control {
    algorithm: Box<dyn LimitAlgorithm>,
    limit: f64,
    bounds: Bounds,
    probe_settings: ProbeSettings,
    probe: Probe,
    last_change_ns: u64,
    /// The last time the limit fell (or a probe ended): a shrink waits only
    /// for a call that started after it, so that growth never hides a drop.
    last_decrease_ns: u64,
    last_rtt_ns: Option<u64>,
    least_rtt_ns: Option<u64>,
    measured_no_load: bool,
    probes: u64,
    samples: u64,
    drops: u64,
    draws: u64,
    /// The limit the last "moved far" news was about (at first, the initial).
    told_limit: u64,
}

/// The limit moved far since the last time it was told: from, to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    pub from: u64,
    pub to: u64,
}

/// What the adaptive gauge knows, for stats.
#[derive(Debug, Clone, Copy)]
pub struct AdaptiveSnapshot {
    pub gauge: Snapshot,
    /// The algorithm's limit (the gauge's, unless a probe pinned it).
    pub algorithm_limit: u64,
    pub samples: u64,
    pub drops: u64,
    pub probes: u64,
    pub probing: bool,
    pub last_rtt_ns: Option<u64>,
    pub estimates: RttEstimates,
}

impl Control {
    /// The number of samples until the next probe: `multiplier × limit`
    /// times a jitter in [0.5, 1) drawn from a Weyl sequence, so that runs
    /// repeat exactly and gauges started together do not probe together.
    fn samples_to_next_probe(&mut self) -> f64 {
        self.draws += 1;
        let golden = 0.618_033_988_749_895;
        let jitter = 0.5 + 0.5 * ((self.draws as f64 * golden) % 1.0);
        (jitter * self.probe_settings.multiplier * self.limit).max(1.0)
    }

    /// Reads one release; returns the gauge's new limit if it changes.
    fn on_release(&mut self, now: u64, held_before: u64, n: u64, how: Finished) -> Option<u64> {
        match how {
            Finished::Unmeasured => {}
            Finished::Measured { .. } => self.samples += 1,
            Finished::Dropped { .. } => self.drops += 1,
        }
        let held_after = held_before - n;
        if matches!(self.probe, Probe::Pinned { .. }) {
            return self.probe_release(now, held_after, how);
        }
        let (rtt, dropped) = match how {
            Finished::Unmeasured => return None,
            Finished::Measured { rtt_ns } => (Some(rtt_ns), false),
            Finished::Dropped { rtt_ns } => (rtt_ns, true),
        };
        // A drop of unknown duration is taken to have lasted as long as the
        // last call measured.
        let started = now.saturating_sub(rtt.or(self.last_rtt_ns).unwrap_or(0));
        if !dropped {
            self.last_rtt_ns = rtt;
            if let Some(rtt) = rtt {
                self.note_least_rtt(rtt);
            }
        }
        let sample = Sample {
            rtt_ns: if dropped { None } else { rtt },
            inflight: held_before,
        };
        let proposal = self
            .bounds
            .clamp(self.algorithm.propose(sample, self.limit));
        let before = self.limit as u64;
        if (proposal - self.limit).abs() > f64::EPSILON {
            let shrinks_now = proposal < self.limit && self.algorithm.shrinks_at_once();
            let shrinks = proposal < self.limit;
            let since = if shrinks {
                self.last_decrease_ns
            } else {
                self.last_change_ns
            };
            if started >= since || shrinks_now {
                self.limit = proposal;
                self.last_change_ns = now;
                if shrinks {
                    self.last_decrease_ns = now;
                }
            }
        }
        let mut changed = (self.limit as u64 != before).then_some(self.limit as u64);
        if let Probe::Counting { samples_left } = &mut self.probe {
            if !dropped {
                *samples_left -= 1.0;
            }
            if *samples_left <= 0.0 {
                changed = self.start_probe(now, held_after).or(changed);
            }
        }
        changed
    }

    fn note_least_rtt(&mut self, rtt: u64) {
        if self.measured_no_load || self.least_rtt_ns.is_some_and(|least| least <= rtt) {
            return;
        }
        self.least_rtt_ns = Some(rtt);
        self.algorithm.no_load_measured(rtt);
    }

    /// Pins the limit low; returns the pinned limit if that changes it.
    fn start_probe(&mut self, now: u64, held: u64) -> Option<u64> {
        let current = self.limit as u64;
        // Never below the gauge's own floor: the limit stays in bounds.
        let pinned = self.probe_settings.limit.max(self.bounds.min).min(current);
        self.probe = Probe::Pinned {
            pinned,
            drained_ns: (held <= pinned).then_some(now),
            least_ns: None,
            counted: 0,
        };
        (pinned != current).then_some(pinned)
    }

    fn probe_release(&mut self, now: u64, held_after: u64, how: Finished) -> Option<u64> {
        let Probe::Pinned {
            pinned,
            drained_ns,
            least_ns,
            counted,
        } = &mut self.probe
        else {
            return None;
        };
        if let (Finished::Measured { rtt_ns }, Some(drained)) = (how, *drained_ns) {
            if now.saturating_sub(rtt_ns) >= drained {
                *counted += 1;
                *least_ns = Some(least_ns.map_or(rtt_ns, |least| least.min(rtt_ns)));
            }
        }
        if let Finished::Measured { rtt_ns } = how {
            self.last_rtt_ns = Some(rtt_ns);
        }
        if drained_ns.is_none() && held_after <= *pinned {
            *drained_ns = Some(now);
        }
        // Enough calls that met no queue of ours: one pinned limit's worth.
        if *counted < (*pinned).max(2) {
            return None;
        }
        let no_load = least_ns.unwrap_or(1);
        self.algorithm.no_load_measured(no_load);
        self.measured_no_load = true;
        self.probes += 1;
        self.last_change_ns = now;
        self.last_decrease_ns = now;
        self.probe = Probe::Counting {
            samples_left: self.samples_to_next_probe(),
        };
        Some(self.limit as u64)
    }
}

impl AdaptiveGauge {
    pub fn new(
        algorithm: Box<dyn LimitAlgorithm>,
        initial: u64,
        bounds: Bounds,
        probe_settings: ProbeSettings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let limit = bounds.clamp(initial as f64);
        let now = clock.now_ns();
        let mut control = Control {
            probe: Probe::Never,
            algorithm,
            limit,
            bounds,
            probe_settings: ProbeSettings {
                limit: probe_settings.limit.clamp(bounds.min, bounds.max),
                multiplier: probe_settings.multiplier,
            },
            last_change_ns: now,
            last_decrease_ns: now,
            last_rtt_ns: None,
            least_rtt_ns: None,
            measured_no_load: false,
            probes: 0,
            samples: 0,
            drops: 0,
            draws: 0,
            told_limit: limit as u64,
        };
        if control.algorithm.uses_no_load() {
            control.probe = Probe::Counting {
                samples_left: control.samples_to_next_probe(),
            };
        }
        Self {
            gauge: Arc::new(Gauge::with_clock(limit as u64, clock)),
            control: Mutex::new(control),
            probing: AtomicBool::new(false),
        }
    }

    pub fn gauge(&self) -> &Arc<Gauge> {
        &self.gauge
    }

    pub fn now_ns(&self) -> u64 {
        self.gauge.clock().now_ns()
    }

    /// Gives back `n` permits and reads how the call ended.
    pub fn release(&self, n: u64, how: Finished) -> Result<Option<Moved>, OverRelease> {
        self.release_at(n, how, None)
    }

    /// `release`, with the time now if the caller has just read it. Says
    /// when the limit has moved far (to twice or half the last limit told)
    /// for the log line.
    pub fn release_at(
        &self,
        n: u64,
        how: Finished,
        now: Option<u64>,
    ) -> Result<Option<Moved>, OverRelease> {
        let held_before = self.gauge.release(n)?;
        if how == Finished::Unmeasured && !self.probing.load(Ordering::Acquire) {
            return Ok(None);
        }
        let now = now.unwrap_or_else(|| self.now_ns());
        let mut control = self.control.lock();
        let changed = control.on_release(now, held_before, n, how);
        self.probing.store(
            matches!(control.probe, Probe::Pinned { .. }),
            Ordering::Release,
        );
        // Set under the controller's lock, so that limits land in the order
        // they were decided; woken once it is released.
        let granted = changed.map(|limit| self.gauge.set_limit_granting(limit));
        let pinned = matches!(control.probe, Probe::Pinned { .. });
        let moved = changed.filter(|_| !pinned).and_then(|to| {
            let from = control.told_limit;
            let far = to >= from.saturating_mul(2) || to.saturating_mul(2) <= from;
            far.then(|| {
                control.told_limit = to;
                Moved { from, to }
            })
        });
        drop(control);
        if let Some(granted) = granted {
            self.gauge.wake_granted(granted);
        }
        Ok(moved)
    }

    pub fn snapshot(&self) -> AdaptiveSnapshot {
        let control = self.control.lock();
        let gauge = self.gauge.snapshot();
        AdaptiveSnapshot {
            gauge,
            algorithm_limit: control.limit as u64,
            samples: control.samples,
            drops: control.drops,
            probes: control.probes,
            probing: matches!(control.probe, Probe::Pinned { .. }),
            last_rtt_ns: control.last_rtt_ns,
            estimates: control.algorithm.rtt_estimates(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::algorithms::Aimd;
    use super::*;
    use crate::core::clock::ManualClock;
    use crate::core::gauge::{Admission, Patience};

    const MS: u64 = 1_000_000;

    fn aimd(initial: u64, clock: &Arc<ManualClock>) -> AdaptiveGauge {
        AdaptiveGauge::new(
            Box::new(Aimd::new(0.9, 100 * MS)),
            initial,
            Bounds { min: 1, max: 100 },
            ProbeSettings {
                limit: 3,
                multiplier: 30.0,
            },
            Arc::clone(clock) as Arc<dyn Clock>,
        )
    }

    fn take(gauge: &AdaptiveGauge, n: u64) {
        for _ in 0..n {
            assert_eq!(
                gauge.gauge().try_acquire(1, Patience::FailFast),
                Admission::Acquired
            );
        }
    }

    #[test]
    fn a_sample_moves_the_limit_only_if_its_call_started_after_the_last_change() {
        let clock = Arc::new(ManualClock::new(0));
        let gauge = aimd(10, &clock);
        clock.advance(10 * MS);
        take(&gauge, 10);
        clock.advance(10 * MS);
        // Started 10 ms ago, after the gauge was made: 10 -> 11.
        gauge
            .release(1, Finished::Measured { rtt_ns: 10 * MS })
            .unwrap();
        assert_eq!(gauge.gauge().limit(), 11);
        // Started before that change: no second step from the same window.
        gauge
            .release(1, Finished::Measured { rtt_ns: 10 * MS })
            .unwrap();
        assert_eq!(gauge.gauge().limit(), 11);
        clock.advance(MS);
        gauge
            .release(1, Finished::Measured { rtt_ns: MS / 2 })
            .unwrap();
        assert_eq!(gauge.gauge().limit(), 12);
        // A drop of unknown length is dated by the last RTT measured.
        clock.advance(MS);
        gauge
            .release(1, Finished::Dropped { rtt_ns: None })
            .unwrap();
        assert_eq!(gauge.gauge().limit(), 10); // floor(12 × 0.9)
        let s = gauge.snapshot();
        assert_eq!((s.samples, s.drops), (3, 1));
    }

    #[test]
    fn a_release_without_a_sample_moves_nothing() {
        let clock = Arc::new(ManualClock::new(0));
        let gauge = aimd(4, &clock);
        take(&gauge, 4);
        clock.advance(MS);
        gauge.release(4, Finished::Unmeasured).unwrap();
        let s = gauge.snapshot();
        assert_eq!((s.gauge.limit, s.samples, s.drops), (4, 0, 0));
        assert_eq!(
            gauge.release(1, Finished::Unmeasured),
            Err(OverRelease { held: 0 })
        );
    }
}
