//! The child's outbox: what it reports up between hellos, queued for the link's writer.

use crate::pb::{self, up};
use crate::status::StatusReport;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::Notify;

/// Sends deltas to the parent. While the link is down they are dropped: the next hello
/// carries the full state, which supersedes them. A status not sent yet is replaced by a
/// newer one of the same instance, generation and state, so a child that reports progress
/// faster than its link drains sends each state's latest word once.
#[derive(Clone)]
pub struct Uplink {
    queue: Arc<std::sync::Mutex<Queue>>,
    ready: Arc<Notify>,
}

#[derive(Clone)]
pub struct Outbox {
    queue: Arc<std::sync::Mutex<Queue>>,
    pub(crate) ready: Arc<Notify>,
    /// Held by each session's writer while the session lasts.
    pub(crate) writer: Arc<tokio::sync::Mutex<()>>,
}

/// Deltas queued beyond this are dropped (and covered by the next hello).
const OUTBOX_CAPACITY: usize = 16 * 1024;

#[derive(Default)]
struct Queue {
    /// In order; a slot emptied by coalescing is skipped.
    bodies: VecDeque<Option<up::Body>>,
    /// Where the unsent status of (instance, generation) waits, as an index into `bodies`
    /// offset by `sent` (the number of slots taken off its front so far).
    statuses: HashMap<(String, u64), u64>,
    sent: u64,
}

impl Queue {
    fn push(&mut self, body: up::Body) {
        if let up::Body::Status(status) = &body {
            let key = (status.id.clone(), status.generation);
            let unsent = self
                .statuses
                .get(&key)
                .and_then(|at| at.checked_sub(self.sent))
                .and_then(|index| self.bodies.get_mut(index as usize));
            if let Some(slot) = unsent {
                // Same state: newer details (progress, pid) supersede. Another state is a
                // transition the parent records (Lost before a replacement): it goes too.
                if matches!(slot, Some(up::Body::Status(old)) if old.state == status.state) {
                    *slot = Some(body);
                    return;
                }
            }
            if self.bodies.len() >= OUTBOX_CAPACITY {
                tracing::debug!("uplink full; the next hello resynchronises");
                return;
            }
            self.statuses
                .insert(key, self.sent + self.bodies.len() as u64);
        } else if self.bodies.len() >= OUTBOX_CAPACITY {
            tracing::debug!("uplink full; the next hello resynchronises");
            return;
        }
        self.bodies.push_back(Some(body));
    }

    fn take_all(&mut self) -> Vec<up::Body> {
        self.sent += self.bodies.len() as u64;
        self.statuses.clear();
        self.bodies.drain(..).flatten().collect()
    }
}

pub fn uplink() -> (Uplink, Outbox) {
    let queue = Arc::new(std::sync::Mutex::new(Queue::default()));
    let ready = Arc::new(Notify::new());
    (
        Uplink {
            queue: queue.clone(),
            ready: ready.clone(),
        },
        Outbox {
            queue,
            ready,
            writer: Arc::new(tokio::sync::Mutex::new(())),
        },
    )
}

fn lock(queue: &std::sync::Mutex<Queue>) -> std::sync::MutexGuard<'_, Queue> {
    queue
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Uplink {
    pub fn report(&self, status: &StatusReport) {
        self.send(up::Body::Status(status.into()));
    }

    pub fn membership(&self, membership: pb::Membership) {
        self.send(up::Body::Membership(membership));
    }

    /// The services this node's workloads use, for the overlay's routes.
    pub fn interest(&self, interest: pb::Interest) {
        self.send(up::Body::Interest(interest));
    }

    fn send(&self, body: up::Body) {
        lock(&self.queue).push(body);
        self.ready.notify_one();
    }
}

impl Outbox {
    /// Drops what was queued: the hello about to be sent covers it.
    pub(crate) fn clear(&self) {
        lock(&self.queue).take_all();
    }

    pub(crate) fn take_all(&self) -> Vec<up::Body> {
        lock(&self.queue).take_all()
    }

    /// The answer to the parent's request `request` (lost with the link, as the parent
    /// then hears it is down).
    pub(crate) fn answer(&self, request: u64, result: Result<(), String>) {
        let error = result.err().unwrap_or_default();
        lock(&self.queue).push(up::Body::Answer(pb::Answer { request, error }));
        self.ready.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Reported;
    use canopy_model::InstanceState;

    fn status(id: &str, generation: u64, state: InstanceState, reason: &str) -> up::Body {
        let report = StatusReport::new(id, generation, Reported::State(state), reason);
        up::Body::Status((&report).into())
    }

    fn described(bodies: Vec<up::Body>) -> Vec<String> {
        bodies
            .into_iter()
            .map(|body| match body {
                up::Body::Status(s) => format!("{}@{} {}", s.id, s.generation, s.reason),
                _ => "other".into(),
            })
            .collect()
    }

    #[test]
    fn an_unsent_status_is_replaced_by_a_newer_one_of_the_same_instance_generation_and_state() {
        let mut queue = Queue::default();
        queue.push(status("a", 1, InstanceState::Starting, "pulling"));
        queue.push(up::Body::Membership(pb::Membership::default()));
        queue.push(status("a", 2, InstanceState::Starting, "other generation"));
        queue.push(status("b", 1, InstanceState::Starting, "other instance"));
        queue.push(status("a", 1, InstanceState::Starting, "unpacking"));
        assert_eq!(
            described(queue.take_all()),
            [
                "a@1 unpacking",
                "other",
                "a@2 other generation",
                "b@1 other instance"
            ]
        );
        // Another state is a transition of its own: both go, in order.
        queue.push(status("a", 1, InstanceState::Lost, "node lost"));
        queue.push(status("a", 1, InstanceState::NodeScheduled, "placed again"));
        assert_eq!(
            described(queue.take_all()),
            ["a@1 node lost", "a@1 placed again"]
        );
        // Once sent, a status is not replaced: the next one goes out after it.
        queue.push(status("a", 1, InstanceState::Running, "started"));
        assert_eq!(described(queue.take_all()), ["a@1 started"]);
    }
}
