//! A node's overlay DNS asked directly, as a workload on that node would ask it.

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

/// The A record the DNS at `server` (`IP:53`) answers for `name`, or its response code.
pub fn resolve(server: &str, name: &str) -> Result<Ipv4Addr, ResponseCode> {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("a read timeout");
    let mut query = Message::new();
    query
        .set_id(4243)
        .set_recursion_desired(true)
        .add_query(Query::query(
            Name::from_ascii(name).expect("a DNS name"),
            RecordType::A,
        ));
    let server: SocketAddr = server.parse().expect("IP:PORT");
    socket
        .send_to(&query.to_vec().expect("a query"), server)
        .expect("the query is sent");
    let mut buffer = [0u8; 1500];
    let read = socket.recv(&mut buffer).expect("the node's DNS answers");
    let answer = Message::from_vec(&buffer[..read]).expect("a DNS message");
    if answer.response_code() != ResponseCode::NoError {
        return Err(answer.response_code());
    }
    answer
        .answers()
        .iter()
        .find_map(|r| match r.data() {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .ok_or(ResponseCode::NoError)
}
