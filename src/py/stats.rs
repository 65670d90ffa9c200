//! The frozen snapshots `stats()` returns: one macro makes each from its
//! core snapshot, with a repr that shows every field.

use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::core::histogram::{upper_bound_ns, HistogramSnapshot, BUCKETS};

/// A field as Python prints it.
pub trait Shown {
    fn shown(&self) -> String;
}

impl Shown for u64 {
    fn shown(&self) -> String {
        self.to_string()
    }
}

impl Shown for bool {
    fn shown(&self) -> String {
        if *self { "True" } else { "False" }.to_owned()
    }
}

/// `stats_class!(Name from core::Snapshot { field: type, ... })`, each field
/// with its docstring, copied from the core snapshot's field of that name.
macro_rules! stats_class {
    ($(#[$meta:meta])* $name:ident from $snapshot:ty {
        $($(#[doc = $doc:literal])* $field:ident: $ty:ty),* $(,)?
    }) => {
        $crate::py::stats::stats_class!($(#[$meta])* $name {
            $($(#[doc = $doc])* $field: $ty,)*
        });

        impl From<$snapshot> for $name {
            fn from(s: $snapshot) -> Self {
                Self { $($field: s.$field.into(),)* }
            }
        }
    };
    ($(#[$meta:meta])* $name:ident {
        $($(#[doc = $doc:literal])* $field:ident: $ty:ty),* $(,)?
    }) => {
        $(#[$meta])*
        #[pyo3::pyclass(frozen, eq, hash, get_all, module = "brakes")]
        #[derive(PartialEq, Eq, Hash)]
        pub struct $name {
            $($(#[doc = $doc])* $field: $ty,)*
        }

        #[pyo3::pymethods]
        impl $name {
            fn __repr__(&self) -> String {
                let fields = [$(
                    format!(
                        "{}={}",
                        stringify!($field),
                        $crate::py::stats::Shown::shown(&self.$field)
                    ),
                )*];
                format!("{}({})", stringify!($name), fields.join(", "))
            }
        }
    };
}
pub(crate) use stats_class;

/// A histogram of durations, as `stats()` returns it.
///
/// `bounds` are the buckets' upper bounds in seconds (the first is 0, for
/// callers that did not wait; they double from one microsecond; the last is
/// infinity), and `counts` the observations in each (not cumulative).
///
/// >>> import brakes
/// >>> brakes.Gauge(2).stats().wait.count
/// 0
#[pyo3::pyclass(frozen, eq, hash, module = "brakes")]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Histogram(pub HistogramSnapshot);

impl From<HistogramSnapshot> for Histogram {
    fn from(s: HistogramSnapshot) -> Self {
        Self(s)
    }
}

impl Shown for Histogram {
    fn shown(&self) -> String {
        self.__repr__()
    }
}

fn seconds(ns: Option<f64>) -> Option<f64> {
    ns.map(|ns| ns / 1e9)
}

#[pyo3::pymethods]
impl Histogram {
    /// The upper bound of each bucket, in seconds.
    #[getter]
    fn bounds<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(
            py,
            (0..BUCKETS).map(|k| match upper_bound_ns(k) {
                u64::MAX => f64::INFINITY,
                ns => ns as f64 / 1e9,
            }),
        )
    }

    /// The observations in each bucket.
    #[getter]
    fn counts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.0.counts)
    }

    /// Observations in all.
    #[getter]
    fn count(&self) -> u64 {
        self.0.count()
    }

    /// The sum of the observations, in seconds.
    #[getter]
    fn sum(&self) -> f64 {
        self.0.sum_ns as f64 / 1e9
    }

    /// The longest observation, in seconds (0 with none).
    #[getter]
    fn max(&self) -> f64 {
        self.0.max_ns as f64 / 1e9
    }

    /// The `q` quantile (0 to 1) in seconds, interpolated within its bucket
    /// and never above `max`; None with no observations.
    fn quantile(&self, q: f64) -> PyResult<Option<f64>> {
        if !(0.0..=1.0).contains(&q) {
            return Err(super::errors::value_error(format!(
                "q must be a number from 0 to 1, got {q}"
            )));
        }
        Ok(seconds(self.0.quantile_ns(q)))
    }

    /// The median, in seconds (None with no observations).
    #[getter]
    fn p50(&self) -> Option<f64> {
        seconds(self.0.quantile_ns(0.5))
    }

    /// The 90th percentile, in seconds (None with no observations).
    #[getter]
    fn p90(&self) -> Option<f64> {
        seconds(self.0.quantile_ns(0.9))
    }

    /// The 99th percentile, in seconds (None with no observations).
    #[getter]
    fn p99(&self) -> Option<f64> {
        seconds(self.0.quantile_ns(0.99))
    }

    fn __repr__(&self) -> String {
        let shown = |s: Option<f64>| s.map_or("None".to_owned(), |s| format!("{s:.6}"));
        format!(
            "Histogram(count={}, sum={:.6}, max={:.6}, p50={}, p90={}, p99={})",
            self.0.count(),
            self.sum(),
            self.max(),
            shown(self.p50()),
            shown(self.p90()),
            shown(self.p99())
        )
    }
}
