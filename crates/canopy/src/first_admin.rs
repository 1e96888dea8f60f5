//! The first admin: its password, shown once when a root first starts and kept in a 0600
//! file of the data directory; and `canopy up` logging the local CLI in by itself.

use crate::config;
use anyhow::Context as _;
use canopy_root::Root;
use std::path::{Path, PathBuf};

/// Where a root keeps its first admin's password.
pub fn password_file(data: &Path) -> PathBuf {
    data.join("admin-password")
}

/// On the first start (the root made `admin`), prints the password once and writes it to
/// `<data>/admin-password`, readable by its owner only.
pub fn announce_password(root: &Root, data: &Path) -> anyhow::Result<()> {
    let Some(password) = root.initial_admin_password() else {
        return Ok(());
    };
    let file = password_file(data);
    write_private(&file, &format!("{password}\n"))?;
    println!("first start: created user \"admin\" with password {password}");
    println!(
        "  (shown once; also in {}, mode 0600; `canopy login --user admin`)",
        file.display()
    );
    Ok(())
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    // A file that existed keeps its mode through `open`: set it outright.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// The context `canopy up` writes.
pub const LOCAL_CONTEXT: &str = "local";

/// Logs the local CLI in as the admin: a session's tokens in context `local` of the client
/// config (made current), so the next `canopy ...` needs no flag. Where it was written.
pub async fn log_in_locally(root: &Root, server: &str) -> anyhow::Result<PathBuf> {
    let path = crate::config_verbs::path()?;
    let tokens = root
        .local_admin_session()
        .await
        .context("opening a session for the local admin")?;
    let mut client_config = config::load(&path)?;
    client_config.set_credentials(
        LOCAL_CONTEXT,
        server,
        tokens.access_token,
        Some(tokens.refresh_token),
    )?;
    client_config.use_context(LOCAL_CONTEXT)?;
    config::save(&path, &client_config)?;
    Ok(path)
}
