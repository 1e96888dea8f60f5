//! Root filesystems: overlayfs over the shared unpacked layers, or a per-instance copy.
//! Blocking code: callers run it under `spawn_blocking`.
//!
//! Layout of `dest`: `rootfs/` (what the container sees), and for overlay `upper/` and
//! `work/` beside it.

use std::ffi::CString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags};

use crate::error::{ImageError, IoContext, Result};
use crate::unpack::{self, Mode};
use std::os::unix::fs::PermissionsExt;

/// Overlay mount options are limited to a page; past that we copy instead.
const MAX_MOUNT_DATA: usize = 4000;

/// Mounts an overlay at `dest/rootfs` with `lowers` (bottom layer first).
pub(crate) fn mount_overlay(dest: &Path, lowers: &[PathBuf]) -> Result<PathBuf> {
    let rootfs = dest.join("rootfs");
    let upper = dest.join("upper");
    let work = dest.join("work");
    for dir in [&rootfs, &upper, &work] {
        fs::create_dir_all(dir).ctx("create directory", dir)?;
    }
    // The container's `/` takes the upper directory's mode: the usual 0755, whatever the
    // agent's umask (its own files are 0700).
    for dir in [&rootfs, &upper] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).ctx("chmod", dir)?;
    }
    let mut lower = String::new();
    for dir in lowers.iter().rev() {
        let text = dir.to_str().ok_or_else(|| ImageError::Mount {
            path: rootfs.clone(),
            reason: format!("layer path {} is not UTF-8", dir.display()),
        })?;
        if text.contains([',', ':']) {
            return Err(ImageError::Mount {
                path: rootfs.clone(),
                reason: format!("layer path {text} contains ',' or ':'"),
            });
        }
        if !lower.is_empty() {
            lower.push(':');
        }
        lower.push_str(text);
    }
    let data = format!(
        "lowerdir={lower},upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    if data.len() > MAX_MOUNT_DATA {
        return Err(ImageError::Mount {
            path: rootfs,
            reason: format!("{} layers: mount options too long", lowers.len()),
        });
    }
    let data = CString::new(data).map_err(|e| ImageError::Mount {
        path: rootfs.clone(),
        reason: e.to_string(),
    })?;
    rustix::mount::mount(
        "overlay",
        &rootfs,
        "overlay",
        MountFlags::empty(),
        data.as_c_str(),
    )
    .map_err(|e| ImageError::Mount {
        path: rootfs.clone(),
        reason: e.to_string(),
    })?;
    Ok(rootfs)
}

/// Applies the layer blobs in order onto a fresh `dest/rootfs`.
pub(crate) fn copy_layers(dest: &Path, blobs: &[(PathBuf, String)]) -> Result<PathBuf> {
    let rootfs = dest.join("rootfs");
    fs::create_dir_all(&rootfs).ctx("create directory", &rootfs)?;
    fs::set_permissions(&rootfs, fs::Permissions::from_mode(0o755)).ctx("chmod", &rootfs)?;
    for (blob, digest) in blobs {
        unpack::apply_layer(blob, &rootfs, Mode::Flatten, digest)?;
    }
    Ok(rootfs)
}

