use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Errors of a [`crate::Runtime`]; every message says what failed and on what, so a user can act on it.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("invalid instance id {id:?}: {reason}")]
    InvalidId { id: String, reason: &'static str },
    #[error("invalid spec for service {service}: {reason}")]
    InvalidSpec { service: String, reason: String },
    #[error("command {command} not found")]
    CommandNotFound { command: String },
    #[error("command {command} not found in PATH {path}")]
    CommandNotInPath { command: String, path: String },
    #[error("command {command} is not an executable file")]
    NotExecutable { command: String },
    #[error("working directory {path} does not exist or is not a directory")]
    WorkingDir { path: String },
    #[error("instance {id} is not known to this runtime")]
    NotFound { id: String },
    #[error("instance {id} is already running (pid {pid})")]
    AlreadyRunning { id: String, pid: u32 },
    #[error("instance {id} is not running")]
    NotRunning { id: String },
    #[error("cgroup {what} could not be set: {path}: {source}")]
    Cgroup {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("could not start {command}: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("could not {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("instance {id} was still running {waited:?} after SIGKILL")]
    StopTimeout { id: String, waited: Duration },
    #[error("the runtime was shut down while waiting for instance {id}")]
    Shutdown { id: String },
    #[error("{binary} is not installed: {hint}")]
    RuntimeNotInstalled { binary: String, hint: String },
    #[error("{runtime} {op} of container {id} failed: {message}")]
    Oci {
        runtime: String,
        op: &'static str,
        id: String,
        message: String,
    },
    #[error("{command} did not finish within {timeout:?}")]
    CommandTimeout { command: String, timeout: Duration },
    #[error(transparent)]
    Network(#[from] canopy_net::NetError),
    /// Raised by an image provider: the image cannot be pulled or unpacked.
    #[error("image {image}: {reason}")]
    Image { image: String, reason: String },
    #[error("{what} is not supported by this runtime")]
    Unsupported { what: &'static str },
}

impl RuntimeError {
    pub(crate) fn oci(runtime: &str, op: &'static str, id: &str, message: String) -> Self {
        RuntimeError::Oci {
            runtime: runtime.to_string(),
            op,
            id: id.to_string(),
            message,
        }
    }

    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        RuntimeError::Io {
            what,
            path: path.into(),
            source,
        }
    }
}
