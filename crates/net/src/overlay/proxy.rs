//! The node-local L4 proxy: one listener per (virtual address, service port, protocol). Each
//! new TCP connection goes where the overlay's policy says at that moment, so route changes
//! apply to the next connection; an instance that refuses is skipped for the next candidate,
//! and a connection nothing can take is reset at once. Bytes move between the two sockets
//! inside the kernel (`splice`). UDP is relayed per flow (`udp`).
//! Each connection and its bytes are counted per service (`traffic`).

use super::name::ServiceName;
use super::table::{Listen, Overlay};
use super::traffic::{Outcome, SharedMeter, UNKNOWN_CALLER};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// How long one attempt to reach an instance may take before the next one is tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The [`Listen`] that opens real listeners, TCP or UDP (on the tokio runtime it is
/// called on). The socket is bound before it returns, so a name's address answers as soon
/// as the DNS gave it out; serving goes on in a task.
pub fn listener() -> Listen {
    Arc::new(
        |overlay: Overlay, address: Ipv4Addr, port: u16, udp: bool| {
            let bind = SocketAddr::from((address, port));
            let opened = if udp {
                bind_udp(bind).map(|socket| {
                    tokio::spawn(super::udp::relay(overlay.clone(), socket, address, port));
                })
            } else {
                bind_tcp(bind).map(|listener| {
                    tokio::spawn(serve(overlay.clone(), listener, address, port));
                })
            };
            if let Err(e) = opened {
                tracing::warn!(%bind, udp, error = %e, "cannot open a service listener");
                overlay.listener_failed(address, port, udp);
            }
        },
    )
}

fn bind_tcp(bind: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = std::net::TcpListener::bind(bind)?;
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

fn bind_udp(bind: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = std::net::UdpSocket::bind(bind)?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket)
}

