//! `canopy port-forward` on the node: one forwarded connection to a port of an instance, at
//! the address its network hook gave it (a container's), or on the node itself (a process
//! shares the node's network).

use crate::Agent;
use crate::streams::send_data;
use canopy_tier::pb;
use canopy_tier::streams::{End, Frame, Pipe, STDOUT};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Agent {
    pub(crate) async fn port_forward(
        &self,
        id: &str,
        request: pb::PortForwardRequest,
        pipe: &mut Pipe,
    ) -> End {
        let Some(runtime) = self.runtime_of(id).await else {
            return End::error("not_found", format!("instance {id} is not on this node"));
        };
        let Ok(port) = u16::try_from(request.port) else {
            return End::error("bad_request", format!("{} is not a port", request.port));
        };
        let ip = self
            .hooks(runtime.kind())
            .address(id)
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((ip, port))).await;
        let mut stream = match connected {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                return End::error(
                    "not_running",
                    format!("nothing answers on {ip}:{port} of {id}: {e}"),
                );
            }
            Err(_) => {
                return End::error(
                    "unavailable",
                    format!("{ip}:{port} of {id} did not answer within {CONNECT_TIMEOUT:?}"),
                );
            }
        };
        let _ = stream.set_nodelay(true);
        if pipe.tx.send(Frame::Ready).await.is_err() {
            return End::ok();
        }
        let (mut reader, mut writer) = stream.split();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            tokio::select! {
                read = reader.read(&mut buf) => match read {
                    // The instance closed its side: the forwarded connection is over.
                    Ok(0) => return End::ok(),
                    Ok(n) => if !send_data(pipe, STDOUT, &buf[..n]).await {
                        return End::ok();
                    },
                    Err(e) => return End::error("unavailable", format!("reading from {ip}:{port}: {e}")),
                },
                frame = pipe.rx.recv() => match frame {
                    Some(Frame::Data { data, .. }) => {
                        if writer.write_all(&data).await.is_err() {
                            return End::ok();
                        }
                    }
                    Some(Frame::CloseInput) => {
                        let _ = writer.shutdown().await;
                    }
                    Some(_) => {}
                    None => return End::ok(),
                },
            }
        }
    }
}
