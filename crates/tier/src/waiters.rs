//! Waits for something a link delivers later by id: a child's answer to a request
//! (`answers`), a child's claim of a stream it was asked to open (`streams`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::oneshot;

/// The waits not delivered yet, by id.
#[derive(Debug)]
pub(crate) struct Waiters<T> {
    waiting: Mutex<HashMap<u64, oneshot::Sender<T>>>,
}

impl<T> Default for Waiters<T> {
    fn default() -> Self {
        Waiters {
            waiting: Mutex::new(HashMap::new()),
        }
    }
}

/// One wait; removes its entry however it ends (delivered, timed out, caller gone).
pub(crate) struct Wait<T> {
    waiters: Arc<Waiters<T>>,
    pub(crate) id: u64,
    pub(crate) rx: oneshot::Receiver<T>,
}

impl<T> Drop for Wait<T> {
    fn drop(&mut self) {
        self.waiters.map().remove(&self.id);
    }
}

impl<T> Waiters<T> {
    fn map(&self) -> MutexGuard<'_, HashMap<u64, oneshot::Sender<T>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fresh id (never 0, never one waiting) and the wait for what comes for it.
    pub(crate) fn register(self: &Arc<Self>) -> Wait<T> {
        let (tx, rx) = oneshot::channel();
        let mut map = self.map();
        let id = loop {
            let id: u64 = rand::random();
            if id != 0 && !map.contains_key(&id) {
                break id;
            }
        };
        map.insert(id, tx);
        Wait {
            waiters: self.clone(),
            id,
            rx,
        }
    }

    /// Hands `value` to whoever waits for `id`; gives it back when nobody does (unknown
    /// id, or the wait gave up).
    pub(crate) fn deliver(&self, id: u64, value: T) -> Result<(), T> {
        match self.map().remove(&id) {
            Some(tx) => tx.send(value),
            None => Err(value),
        }
    }
}
