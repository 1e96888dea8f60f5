//! Watch streams: replay the retained history, then follow the live broadcast.
//!
//! Gap-freedom rests on one ordering rule of the writer: it commits a revision before it
//! publishes it, and publishes revisions in order. A watcher therefore subscribes to the
//! broadcast *before* it reads the history snapshot: every revision newer than the snapshot is
//! committed after the subscription, so it arrives on the broadcast (or the receiver reports that
//! it lagged). Revisions seen in both are dropped by comparing with the last delivered revision.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use crate::{Revision, StoreError, WatchEvent, WatchStream};

/// Every event of one committed revision, as published after the commit.
#[derive(Debug)]
pub(crate) struct Batch {
    pub revision: Revision,
    pub events: Vec<WatchEvent>,
}

/// A bounded slice of the history after some revision.
#[derive(Debug)]
pub(crate) struct Page {
    /// Events under the prefix, in order.
    pub events: Vec<WatchEvent>,
    /// Every revision up to this one has been covered (whether or not it matched the prefix).
    pub through: Revision,
    /// The page was cut short: more history follows `through`.
    pub more: bool,
}

/// Where a watcher reads the history from.
pub(crate) trait History: Send + Sync + 'static {
    /// Events under `prefix` with revision > `after`, whole revisions only;
    /// `Err(Compacted)` if the history no longer reaches back to `after`.
    fn page(
        &self,
        prefix: &str,
        after: Revision,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send;
}

/// Starts a watch. `rx` must have been subscribed before this call.
pub(crate) async fn start<H: History>(
    history: H,
    rx: broadcast::Receiver<Arc<Batch>>,
    prefix: String,
    after: Revision,
) -> Result<WatchStream, StoreError> {
    let page = history.page(&prefix, after).await?;
    let watcher = Watcher {
        history,
        rx,
        prefix,
        last: page.through.max(after),
        pending: page.events.into(),
        catching_up: page.more,
        done: false,
    };
    Ok(Box::pin(futures::stream::unfold(watcher, Watcher::next)))
}

struct Watcher<H> {
    history: H,
    rx: broadcast::Receiver<Arc<Batch>>,
    prefix: String,
    /// Highest revision already delivered (or known not to match).
    last: Revision,
    pending: VecDeque<WatchEvent>,
    /// Reading the history page by page rather than following the broadcast.
    catching_up: bool,
    done: bool,
}

impl<H: History> Watcher<H> {
    async fn next(mut self) -> Option<(Result<WatchEvent, StoreError>, Self)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some((Ok(event), self));
            }
            if self.done {
                return None;
            }
            if self.catching_up {
                // Whatever queued up is covered by the history read; a fresh receiver avoids
                // lagging on it, and it is subscribed before the snapshot is taken.
                self.rx = self.rx.resubscribe();
                match self.history.page(&self.prefix, self.last).await {
                    Ok(page) => {
                        self.last = self.last.max(page.through);
                        self.pending.extend(page.events);
                        self.catching_up = page.more;
                    }
                    Err(e) => return Some((Err(self.fail(e)), self)),
                }
                continue;
            }
            match self.rx.recv().await {
                Ok(batch) => {
                    if batch.revision <= self.last {
                        continue;
                    }
                    self.last = batch.revision;
                    let prefix = &self.prefix;
                    self.pending.extend(
                        batch
                            .events
                            .iter()
                            .filter(|e| e.key().starts_with(prefix.as_str()))
                            .cloned(),
                    );
                }
                Err(RecvError::Lagged(skipped)) => {
                    tracing::debug!(
                        skipped,
                        after = self.last,
                        "watcher lagged; re-reading history"
                    );
                    self.catching_up = true;
                }
                Err(RecvError::Closed) => return Some((Err(self.fail(StoreError::Closed)), self)),
            }
        }
    }

    fn fail(&mut self, e: StoreError) -> StoreError {
        self.done = true;
        e
    }
}
