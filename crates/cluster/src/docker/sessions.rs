//! What the engine serves about a running container: its usage, its logs (tailed or
//! followed) and commands run inside it (`canopy exec`).

use super::runtime::engine_error;
use async_trait::async_trait;
use bollard::Docker;
use bollard::container::LogOutput as EngineOutput;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::{LogsOptions, LogsOptionsBuilder, StatsOptionsBuilder};
use canopy_runtime::{EngineExec, ExecControl, LogOutput, LogRequest, RuntimeError, Stats};
use futures::{Stream, StreamExt};
use std::time::Duration;
use tokio::sync::mpsc;

/// Which output a piece of the engine's stream is; a terminal's is stdout.
fn output_of(piece: EngineOutput) -> Option<(LogOutput, Vec<u8>)> {
    match piece {
        EngineOutput::StdOut { message } | EngineOutput::Console { message } => {
            Some((LogOutput::Stdout, message.to_vec()))
        }
        EngineOutput::StdErr { message } => Some((LogOutput::Stderr, message.to_vec())),
        EngineOutput::StdIn { .. } => None,
    }
}

pub(crate) async fn stats(
    docker: &Docker,
    id: &str,
    container: &str,
) -> Result<Stats, RuntimeError> {
    let options = StatsOptionsBuilder::new()
        .stream(false)
        .one_shot(true)
        .build();
    let sample = docker
        .stats(container, Some(options))
        .next()
        .await
        .ok_or_else(|| RuntimeError::NotRunning { id: id.to_string() })?
        .map_err(|e| engine_error("stats", id, e))?;
    let cpu_usage_ns = sample
        .cpu_stats
        .and_then(|c| c.cpu_usage)
        .and_then(|u| u.total_usage)
        .unwrap_or(0);
    let memory = sample.memory_stats.unwrap_or_default();
    // Without inactive page cache, as `docker stats` shows it (v2 and v1 names).
    let inactive = memory
        .stats
        .as_ref()
        .and_then(|s| {
            s.get("inactive_file")
                .or_else(|| s.get("total_inactive_file"))
                .copied()
        })
        .unwrap_or(0);
    Ok(Stats {
        cpu_usage_ns,
        memory_bytes: memory.usage.unwrap_or(0).saturating_sub(inactive),
    })
}

/// The last `tail` lines of stdout followed by the last `tail` lines of stderr.
pub(crate) async fn tail(
    docker: &Docker,
    id: &str,
    container: &str,
    tail: usize,
) -> Result<String, RuntimeError> {
    tail_of(id, tail, |options| docker.logs(container, Some(options))).await
}

/// [`tail`] from any of the engine's log streams (a container's, a Swarm service's).
pub(crate) async fn tail_of<S>(
    id: &str,
    tail: usize,
    open: impl Fn(LogsOptions) -> S,
) -> Result<String, RuntimeError>
where
    S: Stream<Item = Result<EngineOutput, bollard::errors::Error>>,
{
    let mut out = Vec::new();
    for (stdout, stderr) in [(true, false), (false, true)] {
        let options = LogsOptionsBuilder::new()
            .stdout(stdout)
            .stderr(stderr)
            .tail(&tail.to_string())
            .build();
        let stream = open(options);
        futures::pin_mut!(stream);
        while let Some(piece) = stream.next().await {
            let piece = piece.map_err(|e| engine_error("logs", id, e))?;
            out.extend_from_slice(piece.as_ref());
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The engine's log options for `request`.
pub(crate) fn log_options(request: &LogRequest) -> LogsOptions {
    let tail = request.tail.map_or("all".to_string(), |n| n.to_string());
    let since = request
        .since_ms
        .map_or(0, |ms| i32::try_from(ms / 1000).unwrap_or(i32::MAX));
    LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .follow(request.follow)
        .since(since)
        .tail(&tail)
        .build()
}

pub(crate) async fn logs(
    docker: &Docker,
    id: &str,
    container: &str,
    request: LogRequest,
    to: mpsc::Sender<(LogOutput, Vec<u8>)>,
) -> Result<(), RuntimeError> {
    let stream = docker.logs(container, Some(log_options(&request)));
    forward(id, stream, to).await
}

/// Sends what a log stream of the engine says to `to`, until either ends.
pub(crate) async fn forward(
    id: &str,
    stream: impl Stream<Item = Result<EngineOutput, bollard::errors::Error>>,
    to: mpsc::Sender<(LogOutput, Vec<u8>)>,
) -> Result<(), RuntimeError> {
    futures::pin_mut!(stream);
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|e| engine_error("logs", id, e))?;
        if let Some(chunk) = output_of(piece)
            && to.send(chunk).await.is_err()
        {
            return Ok(());
        }
    }
    Ok(())
}

/// An exec session's resizes and exit code, asked of the engine.
struct Control {
    docker: Docker,
    exec: String,
}

#[async_trait]
impl ExecControl for Control {
    async fn resize(&self, cols: u16, rows: u16) {
        let size = ResizeExecOptions {
            height: rows,
            width: cols,
        };
        if let Err(e) = self.docker.resize_exec(&self.exec, size).await {
            tracing::debug!(exec = %self.exec, error = %e, "resizing an exec's terminal failed");
        }
    }

    async fn exit_code(&self) -> Option<i32> {
        // Its streams close a moment before the engine records the exit.
        for _ in 0..50 {
            let inspected = self.docker.inspect_exec(&self.exec).await.ok()?;
            if inspected.running != Some(true) {
                return inspected.exit_code.and_then(|c| i32::try_from(c).ok());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

pub(crate) async fn exec(
    docker: &Docker,
    id: &str,
    container: &str,
    command: &[String],
    tty: Option<(u16, u16)>,
) -> Result<EngineExec, RuntimeError> {
    if command.is_empty() {
        return Err(RuntimeError::InvalidSpec {
            service: id.to_string(),
            reason: "exec needs a command".to_string(),
        });
    }
    let running = super::compat::inspect(docker, container)
        .await
        .map_err(|e| engine_error("inspect", id, e))?
        .state
        .and_then(|s| s.running)
        .unwrap_or(false);
    if !running {
        return Err(RuntimeError::NotRunning { id: id.to_string() });
    }
    let options = CreateExecOptions {
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(tty.is_some()),
        cmd: Some(command.to_vec()),
        ..CreateExecOptions::default()
    };
    let created = docker
        .create_exec(container, options)
        .await
        .map_err(|e| engine_error("exec", id, e))?;
    let start = StartExecOptions {
        detach: false,
        tty: tty.is_some(),
        output_capacity: None,
    };
    let started = docker
        .start_exec(&created.id, Some(start))
        .await
        .map_err(|e| engine_error("exec", id, e))?;
    let StartExecResults::Attached { mut output, input } = started else {
        return Err(RuntimeError::Unsupported {
            what: "a detached exec",
        });
    };
    let control = Control {
        docker: docker.clone(),
        exec: created.id,
    };
    if let Some((cols, rows)) = tty {
        control.resize(cols, rows).await;
    }
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        while let Some(Ok(piece)) = output.next().await {
            if let Some(chunk) = output_of(piece)
                && tx.send(chunk).await.is_err()
            {
                return;
            }
        }
    });
    Ok(EngineExec {
        output: rx,
        input: Box::new(input),
        control: Box::new(control),
    })
}
