//! A parent's tier listener: TLS only. A connection that presents a valid member
//! certificate is served `members` with its [`Peer`] in every request; one that presents
//! none is served `joining` (the join call only). An invalid or revoked certificate fails
//! the handshake, so it reaches no handler at all.

use super::{Peer, certs};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// A handshake not done by then is dropped, so idle sockets cannot pile up.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

/// What the tier listener serves to members and to joiners.
#[derive(Clone)]
pub struct Routes {
    pub members: axum::Router,
    pub joining: axum::Router,
}

/// The answer to a tier call on a connection without a certificate.
pub fn unauthenticated() -> axum::Router {
    axum::Router::new().route_service(
        crate::ROUTE,
        tower::service_fn(|_request: axum::extract::Request| async {
            Ok::<_, std::convert::Infallible>(
                tonic::Status::unauthenticated(
                    "the tier protocol needs a client certificate: join with a token first",
                )
                .into_http::<axum::body::Body>(),
            )
        }),
    )
}

/// Serves `routes` over TLS on `listener` until `shutdown` completes; open connections are
/// then dropped (children reconnect to the next run).
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    routes: Routes,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, address) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let routes = routes.clone();
        connections.spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::info!(%address, error = %e, "tier handshake refused");
                    return;
                }
                Err(_) => return,
            };
            let peer = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .map(|leaf| certs::peer_of(leaf));
            let router = match peer {
                Some(Ok(peer)) => routes.members.layer(axum::Extension::<Peer>(peer)),
                None => routes.joining,
                Some(Err(e)) => {
                    tracing::info!(%address, error = %e, "unreadable client certificate");
                    return;
                }
            };
            let service = TowerToHyperService::new(router);
            if let Err(e) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%address, error = %e, "tier connection ended");
            }
        });
    }
    connections.shutdown().await;
    Ok(())
}
