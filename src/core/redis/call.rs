//! A request to Redis as a `Wait`: the first poll with a waker sends it on
//! the tokio runtime, whose task stores the answer and wakes the caller, a
//! thread or an asyncio task, as any other wait would be woken. A call
//! abandoned before its answer came hands that answer to `orphan`, which
//! gives back what it granted.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use parking_lot::Mutex;

use super::super::wait::{Poll, Wait, Waker};
use super::backend::Backend;

type Work<T> = Pin<Box<dyn Future<Output = T> + Send>>;

struct Shared<T> {
    answer: Option<T>,
    waker: Option<Waker>,
    abandoned: bool,
    orphan: Option<Box<dyn FnOnce(T) + Send>>,
}

pub struct Call<T: Send + 'static> {
    work: Option<Work<T>>,
    shared: Arc<Mutex<Shared<T>>>,
    sent: bool,
}

impl<T: Send + 'static> Call<T> {
    /// `orphan` receives the answer if nobody waits for it any more.
    pub fn new(
        work: impl Future<Output = T> + Send + 'static,
        orphan: impl FnOnce(T) + Send + 'static,
    ) -> Self {
        Self {
            work: Some(Box::pin(work)),
            shared: Arc::new(Mutex::new(Shared {
                answer: None,
                waker: None,
                abandoned: false,
                orphan: Some(Box::new(orphan)),
            })),
            sent: false,
        }
    }

    fn send(&mut self, runtime_gone: impl FnOnce() -> T) {
        self.sent = true;
        let Some(work) = self.work.take() else { return };
        let shared = Arc::clone(&self.shared);
        let spawned = Backend::spawn(async move {
            let answer = work.await;
            let mut state = shared.lock();
            if state.abandoned {
                let orphan = state.orphan.take();
                drop(state);
                if let Some(orphan) = orphan {
                    orphan(answer);
                }
                return;
            }
            state.answer = Some(answer);
            let waker = state.waker.take();
            drop(state);
            if waker.is_some_and(|waker| !waker.notify()) {
                // The caller can no longer be reached (its loop has closed):
                // what was granted to it goes back now, not when it is collected.
                let mut state = shared.lock();
                state.abandoned = true;
                let (answer, orphan) = (state.answer.take(), state.orphan.take());
                drop(state);
                if let (Some(answer), Some(orphan)) = (answer, orphan) {
                    orphan(answer);
                }
            }
        });
        if !spawned {
            self.shared.lock().answer = Some(runtime_gone());
        }
    }
}

/// A call whose answer is a `Result`: with no runtime it fails at once.
impl<T: Send + 'static, E: Send + 'static> Call<Result<T, E>> {
    pub fn poll_with(
        &mut self,
        waker: Option<&Waker>,
        no_runtime: impl FnOnce() -> E,
    ) -> Poll<Result<T, E>> {
        let Some(waker) = waker else {
            return Poll::Pending(None);
        };
        let mut state = self.shared.lock();
        if let Some(answer) = state.answer.take() {
            return Poll::Ready(answer);
        }
        state.waker = Some(Arc::clone(waker));
        drop(state);
        if !self.sent {
            self.send(|| Err(no_runtime()));
            // With no runtime the answer is already there.
            if let Some(answer) = self.shared.lock().answer.take() {
                return Poll::Ready(answer);
            }
        }
        Poll::Pending(None)
    }
}

impl<T: Send + 'static> Call<T> {
    /// Leaves: an answer already in goes to `orphan` now, one on its way
    /// goes there when it arrives; an unsent call is never sent.
    pub fn abandon(&mut self) {
        let mut state = self.shared.lock();
        state.waker = None;
        if !self.sent {
            state.orphan = None;
            return;
        }
        state.abandoned = true;
        let answer = state.answer.take();
        let orphan = if answer.is_some() {
            state.orphan.take()
        } else {
            None
        };
        drop(state);
        if let (Some(answer), Some(orphan)) = (answer, orphan) {
            orphan(answer);
        }
    }
}

impl<T: Send + 'static> Drop for Call<T> {
    fn drop(&mut self) {
        self.abandon();
    }
}

/// `Call` as a plain wait, for answers that need no mapping.
impl<T: Send + 'static, E: Send + 'static> Wait for Call<Result<T, E>>
where
    E: From<NoRuntime>,
{
    type Output = Result<T, E>;
    fn poll(&mut self, waker: Option<&Waker>) -> Poll<Self::Output> {
        self.poll_with(waker, || E::from(NoRuntime))
    }
    fn abandon(&mut self) {
        Call::abandon(self);
    }
}

/// The runtime could not start (no thread to be had).
#[derive(Debug, Clone, Copy)]
pub struct NoRuntime;
