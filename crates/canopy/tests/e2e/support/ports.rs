//! Host ports for published container ports, taken outside the kernel's ephemeral range.
//!
//! A published port is a DNAT rule (CNI portmap, Docker), not a socket: the kernel does not
//! know it is taken, and hands it to the next `bind(…:0)` of any test running alongside,
//! whose own client then reaches the container instead of its server (the API test that got
//! nginx's 404 on CI). Ports below the ephemeral range are never handed out by `bind(0)`.
//! Shared with `crates/runtime/tests` by `#[path]`.

use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;

/// The lowest port considered: below, well-known services of the machine may listen.
const LOWEST: u16 = 10_000;

/// A port outside the ephemeral range that nothing listens on now (TCP on every address).
pub fn published_port() -> u16 {
    let (ephemeral_low, ephemeral_high) = ephemeral_range();
    let (low, high) = if ephemeral_low > LOWEST + 1_000 {
        (LOWEST, ephemeral_low - 1)
    } else {
        (ephemeral_high.saturating_add(1), u16::MAX)
    };
    let span = u64::from(high - low) + 1;
    for _ in 0..1_000 {
        // A fresh random seed per call: tests in parallel processes pick independently.
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let port = low + (random % span) as u16;
        if TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {low}..={high}");
}

/// `/proc/sys/net/ipv4/ip_local_port_range`, or Linux's default when unreadable.
fn ephemeral_range() -> (u16, u16) {
    let text =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut numbers = text
        .split_whitespace()
        .filter_map(|n| n.parse::<u16>().ok());
    match (numbers.next(), numbers.next()) {
        (Some(low), Some(high)) if low <= high => (low, high),
        _ => (32_768, 60_999),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_port_is_outside_the_ephemeral_range() {
        let (low, high) = ephemeral_range();
        for _ in 0..50 {
            let port = published_port();
            assert!(!(low..=high).contains(&port), "{port} in {low}..={high}");
        }
    }
}
