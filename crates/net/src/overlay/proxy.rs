//! The node-local L4 proxy: one listener per (virtual address, service port, protocol). Each
//! new TCP connection goes where the overlay's policy says at that moment, so route changes
//! apply to the next connection; an instance that refuses is skipped for the next candidate,
//! and a connection nothing can take is reset at once. UDP is relayed per flow (`udp`).

use super::table::{Listen, Overlay};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
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
            Ok((client, _)) => {
                let targets = overlay.targets(address, port, false);
                tokio::spawn(forward(client, targets));
            }
            Err(e) => {
                tracing::debug!(%address, port, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn forward(mut client: TcpStream, targets: Vec<SocketAddr>) {
    let _ = client.set_nodelay(true);
    for target in targets {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
            Ok(Ok(mut upstream)) => {
                let _ = upstream.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                return;
            }
            Ok(Err(e)) => tracing::debug!(%target, error = %e, "instance refused"),
            Err(_) => tracing::debug!(%target, "instance did not answer in time"),
        }
    }
    reset(client);
}

/// Closes with RST, not FIN: the client sees a refused service at once, not an empty reply.
fn reset(client: TcpStream) {
    let _ = client.set_zero_linger();
}
