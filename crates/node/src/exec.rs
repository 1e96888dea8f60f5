//! `canopy exec` on the node: the command runs inside the instance through its runtime
//! (on a pseudo-terminal with `-t`); input comes down the stream, output goes up it, and its
//! exit code ends it.

use crate::Agent;
use crate::pty::{self, Pty};
use crate::streams::send_data;
use canopy_runtime::RuntimeError;
use canopy_tier::pb;
use canopy_tier::streams::{End, Frame, Pipe, STDERR, STDOUT};
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;

/// How long output may keep coming after the command exited (a child it left behind may
/// hold its stdout open).
const OUTPUT_DRAIN: Duration = Duration::from_secs(1);

type Output = Box<dyn AsyncRead + Send + Unpin>;

/// A started command: its input, the pumps of its output, its terminal when it has one.
struct Running {
    child: tokio::process::Child,
    input: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// Its output, pumped up only once the stream is ready: the root drops what comes
    /// before `Ready`, and a quick command's whole output can.
    readers: Vec<(Output, u32)>,
    outputs: Vec<JoinHandle<()>>,
    terminal: Option<OwnedFd>,
}

impl Agent {
    pub(crate) async fn exec(&self, id: &str, request: pb::ExecRequest, pipe: &mut Pipe) -> End {
        let Some(runtime) = self.runtime_of(id).await else {
            return End::error("not_found", format!("instance {id} is not on this node"));
        };
        if !runtime.capabilities().exec {
            return End::error(
                "unsupported",
                format!("the {} runtime cannot exec", runtime.kind().as_str()),
            );
        }
        if runtime.engine_sessions() {
            return self.engine_exec(runtime, id, &request, pipe).await;
        }
        let cmd = match runtime
            .exec_command(id, &request.command, request.tty)
            .await
        {
            Ok(cmd) => cmd,
            Err(e @ RuntimeError::NotRunning { .. }) => {
                return End::error("not_running", e.to_string());
            }
            Err(e @ RuntimeError::NotFound { .. }) => {
                return End::error("not_found", e.to_string());
            }
            Err(e @ RuntimeError::InvalidSpec { .. }) => {
                return End::error("bad_request", e.to_string());
            }
            Err(e) => return End::error("unavailable", e.to_string()),
        };
        let program = request.command.first().cloned().unwrap_or_default();
        let started = if request.tty {
            on_terminal(cmd, &request)
        } else {
            on_pipes(cmd)
        };
        let mut running = match started {
            Ok(running) => running,
            Err(e) => return End::error("bad_request", format!("cannot run {program}: {e}")),
        };
        if pipe.tx.send(Frame::Ready).await.is_err() {
            return End::ok();
        }
        running.outputs = std::mem::take(&mut running.readers)
            .into_iter()
            .map(|(reader, channel)| pump(reader, channel, pipe))
            .collect();
        converse(running, pipe).await
    }
}

fn on_pipes(mut cmd: tokio::process::Command) -> std::io::Result<Running> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let input = child
        .stdin
        .take()
        .map(|i| Box::new(i) as Box<dyn AsyncWrite + Send + Unpin>);
    let mut readers: Vec<(Output, u32)> = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push((Box::new(out), STDOUT));
    }
    if let Some(err) = child.stderr.take() {
        readers.push((Box::new(err), STDERR));
    }
    Ok(Running {
        child,
        input,
        readers,
        outputs: Vec::new(),
        terminal: None,
    })
}

fn on_terminal(
    mut cmd: tokio::process::Command,
    request: &pb::ExecRequest,
) -> std::io::Result<Running> {
    let cols = u16::try_from(request.cols).unwrap_or(u16::MAX);
    let rows = u16::try_from(request.rows).unwrap_or(u16::MAX);
    let pty = Pty::open(cols, rows)?;
    cmd.stdin(pty.slave()?)
        .stdout(pty.slave()?)
        .stderr(pty.slave()?)
        .kill_on_drop(true);
    // SAFETY: runs in the forked child before exec and only makes raw syscalls (setsid,
    // ioctl): no allocation, no locks.
    unsafe {
        cmd.pre_exec(pty::become_terminal_leader);
    }
    let child = cmd.spawn()?;
    drop(cmd);
    let master = pty.into_master();
    let output: Output = Box::new(pty::master_file(&master)?);
    let input = Box::new(pty::master_file(&master)?) as Box<dyn AsyncWrite + Send + Unpin>;
    Ok(Running {
        child,
        input: Some(input),
        readers: vec![(output, STDOUT)],
        outputs: Vec::new(),
        terminal: Some(master),
    })
}

/// Input down, resizes to the terminal, until the command exits; then its exit code.
async fn converse(mut running: Running, pipe: &mut Pipe) -> End {
    let status = loop {
        tokio::select! {
            status = running.child.wait() => break status,
            frame = pipe.rx.recv() => match frame {
                Some(Frame::Data { data, .. }) => {
                    if let Some(input) = running.input.as_mut()
                        && (input.write_all(&data).await.is_err() || input.flush().await.is_err())
                    {
                        running.input = None;
                    }
                }
                // A terminal has no end of input: the command sees the user's ^D instead.
                Some(Frame::CloseInput) if running.terminal.is_none() => running.input = None,
                Some(Frame::Resize { cols, rows }) => {
                    if let Some(master) = &running.terminal {
                        let _ = pty::resize(master, cols, rows);
                    }
                }
                Some(_) => {}
                // The client went away: the command goes with it (dropping kills it).
                None => return End::ok(),
            },
        }
    };
    drop(running.input);
    drop(running.terminal);
    for output in running.outputs {
        let _ = tokio::time::timeout(OUTPUT_DRAIN, output).await;
    }
    match status {
        Ok(status) => End::exited(exit_code(status)),
        Err(e) => End::error("unavailable", format!("cannot wait for the command: {e}")),
    }
}

/// The shell's convention: the code, or 128 + the signal that killed it.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(255)
}

/// Sends what `from` produces up `channel` until its end.
fn pump<R: AsyncRead + Unpin + Send + 'static>(
    mut from: R,
    channel: u32,
    pipe: &Pipe,
) -> JoinHandle<()> {
    let up = Pipe {
        tx: pipe.tx.clone(),
        rx: tokio::sync::mpsc::channel(1).1,
    };
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match from.read(&mut buf).await {
                // A terminal's master reads EIO once no one has its slave open.
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if !send_data(&up, channel, &buf[..n]).await {
                        return;
                    }
                }
            }
        }
    })
}
