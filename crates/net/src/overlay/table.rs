//! The node's overlay: what it knows of the services its workloads use (their endpoints, as
//! its cluster sent them), the virtual addresses it gave them and each name's turn. The DNS
//! asks it to resolve, the proxy asks it where a new connection goes.

use super::name::{self, Policy, ServiceName};
use super::policy::{self, Endpoint, PortRoute};
use super::traffic::{SharedMeter, Unmetered};
use super::vips::VirtualAddresses;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How long the DNS waits for its cluster's first word on a service it never asked about.
pub const ASK_DEADLINE: Duration = Duration::from_secs(1);
/// A service not resolved or dialled for this long is no longer asked about (its routes are
/// dropped; the cluster lets the interest lapse too).
pub const INTEREST_TTL: Duration = Duration::from_secs(120);
/// How often interest in the services still used is renewed.
pub const RENEW_PERIOD: Duration = Duration::from_secs(10);

/// What a name resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    Address(Ipv4Addr),
    /// No such service (NXDOMAIN).
    Unknown,
    /// The cluster did not answer in time, or the node ran out of virtual addresses.
    Unavailable,
}

/// Tells the cluster which services this node wants routes for; `true` for a periodic
/// renewal (routes it has are current), `false` when it needs them sent.
pub type Ask = Arc<dyn Fn(Vec<ServiceName>, bool) + Send + Sync>;

/// Opens the listener of a virtual address's port, UDP when `true` (the proxy).
pub type Listen = Arc<dyn Fn(Overlay, Ipv4Addr, u16, bool) + Send + Sync>;

#[derive(Clone)]
pub struct Overlay {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    state: Mutex<State>,
    pub(super) changed: Notify,
    pub(super) ask: Ask,
    listen: Mutex<Option<Listen>>,
    meter: Mutex<SharedMeter>,
}

pub(super) struct State {
    /// `None`: the cluster knows no such service.
    pub(super) services: BTreeMap<ServiceName, Option<Vec<Endpoint>>>,
    /// The ports each service declares, as its cluster sent them.
    pub(super) declared: BTreeMap<ServiceName, Vec<PortRoute>>,
    /// Route messages received so far (an answer is any later one).
    pub(super) updates: u64,
    pub(super) vips: VirtualAddresses,
    turns: BTreeMap<(ServiceName, Policy), u64>,
    /// (address, port, udp) listened on.
    listening: std::collections::BTreeSet<(Ipv4Addr, u16, bool)>,
    pub(super) used: BTreeMap<ServiceName, Instant>,
    /// Services whose addresses workloads were given in their environment: their routes
    /// never lapse (the workload may dial them at any time).
    pub(super) pinned: std::collections::BTreeSet<ServiceName>,
}

