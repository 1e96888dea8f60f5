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
/// called on).
pub fn listener() -> Listen {
    Arc::new(
        |overlay: Overlay, address: Ipv4Addr, port: u16, udp: bool| {
            tokio::spawn(async move {
                let bind = SocketAddr::from((address, port));
                let opened = if udp {
                    match UdpSocket::bind(bind).await {
                        Ok(socket) => {
                            super::udp::relay(overlay.clone(), socket, address, port).await;
                            return;
                        }
                        Err(e) => e,
                    }
                } else {
                    match TcpListener::bind(bind).await {
                        Ok(listener) => {
                            serve(overlay.clone(), listener, address, port).await;
                            return;
                        }
                        Err(e) => e,
                    }
                };
                tracing::warn!(%bind, udp, error = %opened, "cannot open a service listener");
                overlay.listener_failed(address, port, udp);
            });
        },
    )
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
