//! `canopy port-forward INSTANCE LOCAL:REMOTE`: listens on 127.0.0.1:LOCAL and relays each
//! connection to port REMOTE of the instance, through the root, its cluster and its node.

use crate::cli::ClientArgs;
use crate::client::{Client, encode};
use crate::exec::upgraded;
use anyhow::Context;
use canopy_tier::streams::{Frame, INPUT};
use canopy_tier::wire;
use clap::Args;
use std::io::Write;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Args)]
pub struct ForwardArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    pub instance: String,
    /// `LOCAL:REMOTE` (or one port for both); LOCAL 0 picks a free port.
    pub ports: String,
}

/// `LOCAL:REMOTE` or `PORT`.
fn parse_ports(text: &str) -> anyhow::Result<(u16, u16)> {
    let port = |p: &str| {
        p.parse::<u16>()
            .with_context(|| format!("{p:?} is not a port (in {text:?})"))
    };
    match text.split_once(':') {
        Some((local, remote)) => Ok((port(local)?, port(remote)?)),
        None => port(text).map(|p| (p, p)),
    }
}

pub async fn port_forward(args: ForwardArgs) -> anyhow::Result<()> {
    let (local, remote) = parse_ports(&args.ports)?;
    anyhow::ensure!(remote != 0, "the instance's port cannot be 0");
    let client = Arc::new(args.client.connect()?);
    let listener = TcpListener::bind(("127.0.0.1", local))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{local}"))?;
    let bound = listener.local_addr()?;
    println!("Forwarding from {bound} -> {}:{remote}", args.instance);
    std::io::stdout().flush()?;
    let path = format!(
        "/api/v1/instances/{}/port-forward?port={remote}",
        encode(&args.instance)
    );
    let serve = async {
        loop {
            let (connection, _) = listener.accept().await.context("accepting a connection")?;
            let client = client.clone();
            let path = path.clone();
            tokio::spawn(async move {
                if let Err(e) = relay(&client, &path, connection).await {
                    eprintln!("error: port-forward: {e:#}");
                }
            });
        }
    };
    tokio::select! {
        result = serve => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// One local connection and one forwarded one, relayed until either side ends.
async fn relay(client: &Client, path: &str, mut local: TcpStream) -> anyhow::Result<()> {
    let remote = upgraded(client, path).await?;
    let (mut from_remote, mut to_remote) = tokio::io::split(remote);
    let (mut from_local, mut to_local) = local.split();
    let upstream = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let frame = match from_local.read(&mut buf).await {
                Ok(0) | Err(_) => Frame::CloseInput,
                Ok(n) => Frame::Data {
                    channel: INPUT,
                    data: buf[..n].to_vec(),
                },
            };
            let last = frame == Frame::CloseInput;
            if to_remote.write_all(&wire::encode(&frame)).await.is_err() || last {
                // The remote side goes on until it has answered everything.
                return std::future::pending::<()>().await;
            }
        }
    };
    let downstream = async {
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            while let Some(frame) = wire::decode(&mut buf)? {
                match frame {
                    Frame::Data { data, .. } => to_local.write_all(&data).await?,
                    Frame::End(end) => {
                        let _ = to_local.shutdown().await;
                        return match end.error {
                            Some((_, message)) => Err(anyhow::anyhow!(message)),
                            None => Ok(()),
                        };
                    }
                    _ => {}
                }
            }
            let n = from_remote.read(&mut chunk).await?;
            if n == 0 {
                anyhow::bail!("the forwarded connection broke off");
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::select! {
        () = upstream => Ok(()),
        result = downstream => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_one_or_local_and_remote() {
        assert_eq!(parse_ports("8080").unwrap(), (8080, 8080));
        assert_eq!(parse_ports("0:80").unwrap(), (0, 80));
        let e = parse_ports("80:http").unwrap_err().to_string();
        assert!(e.contains("\"http\" is not a port"), "{e}");
    }
}
