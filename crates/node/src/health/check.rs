//! Running one probe against one instance: a command inside it (through its runtime's
//! `exec_command`), an HTTP GET or a TCP connection to its address. `Ok` when it passed,
//! else why not.

use canopy_model::{Probe, ProbeHandler};
use canopy_runtime::Runtime;
use std::net::IpAddr;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Runs `probe` against instance `id` (reachable at `address`), within its timeout.
pub(crate) async fn run(
    runtime: &dyn Runtime,
    id: &str,
    address: IpAddr,
    probe: &Probe,
) -> Result<(), String> {
    let timeout = Duration::from_secs(u64::from(probe.timeout_seconds.max(1)));
    let checked = async {
        match probe.handler() {
            Some(ProbeHandler::Exec(command)) => exec(runtime, id, command).await,
            Some(ProbeHandler::HttpGet { path, port }) => http_get(address, port, path).await,
            Some(ProbeHandler::TcpSocket { port }) => connect(address, port).await.map(drop),
            None => Err("the probe has no handler".to_string()),
        }
    };
    match tokio::time::timeout(timeout, checked).await {
        Ok(result) => result,
        Err(_) => Err(format!("timed out after {} s", timeout.as_secs())),
    }
}

async fn exec(runtime: &dyn Runtime, id: &str, command: &[String]) -> Result<(), String> {
    if runtime.engine_sessions() {
        return engine_exec(runtime, id, command).await;
    }
    let mut command = runtime
        .exec_command(id, command, false)
        .await
        .map_err(|e| format!("cannot exec: {e}"))?;
    // A probe that times out is dropped: its command is killed with it.
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let status = command
        .status()
        .await
        .map_err(|e| format!("cannot exec: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("command {status}"))
    }
}

/// A command probe run by the instance's engine (the Docker Engine's exec).
async fn engine_exec(runtime: &dyn Runtime, id: &str, command: &[String]) -> Result<(), String> {
    let mut exec = runtime
        .engine_exec(id, command, None)
        .await
        .map_err(|e| format!("cannot exec: {e}"))?;
    drop(exec.input);
    while exec.output.recv().await.is_some() {}
    match exec.control.exit_code().await {
        Some(0) => Ok(()),
        Some(code) => Err(format!("command exited with code {code}")),
        None => Err("the engine did not say how the command ended".to_string()),
    }
}

async fn connect(address: IpAddr, port: u16) -> Result<TcpStream, String> {
    TcpStream::connect((address, port))
        .await
        .map_err(|e| format!("cannot connect to {address}:{port}: {e}"))
}

/// HTTP/1.1 GET with `Connection: close`; a status in 200..400 passes, as Kubernetes has it.
async fn http_get(address: IpAddr, port: u16, path: &str) -> Result<(), String> {
    let mut stream = connect(address, port).await?;
    let host = match address {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: canopy-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("cannot send the request: {e}"))?;
    // The status line is all a probe needs.
    let mut head = Vec::with_capacity(64);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("cannot read the response: {e}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let status = status_code(&head).ok_or_else(|| "no HTTP status line".to_string())?;
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Err(format!("HTTP status {status}"))
    }
}

/// The code of a status line (`HTTP/1.1 200 OK`).
fn status_code(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace();
    words.next().filter(|v| v.starts_with("HTTP/"))?;
    words.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn status_lines_give_their_code() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(status_code(b"HTTP/1.0 404 Not Found\r\nX: y"), Some(404));
        assert_eq!(status_code(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_code(b""), None);
    }

    /// A one-shot server answering every connection with `response`.
    async fn serve(response: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(response.as_bytes()).await;
            }
        });
        port
    }

    #[tokio::test]
    async fn http_get_passes_on_2xx_and_3xx_only() {
        let loopback: IpAddr = "127.0.0.1".parse().expect("ip");
        let ok = serve("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await;
        let moved = serve("HTTP/1.1 302 Found\r\n\r\n").await;
        let broken = serve("HTTP/1.1 503 Service Unavailable\r\n\r\n").await;
        assert_eq!(http_get(loopback, ok, "/healthz").await, Ok(()));
        assert_eq!(http_get(loopback, moved, "/").await, Ok(()));
        assert_eq!(
            http_get(loopback, broken, "/").await,
            Err("HTTP status 503".into())
        );
        // Nothing listens on a port just freed.
        let free = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = free.local_addr().expect("addr").port();
        drop(free);
        assert!(connect(loopback, port).await.is_err());
        assert!(connect(loopback, ok).await.is_ok());
    }
}
