//! `canopy exec INSTANCE -- CMD...`: a command inside a running instance, through the root,
//! its cluster and its node, over one upgraded connection; exits with the command's code.

use crate::cli::ClientArgs;
use crate::client::{Client, encode, error_from};
use anyhow::{Context, bail};
use canopy_tier::streams::{Frame, INPUT, STDERR, STDOUT};
use canopy_tier::wire;
use clap::Args;
use std::io::Write;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    pub instance: String,
    /// Pass standard input to the command.
    #[arg(short, long)]
    pub interactive: bool,
    /// Run the command on a terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// The command and its arguments (after `--`).
    #[arg(required = true, last = true)]
    pub command: Vec<String>,
}

/// POSTs to `path` asking for the `canopy-stream` protocol; the switched connection, or the
/// API's error.
pub async fn upgraded(client: &Client, path: &str) -> anyhow::Result<reqwest::Upgraded> {
    let response = client
        .request(reqwest::Method::POST, path)
        .header(reqwest::header::CONNECTION, "upgrade")
        .header(reqwest::header::UPGRADE, "canopy-stream")
        .send()
        .await
        .context("cannot reach the Canopy API")?;
    let status = response.status();
    if status != reqwest::StatusCode::SWITCHING_PROTOCOLS {
        let body = response.bytes().await.unwrap_or_default();
        return Err(error_from(status, &body));
    }
    response.upgrade().await.context("upgrading the connection")
}

/// The client's terminal in raw mode (keys go to the remote command as typed), restored
/// when dropped.
struct Terminal(rustix::termios::Termios);

impl Terminal {
    /// `None` when standard input is not a terminal (then nothing is changed).
    fn raw() -> Option<Terminal> {
        let stdin = std::io::stdin();
        if !rustix::termios::isatty(&stdin) {
            return None;
        }
        let saved = rustix::termios::tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw).ok()?;
        Some(Terminal(saved))
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let stdin = std::io::stdin();
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &self.0);
    }
}

/// The size of the terminal on standard output, if it is one.
fn window_size() -> Option<(u16, u16)> {
    let size = rustix::termios::tcgetwinsize(std::io::stdout()).ok()?;
    (size.ws_col > 0 && size.ws_row > 0).then_some((size.ws_col, size.ws_row))
}

/// Standard input in chunks as it is read, from a thread (reads of a terminal or pipe block).
fn stdin_reader() -> tokio::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match std::io::Read::read(&mut stdin, &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

pub async fn exec(args: ExecArgs) -> anyhow::Result<()> {
    let client = args.client.connect()?;
    let mut query: Vec<String> = args
        .command
        .iter()
        .map(|c| format!("command={}", encode(c)))
        .collect();
    let terminal = if args.tty { Terminal::raw() } else { None };
    if args.tty {
        query.push("tty=true".to_string());
        if let Some((cols, rows)) = window_size() {
            query.push(format!("cols={cols}&rows={rows}"));
        }
    }
    let path = format!(
        "/api/v1/instances/{}/exec?{}",
        encode(&args.instance),
        query.join("&")
    );
    let connection = upgraded(&client, &path).await?;
    let (mut reader, mut writer) = tokio::io::split(connection);
    let interactive = args.interactive;
    let follow_size = terminal.is_some();
    tokio::spawn(async move {
        let mut resized = if follow_size {
            signal(SignalKind::window_change()).ok()
        } else {
            None
        };
        let mut input = interactive.then(stdin_reader);
        loop {
            let frame = tokio::select! {
                data = async { input.as_mut()?.recv().await }, if input.is_some() => match data {
                    Some(data) => Frame::Data { channel: INPUT, data },
                    None => break,
                },
                Some(()) = async { resized.as_mut()?.recv().await }, if resized.is_some() => {
                    let Some((cols, rows)) = window_size() else { continue };
                    Frame::Resize { cols, rows }
                }
                else => break,
            };
            if writer.write_all(&wire::encode(&frame)).await.is_err() {
                return;
            }
        }
        // Without -i the command reads an empty input at once, as with `docker exec`.
        let _ = writer.write_all(&wire::encode(&Frame::CloseInput)).await;
        let _ = writer.flush().await;
        // Keep the write half open: dropping it would end the session.
        std::future::pending::<()>().await;
    });
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        while let Some(frame) = wire::decode(&mut buf)? {
            match frame {
                Frame::Data { channel, data } if channel == STDOUT => {
                    let mut out = std::io::stdout();
                    out.write_all(&data)?;
                    out.flush()?;
                }
                Frame::Data { channel, data } if channel == STDERR => {
                    let mut err = std::io::stderr();
                    err.write_all(&data)?;
                    err.flush()?;
                }
                Frame::End(end) => {
                    drop(terminal);
                    if let Some((_, message)) = end.error {
                        bail!("exec in {}: {message}", args.instance);
                    }
                    return match end.exit_code {
                        Some(0) | None => Ok(()),
                        Some(code) => Err(crate::exit::ExitStatus::of_code(code).into()),
                    };
                }
                _ => {}
            }
        }
        let n = reader
            .read(&mut chunk)
            .await
            .context("reading from the API")?;
        if n == 0 {
            bail!("the connection closed before the command ended");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
