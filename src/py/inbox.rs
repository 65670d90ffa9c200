//! Wake-ups from the Redis client's threads, which never hold the GIL.
//!
//! A wake-up from another Python thread completes the task's future through
//! `call_soon_threadsafe`, which needs the GIL. The client's threads would
//! then wait for the GIL once per answer, up to the interpreter's switch
//! interval each time while the loop's thread runs Python code. Instead each
//! event loop gets an inbox: a waking thread moves the future into it, and
//! the first one in writes a byte to a socket the loop watches
//! (`add_reader`). The loop then completes every future in the inbox in one
//! callback, on its own thread: many wake-ups per hop, and no GIL taken on
//! the waking side.
//!
//! The loop owns its inbox (through the reader callback it holds); handles
//! keep only a weak reference. Once the loop has closed, the inbox is gone
//! and a wake-up takes the `call_soon_threadsafe` path, which finds the loop
//! closed and reports the caller unreachable, so a grant made to it goes back.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::PyType;
use pyo3::{intern, PyTraverseError, PyVisit};

/// Futures to complete on one loop's thread, and the socket that wakes it.
pub struct Inbox {
    futures: Mutex<Vec<Py<PyAny>>>,
    reader: UnixStream,
    writer: UnixStream,
}

impl Inbox {
    fn new() -> std::io::Result<Self> {
        let (reader, writer) = UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        Ok(Self {
            futures: Mutex::new(Vec::new()),
            reader,
            writer,
        })
    }

    /// Queues `future` for completion on the loop's thread. Needs no GIL.
    pub fn post(&self, future: Py<PyAny>) {
        let first = {
            let mut futures = self.futures.lock();
            futures.push(future);
            futures.len() == 1
        };
        if first {
            // A full socket already holds a wake-up the loop will read.
            let _ = (&self.writer).write(&[1]);
        }
    }
}

/// The loop's reader callback: completes every future in the inbox.
#[pyclass(frozen, module = "brakes._brakes", name = "_Inbox")]
struct Reader {
    inbox: Arc<Inbox>,
}

#[pymethods]
impl Reader {
    fn __call__(&self, py: Python<'_>) {
        // Bytes first, futures second: a byte written after this read is
        // for a future this pass may already take, which costs one spare
        // pass, never a missed one.
        let mut bytes = [0u8; 256];
        while matches!((&self.inbox.reader).read(&mut bytes), Ok(n) if n == bytes.len()) {}
        let futures = std::mem::take(&mut *self.inbox.futures.lock());
        let none = py.None().into_bound(py);
        for future in futures {
            let future = future.into_bound(py);
            // A future cancelled meanwhile refuses the result: its canceller
            // finds the grant and gives it back.
            if !future
                .call_method0(intern!(py, "done"))
                .and_then(|done| done.is_truthy())
                .unwrap_or(true)
            {
                if let Err(err) = future.call_method1(intern!(py, "set_result"), (&none,)) {
                    err.write_unraisable(py, Some(&future));
                }
            }
        }
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // Busy: a waking thread is adding to it; skipping it only keeps the
        // futures alive a little longer.
        if let Some(futures) = self.inbox.futures.try_lock() {
            for future in futures.iter() {
                visit.call(future)?;
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        let futures = std::mem::take(&mut *self.inbox.futures.lock());
        drop(futures);
    }
}

thread_local! {
    /// The inboxes of loops this thread has run, by the loop's address. An
    /// inbox lives exactly as long as its loop holds its reader, so a live
    /// entry is for a live loop: no other can have its address.
    static INBOXES: RefCell<Vec<(usize, Weak<Inbox>)>> = const { RefCell::new(Vec::new()) };
}

/// The inbox of `event_loop` (the running loop of this thread), made and
/// registered with `add_reader` when first needed. None for a loop that
/// cannot watch a socket (Windows' proactor loop): it is woken as other
/// threads wake it.
pub fn inbox_for(event_loop: &Bound<'_, PyAny>) -> Option<Weak<Inbox>> {
    static UNSUPPORTED: Mutex<Option<Py<PyType>>> = Mutex::new(None);
    let address = event_loop.as_ptr() as usize;
    let known = INBOXES.with(|inboxes| {
        inboxes
            .borrow()
            .iter()
            .find(|(at, inbox)| *at == address && inbox.strong_count() > 0)
            .map(|(_, inbox)| inbox.clone())
    });
    if known.is_some() {
        return known;
    }
    let loop_type = event_loop.get_type();
    if UNSUPPORTED
        .lock()
        .as_ref()
        .is_some_and(|t| t.is(&loop_type))
    {
        return None;
    }
    let py = event_loop.py();
    let inbox = Arc::new(Inbox::new().ok()?);
    let reader = Py::new(
        py,
        Reader {
            inbox: Arc::clone(&inbox),
        },
    )
    .ok()?;
    let fd = inbox.reader.as_raw_fd();
    if event_loop
        .call_method1(intern!(py, "add_reader"), (fd, reader))
        .is_err()
    {
        let replaced = UNSUPPORTED.lock().replace(loop_type.unbind());
        drop(replaced);
        return None;
    }
    let weak = Arc::downgrade(&inbox);
    INBOXES.with(|inboxes| {
        let mut inboxes = inboxes.borrow_mut();
        inboxes.retain(|(_, inbox)| inbox.strong_count() > 0);
        inboxes.push((address, weak.clone()));
    });
    Some(weak)
}
