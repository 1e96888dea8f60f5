//! What the daemons write for themselves is theirs alone: files 0600, directories 0700.
//! A daemon masks group and other bits from everything it creates (its umask); what it
//! finds from an earlier run is set outright. Container root filesystems set their own
//! modes explicitly (the image's), and workloads start with the conventional umask again.

use anyhow::Context;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Group and other bits masked from every file and directory this process creates.
const DAEMON_UMASK: libc::mode_t = 0o077;

/// For daemons, before they create anything.
pub fn private_by_default() {
    // SAFETY: umask only swaps the process's creation mask; it cannot fail.
    unsafe {
        libc::umask(DAEMON_UMASK);
    }
}

/// Creates `dir` (and its parents) and makes it 0700, also when it was already there.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the data directory {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("making {} private (0700)", dir.display()))
}

/// Makes an existing file 0600 (a store opened from an earlier run).
pub fn make_private(file: &Path) -> anyhow::Result<()> {
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("making {} private (0600)", file.display()))
}
