//! The semantic overlay's node-local part: service names and their policies, the node's
//! DNS for them, virtual addresses and the L4 proxy behind them. Relays, encryption,
//! cross-cluster routes and UDP are planned.

mod dns;
mod name;
mod policy;
mod proxy;
mod table;
mod upstream;
mod vips;

pub use dns::serve as serve_dns;
pub use name::{DOMAIN, Policy, ServiceName, is_overlay_name, parse};
pub use policy::{Endpoint, PortRoute, candidates, choose};
pub use proxy::{CONNECT_TIMEOUT, tcp_listener};
pub use table::{ASK_DEADLINE, Ask, INTEREST_TTL, Listen, Overlay, RENEW_PERIOD, Resolved};
pub use upstream::nameservers;
pub use vips::VirtualAddresses;
