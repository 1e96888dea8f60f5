//! The addresses of an application's services, for the environment of a workload that
//! starts (`CANOPY_SVC_<SERVICE>_ADDR`): what each service's plain name resolves to here
//! (its round-robin virtual address) with its first declared port; and the fixed addresses
//! a descriptor gives its services (an Oakestra SLA's `rr_ip`, ...).

use super::name::{Policy, ServiceName};
use super::table::{ASK_DEADLINE, Overlay};
use std::net::{Ipv4Addr, SocketAddrV4};

/// One service's address as a workload is told it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAddress {
    pub service: String,
    pub address: SocketAddrV4,
}

impl ServiceAddress {
    /// `CANOPY_SVC_<SERVICE>_ADDR` (upper case, `-` and `.` as `_`) and `address:port`.
    pub fn env(&self) -> (String, String) {
        let service: String = self
            .service
            .chars()
            .map(|c| match c {
                '-' | '.' => '_',
                c => c.to_ascii_uppercase(),
            })
            .collect();
        (
            format!("CANOPY_SVC_{service}_ADDR"),
            self.address.to_string(),
        )
    }
}

/// The request for a whole application's services (its service left empty).
pub fn application_request(namespace: &str, application: &str) -> ServiceName {
    ServiceName {
        namespace: namespace.to_string(),
        application: application.to_string(),
        service: String::new(),
    }
}

impl Overlay {
    /// Asks the cluster for every service of (`namespace`, `application`) and gives each
    /// with a declared port its address, waiting at most [`ASK_DEADLINE`] for the answer
    /// (what is known by then, otherwise). `own` is the asking workload's service, which
    /// the answer always lists. The services' routes stay for the agent's lifetime.
    pub async fn application_addresses(
        &self,
        namespace: &str,
        application: &str,
        own: &str,
    ) -> Vec<ServiceAddress> {
        let before = self.lock().updates;
        (self.inner.ask)(vec![application_request(namespace, application)], false);
        let deadline = tokio::time::Instant::now() + ASK_DEADLINE;
        loop {
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let state = self.lock();
                let answered = state.updates > before
                    && state.services.keys().any(|n| {
                        n.namespace == namespace && n.application == application && n.service == own
                    });
                if answered {
                    break;
                }
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                break;
            }
        }
        let mut out = Vec::new();
        let mut opened = Vec::new();
        {
            let mut state = self.lock();
            let names: Vec<ServiceName> = state
                .services
                .iter()
                .filter(|(n, e)| {
                    e.is_some() && n.namespace == namespace && n.application == application
                })
                .map(|(n, _)| n.clone())
                .collect();
            for name in names {
                let declared = state.declared.get(&name).cloned().unwrap_or_default();
                // TCP first: what most clients dial.
                let Some(port) = declared
                    .iter()
                    .find(|p| !p.udp)
                    .or(declared.first())
                    .map(|p| p.port)
                else {
                    continue;
                };
                let Some(ip) = state.vips.assign(&name, Policy::RoundRobin) else {
                    continue;
                };
                state.pinned.insert(name.clone());
                state.used.insert(name.clone(), std::time::Instant::now());
                out.push(ServiceAddress {
                    service: name.service.clone(),
                    address: SocketAddrV4::new(ip, port),
                });
                opened.push(name);
            }
        }
        for name in &opened {
            self.open_listeners(name);
        }
        out
    }
}

impl Overlay {
    /// Fixes `addresses` (made local to the host by the caller) to `name` with their
    /// policies, listening on them at once; the routes of such a service never lapse (its
    /// clients dial the address without resolving a name). Returns the addresses taken
    /// (one another service has is left out).
    pub fn set_fixed(&self, name: &ServiceName, addresses: &[(Ipv4Addr, Policy)]) -> Vec<Ipv4Addr> {
        let taken: Vec<Ipv4Addr> = {
            let mut state = self.lock();
            state.pinned.insert(name.clone());
            state.used.insert(name.clone(), std::time::Instant::now());
            addresses
                .iter()
                .filter(|(address, policy)| state.vips.fix(*address, name, *policy))
                .map(|(address, _)| *address)
                .collect()
        };
        self.open_listeners(name);
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overlay::{Ask, PortRoute};
    use std::sync::{Arc, Mutex};

    fn service(name: &str) -> ServiceName {
        ServiceName {
            namespace: "default".into(),
            application: "app".into(),
            service: name.into(),
        }
    }

    #[tokio::test]
    async fn each_service_of_the_application_gets_its_plain_name_s_address_and_port() {
        let asked: Arc<Mutex<Vec<ServiceName>>> = Default::default();
        let slot: Arc<Mutex<Option<Overlay>>> = Default::default();
        let (record, reach) = (asked.clone(), slot.clone());
        let ask: Ask = Arc::new(move |names: Vec<ServiceName>, _| {
            record.lock().unwrap().extend(names);
            let Some(overlay) = reach.lock().unwrap().clone() else {
                return;
            };
            // The cluster: a web server (TCP 80, UDP 53) and a worker without ports.
            overlay.set_ports(
                service("web-front"),
                vec![
                    PortRoute {
                        port: 53,
                        target: 53,
                        udp: true,
                    },
                    PortRoute {
                        port: 80,
                        target: 80,
                        udp: false,
                    },
                ],
            );
            overlay.set_routes(service("web-front"), Some(Vec::new()));
            overlay.set_routes(service("worker"), Some(Vec::new()));
        });
        let overlay = Overlay::new(Ipv4Addr::new(127, 92, 0, 0), ask);
        *slot.lock().unwrap() = Some(overlay.clone());
        let started = std::time::Instant::now();
        let addresses = overlay
            .application_addresses("default", "app", "worker")
            .await;
        assert!(started.elapsed() < ASK_DEADLINE, "no wait once answered");
        assert_eq!(
            asked.lock().unwrap().as_slice(),
            [application_request("default", "app")]
        );
        assert_eq!(addresses.len(), 1, "{addresses:?}");
        assert_eq!(
            addresses[0].env(),
            (
                "CANOPY_SVC_WEB_FRONT_ADDR".to_string(),
                "127.92.0.2:80".to_string()
            )
        );
        // The same address the name resolves to, and it never lapses.
        assert_eq!(
            overlay.resolve("web-front.app.default.canopy").await,
            crate::overlay::Resolved::Address(Ipv4Addr::new(127, 92, 0, 2))
        );
        let later = std::time::Instant::now() + crate::overlay::INTEREST_TTL * 2;
        assert!(overlay.still_used(later).contains(&service("web-front")));
    }
}
