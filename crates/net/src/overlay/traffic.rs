//! What the proxy counts for each service it carries: connections (or UDP flows) forwarded
//! to an instance or refused because no instance took them, and the bytes each way, with
//! the caller's service where the meter can tell it. The node turns these into its metrics
//! and its traffic edges; the overlay only calls the meter it was given.

use super::name::ServiceName;
use std::net::SocketAddr;
use std::sync::Arc;

/// The caller of a connection nothing identifies (and of every UDP flow).
pub const UNKNOWN_CALLER: &str = "unknown";

/// How a new connection or UDP flow to a service ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// An instance took it.
    Forwarded,
    /// No ready instance, or every one refused: reset (TCP) or dropped (UDP).
    Refused,
}

/// Receives the proxy's counts. Called on the proxy's tasks: keep it cheap and lock-free
/// where possible.
pub trait Meter: Send + Sync {
    /// The service (`namespace/application/service`) calling from `peer` over a TCP
    /// connection to the proxy's `local` address, or [`UNKNOWN_CALLER`]. Called once per
    /// connection, on a blocking thread while the connection is set up: it may read files.
    fn caller(&self, _peer: SocketAddr, _local: SocketAddr) -> String {
        UNKNOWN_CALLER.to_string()
    }
    fn opened(&self, service: &ServiceName, caller: &str, outcome: Outcome);
    /// Bytes carried from the caller to the service's instance, and back.
    fn carried(&self, service: &ServiceName, caller: &str, to_service: u64, from_service: u64);
}

pub type SharedMeter = Arc<dyn Meter>;

/// The meter of an overlay nobody measures.
pub(super) struct Unmetered;

impl Meter for Unmetered {
    fn opened(&self, _: &ServiceName, _: &str, _: Outcome) {}
    fn carried(&self, _: &ServiceName, _: &str, _: u64, _: u64) {}
}

/// A meter that keeps every count, for the proxy's tests.
#[cfg(test)]
#[derive(Default)]
pub(super) struct Recorded {
    pub counts: std::sync::Mutex<std::collections::BTreeMap<String, (u64, u64, u64, u64)>>,
    /// What `caller` answers ("" = the default).
    pub calling: String,
    /// The callers `opened` and `carried` were told, in order.
    pub callers: std::sync::Mutex<Vec<String>>,
}

#[cfg(test)]
impl Recorded {
    /// (forwarded, refused, bytes to the service, bytes back) of `service`'s DNS name.
    pub fn of(&self, service: &str) -> (u64, u64, u64, u64) {
        self.counts
            .lock()
            .unwrap()
            .get(service)
            .copied()
            .unwrap_or_default()
    }
}

#[cfg(test)]
impl Meter for Recorded {
    fn caller(&self, _: SocketAddr, _: SocketAddr) -> String {
        match self.calling.as_str() {
            "" => UNKNOWN_CALLER.to_string(),
            calling => calling.to_string(),
        }
    }

    fn opened(&self, service: &ServiceName, caller: &str, outcome: Outcome) {
        self.callers.lock().unwrap().push(caller.to_string());
        let mut counts = self.counts.lock().unwrap();
        let entry = counts.entry(service.to_string()).or_default();
        match outcome {
            Outcome::Forwarded => entry.0 += 1,
            Outcome::Refused => entry.1 += 1,
        }
    }

    fn carried(&self, service: &ServiceName, caller: &str, to_service: u64, from_service: u64) {
        self.callers.lock().unwrap().push(caller.to_string());
        let mut counts = self.counts.lock().unwrap();
        let entry = counts.entry(service.to_string()).or_default();
        entry.2 += to_service;
        entry.3 += from_service;
    }
}
