//! The store's errors: one variant per thing a caller (or an operator reading an instance
//! event) must tell apart. Errors are `Clone` so that concurrent pulls of one image, which share
//! a single fetch, can each get the outcome.

use std::path::PathBuf;
use std::sync::Arc;

/// Everything that can go wrong pulling an image or preparing a root filesystem.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ImageError {
    /// The reference does not parse (`name[:tag][@digest]`).
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },

    /// The registry answered 404 / `MANIFEST_UNKNOWN` / `NAME_UNKNOWN` / `BLOB_UNKNOWN`.
    #[error("image {reference} not found in registry {registry}")]
    NotFound { reference: String, registry: String },

    /// 401/403, or the token service refused the credentials. Never carries the password.
    #[error("authentication to {registry} failed")]
    AuthFailed { registry: String },

    /// The registry could not be reached (connection refused, DNS, TLS, connect timeout).
    #[error("registry {address} unreachable: {reason}")]
    Unreachable { address: String, reason: String },

    /// An operation did not finish within its deadline, or a connected registry went silent
    /// for the read timeout.
    #[error("{operation} timed out after {seconds:.1}s")]
    Timeout { operation: String, seconds: f64 },

    /// The image is an index that has no manifest for this node's platform.
    #[error("image {reference} has no manifest for platform {wanted} (available: {})", available.join(", "))]
    UnsupportedPlatform {
        reference: String,
        wanted: String,
        available: Vec<String>,
    },

    /// Downloaded content does not hash (or size) to what its descriptor says. Nothing is kept.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },

    /// A layer, manifest or config uses a format this store does not handle.
    #[error("unsupported content: {0}")]
    Unsupported(String),

    /// The registry answered something else that is wrong.
    #[error("registry {registry}: {message}")]
    Registry { registry: String, message: String },

    /// A layer entry would be written outside the root filesystem.
    #[error("unsafe layer entry {entry:?} in {layer}: {reason}")]
    UnsafeEntry {
        layer: String,
        entry: String,
        reason: String,
    },

    /// A layer is not a valid tar archive (or its compression is broken).
    #[error("corrupt layer {layer}: {reason}")]
    CorruptLayer { layer: String, reason: String },

    /// The image is not (or no longer) in the cache: pull it first.
    #[error("image {0} is not in the cache")]
    NotCached(String),

    /// A filesystem operation failed.
    #[error("{context} {}: {source}", path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },

    /// Mounting or unmounting failed.
    #[error("mount {}: {reason}", path.display())]
    Mount { path: PathBuf, reason: String },

    /// A bug or a panicked background task.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ImageError {
    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        ImageError::Io {
            context,
            path: path.into(),
            source: Arc::new(source),
        }
    }
}

/// `Result` with [`ImageError`].
pub type Result<T, E = ImageError> = std::result::Result<T, E>;

/// Shorthand to attach a context and path to `std::io::Result`s.
pub(crate) trait IoContext<T> {
    fn ctx(self, context: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| ImageError::io(context, path, e))
    }
}

impl<T> IoContext<T> for rustix::io::Result<T> {
    fn ctx(self, context: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| ImageError::io(context, path, e.into()))
    }
}
