//! Sessions a runtime serves through an engine of its own instead of files and commands on
//! the node: a foreign orchestrator's runtime (the Docker Engine's) keeps the logs and runs
//! `exec` itself, so the agent relays what the engine streams rather than following log
//! files or spawning a command.

use crate::follow::Output;
use async_trait::async_trait;
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;

/// What `canopy logs` asks of an engine's logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRequest {
    /// The last lines only (of each output); all of them when none.
    pub tail: Option<usize>,
    /// Only lines written at or after this time (Unix milliseconds).
    pub since_ms: Option<i64>,
    /// Keep sending new lines until the instance ends or the reader goes away.
    pub follow: bool,
}

/// A command running inside an instance, as its engine runs it: output arrives on `output`
/// (closed when the command's streams end), input goes to `input`.
pub struct EngineExec {
    pub output: mpsc::Receiver<(Output, Vec<u8>)>,
    pub input: Box<dyn AsyncWrite + Send + Unpin>,
    pub control: Box<dyn ExecControl>,
}

/// What else an engine's exec session answers: its terminal's size and its exit code.
#[async_trait]
pub trait ExecControl: Send + Sync {
    async fn resize(&self, cols: u16, rows: u16);
    /// The command's exit code once it has ended (none when the engine cannot say).
    async fn exit_code(&self) -> Option<i32>;
}
