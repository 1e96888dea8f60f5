//! The node's DNS (hickory-server): `.canopy` names get the virtual address of their
//! (service, policy) or NXDOMAIN at once; other names are forwarded to the host's upstream
//! resolvers and their answer relayed.

use super::name::is_overlay_name;
use super::table::{Overlay, Resolved};
use hickory_proto::op::{Header, Message, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_server::ServerFuture;
use hickory_server::authority::MessageResponseBuilder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, UdpSocket};

/// Answers are short-lived: a virtual address never changes, but a name that was unknown
/// may appear.
const TTL: u32 = 5;
/// How long an upstream resolver has to answer a forwarded query.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);

/// Listens for DNS over UDP and TCP at `address`, answering from `overlay` and forwarding
/// to `upstream`, until the runtime ends.
pub async fn serve(
    address: SocketAddr,
    overlay: Overlay,
    upstream: Vec<SocketAddr>,
) -> std::io::Result<()> {
    let udp = UdpSocket::bind(address).await?;
    let tcp = TcpListener::bind(address).await?;
    let mut server = ServerFuture::new(Handler { overlay, upstream });
    server.register_socket(udp);
    server.register_listener(tcp, Duration::from_secs(5));
    tokio::spawn(async move {
        if let Err(e) = server.block_until_done().await {
            tracing::warn!(error = %e, "the node's DNS stopped");
        }
    });
    Ok(())
}

struct Handler {
    overlay: Overlay,
    upstream: Vec<SocketAddr>,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let builder = MessageResponseBuilder::from_message_request(request);
        let Ok(info) = request.request_info() else {
            let reply = builder.error_msg(request.header(), ResponseCode::FormErr);
            return sent(response.send_response(reply).await, request.header());
        };
        let name: Name = info.query.name().clone().into();
        let query_type = info.query.query_type();
        let mut header = Header::response_from_request(request.header());
        if !is_overlay_name(&name.to_ascii()) {
            let Some(answer) = self.forward(&name, query_type).await else {
                let reply = builder.error_msg(request.header(), ResponseCode::ServFail);
                return sent(response.send_response(reply).await, request.header());
            };
            header.set_response_code(answer.response_code());
            header.set_recursion_available(true);
            let reply = builder.build(
                header,
                answer.answers(),
                answer.name_servers(),
                &[],
                answer.additionals(),
            );
            return sent(response.send_response(reply).await, request.header());
        }
        header.set_authoritative(true);
        match self.overlay.resolve(&name.to_ascii()).await {
            Resolved::Address(address) => {
                // Only A records: other types of a known name are an empty NOERROR answer.
                let records: Vec<Record> = (matches!(query_type, RecordType::A | RecordType::ANY))
                    .then(|| Record::from_rdata(name, TTL, RData::A(A(address))))
                    .into_iter()
                    .collect();
                let reply = builder.build(header, &records, &[], &[], &[]);
                sent(response.send_response(reply).await, request.header())
            }
            Resolved::Unknown => {
                let reply = builder.error_msg(request.header(), ResponseCode::NXDomain);
                sent(response.send_response(reply).await, request.header())
            }
            Resolved::Unavailable => {
                let reply = builder.error_msg(request.header(), ResponseCode::ServFail);
                sent(response.send_response(reply).await, request.header())
            }
        }
    }
}

impl Handler {
    /// The first upstream answer to `name`/`query_type`; none when no upstream answers.
    async fn forward(&self, name: &Name, query_type: RecordType) -> Option<Message> {
        for upstream in &self.upstream {
            match ask_upstream(*upstream, name, query_type).await {
                Ok(answer) => return Some(answer),
                Err(e) => tracing::debug!(%upstream, error = %e, "upstream resolver failed"),
            }
        }
        None
    }
}

