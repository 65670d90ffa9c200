//! `brakes.redis.Backend`: where shared limits live, and what their
//! failures look like in Python.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::blocking::wait_here;
use super::errors::{value_error, BackendError};
use crate::core::redis::backend::{Backend as CoreBackend, Failure, OnError, Target};
use crate::core::redis::bucket::RemoteError;
use crate::core::redis::call::Call;

/// How long a decision waits for Redis by default, in seconds.
const DEFAULT_TIMEOUT: f64 = 0.25;

/// A Redis server or cluster that limits built on it share: every process
/// that builds a limiter with the same `name` on the same Redis shares one
/// limit. `url` is `redis://host:port/db` (`rediss://` with TLS), or
/// `redis+cluster://host:port,host:port` for the seed nodes of a Redis
/// Cluster. Keys start with `prefix`. `on_error` says what a decision does
/// when Redis cannot answer within `timeout` seconds: "raise"
/// (`brakes.BackendError`), "allow", "deny", or "local" (a limiter in this
/// process with the same settings decides until Redis answers again).
/// Connecting is lazy and reconnects by itself.
///
/// >>> backend = Backend("redis://127.0.0.1:6379/0", on_error="local")
/// >>> backend.on_error
/// 'local'
#[pyclass(frozen, module = "brakes.redis", name = "Backend")]
pub struct Backend {
    pub core: Arc<CoreBackend>,
    url: String,
}

#[pymethods]
impl Backend {
    #[new]
    #[pyo3(signature = (url = "redis://127.0.0.1:6379/0", *, prefix = "brakes:", on_error = "raise", timeout = None))]
    fn new(
        url: &str,
        prefix: &str,
        on_error: &str,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let timeout = match timeout {
            Some(t) => super::arguments::number("timeout", t)?,
            None => DEFAULT_TIMEOUT,
        };
        let target = Target::parse(url).map_err(value_error)?;
        let Some(on_error) = OnError::parse(on_error) else {
            return Err(value_error(format!(
                "on_error must be \"raise\", \"allow\", \"deny\" or \"local\", got {on_error:?}"
            )));
        };
        if !timeout.is_finite() || timeout <= 0.0 || timeout > 3600.0 {
            return Err(value_error(format!(
                "timeout must be a number of seconds above 0 and at most 3600, got {timeout}"
            )));
        }
        Ok(Self {
            core: CoreBackend::new(
                target,
                prefix.to_owned(),
                Duration::from_secs_f64(timeout),
                on_error,
            ),
            url: url.to_owned(),
        })
    }

    #[getter]
    fn url(&self) -> &str {
        &self.url
    }

    #[getter]
    fn prefix(&self) -> &str {
        &self.core.prefix
    }

    #[getter]
    fn on_error(&self) -> &'static str {
        self.core.on_error.as_str()
    }

    #[getter]
    fn timeout(&self) -> f64 {
        self.core.timeout.as_secs_f64()
    }

    /// True for a `redis+cluster://` URL.
    #[getter]
    fn cluster(&self) -> bool {
        self.core.is_cluster()
    }

    /// One round trip to Redis, in seconds; `BackendError` if it fails.
    fn ping(&self, py: Python<'_>) -> PyResult<f64> {
        let core = Arc::clone(&self.core);
        let mut call = Call::new(async move { core.ping().await }, |_| {});
        match wait_here(py, &mut call)? {
            Ok(elapsed) => Ok(elapsed.as_secs_f64()),
            Err(failure) => Err(BackendError::new_err(failure.message())),
        }
    }

    /// Stops using Redis: decisions after this fail as if it were down.
    fn close(&self) {
        self.core.close();
    }

    #[getter]
    fn closed(&self) -> bool {
        self.core.is_closed()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc_info))]
    fn __exit__(&self, _exc_info: &Bound<'_, PyTuple>) {
        self.close();
    }

    fn __aenter__(slf: Py<Self>, py: Python<'_>) -> PyResult<Py<PyAny>> {
        done_with(py, slf.into_any())
    }

    #[pyo3(signature = (*_exc_info))]
    fn __aexit__(&self, py: Python<'_>, _exc_info: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
        self.close();
        done_with(py, py.None())
    }

    fn __repr__(&self) -> String {
        format!(
            "<brakes.redis.Backend url={:?} prefix={:?} on_error={:?} timeout={}{}>",
            self.url,
            self.core.prefix,
            self.core.on_error.as_str(),
            self.core.timeout.as_secs_f64(),
            if self.core.is_closed() { " closed" } else { "" }
        )
    }
}

