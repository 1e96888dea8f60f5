//! `canopy logs` and `exec` of instances whose runtime's engine serves them (a foreign
//! orchestrator's, such as the Docker Engine's): what the engine streams is relayed as the
//! node's own log files and commands are.

use crate::Agent;
use crate::streams::send_data;
use canopy_runtime::{LogOutput, LogRequest, Runtime, RuntimeError};
use canopy_tier::pb;
use canopy_tier::streams::{End, Frame, Pipe, STDERR, STDOUT};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::AsyncWriteExt;

fn channel_of(output: LogOutput) -> u32 {
    match output {
        LogOutput::Stdout => STDOUT,
        LogOutput::Stderr => STDERR,
    }
}

fn end_of(error: RuntimeError) -> End {
    match error {
        e @ RuntimeError::NotRunning { .. } => End::error("not_running", e.to_string()),
        e @ RuntimeError::NotFound { .. } => End::error("not_found", e.to_string()),
        e @ RuntimeError::InvalidSpec { .. } => End::error("bad_request", e.to_string()),
        e => End::error("unavailable", e.to_string()),
    }
}

impl Agent {
    pub(crate) async fn engine_logs(
        &self,
        runtime: Arc<dyn Runtime>,
        id: &str,
        request: &pb::LogsRequest,
        pipe: &mut Pipe,
    ) -> End {
        if request.previous {
            return End::error(
                "bad_request",
                "the engine keeps one log per container: there is no previous run's",
            );
        }
        let since_ms = request.has_since.then(|| {
            let start = SystemTime::now()
                .checked_sub(Duration::from_millis(request.since_ms))
                .unwrap_or(SystemTime::UNIX_EPOCH);
            start
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        });
        let asked = LogRequest {
            tail: request
                .has_tail
                .then(|| usize::try_from(request.tail).unwrap_or(usize::MAX)),
            since_ms,
            follow: request.follow,
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let id = id.to_string();
        let reading = tokio::spawn(async move { runtime.engine_logs(&id, asked, tx).await });
        if pipe.tx.send(Frame::Ready).await.is_err() {
            reading.abort();
            return End::ok();
        }
        loop {
            tokio::select! {
                chunk = rx.recv() => match chunk {
                    Some((output, bytes)) => if !send_data(pipe, channel_of(output), &bytes).await {
                        reading.abort();
                        return End::ok();
                    },
                    None => break,
                },
                frame = pipe.rx.recv() => if matches!(frame, None | Some(Frame::End(_))) {
                    reading.abort();
                    return End::ok();
                },
            }
        }
        match reading.await {
            Ok(Ok(())) => End::ok(),
            Ok(Err(e)) => end_of(e),
            Err(_) => End::ok(),
        }
    }

    pub(crate) async fn engine_exec(
        &self,
        runtime: Arc<dyn Runtime>,
        id: &str,
        request: &pb::ExecRequest,
        pipe: &mut Pipe,
    ) -> End {
        let tty = request.tty.then(|| {
            (
                u16::try_from(request.cols).unwrap_or(u16::MAX),
                u16::try_from(request.rows).unwrap_or(u16::MAX),
            )
        });
        let mut exec = match runtime.engine_exec(id, &request.command, tty).await {
            Ok(exec) => exec,
            Err(e) => return end_of(e),
        };
        if pipe.tx.send(Frame::Ready).await.is_err() {
            return End::ok();
        }
        let mut input = Some(exec.input);
        loop {
            tokio::select! {
                chunk = exec.output.recv() => match chunk {
                    Some((output, bytes)) => if !send_data(pipe, channel_of(output), &bytes).await {
                        return End::ok();
                    },
                    // Its streams ended: the command is over.
                    None => break,
                },
                frame = pipe.rx.recv() => match frame {
                    Some(Frame::Data { data, .. }) => {
                        if let Some(writer) = input.as_mut()
                            && (writer.write_all(&data).await.is_err() || writer.flush().await.is_err())
                        {
                            input = None;
                        }
                    }
                    Some(Frame::CloseInput) if tty.is_none() => {
                        if let Some(mut writer) = input.take() {
                            let _ = writer.shutdown().await;
                        }
                    }
                    Some(Frame::Resize { cols, rows }) => exec.control.resize(cols, rows).await,
                    Some(_) => {}
                    None => return End::ok(),
                },
            }
        }
        match exec.control.exit_code().await {
            Some(code) => End::exited(code),
            None => End::error(
                "unavailable",
                "the engine did not say how the command ended",
            ),
        }
    }
}