async fn ask_upstream(
    upstream: SocketAddr,
    name: &Name,
    query_type: RecordType,
) -> std::io::Result<Message> {
    let invalid = |e: hickory_proto::ProtoError| std::io::Error::other(e.to_string());
    let id: u16 = rand_id();
    let mut query = Message::new();
    query
        .set_id(id)
        .set_recursion_desired(true)
        .add_query(Query::query(name.clone(), query_type));
    let bytes = query.to_vec().map_err(invalid)?;
    let local: SocketAddr = if upstream.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(&bytes).await?;
    let mut buffer = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + UPSTREAM_TIMEOUT;
    loop {
        let read = tokio::time::timeout_at(deadline, socket.recv(&mut buffer))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        let answer = Message::from_vec(&buffer[..read]).map_err(invalid)?;
        // Anything else is a stray datagram (or a spoof): keep waiting for ours.
        if answer.id() == id {
            return Ok(answer);
        }
    }
}

/// A query id nobody can guess from the last one (the hasher's per-process random keys).
fn rand_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish() as u16
}

fn sent(result: std::io::Result<ResponseInfo>, request: &Header) -> ResponseInfo {
    result.unwrap_or_else(|e| {
        tracing::debug!(error = %e, "cannot send a DNS answer");
        let mut header = Header::response_from_request(request);
        header.set_response_code(ResponseCode::ServFail);
        header.into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overlay::Ask;
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    /// A real upstream resolver on loopback that answers every A query with 192.0.2.7.
    async fn upstream() -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 1500];
            while let Ok((read, from)) = socket.recv_from(&mut buffer).await {
                let query = Message::from_vec(&buffer[..read]).unwrap();
                let mut answer = Message::new();
                answer
                    .set_id(query.id())
                    .set_message_type(hickory_proto::op::MessageType::Response);
                for q in query.queries() {
                    answer.add_query(q.clone());
                    answer.add_answer(Record::from_rdata(
                        q.name().clone(),
                        60,
                        RData::A(A(Ipv4Addr::new(192, 0, 2, 7))),
                    ));
                }
                socket
                    .send_to(&answer.to_vec().unwrap(), from)
                    .await
                    .unwrap();
            }
        });
        address
    }

    async fn ask(dns: SocketAddr, name: &str) -> Message {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut query = Message::new();
        query
            .set_id(7)
            .set_recursion_desired(true)
            .add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        socket.send_to(&query.to_vec().unwrap(), dns).await.unwrap();
        let mut buffer = vec![0u8; 1500];
        let read = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buffer))
            .await
            .expect("the DNS answers")
            .unwrap();
        Message::from_vec(&buffer[..read]).unwrap()
    }

    #[tokio::test]
    async fn other_names_are_forwarded_and_unknown_canopy_names_are_nxdomain() {
        // The cluster knows no service at all.
        let slot: Arc<std::sync::Mutex<Option<Overlay>>> = Default::default();
        let reach = slot.clone();
        let ask_cluster: Ask = Arc::new(move |names, _| {
            if let Some(overlay) = reach.lock().unwrap().clone() {
                for name in names {
                    overlay.set_routes(name, None);
                }
            }
        });
        let overlay = Overlay::new(Ipv4Addr::new(127, 91, 7, 0), ask_cluster);
        *slot.lock().unwrap() = Some(overlay.clone());
        let dns = SocketAddr::from((overlay.dns_address(), 15353));
        serve(dns, overlay, vec![upstream().await]).await.unwrap();

        let answer = ask(dns, "example.org.").await;
        assert_eq!(answer.id(), 7);
        assert_eq!(answer.response_code(), ResponseCode::NoError);
        assert_eq!(
            answer.answers().first().map(|r| r.data().clone()),
            Some(RData::A(A(Ipv4Addr::new(192, 0, 2, 7))))
        );
        let started = std::time::Instant::now();
        let answer = ask(dns, "nosuch.app.default.canopy.").await;
        assert_eq!(answer.response_code(), ResponseCode::NXDomain);
        assert!(answer.answers().is_empty());
        assert!(started.elapsed() < Duration::from_millis(500));
    }
}