/// An awaitable that is already done with `value`: a finished asyncio future.
fn done_with(py: Python<'_>, value: Py<PyAny>) -> PyResult<Py<PyAny>> {
    let asyncio = py.import("asyncio")?;
    let future = asyncio
        .getattr("get_running_loop")?
        .call0()?
        .call_method0("create_future")?;
    future.call_method1("set_result", (value,))?;
    Ok(future.unbind())
}

/// The Python error of a remote refusal that is a failure.
pub fn remote_error(err: RemoteError, name: &str) -> PyErr {
    match err {
        RemoteError::Backend(message) => BackendError::new_err(format!("limit {name:?}: {message}")),
        RemoteError::Conflict { stored, ours } => BackendError::new_err(format!(
            "a limit named {name:?} exists in Redis with other settings ({stored}) than this one ({ours}): give one of them another name"
        )),
    }
}

/// Logs a failure, at most one line every few seconds per backend.
pub fn log_failure(py: Python<'_>, backend: &CoreBackend, name: &str, failure: &Failure) {
    let Some(suppressed) = backend.note_failure() else {
        return;
    };
    let more = if suppressed > 0 {
        format!(" ({suppressed} more failures since the last message)")
    } else {
        String::new()
    };
    let action = match backend.on_error {
        OnError::Raise => "raising BackendError",
        OnError::Allow => "allowing",
        OnError::Deny => "refusing",
        OnError::Local => "deciding locally",
    };
    let message = format!(
        "brakes limit {name:?}: {}; {action}{more}",
        failure.message()
    );
    warn(py, &message);
}

/// Logs, once, that Redis answers again after it could not be reached.
pub fn log_reached_again(py: Python<'_>, backend: &CoreBackend, name: &str) {
    if backend.take_reached_again() {
        log(
            py,
            "INFO",
            &format!("brakes limit {name:?}: Redis answers again"),
        );
    }
}

pub fn warn(py: Python<'_>, message: &str) {
    log(py, "WARNING", message);
}

/// A line on the `brakes.redis` logger at `level`.
fn log(py: Python<'_>, level: &str, message: &str) {
    let logged = py.import("logging").and_then(|logging| {
        let level = logging.getattr(level)?;
        logging
            .call_method1("getLogger", ("brakes.redis",))?
            .call_method1("log", (level, "%s", message))
    });
    if let Err(err) = logged {
        err.write_unraisable(py, None);
    }
}

/// The backend argument of a limiter, with its required name.
pub fn backend_argument(
    backend: Option<&Bound<'_, PyAny>>,
    name: Option<&str>,
    clock: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<(Arc<CoreBackend>, String)>> {
    let Some(backend) = backend.filter(|b| !b.is_none()) else {
        return Ok(None);
    };
    let backend = backend.cast::<Backend>().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(format!(
            "backend must be a brakes.redis.Backend or None, got {}",
            backend
                .get_type()
                .name()
                .map_or_else(|_| "?".to_owned(), |n| n.to_string())
        ))
    })?;
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return Err(value_error(
            "name is required with a backend: it names the limit in Redis".to_owned(),
        ));
    };
    if clock.is_some_and(|c| !c.is_none()) {
        return Err(value_error(
            "clock cannot be given with a backend: a shared limit keeps Redis's time".to_owned(),
        ));
    }
    Ok(Some((Arc::clone(&backend.get().core), name.to_owned())))
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Backend>()
}
