//! Service names: `[<policy>.]<service>.<app>.<namespace>.canopy`, and which policy a name
//! asks for.

use std::fmt;

/// The overlay's top-level domain.
pub const DOMAIN: &str = "canopy";

/// One service of one application in one namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceName {
    pub namespace: String,
    pub application: String,
    pub service: String,
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}.{DOMAIN}",
            self.service, self.application, self.namespace
        )
    }
}

/// How a name picks one of its service's ready instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Policy {
    /// `rr.` and the plain name: each new connection goes to the next instance.
    RoundRobin,
    /// `closest.`: the lowest estimated round trip from the calling node.
    Closest,
    /// `<n>.`: the instance with replica ordinal n, only it.
    Replica(u32),
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Policy::RoundRobin => f.write_str("rr"),
            Policy::Closest => f.write_str("closest"),
            Policy::Replica(n) => write!(f, "{n}"),
        }
    }
}

/// Whether `name` (with or without its trailing dot, any case) is under `.canopy`: such a
/// name is answered here, never forwarded.
pub fn is_overlay_name(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    name.eq_ignore_ascii_case(DOMAIN)
        || name
            .rsplit_once('.')
            .is_some_and(|(_, tld)| tld.eq_ignore_ascii_case(DOMAIN))
}

/// The service and policy `name` asks for; none when it is not a service name (wrong number
/// of labels, an unknown policy prefix, not under `.canopy`).
pub fn parse(name: &str) -> Option<(ServiceName, Policy)> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = name.split('.').collect();
    if labels.iter().any(|l| l.is_empty()) || labels.last() != Some(&DOMAIN) {
        return None;
    }
    let (policy, rest) = match labels.len() {
        4 => (Policy::RoundRobin, &labels[..3]),
        5 => (policy_of(labels[0])?, &labels[1..4]),
        _ => return None,
    };
    Some((
        ServiceName {
            service: rest[0].to_string(),
            application: rest[1].to_string(),
            namespace: rest[2].to_string(),
        },
        policy,
    ))
}

fn policy_of(label: &str) -> Option<Policy> {
    match label {
        "rr" => Some(Policy::RoundRobin),
        "closest" => Some(Policy::Closest),
        digits if digits.bytes().all(|b| b.is_ascii_digit()) => {
            digits.parse().ok().map(Policy::Replica)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(s: &str, a: &str, n: &str) -> ServiceName {
        ServiceName {
            namespace: n.into(),
            application: a.into(),
            service: s.into(),
        }
    }

    #[test]
    fn a_plain_name_means_round_robin() {
        assert_eq!(
            parse("server.app.default.canopy."),
            Some((service("server", "app", "default"), Policy::RoundRobin))
        );
        assert_eq!(
            parse("Server.App.Default.CANOPY"),
            Some((service("server", "app", "default"), Policy::RoundRobin))
        );
    }

    #[test]
    fn prefixes_pick_their_policy() {
        let web = service("web", "shop", "prod");
        assert_eq!(
            parse("rr.web.shop.prod.canopy"),
            Some((web.clone(), Policy::RoundRobin))
        );
        assert_eq!(
            parse("closest.web.shop.prod.canopy"),
            Some((web.clone(), Policy::Closest))
        );
        assert_eq!(
            parse("2.web.shop.prod.canopy"),
            Some((web, Policy::Replica(2)))
        );
    }

    #[test]
    fn other_shapes_are_not_service_names() {
        for name in [
            "canopy",
            "app.default.canopy",
            "fastest.web.shop.prod.canopy",
            "a.b.web.shop.prod.canopy",
            "web.shop.prod.example",
            "web..prod.canopy",
            "99999999999.web.shop.prod.canopy",
        ] {
            assert_eq!(parse(name), None, "{name}");
        }
    }

    #[test]
    fn overlay_names_are_the_ones_under_canopy() {
        assert!(is_overlay_name("x.canopy."));
        assert!(is_overlay_name("no.such.thing.here.CANOPY"));
        assert!(!is_overlay_name("example.com."));
        assert!(!is_overlay_name("notcanopy"));
    }

    #[test]
    fn a_name_prints_back_as_it_parses() {
        let name = service("server", "app", "default");
        assert_eq!(name.to_string(), "server.app.default.canopy");
        assert_eq!(
            parse(&format!("{}.{name}", Policy::Replica(3))),
            Some((name, Policy::Replica(3)))
        );
    }
}
