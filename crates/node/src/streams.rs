//! The node's end of session streams: what its cluster relays from the root (`canopy logs`,
//! `exec`, `port-forward`), served from the instance's runtime.

use crate::Agent;
use canopy_runtime::{LogChunks, LogFollower, LogOutput, LogPaths, Runtime, previous_paths};
use canopy_tier::pb::{self, open_stream::Kind};
use canopy_tier::streams::{End, Frame, Pipe, STDERR, STDOUT};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How often followed logs are checked for new lines: well under the second a line may take
/// to reach the client.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// Largest data frame sent up.
const MAX_FRAME: usize = 64 * 1024;

impl Agent {
    /// Serves one stream to its end, which it always sends.
    pub(crate) async fn serve_stream(self: Arc<Self>, open: pb::OpenStream, mut pipe: Pipe) {
        let id = open.instance_id.as_str();
        let end = match open.kind {
            Some(Kind::Logs(request)) => self.stream_logs(id, request, &mut pipe).await,
            Some(Kind::Exec(request)) => self.exec(id, request, &mut pipe).await,
            Some(Kind::PortForward(request)) => self.port_forward(id, request, &mut pipe).await,
            None => End::error("unsupported", "an empty stream request"),
        };
        pipe.end(end).await;
    }

    /// The runtime that runs (or ran) instance `id`.
    pub(crate) async fn runtime_of(&self, id: &str) -> Option<Arc<dyn Runtime>> {
        let instances = self.instances.lock().await;
        let kind = instances.get(id)?.record.workload.spec.runtime;
        self.runtimes.get(&kind).cloned()
    }

    /// Log files of `id`: its runtime's, or those a runtime kept after removing it.
    async fn log_paths(&self, id: &str) -> Result<LogPaths, End> {
        let not_found = || End::error("not_found", format!("no logs of instance {id} here"));
        if let Some(runtime) = self.runtime_of(id).await {
            return runtime
                .log_paths(id)
                .map_err(|e| End::error("not_found", e.to_string()));
        }
        self.runtimes
            .values()
            .filter_map(|r| r.log_paths(id).ok())
            .find(|p| p.stdout.parent().is_some_and(|dir| dir.is_dir()))
            .ok_or_else(not_found)
    }

    async fn stream_logs(&self, id: &str, request: pb::LogsRequest, pipe: &mut Pipe) -> End {
        if let Some(runtime) = self.runtime_of(id).await
            && runtime.engine_sessions()
        {
            return self.engine_logs(runtime, id, &request, pipe).await;
        }
        let paths = match self.log_paths(id).await {
            Ok(paths) if request.previous => previous_paths(&paths),
            Ok(paths) => paths,
            Err(end) => return end,
        };
        let tail = request
            .has_tail
            .then(|| usize::try_from(request.tail).unwrap_or(usize::MAX));
        let since_ms = request.has_since.then(|| {
            let since = Duration::from_millis(request.since_ms);
            let start = SystemTime::now()
                .checked_sub(since)
                .unwrap_or(SystemTime::UNIX_EPOCH);
            start
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        });
        let (mut follower, first) = match LogFollower::open(&paths, tail, since_ms) {
            Ok(opened) => opened,
            Err(e) => return End::error("unavailable", format!("cannot read the logs: {e}")),
        };
        if pipe.tx.send(Frame::Ready).await.is_err() || !send_logs(pipe, first).await {
            return End::ok();
        }
        // The previous run is over: there is nothing to follow.
        if !request.follow || request.previous {
            return End::ok();
        }
        let mut poll = tokio::time::interval(FOLLOW_POLL);
        loop {
            tokio::select! {
                _ = poll.tick() => match follower.poll() {
                    Ok(chunks) => if !send_logs(pipe, chunks).await {
                        return End::ok();
                    },
                    Err(e) => return End::error("unavailable", format!("cannot read the logs: {e}")),
                },
                // The client went away (or ended the follow): stop reading.
                frame = pipe.rx.recv() => if matches!(frame, None | Some(Frame::End(_))) {
                    return End::ok();
                },
            }
        }
    }
}

/// False once the other end is gone.
async fn send_logs(pipe: &Pipe, chunks: LogChunks) -> bool {
    for (output, bytes) in chunks {
        let channel = match output {
            LogOutput::Stdout => STDOUT,
            LogOutput::Stderr => STDERR,
        };
        if !send_data(pipe, channel, &bytes).await {
            return false;
        }
    }
    true
}

/// Sends `bytes` on `channel` in frames of at most [`MAX_FRAME`]; false once the other end
/// is gone.
pub(crate) async fn send_data(pipe: &Pipe, channel: u32, bytes: &[u8]) -> bool {
    for piece in bytes.chunks(MAX_FRAME) {
        let frame = Frame::Data {
            channel,
            data: piece.to_vec(),
        };
        if pipe.tx.send(frame).await.is_err() {
            return false;
        }
    }
    true
}
