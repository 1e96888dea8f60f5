//! The tier protocol (`proto/canopy/tier/v1/tier.proto`) and the session logic both ends of a
//! link share: node -> cluster and cluster -> root speak the same protocol.
//!
//! - [`child::run`]: the child dials its parent, says hello with its full observed state,
//!   sends heartbeats and deltas, and reconnects with jittered exponential backoff.
//! - [`parent::TierService`]: the parent accepts links, hands each message to a handler, and
//!   drops links that stay silent past the deadline.

mod answers;
pub mod child;
mod convert;
pub mod metrics;
mod operator;
pub mod outbox;
pub mod parent;
pub mod probe;
pub mod sealing;
pub mod session;
mod status;
pub mod streams;
mod traffic;
pub mod trust;
pub mod version;
mod waiters;
pub mod wire;

pub use answers::{ANSWER_DEADLINE, AskError};
pub use convert::*;
pub use operator::*;
pub use session::{Assignment, Hello, Message, Revocation};
pub use status::{Reported, StatusReport, reported_from_pb, state_to_pb};
pub use traffic::sum_traffic;

pub mod pb {
    tonic::include_proto!("canopy.tier.v1");
}

use std::time::Duration;

/// Where the tier service is mounted on a parent's HTTP port (gRPC's `/package.Service/Method`).
pub const ROUTE: &str = "/canopy.tier.v1.Tier/{*method}";
/// Where the join service is mounted on a parent's tier listener.
pub const JOIN_ROUTE: &str = "/canopy.tier.v1.Join/{*method}";

/// Completes once `stop` holds true (at once if it already does, or if its sender is gone).
pub async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    // The guard `wait_for` returns is not Send: drop it before anything else awaits.
    let _ = stop.wait_for(|stop| *stop).await.map(|_| ());
}

/// How often a child reports and how long its parent waits before calling it unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub heartbeat: Duration,
    pub deadline: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat: Duration::from_secs(1),
            deadline: Duration::from_secs(3),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TierError {
    #[error("invalid parent address {address:?}: {reason}")]
    Address { address: String, reason: String },
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("{0}")]
    Trust(#[from] trust::TrustError),
    #[error("the certificate is for {certificate:?}; a hello as {hello:?} is refused")]
    NotYours { certificate: String, hello: String },
}