/// Mount points at or under `dir` (from /proc/self/mountinfo), deepest first.
fn mounts_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let info = "/proc/self/mountinfo";
    let text = fs::read_to_string(info).ctx("read", info)?;
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_mountinfo(field)))
        .filter(|mount| mount.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    Ok(found)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let v = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What [`create_rootfs`](crate::ImageStore::create_rootfs) makes inside `dest`.
const PARTS: [&str; 3] = ["rootfs", "upper", "work"];

/// Unmounts everything mounted at or under `dest/rootfs` (the overlay, and anything a runtime
/// may have left inside it), deletes `rootfs`, `upper` and `work`, then `dest` itself if that
/// left it empty (a caller's own files there are kept). Idempotent. Never deletes through a
/// mount: that could reach shared layers, volumes or host files.
pub(crate) fn remove(dest: &Path) -> Result<()> {
    // mountinfo has canonical paths.
    let dest = &match fs::canonicalize(dest) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ImageError::io("resolve", dest, e)),
    };
    let rootfs = dest.join("rootfs");
    for mount in mounts_under(&rootfs)? {
        match rustix::mount::unmount(&mount, UnmountFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {}
            Err(rustix::io::Errno::BUSY) => {
                tracing::warn!(path = %mount.display(), "mount busy; detaching it lazily");
                rustix::mount::unmount(&mount, UnmountFlags::DETACH).map_err(|e| {
                    ImageError::Mount {
                        path: mount.clone(),
                        reason: e.to_string(),
                    }
                })?;
            }
            Err(e) => {
                return Err(ImageError::Mount {
                    path: mount,
                    reason: e.to_string(),
                });
            }
        }
    }
    for part in PARTS {
        let path = dest.join(part);
        if let Some(left) = mounts_under(&path)?.into_iter().next() {
            return Err(ImageError::Mount {
                path: left,
                reason: "still mounted; not deleting through it".to_string(),
            });
        }
        match fs::remove_dir_all(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(ImageError::io("remove", &path, e));
            }
            _ => {}
        }
    }
    match fs::remove_dir(dest) {
        Err(e)
            if e.kind() != io::ErrorKind::NotFound
                && e.kind() != io::ErrorKind::DirectoryNotEmpty =>
        {
            Err(ImageError::io("remove", dest, e))
        }
        _ => Ok(()),
    }
}

/// Whether this kernel lets us mount overlayfs with whiteouts and opaque dirs, tried in
/// `scratch` (inside the cache, so on the cache's filesystem).
pub(crate) fn probe_overlay(scratch: &Path) -> bool {
    match try_overlay(scratch) {
        Ok(()) => true,
        Err(e) => {
            tracing::info!(error = %e, "overlayfs not usable here; root filesystems will be copies");
            false
        }
    }
}

fn try_overlay(scratch: &Path) -> Result<()> {
    if !rustix::process::geteuid().is_root() {
        return Err(ImageError::Unsupported("not running as root".to_string()));
    }
    let dir = tempfile::Builder::new()
        .prefix("overlay-probe-")
        .tempdir_in(scratch)
        .ctx("create probe directory in", scratch)?;
    let lower1 = dir.path().join("l1");
    let lower2 = dir.path().join("l2");
    fs::create_dir_all(lower1.join("d")).ctx("create", &lower1)?;
    fs::create_dir_all(lower2.join("d")).ctx("create", &lower2)?;
    fs::write(lower1.join("gone"), b"x").ctx("write", &lower1)?;
    fs::write(lower1.join("d/hidden"), b"x").ctx("write", &lower1)?;
    rustix::fs::mknodat(
        rustix::fs::CWD,
        lower2.join("gone"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        rustix::fs::makedev(0, 0),
    )
    .ctx("mknod whiteout", &lower2)?;
    rustix::fs::lsetxattr(
        lower2.join("d"),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .ctx("set opaque xattr", &lower2)?;
    let dest = dir.path().join("mnt");
    let rootfs = mount_overlay(&dest, &[lower1, lower2])?;
    let ok = !rootfs.join("gone").exists() && !rootfs.join("d/hidden").exists();
    remove(&dest)?;
    if ok {
        Ok(())
    } else {
        Err(ImageError::Unsupported(
            "overlayfs ignores whiteouts here".to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn mountinfo_escapes() {
        assert_eq!(super::unescape_mountinfo("/a\\040b/c"), "/a b/c");
        assert_eq!(super::unescape_mountinfo("/plain/é"), "/plain/é");
        assert_eq!(super::unescape_mountinfo("/trail\\04"), "/trail\\04");
    }
}
