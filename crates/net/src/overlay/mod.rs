//! The semantic overlay's node-local part: service names and their policies, the node's
//! DNS for them, virtual addresses and the L4 proxy behind them, with what it carries per
//! service. Relays, encryption and
//! cross-cluster routes are planned.

mod application;
mod dns;
mod name;
mod policy;
mod proxy;
mod range;
mod splice;
mod table;
mod traffic;
mod udp;
mod upstream;
mod vips;

pub use application::{ServiceAddress, application_request};
pub use dns::serve as serve_dns;
pub use name::{DOMAIN, Policy, ServiceName, is_overlay_name, parse};
pub use policy::{Endpoint, PortRoute, candidates, choose};
pub use proxy::{CONNECT_TIMEOUT, listener};
pub use range::{claim_address, claim_range, needs_route, release_address, release_range};
pub use table::{ASK_DEADLINE, Ask, INTEREST_TTL, Listen, Overlay, RENEW_PERIOD, Resolved};
pub use traffic::{Meter, Outcome, SharedMeter, UNKNOWN_CALLER};
pub use udp::FLOW_IDLE;
pub use upstream::nameservers;
pub use vips::VirtualAddresses;
