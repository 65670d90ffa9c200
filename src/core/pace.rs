//! Exact pacing arithmetic: `rate` tokens every `per` nanoseconds, kept in
//! integer "ticks" so that no float error ever accumulates.
//!
//! With rate = a/b (the decimal the user wrote) and per = p ns, one token
//! costs b·p/a ns. Counting time in ticks of 1/a ns makes that an integer:
//! a token is `interval` = b·p ticks and `now` is now_ns·a ticks (both
//! divided by their common factor).

/// A rate as an exact fraction `numerator / denominator`, read from the
/// shortest decimal that prints as the float (so `0.1` is exactly 1/10).
pub fn decimal_fraction(value: f64) -> Option<(u128, u128)> {
    if !value.is_finite() || value <= 0.0 {
        return None;
    }
    let text = format!("{value}");
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let digits = format!("{whole}{fraction}");
    let numerator: u128 = digits.parse().ok()?;
    let denominator = 10u128.checked_pow(u32::try_from(fraction.len()).ok()?)?;
    let g = gcd(numerator, denominator);
    Some((numerator / g, denominator / g))
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

/// How long things take, in ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    ticks_per_ns: u128,
    /// Ticks per token.
    interval: u128,
}

/// Bounds that keep every product below 2^128 for any time a u64 can hold.
const MAX_TICKS_PER_NS: u128 = 1 << 60;
const MAX_INTERVAL: u128 = 1 << 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaceError {
    /// The rate has more precision, or is further from 1, than can be kept exactly.
    OutOfRange,
}

impl Pace {
    /// `rate` tokens every `per_ns` nanoseconds.
    pub fn new(rate: (u128, u128), per_ns: u128) -> Result<Self, PaceError> {
        let (a, b) = rate;
        if a == 0 || per_ns == 0 {
            return Err(PaceError::OutOfRange);
        }
        let interval = b.checked_mul(per_ns).ok_or(PaceError::OutOfRange)?;
        let g = gcd(interval, a);
        let (ticks_per_ns, interval) = (a / g, interval / g);
        if ticks_per_ns > MAX_TICKS_PER_NS || interval > MAX_INTERVAL {
            return Err(PaceError::OutOfRange);
        }
        Ok(Self {
            ticks_per_ns,
            interval,
        })
    }

    pub fn ticks_per_ns(&self) -> u128 {
        self.ticks_per_ns
    }

    pub fn ticks(&self, ns: u64) -> u128 {
        u128::from(ns) * self.ticks_per_ns
    }

    pub fn tokens(&self, n: u64) -> u128 {
        u128::from(n) * self.interval
    }

    /// Nanoseconds that cover `ticks`, rounded up: waiting this long suffices.
    pub fn ns_ceil(&self, ticks: u128) -> u64 {
        u64::try_from(ticks.div_ceil(self.ticks_per_ns)).unwrap_or(u64::MAX)
    }

    /// `ticks` as a (fractional) number of tokens.
    pub fn as_tokens(&self, ticks: u128) -> f64 {
        let whole = ticks / self.interval;
        let part = ticks % self.interval;
        whole as f64 + part as f64 / self.interval as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_read_as_written() {
        assert_eq!(decimal_fraction(0.1), Some((1, 10)));
        assert_eq!(decimal_fraction(2.5), Some((5, 2)));
        assert_eq!(decimal_fraction(3.0), Some((3, 1)));
        assert_eq!(decimal_fraction(1e9), Some((1_000_000_000, 1)));
        assert_eq!(decimal_fraction(0.0), None);
        assert_eq!(decimal_fraction(f64::NAN), None);
        assert_eq!(decimal_fraction(-1.0), None);
    }

    #[test]
    fn a_third_of_a_second_per_token_is_kept_exactly() {
        // 3 per second: a token costs 333_333_333.3 ns, exactly 10^9 ticks of 1/3 ns.
        let pace = Pace::new((3, 1), 1_000_000_000).unwrap();
        assert_eq!(pace.tokens(3), pace.ticks(1_000_000_000));
        assert_eq!(pace.ns_ceil(pace.tokens(1)), 333_333_334);
    }

    #[test]
    fn a_billion_per_second_is_one_token_a_nanosecond() {
        let pace = Pace::new((1_000_000_000, 1), 1_000_000_000).unwrap();
        assert_eq!(pace.tokens(1), pace.ticks(1));
    }

    #[test]
    fn rates_too_fine_to_keep_exactly_are_refused() {
        assert_eq!(
            Pace::new((1, 10u128.pow(30)), 1_000_000_000),
            Err(PaceError::OutOfRange)
        );
    }
}
