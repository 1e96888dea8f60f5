//! External commands with a deadline (CNI plugins here; the OCI runtime's too).

use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot run {command}: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("{command} did not finish within {timeout:?}")]
    Timeout { command: String, timeout: Duration },
}

/// Runs `cmd` to completion with `stdin`, killing it after `timeout`; `what` names it in
/// errors.
pub async fn output(
    mut cmd: tokio::process::Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
    what: &str,
) -> Result<Output, CommandError> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let spawn = |source| CommandError::Spawn {
        command: what.to_string(),
        source,
    };
    let mut child = cmd.spawn().map_err(spawn)?;
    let run = async {
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A command that exits without reading its input closes the pipe: its own
            // error output says more than EPIPE would.
            let _ = pipe.write_all(data).await;
            drop(pipe);
        }
        child.wait_with_output().await
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(result) => result.map_err(spawn),
        // Dropping the future drops the child, and kill_on_drop kills it.
        Err(_) => Err(CommandError::Timeout {
            command: what.to_string(),
            timeout,
        }),
    }
}
