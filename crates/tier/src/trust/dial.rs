//! Dialling a parent over TLS: tonic's channel over our own connector, so the verifier is
//! ours (a pinned CA while joining, the saved CA afterwards) and an `https://` parent is
//! never reached in cleartext.

use super::PARENT_SERVER_NAME;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};

/// A channel to `endpoint` whose every connection is TLS under `config`.
pub async fn connect(
    endpoint: &Endpoint,
    config: Arc<rustls::ClientConfig>,
) -> Result<Channel, tonic::transport::Error> {
    let connector = tower::service_fn(move |uri: Uri| {
        let config = config.clone();
        async move {
            let host = uri
                .host()
                .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
                .ok_or_else(|| std::io::Error::other(format!("no host in {uri}")))?;
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let name = ServerName::try_from(PARENT_SERVER_NAME).map_err(std::io::Error::other)?;
            let tls = TlsConnector::from(config).connect(name, tcp).await?;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    });
    endpoint.connect_with_connector(connector).await
}