impl Overlay {
    /// An overlay handing out addresses of `network`/24; `ask` sends interest up.
    pub fn new(network: Ipv4Addr, ask: Ask) -> Overlay {
        Overlay {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    services: BTreeMap::new(),
                    declared: BTreeMap::new(),
                    updates: 0,
                    vips: VirtualAddresses::new(network),
                    turns: BTreeMap::new(),
                    listening: Default::default(),
                    used: BTreeMap::new(),
                    pinned: Default::default(),
                }),
                changed: Notify::new(),
                ask,
                listen: Mutex::new(None),
                meter: Mutex::new(Arc::new(Unmetered)),
            }),
        }
    }

    /// Where the node's DNS listens.
    pub fn dns_address(&self) -> Ipv4Addr {
        self.lock().vips.dns()
    }

    /// How listeners are opened for the ports of the addresses handed out.
    pub fn set_listen(&self, listen: Listen) {
        *self.inner.listen.lock().unwrap_or_else(|p| p.into_inner()) = Some(listen);
    }

    /// Who counts what the proxy carries (the node's metrics).
    pub fn set_meter(&self, meter: SharedMeter) {
        *self.inner.meter.lock().unwrap_or_else(|p| p.into_inner()) = meter;
    }

    pub(super) fn meter(&self) -> SharedMeter {
        self.inner
            .meter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves a `.canopy` name, asking the cluster first when the service is new here.
    pub async fn resolve(&self, dns_name: &str) -> Resolved {
        let Some((name, policy)) = name::parse(dns_name) else {
            return Resolved::Unknown;
        };
        let deadline = tokio::time::Instant::now() + ASK_DEADLINE;
        let mut asked = false;
        loop {
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut state = self.lock();
                state.used.insert(name.clone(), Instant::now());
                match state.services.get(&name) {
                    Some(None) => return Resolved::Unknown,
                    Some(Some(_)) => {
                        let Some(address) = state.vips.assign(&name, policy) else {
                            return Resolved::Unavailable;
                        };
                        drop(state);
                        self.open_listeners(&name);
                        return Resolved::Address(address);
                    }
                    None => {}
                }
            }
            if !asked {
                (self.inner.ask)(vec![name.clone()], false);
                asked = true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Resolved::Unavailable;
            }
        }
    }

    /// The cluster's word on `name`: its ready endpoints, or `None` for no such service.
    pub fn set_routes(&self, name: ServiceName, endpoints: Option<Vec<Endpoint>>) {
        {
            let mut state = self.lock();
            state.services.insert(name.clone(), endpoints);
            state.updates += 1;
        }
        self.open_listeners(&name);
        self.inner.changed.notify_waiters();
    }

    /// The ports `name` declares (its routes replace them as they come).
    pub fn set_ports(&self, name: ServiceName, ports: Vec<PortRoute>) {
        self.lock().declared.insert(name, ports);
    }

    /// Opens a listener for each port of `name` on each of its addresses, once.
    pub(super) fn open_listeners(&self, name: &ServiceName) {
        let new: Vec<(Ipv4Addr, u16, bool)> = {
            let mut state = self.lock();
            let declared = state.declared.get(name).into_iter().flatten();
            let ports: std::collections::BTreeSet<(u16, bool)> = state
                .services
                .get(name)
                .and_then(|e| e.as_ref())
                .into_iter()
                .flatten()
                .flat_map(|e| e.ports.iter())
                .chain(declared)
                .map(|p| (p.port, p.udp))
                .collect();
            let addresses: Vec<Ipv4Addr> = state.vips.of_service(name).collect();
            let wanted: Vec<(Ipv4Addr, u16, bool)> = addresses
                .iter()
                .flat_map(|a| ports.iter().map(move |(p, udp)| (*a, *p, *udp)))
                .collect();
            wanted
                .into_iter()
                .filter(|key| state.listening.insert(*key))
                .collect()
        };
        let listen = self
            .inner
            .listen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(listen) = listen {
            for (address, port, udp) in new {
                listen(self.clone(), address, port, udp);
            }
        }
    }

    /// A listener could not be opened: a later resolution tries again.
    pub fn listener_failed(&self, address: Ipv4Addr, port: u16, udp: bool) {
        self.lock().listening.remove(&(address, port, udp));
    }

    /// Where a new connection (or UDP flow) to `address:port` should go, best first (the
    /// next ones are tried when the first refuses). Empty when no instance is ready.
    pub fn targets(&self, address: Ipv4Addr, port: u16, udp: bool) -> Vec<SocketAddr> {
        self.route(address, port, udp)
            .map(|(_, targets)| targets)
            .unwrap_or_default()
    }

    /// [`Overlay::targets`] with the service the address stands for (`None`: an address
    /// this node never gave out).
    pub fn route(
        &self,
        address: Ipv4Addr,
        port: u16,
        udp: bool,
    ) -> Option<(ServiceName, Vec<SocketAddr>)> {
        let mut state = self.lock();
        let (name, policy) = state.vips.lookup(address).cloned()?;
        state.used.insert(name.clone(), Instant::now());
        let turn = state.turns.entry((name.clone(), policy)).or_default();
        let this_turn = *turn;
        *turn += 1;
        let targets = match state.services.get(&name) {
            Some(Some(endpoints)) => policy::candidates(policy, endpoints, this_turn)
                .into_iter()
                .filter_map(|e| e.target(port, udp))
                .collect(),
            _ => Vec::new(),
        };
        Some((name, targets))
    }

    /// The services used within [`INTEREST_TTL`] (to renew), dropping the others' routes.
    pub fn still_used(&self, now: Instant) -> Vec<ServiceName> {
        let mut state = self.lock();
        let stale: Vec<ServiceName> = state
            .used
            .iter()
            .filter(|(name, at)| {
                now.saturating_duration_since(**at) > INTEREST_TTL && !state.pinned.contains(*name)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in &stale {
            state.used.remove(name);
            state.services.remove(name);
        }
        state.used.keys().cloned().collect()
    }

    /// Renews interest in the services still used every [`RENEW_PERIOD`], for as long as
    /// the overlay lives; call [`Overlay::resync`] when the link comes back.
    pub fn spawn_renewal(&self) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(RENEW_PERIOD);
            every.tick().await;
            loop {
                every.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let overlay = Overlay { inner };
                let used = overlay.still_used(Instant::now());
                (overlay.inner.ask)(used, true);
            }
        });
    }

    /// Asks for the routes of every service used again (also when none are: the cluster
    /// learns this node's address): routes sent while the link was down were lost.
    pub fn resync(&self) {
        let used = self.still_used(Instant::now());
        (self.inner.ask)(used, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overlay::PortRoute;
    use std::net::IpAddr;

    fn web() -> ServiceName {
        ServiceName {
            namespace: "default".into(),
            application: "app".into(),
            service: "web".into(),
        }
    }

    fn endpoint(replica: u32, port: u16) -> Endpoint {
        Endpoint {
            instance: format!("web-{replica}"),
            replica,
            node: "n".into(),
            address: IpAddr::from([127, 0, 0, 1]),
            ports: vec![PortRoute {
                port: 80,
                target: port,
                udp: false,
            }],
            rtt_ms: None,
        }
    }

    /// What the overlay asked its cluster, in order.
    type Asked = Arc<Mutex<Vec<(Vec<ServiceName>, bool)>>>;

    /// An overlay whose asks are recorded, answered by `answer` as a cluster would.
    fn with_cluster(
        answer: impl Fn(&Overlay, &ServiceName) + Send + Sync + 'static,
    ) -> (Overlay, Asked) {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let slot: Arc<Mutex<Option<Overlay>>> = Arc::new(Mutex::new(None));
        let (record, reach) = (asked.clone(), slot.clone());
        let ask: Ask = Arc::new(move |names: Vec<ServiceName>, renewal| {
            record.lock().unwrap().push((names.clone(), renewal));
            if let Some(overlay) = reach.lock().unwrap().clone() {
                for name in &names {
                    answer(&overlay, name);
                }
            }
        });
        let overlay = Overlay::new(Ipv4Addr::new(127, 90, 0, 0), ask);
        *slot.lock().unwrap() = Some(overlay.clone());
        (overlay, asked)
    }

    #[tokio::test]
    async fn a_new_name_asks_the_cluster_and_gets_an_address_of_the_node_s_range() {
        let (overlay, asked) = with_cluster(|o, name| {
            o.set_routes(
                name.clone(),
                Some(vec![endpoint(0, 8080), endpoint(1, 8081)]),
            )
        });
        let rr = overlay.resolve("web.app.default.canopy.").await;
        assert_eq!(rr, Resolved::Address(Ipv4Addr::new(127, 90, 0, 2)));
        assert_eq!(asked.lock().unwrap().as_slice(), [(vec![web()], false)]);
        // Known now: no second ask, and each policy has its own address.
        let two = overlay.resolve("1.web.app.default.canopy").await;
        assert_eq!(two, Resolved::Address(Ipv4Addr::new(127, 90, 0, 3)));
        assert_eq!(asked.lock().unwrap().len(), 1);
        // Each new connection takes the next turn; the ordinal only its replica.
        let rr_ip = Ipv4Addr::new(127, 90, 0, 2);
        assert_eq!(overlay.targets(rr_ip, 80, false)[0].port(), 8080);
        assert_eq!(overlay.targets(rr_ip, 80, false)[0].port(), 8081);
        assert_eq!(overlay.targets(rr_ip, 80, false)[0].port(), 8080);
        let one: Vec<u16> = overlay
            .targets(Ipv4Addr::new(127, 90, 0, 3), 80, false)
            .iter()
            .map(|t| t.port())
            .collect();
        assert_eq!(one, [8081]);
        // A port the service does not have, an address nobody got: nowhere to go.
        assert!(overlay.targets(rr_ip, 81, false).is_empty());
        assert!(
            overlay
                .targets(Ipv4Addr::new(127, 90, 0, 9), 80, false)
                .is_empty()
        );
    }

    #[tokio::test]
    async fn an_unknown_service_is_nxdomain_and_a_silent_cluster_unavailable() {
        let (overlay, _) = with_cluster(|o, name| o.set_routes(name.clone(), None));
        assert_eq!(
            overlay.resolve("web.app.default.canopy").await,
            Resolved::Unknown
        );
        assert_eq!(
            overlay.resolve("x.web.app.default.canopy").await,
            Resolved::Unknown
        );
        let (silent, _) = with_cluster(|_, _| {});
        let started = Instant::now();
        assert_eq!(
            silent.resolve("web.app.default.canopy").await,
            Resolved::Unavailable
        );
        assert!(started.elapsed() >= ASK_DEADLINE);
    }

    #[tokio::test]
    async fn new_routes_apply_to_the_next_connection() {
        let (overlay, _) =
            with_cluster(|o, name| o.set_routes(name.clone(), Some(vec![endpoint(0, 8080)])));
        let Resolved::Address(ip) = overlay.resolve("web.app.default.canopy").await else {
            panic!("resolves");
        };
        assert_eq!(overlay.targets(ip, 80, false).len(), 1);
        overlay.set_routes(web(), Some(Vec::new()));
        assert!(overlay.targets(ip, 80, false).is_empty());
    }

    #[tokio::test]
    async fn services_unused_for_the_ttl_are_dropped_from_renewals() {
        let (overlay, _) = with_cluster(|o, name| o.set_routes(name.clone(), Some(Vec::new())));
        overlay.resolve("web.app.default.canopy").await;
        assert_eq!(overlay.still_used(Instant::now()), [web()]);
        let later = Instant::now() + INTEREST_TTL + Duration::from_secs(1);
        assert!(overlay.still_used(later).is_empty());
    }
}
