//! The ACPI power button of a running VM, pressed through its QMP socket (qemu's JSON
//! monitor): greeting, `qmp_capabilities`, then `system_powerdown`.

use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// Asks the guest to power off; Err says why the button could not be pressed.
pub(crate) async fn system_powerdown(socket: &Path, timeout: Duration) -> Result<(), String> {
    tokio::time::timeout(timeout, press(socket))
        .await
        .map_err(|_| format!("QMP did not answer within {timeout:?}"))?
}

async fn press(socket: &Path) -> Result<(), String> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|e| format!("connecting to {}: {e}", socket.display()))?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let greeting = next(&mut lines).await?;
    if !greeting.contains("\"QMP\"") {
        return Err(format!("not a QMP greeting: {greeting}"));
    }
    for command in ["qmp_capabilities", "system_powerdown"] {
        write
            .write_all(format!("{{\"execute\":\"{command}\"}}\n").as_bytes())
            .await
            .map_err(|e| format!("writing QMP: {e}"))?;
        // Events (POWERDOWN) may come before the answer.
        loop {
            let line = next(&mut lines).await?;
            if line.contains("\"return\"") {
                break;
            }
            if line.contains("\"error\"") {
                return Err(format!("{command}: {line}"));
            }
        }
    }
    Ok(())
}

async fn next(
    lines: &mut tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
) -> Result<String, String> {
    lines
        .next_line()
        .await
        .map_err(|e| format!("reading QMP: {e}"))?
        .ok_or_else(|| "QMP closed the connection".to_string())
}
