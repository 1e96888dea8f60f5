//! UDP through the proxy, per flow: the first datagram from a client address picks an
//! instance by the name's policy, and that flow keeps its instance (and its own upstream
//! socket, so replies find their way back) until nothing came back for [`FLOW_IDLE`]; the
//! next datagram then starts a new flow, under the routes of that moment. Flows are counted
//! for caller `unknown`: finding a caller would hold up the relay's one loop.

use super::name::ServiceName;
use super::table::Overlay;
use super::traffic::{Outcome, SharedMeter, UNKNOWN_CALLER};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;

/// A flow with no reply for this long is forgotten.
pub const FLOW_IDLE: Duration = Duration::from_secs(30);

type Flows = Arc<Mutex<HashMap<SocketAddr, Flow>>>;

/// A client's flow: its own upstream socket, and the service it counts for.
#[derive(Clone)]
struct Flow {
    upstream: Arc<UdpSocket>,
    service: Arc<ServiceName>,
}

/// Relays datagrams sent to `address:port` on `socket`, for as long as the socket works.
pub(crate) async fn relay(overlay: Overlay, socket: UdpSocket, address: Ipv4Addr, port: u16) {
    let socket = Arc::new(socket);
    let flows: Flows = Arc::default();
    // Taken once: the node sets its meter before any listener opens.
    let meter = overlay.meter();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let (read, client) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(e) => {
                tracing::debug!(%address, port, error = %e, "UDP receive failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let existing = flows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&client)
            .cloned();
        let flow = match existing {
            Some(flow) => flow,
            None => {
                let Some((service, targets)) = overlay.route(address, port, true) else {
                    continue;
                };
                let Some(target) = targets.into_iter().next() else {
                    // No instance ready: dropped, as a datagram to nowhere is.
                    meter.opened(&service, UNKNOWN_CALLER, Outcome::Refused);
                    continue;
                };
                match open_flow(target).await {
                    Ok(upstream) => {
                        meter.opened(&service, UNKNOWN_CALLER, Outcome::Forwarded);
                        let flow = Flow {
                            upstream,
                            service: Arc::new(service),
                        };
                        flows
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(client, flow.clone());
                        tokio::spawn(replies(
                            socket.clone(),
                            flow.clone(),
                            client,
                            flows.clone(),
                            meter.clone(),
                        ));
                        flow
                    }
                    Err(e) => {
                        tracing::debug!(%target, error = %e, "cannot open a UDP flow");
                        meter.opened(&service, UNKNOWN_CALLER, Outcome::Refused);
                        continue;
                    }
                }
            }
        };
        match flow.upstream.send(&buffer[..read]).await {
            Ok(sent) => meter.carried(&flow.service, UNKNOWN_CALLER, sent as u64, 0),
            Err(e) => tracing::debug!(%client, error = %e, "UDP send to the instance failed"),
        }
    }
}

async fn open_flow(target: SocketAddr) -> std::io::Result<Arc<UdpSocket>> {
    let local: SocketAddr = if target.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let upstream = UdpSocket::bind(local).await?;
    upstream.connect(target).await?;
    Ok(Arc::new(upstream))
}

/// Sends the instance's replies back to `client` from the service address, until the flow
/// idles out or the instance is gone (a refused send ends it too).
async fn replies(
    socket: Arc<UdpSocket>,
    flow: Flow,
    client: SocketAddr,
    flows: Flows,
    meter: SharedMeter,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    while let Ok(Ok(read)) = tokio::time::timeout(FLOW_IDLE, flow.upstream.recv(&mut buffer)).await
    {
        if socket.send_to(&buffer[..read], client).await.is_err() {
            break;
        }
        meter.carried(&flow.service, UNKNOWN_CALLER, 0, read as u64);
    }
    flows
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&client);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overlay::{Ask, Endpoint, PortRoute, Resolved, ServiceName, listener};
    use std::net::IpAddr;

    /// A real UDP server answering every datagram with `replica-N`.
    async fn server(replica: u32) -> u16 {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = socket.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut buffer = [0u8; 512];
            while let Ok((_, from)) = socket.recv_from(&mut buffer).await {
                let _ = socket
                    .send_to(format!("replica-{replica}").as_bytes(), from)
                    .await;
            }
        });
        port
    }

    async fn exchange(client: &UdpSocket, to: SocketAddr) -> String {
        client.send_to(b"hi", to).await.unwrap();
        let mut buffer = [0u8; 512];
        let read = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut buffer))
            .await
            .expect("a reply through the proxy")
            .unwrap();
        String::from_utf8_lossy(&buffer[..read]).into_owned()
    }

    #[tokio::test]
    async fn each_flow_keeps_its_instance_and_new_flows_take_turns() {
        let mut endpoints = Vec::new();
        for replica in 0..2 {
            endpoints.push(Endpoint {
                instance: format!("dns-{replica}"),
                replica,
                node: "n".into(),
                address: IpAddr::from([127, 0, 0, 1]),
                ports: vec![PortRoute {
                    port: 5300,
                    target: server(replica).await,
                    udp: true,
                }],
                rtt_ms: None,
            });
        }
        let slot: Arc<Mutex<Option<Overlay>>> = Arc::default();
        let reach = slot.clone();
        let ask: Ask = Arc::new(move |names: Vec<ServiceName>, _| {
            if let Some(overlay) = reach.lock().unwrap().clone() {
                for name in names {
                    overlay.set_routes(name, Some(endpoints.clone()));
                }
            }
        });
        let overlay = Overlay::new(Ipv4Addr::new(127, 92, 0, 0), ask);
        overlay.set_listen(listener());
        *slot.lock().unwrap() = Some(overlay.clone());
        let Resolved::Address(vip) = overlay.resolve("dns.app.default.canopy").await else {
            panic!("the name resolves");
        };
        let service = SocketAddr::from((vip, 5300));
        let first = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let second = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // The listener opens in its own task: the first datagrams may find it not yet bound.
        let mut answer = None;
        for _ in 0..50 {
            first.send_to(b"hi", service).await.unwrap();
            let mut buffer = [0u8; 512];
            if let Ok(Ok(read)) =
                tokio::time::timeout(Duration::from_millis(100), first.recv(&mut buffer)).await
            {
                answer = Some(String::from_utf8_lossy(&buffer[..read]).into_owned());
                break;
            }
        }
        let first_replica = answer.expect("the UDP listener answers");
        for _ in 0..5 {
            assert_eq!(
                exchange(&first, service).await,
                first_replica,
                "a flow keeps its instance"
            );
        }
        let second_replica = exchange(&second, service).await;
        assert_ne!(
            second_replica, first_replica,
            "the next flow takes the next instance"
        );
        assert_eq!(exchange(&second, service).await, second_replica);
    }
}