async fn serve(overlay: Overlay, listener: TcpListener, address: Ipv4Addr, port: u16) {
    loop {
        match listener.accept().await {
            Ok((client, peer)) => match overlay.route(address, port, false) {
                Some((service, targets)) => {
                    tokio::spawn(forward(client, peer, service, targets, overlay.meter()));
                }
                None => reset(client),
            },
            Err(e) => {
                tracing::debug!(%address, port, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn forward(
    mut client: TcpStream,
    peer: SocketAddr,
    service: ServiceName,
    targets: Vec<SocketAddr>,
    meter: SharedMeter,
) {
    let _ = client.set_nodelay(true);
    // Who calls is looked up while the instance is dialled, before the client can go.
    let mut lookup = client.local_addr().ok().map(|local| {
        let meter = meter.clone();
        tokio::task::spawn_blocking(move || meter.caller(peer, local))
    });
    for target in targets {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
            Ok(Ok(mut upstream)) => {
                let _ = upstream.set_nodelay(true);
                // Bytes flow at once; the connection is counted as soon as its caller is known.
                let opened = async {
                    let caller = settle(lookup.take()).await;
                    meter.opened(&service, &caller, Outcome::Forwarded);
                    caller
                };
                let mut counted = Counted::default();
                let (caller, _) = tokio::join!(opened, counted.copy(&mut client, &mut upstream));
                meter.carried(&service, &caller, counted.to_service, counted.from_service);
                return;
            }
            Ok(Err(e)) => tracing::debug!(%target, error = %e, "instance refused"),
            Err(_) => tracing::debug!(%target, "instance did not answer in time"),
        }
    }
    meter.opened(&service, &settle(lookup.take()).await, Outcome::Refused);
    reset(client);
}

/// The caller a lookup found; unknown when there was none or it failed.
async fn settle(lookup: Option<tokio::task::JoinHandle<String>>) -> String {
    match lookup {
        Some(lookup) => lookup.await.unwrap_or_else(|_| UNKNOWN_CALLER.to_string()),
        None => UNKNOWN_CALLER.to_string(),
    }
}

/// The bytes of one proxied connection, each way, also when it ends in an error (a reset
/// after data still carried that data).
#[derive(Default)]
struct Counted {
    to_service: u64,
    from_service: u64,
}

impl Counted {
    async fn copy(
        &mut self,
        client: &mut TcpStream,
        upstream: &mut TcpStream,
    ) -> std::io::Result<()> {
        let (mut client_read, mut client_write) = client.split();
        let (mut upstream_read, mut upstream_write) = upstream.split();
        let (to_service, from_service) = (&mut self.to_service, &mut self.from_service);
        let up = async {
            let copied =
                super::splice::pump(&mut client_read, &mut upstream_write, to_service).await;
            let _ = upstream_write.shutdown().await;
            copied
        };
        let down = async {
            let copied =
                super::splice::pump(&mut upstream_read, &mut client_write, from_service).await;
            let _ = client_write.shutdown().await;
            copied
        };
        // The first error ends both directions, as `copy_bidirectional` does.
        tokio::try_join!(up, down).map(|_| ())
    }
}

/// Closes with RST, not FIN: the client sees a refused service at once, not an empty reply.
fn reset(client: TcpStream) {
    let _ = client.set_zero_linger();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overlay::traffic::Recorded;
    use crate::overlay::{Ask, Endpoint, PortRoute, Resolved};
    use std::net::IpAddr;
    use std::sync::Mutex;
    use tokio::io::AsyncReadExt;

    /// A real TCP server that answers each connection with `reply` after reading `ask`
    /// bytes.
    async fn server(ask: usize, reply: &'static [u8]) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut asked = vec![0u8; ask];
                    stream.read_exact(&mut asked).await.unwrap();
                    stream.write_all(reply).await.unwrap();
                });
            }
        });
        port
    }

    /// Bytes that differ from one position to the next, so a lost, doubled or reordered
    /// chunk shows.
    fn pattern(length: usize, seed: u32) -> Vec<u8> {
        let mut state = seed;
        (0..length)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 24) as u8
            })
            .collect()
    }

    /// A real TCP server that sends back every byte it reads plus one, and after the
    /// client's EOF (its half-close) `tail` more bytes before closing.
    async fn echo_then_tail(tail: Vec<u8>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buffer = vec![0u8; 32 * 1024];
            loop {
                let read = stream.read(&mut buffer).await.unwrap();
                if read == 0 {
                    break;
                }
                let echoed: Vec<u8> = buffer[..read].iter().map(|b| b.wrapping_add(1)).collect();
                stream.write_all(&echoed).await.unwrap();
            }
            stream.write_all(&tail).await.unwrap();
        });
        port
    }

    fn endpoint(target: u16) -> Endpoint {
        Endpoint {
            instance: "web-0".into(),
            replica: 0,
            node: "n".into(),
            address: IpAddr::from([127, 0, 0, 1]),
            ports: vec![PortRoute {
                port: 80,
                target,
                udp: false,
            }],
            rtt_ms: None,
        }
    }

    /// An overlay on `network`/24 whose cluster answers every ask with `endpoints`.
    fn overlay(network: Ipv4Addr, endpoints: Vec<Endpoint>) -> Overlay {
        let slot: Arc<Mutex<Option<Overlay>>> = Arc::default();
        let reach = slot.clone();
        let ask: Ask = Arc::new(move |names: Vec<crate::overlay::ServiceName>, _| {
            if let Some(overlay) = reach.lock().unwrap().clone() {
                for name in names {
                    overlay.set_routes(name, Some(endpoints.clone()));
                }
            }
        });
        let overlay = Overlay::new(network, ask);
        overlay.set_listen(listener());
        *slot.lock().unwrap() = Some(overlay.clone());
        overlay
    }

    async fn dial(service: SocketAddr) -> TcpStream {
        // The listener opens in its own task: the first attempts may find it not yet bound.
        for _ in 0..50 {
            if let Ok(stream) = TcpStream::connect(service).await {
                return stream;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the service listener never opened");
    }

    #[tokio::test]
    async fn connections_and_bytes_are_counted_per_service_and_refusals_apart() {
        let meter = Arc::new(Recorded {
            calling: "default/shop/client".into(),
            ..Recorded::default()
        });
        let live = overlay(
            Ipv4Addr::new(127, 94, 0, 0),
            vec![endpoint(server(5, b"hello back").await)],
        );
        live.set_meter(meter.clone());
        let Resolved::Address(vip) = live.resolve("web.shop.default.canopy").await else {
            panic!("the name resolves");
        };
        let mut stream = dial(SocketAddr::from((vip, 80))).await;
        stream.write_all(b"hello").await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"hello back");
        drop(stream);
        let name = "web.shop.default.canopy";
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while meter.of(name).3 < 10 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            meter.of(name),
            (1, 0, 5, 10),
            "one connection, 5 bytes up, 10 back"
        );
        assert_eq!(
            *meter.callers.lock().unwrap(),
            ["default/shop/client", "default/shop/client"],
            "the meter's caller for the opening and the bytes"
        );

        // A port nothing listens on behind the name: the connection is reset and counted.
        let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead_port = dead.local_addr().unwrap().port();
        drop(dead);
        let gone = overlay(Ipv4Addr::new(127, 95, 0, 0), vec![endpoint(dead_port)]);
        let refused_meter = Arc::new(Recorded::default());
        gone.set_meter(refused_meter.clone());
        let Resolved::Address(vip) = gone.resolve("db.shop.default.canopy").await else {
            panic!("the name resolves");
        };
        let mut stream = dial(SocketAddr::from((vip, 80))).await;
        let mut answer = Vec::new();
        assert!(
            stream.read_to_end(&mut answer).await.is_err() || answer.is_empty(),
            "nothing answers"
        );
        let name = "db.shop.default.canopy";
        while refused_meter.of(name).1 == 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(refused_meter.of(name), (0, 1, 0, 0));
    }

    #[tokio::test]
    async fn mebibytes_each_way_arrive_whole_and_are_counted_exactly() {
        let (up, tail) = (pattern(4 << 20, 7), pattern(3 << 20, 11));
        let meter = Arc::new(Recorded::default());
        let live = overlay(
            Ipv4Addr::new(127, 96, 0, 0),
            vec![endpoint(echo_then_tail(tail.clone()).await)],
        );
        live.set_meter(meter.clone());
        let Resolved::Address(vip) = live.resolve("echo.shop.default.canopy").await else {
            panic!("the name resolves");
        };
        let stream = dial(SocketAddr::from((vip, 80))).await;
        let (mut reading, mut writing) = stream.into_split();
        let sent = up.clone();
        let sender = tokio::spawn(async move {
            writing.write_all(&sent).await.unwrap();
            writing.shutdown().await.unwrap();
        });
        let mut arrived = Vec::new();
        reading.read_to_end(&mut arrived).await.unwrap();
        sender.await.unwrap();
        let mut expected: Vec<u8> = up.iter().map(|b| b.wrapping_add(1)).collect();
        expected.extend_from_slice(&tail);
        assert_eq!(arrived.len(), expected.len(), "every byte came back");
        assert!(
            arrived == expected,
            "the bytes came back unchanged and in order"
        );
        let name = "echo.shop.default.canopy";
        let back = expected.len() as u64;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while meter.of(name).3 < back && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(meter.of(name), (1, 0, up.len() as u64, back));
    }
}
