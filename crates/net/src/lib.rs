//! Node networking, outside any one runtime so every runtime that wants a network namespace
//! (containers today; wasm and microVMs next) gets the same one: CNI setup and teardown of
//! an instance's namespace with published ports; and the overlay's node-local part
//! ([`overlay`]): service names, their DNS and the L4 proxy. Relays are planned here too.

mod cni;
mod command;
mod error;
mod hook;
pub mod overlay;

pub use cni::{Cni, CniConfig, NetworkState, PortMapping, port_mappings, read_state};
pub use command::{CommandError, output};
pub use error::NetError;
pub use hook::NetworkHook;

/// The `PATH` plugins and the tools they call run with.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
