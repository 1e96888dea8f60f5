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

/// Errors a node has of its own, whatever it runs: out of file descriptors (per process or
/// system-wide), of disk space or quota, of memory or processes.
/// (errno, name, how the C library words it, lower case).
const NODE_ERRNOS: &[(i32, &str, &str)] = &[
    (24, "EMFILE", "too many open files"),
    (23, "ENFILE", "too many open files in system"),
    (28, "ENOSPC", "no space left on device"),
    (122, "EDQUOT", "disk quota exceeded"),
    (12, "ENOMEM", "cannot allocate memory"),
];

/// Whose fault a failed start is: the node's own (it would fail any instance, so the node
/// refuses the instance upward and its cluster places it elsewhere), or the workload's
/// (its command, image or spec: the restart policy's business).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The node's: the text says what it lacks.
    Node(String),
    Workload,
}

impl RuntimeError {
    /// Classifies a start's error (see [`Fault`]). An OS error is read from the error's
    /// source chain; errors that only carry a message (runc's, the image store's, CNI's)
    /// are read for the OS's own wording of the same errors.
    pub fn fault(&self) -> Fault {
        if let RuntimeError::RuntimeNotInstalled { .. } = self {
            return Fault::Node(self.to_string());
        }
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = source {
            if let Some(code) = e
                .downcast_ref::<io::Error>()
                .and_then(io::Error::raw_os_error)
                && let Some((_, name, _)) = NODE_ERRNOS.iter().find(|(c, _, _)| *c == code)
            {
                return Fault::Node(format!("{name}: {self}"));
            }
            source = e.source();
        }
        let text = self.to_string();
        let lower = text.to_lowercase();
        let said = NODE_ERRNOS.iter().find(|(code, _, words)| {
            lower.contains(&format!("(os error {code})")) || lower.contains(words)
        });
        match said {
            Some((_, name, _)) => Fault::Node(format!("{name}: {text}")),
            None => Fault::Workload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spawn(errno: i32) -> RuntimeError {
        RuntimeError::Spawn {
            command: "app".into(),
            source: io::Error::from_raw_os_error(errno),
        }
    }

    #[test]
    fn the_nodes_own_shortages_are_its_faults() {
        for (errno, name) in [(24, "EMFILE"), (23, "ENFILE"), (28, "ENOSPC")] {
            match spawn(errno).fault() {
                Fault::Node(text) => assert!(text.starts_with(name), "{text}"),
                Fault::Workload => panic!("{name} is the node's fault"),
            }
        }
        let logs = RuntimeError::io("open", "/x/stdout.log", io::Error::from_raw_os_error(24));
        assert!(matches!(logs.fault(), Fault::Node(_)));
        let missing = RuntimeError::RuntimeNotInstalled {
            binary: "runc".into(),
            hint: "apt-get install runc".into(),
        };
        assert!(matches!(missing.fault(), Fault::Node(_)));
        // runc's own message, as text only.
        let runc = RuntimeError::oci("runc", "run", "i", "pipe2: too many open files".into());
        assert!(matches!(runc.fault(), Fault::Node(_)));
    }

    #[test]
    fn what_the_workload_asked_for_is_its_own_fault() {
        let cases = [
            spawn(2),
            spawn(13),
            RuntimeError::CommandNotFound {
                command: "nope".into(),
            },
            RuntimeError::Image {
                image: "web".into(),
                reason: "manifest unknown".into(),
            },
            RuntimeError::oci("runc", "run", "i", "exec: \"nope\": not found".into()),
        ];
        for e in cases {
            assert_eq!(e.fault(), Fault::Workload, "{e}");
        }
    }
}
