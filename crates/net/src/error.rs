use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{binary} is not installed: {hint}")]
    PluginMissing { binary: String, hint: String },
    #[error("invalid network config: {0}")]
    Config(String),
    #[error("network setup of instance {id} failed: CNI plugin {plugin} {command}: {message}")]
    Plugin {
        id: String,
        plugin: String,
        command: &'static str,
        message: String,
    },
    #[error(transparent)]
    Command(#[from] crate::CommandError),
}

impl NetError {
    pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> NetError {
        NetError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}
