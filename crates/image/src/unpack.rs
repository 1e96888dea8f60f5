//! Applying a layer (a tar, possibly gzip-compressed) onto a directory. Blocking code: callers
//! run it under `spawn_blocking`.
//!
//! Two modes:
//! - [`Mode::Flatten`]: the layer is applied onto the layers below it, already in `dest`. OCI
//!   whiteouts delete: `.wh.NAME` removes `NAME`, `.wh..wh..opq` empties its directory.
//! - [`Mode::Overlay`]: the layer is unpacked alone into an empty directory that will be an
//!   overlayfs lower dir; whiteouts are converted to overlayfs' format: a character device 0:0
//!   for `.wh.NAME`, the xattr `trusted.overlay.opaque=y` for `.wh..wh..opq`.
//!
//! Whiteouts only apply to the layers below (OCI image spec), so a layer is read twice: first
//! its whiteouts, then its content. Entries are refused when their path has `..`, is absolute,
//! or goes through a symlink (one already in `dest` or made by an earlier entry); nothing is
//! ever written through a symlink, and files replace what was at their path instead of
//! following it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Gid, Mode as FsMode, Timestamps, Uid};
use tar::EntryType;

use crate::error::{ImageError, IoContext, Result};

/// How whiteouts are handled; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Flatten,
    Overlay,
}

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    Whiteouts,
    Content,
}

/// Applies the layer in file `blob` onto `dest` (which must exist). `layer` names it in errors.
pub fn apply_layer(blob: &Path, dest: &Path, mode: Mode, layer: &str) -> Result<()> {
    for pass in [Pass::Whiteouts, Pass::Content] {
        let reader = open_layer(blob, layer)?;
        let mut archive = tar::Archive::new(reader);
        let entries = archive.entries().map_err(|e| corrupt(layer, e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| corrupt(layer, e))?;
            let raw = entry.path().map_err(|e| corrupt(layer, e))?.into_owned();
            let rel = clean_path(&raw).map_err(|reason| unsafe_entry(layer, &raw, reason))?;
            let Some(name) = rel.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
                continue; // the root itself ("./")
            };
            let is_whiteout = name.starts_with(WHITEOUT_PREFIX);
            match (pass, is_whiteout) {
                (Pass::Whiteouts, true) => apply_whiteout(dest, &rel, &name, mode, layer)?,
                (Pass::Content, false) => apply_entry(dest, &rel, &mut entry, layer)?,
                _ => {}
            }
        }
    }
    Ok(())
}

/// Opens a layer blob, undoing its compression (recognised by magic bytes).
fn open_layer(blob: &Path, layer: &str) -> Result<Box<dyn Read>> {
    let mut file = File::open(blob).ctx("open layer", blob)?;
    let mut magic = [0u8; 4];
    let mut n = 0;
    while n < magic.len() {
        let got = file.read(&mut magic[n..]).ctx("read layer", blob)?;
        if got == 0 {
            break;
        }
        n += got;
    }
    file.seek(SeekFrom::Start(0)).ctx("seek layer", blob)?;
    let reader = BufReader::with_capacity(256 * 1024, file);
    if n >= 2 && magic[..2] == [0x1f, 0x8b] {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(reader)))
    } else if n == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
        Err(ImageError::Unsupported(format!(
            "layer {layer} is zstd-compressed, which this store does not unpack yet"
        )))
    } else {
        Ok(Box::new(reader))
    }
}

fn corrupt(layer: &str, e: impl std::fmt::Display) -> ImageError {
    ImageError::CorruptLayer {
        layer: layer.to_string(),
        reason: e.to_string(),
    }
}

fn unsafe_entry(layer: &str, entry: &Path, reason: impl Into<String>) -> ImageError {
    ImageError::UnsafeEntry {
        layer: layer.to_string(),
        entry: entry.display().to_string(),
        reason: reason.into(),
    }
}

/// Turns an entry path into a relative path of plain components: `.` is dropped, `..` and
/// absolute paths are refused.
pub(crate) fn clean_path(raw: &Path) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for component in raw.components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir => return Err("path contains '..'".to_string()),
            Component::RootDir | Component::Prefix(_) => {
                return Err("absolute path".to_string());
            }
        }
    }
    Ok(out)
}

/// Makes sure every parent of `rel` under `root` is a real directory (creating missing ones),
/// refusing to go through a symlink.
fn ensure_parents(root: &Path, rel: &Path, layer: &str, create: bool) -> Result<bool> {
    let Some(parent) = rel.parent() else {
        return Ok(true);
    };
    let mut cur = root.to_path_buf();
    let mut prefix = PathBuf::new();
    for component in parent.components() {
        cur.push(component);
        prefix.push(component);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(unsafe_entry(
                    layer,
                    rel,
                    format!("goes through symlink {}", prefix.display()),
                ));
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(corrupt(
                    layer,
                    format!(
                        "{}: parent {} is not a directory",
                        rel.display(),
                        prefix.display()
                    ),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !create {
                    return Ok(false);
                }
                fs::create_dir(&cur).ctx("create directory", &cur)?;
                fs::set_permissions(&cur, fs::Permissions::from_mode(0o755)).ctx("chmod", &cur)?;
            }
            Err(e) => return Err(ImageError::io("stat", &cur, e)),
        }
    }
    Ok(true)
}

/// Removes whatever is at `path` (a directory recursively), never following a symlink.
fn remove_existing(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).ctx("remove", path),
        Ok(_) => fs::remove_file(path).ctx("remove", path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ImageError::io("stat", path, e)),
    }
}

fn apply_whiteout(root: &Path, rel: &Path, name: &str, mode: Mode, layer: &str) -> Result<()> {
    let parent_rel = rel.parent().unwrap_or(Path::new("")).to_path_buf();
    let parent = root.join(&parent_rel);
    if name == OPAQUE {
        match mode {
            Mode::Flatten => {
                if !ensure_parents(root, rel, layer, false)? {
                    return Ok(());
                }
                let entries = match fs::read_dir(&parent) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(ImageError::io("read directory", &parent, e)),
                };
                for child in entries {
                    let child = child.ctx("read directory", &parent)?;
                    remove_existing(&child.path())?;
                }
            }
            Mode::Overlay => {
                ensure_parents(root, rel, layer, true)?;
                rustix::fs::lsetxattr(
                    &parent,
                    "trusted.overlay.opaque",
                    b"y",
                    rustix::fs::XattrFlags::empty(),
                )
                .ctx("set opaque xattr on", &parent)?;
            }
        }
        return Ok(());
    }
    if name.starts_with(".wh..wh.") {
        // aufs metadata (.wh..wh.plnk, .wh..wh.aufs): nothing to apply.
        return Ok(());
    }
    let hidden = &name[WHITEOUT_PREFIX.len()..];
    if hidden.is_empty() || hidden == "." || hidden == ".." {
        return Err(unsafe_entry(layer, rel, "whiteout of an invalid name"));
    }
    let target = parent.join(hidden);
    match mode {
        Mode::Flatten => {
            if ensure_parents(root, rel, layer, false)? {
                remove_existing(&target)?;
            }
        }
        Mode::Overlay => {
            ensure_parents(root, rel, layer, true)?;
            remove_existing(&target)?;
            rustix::fs::mknodat(
                CWD,
                &target,
                FileType::CharacterDevice,
                FsMode::empty(),
                rustix::fs::makedev(0, 0),
            )
            .ctx("create whiteout", &target)?;
        }
    }
    Ok(())
}

fn apply_entry<R: Read>(
    root: &Path,
    rel: &Path,
    entry: &mut tar::Entry<'_, R>,
    layer: &str,
) -> Result<()> {
    ensure_parents(root, rel, layer, true)?;
    let target = root.join(rel);
    let xattrs = pax_xattrs(entry, layer)?;
    let header = entry.header();
    let kind = header.entry_type();
    let mode = header.mode().map_err(|e| corrupt(layer, e))? & 0o7777;
    let uid = header.uid().map_err(|e| corrupt(layer, e))?;
    let gid = header.gid().map_err(|e| corrupt(layer, e))?;
    let mtime = header.mtime().unwrap_or(0);
    match kind {
        EntryType::Directory => {
            match fs::symlink_metadata(&target) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    remove_existing(&target)?;
                    fs::create_dir(&target).ctx("create directory", &target)?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&target).ctx("create directory", &target)?;
                }
                Err(e) => return Err(ImageError::io("stat", &target, e)),
            }
            set_owner_mode(&target, uid, gid, Some(mode))?;
        }
        EntryType::Regular | EntryType::Continuous => {
            remove_existing(&target)?;
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc_nofollow())
                .mode(0o600)
                .open(&target)
                .ctx("create file", &target)?;
            io::copy(entry, &mut file).map_err(|e| corrupt(layer, e))?;
            drop(file);
            set_owner_mode(&target, uid, gid, Some(mode))?;
            set_mtime(&target, mtime);
        }
        EntryType::Symlink => {
            let link = entry
                .link_name()
                .map_err(|e| corrupt(layer, e))?
                .ok_or_else(|| corrupt(layer, format!("symlink {} has no target", rel.display())))?
                .into_owned();
            remove_existing(&target)?;
            std::os::unix::fs::symlink(&link, &target).ctx("create symlink", &target)?;
            set_owner_mode(&target, uid, gid, None)?;
            set_mtime(&target, mtime);
        }
        EntryType::Link => {
            let raw = entry
                .link_name()
                .map_err(|e| corrupt(layer, e))?
                .ok_or_else(|| corrupt(layer, format!("hardlink {} has no target", rel.display())))?
                .into_owned();
            let link_rel = clean_path(&raw)
                .map_err(|reason| unsafe_entry(layer, rel, format!("hardlink target: {reason}")))?;
            if link_rel.as_os_str().is_empty() {
                return Err(unsafe_entry(layer, rel, "hardlink to the root"));
            }
            if !ensure_parents(root, &link_rel, layer, false)? {
                return Err(corrupt(
                    layer,
                    format!("hardlink {} to missing {}", rel.display(), raw.display()),
                ));
            }
            let source = root.join(&link_rel);
            if source == target {
                return Ok(());
            }
            if fs::symlink_metadata(&source).is_err() {
                return Err(corrupt(
                    layer,
                    format!("hardlink {} to missing {}", rel.display(), raw.display()),
                ));
            }
            remove_existing(&target)?;
            // linkat without AT_SYMLINK_FOLLOW: links the entry itself, never what it points to.
            fs::hard_link(&source, &target).ctx("create hardlink", &target)?;
        }
        EntryType::Char | EntryType::Block | EntryType::Fifo => {
            let file_type = match kind {
                EntryType::Char => FileType::CharacterDevice,
                EntryType::Block => FileType::BlockDevice,
                _ => FileType::Fifo,
            };
            let major = header.device_major().ok().flatten().unwrap_or(0);
            let minor = header.device_minor().ok().flatten().unwrap_or(0);
            remove_existing(&target)?;
            rustix::fs::mknodat(
                CWD,
                &target,
                file_type,
                FsMode::from_raw_mode(mode),
                rustix::fs::makedev(major, minor),
            )
            .ctx("create device node", &target)?;
            set_owner_mode(&target, uid, gid, Some(mode))?;
        }
        other => {
            tracing::debug!(layer, entry = %rel.display(), kind = ?other, "skipping tar entry");
            return Ok(());
        }
    }
    for (name, value) in xattrs {
        if let Err(e) =
            rustix::fs::lsetxattr(&target, &name, &value, rustix::fs::XattrFlags::empty())
        {
            // Not every filesystem takes every namespace; a missing xattr is not fatal.
            tracing::debug!(path = %target.display(), xattr = name, error = %e, "cannot set xattr");
        }
    }
    Ok(())
}

/// Extended attributes recorded in the entry's PAX header (`SCHILY.xattr.NAME`), such as
/// `security.capability`. Overlayfs' own attributes are never taken from an image: they would
/// change what the overlay shows.
fn pax_xattrs<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    layer: &str,
) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let Some(extensions) = entry.pax_extensions().map_err(|e| corrupt(layer, e))? else {
        return Ok(out);
    };
    for extension in extensions {
        let extension = extension.map_err(|e| corrupt(layer, e))?;
        let Ok(key) = extension.key() else {
            continue;
        };
        if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
            if name.starts_with("trusted.overlay.") || name.is_empty() {
                continue;
            }
            out.push((name.to_string(), extension.value_bytes().to_vec()));
        }
    }
    Ok(out)
}

fn libc_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// Owner first (chown clears set-id bits), then mode. Changing the owner may be refused when
/// not running as root: then files keep the caller's ownership.
fn set_owner_mode(path: &Path, uid: u64, gid: u64, mode: Option<u32>) -> Result<()> {
    let (Ok(uid), Ok(gid)) = (u32::try_from(uid), u32::try_from(gid)) else {
        return Err(ImageError::CorruptLayer {
            layer: String::new(),
            reason: format!("{}: uid/gid out of range", path.display()),
        });
    };
    match rustix::fs::chownat(
        CWD,
        path,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    ) {
        Ok(()) => {}
        Err(rustix::io::Errno::PERM) => {
            tracing::debug!(path = %path.display(), "chown refused; keeping the caller's owner");
        }
        Err(e) => return Err(ImageError::io("chown", path, e.into())),
    }
    if let Some(mode) = mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).ctx("chmod", path)?;
    }
    Ok(())
}

fn set_mtime(path: &Path, mtime: u64) {
    let t = rustix::fs::Timespec {
        tv_sec: i64::try_from(mtime).unwrap_or(0),
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    // Best effort: a wrong mtime is no reason to fail a container start.
    if let Err(e) = rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW) {
        tracing::debug!(path = %path.display(), error = %e, "cannot set mtime");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A tar entry with a raw name (the tar crate's builder refuses `..`, which we must test).
    struct E {
        name: &'static str,
        kind: EntryType,
        link: Option<&'static str>,
        data: &'static [u8],
    }

    fn file(name: &'static str, data: &'static [u8]) -> E {
        E {
            name,
            kind: EntryType::Regular,
            link: None,
            data,
        }
    }
    fn dir(name: &'static str) -> E {
        E {
            name,
            kind: EntryType::Directory,
            link: None,
            data: b"",
        }
    }
    fn symlink(name: &'static str, target: &'static str) -> E {
        E {
            name,
            kind: EntryType::Symlink,
            link: Some(target),
            data: b"",
        }
    }
    fn hardlink(name: &'static str, target: &'static str) -> E {
        E {
            name,
            kind: EntryType::Link,
            link: Some(target),
            data: b"",
        }
    }

    fn write_tar(path: &Path, entries: &[E], gzip: bool) {
        let mut builder = tar::Builder::new(Vec::new());
        for e in entries {
            let mut h = tar::Header::new_old();
            {
                let old = h.as_old_mut();
                old.name[..e.name.len()].copy_from_slice(e.name.as_bytes());
                if let Some(l) = e.link {
                    old.linkname[..l.len()].copy_from_slice(l.as_bytes());
                }
            }
            h.set_entry_type(e.kind);
            h.set_size(e.data.len() as u64);
            h.set_mode(if e.kind == EntryType::Directory {
                0o755
            } else {
                0o644
            });
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(1_000_000);
            h.set_cksum();
            builder.append(&h, e.data).unwrap();
        }
        let bytes = builder.into_inner().unwrap();
        let mut f = File::create(path).unwrap();
        if gzip {
            let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
            gz.write_all(&bytes).unwrap();
            gz.finish().unwrap();
        } else {
            f.write_all(&bytes).unwrap();
        }
    }

    fn apply(dir: &Path, root: &Path, entries: &[E], mode: Mode) -> Result<()> {
        let blob = dir.join(format!("layer-{}.tar", rand_suffix()));
        write_tar(&blob, entries, true);
        apply_layer(&blob, root, mode, "test")
    }

    fn rand_suffix() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        N.fetch_add(1, Ordering::Relaxed)
    }

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs::create_dir(&root).unwrap();
        (tmp, root)
    }

    #[test]
    fn clean_path_refuses_parent_and_absolute() {
        assert_eq!(
            clean_path(Path::new("./a/b")).unwrap(),
            PathBuf::from("a/b")
        );
        assert!(clean_path(Path::new("a/../../etc")).is_err());
        assert!(clean_path(Path::new("/etc/passwd")).is_err());
        assert_eq!(clean_path(Path::new("./")).unwrap(), PathBuf::new());
    }

    #[test]
    fn dotdot_entry_is_refused() {
        let (tmp, root) = setup();
        let err = apply(tmp.path(), &root, &[file("../escape", b"x")], Mode::Flatten).unwrap_err();
        assert!(matches!(err, ImageError::UnsafeEntry { .. }), "{err}");
        assert!(err.to_string().contains(".."), "{err}");
        assert!(!tmp.path().join("escape").exists());
    }

    #[test]
    fn absolute_entry_is_refused() {
        let (tmp, root) = setup();
        let err = apply(tmp.path(), &root, &[file("/abs", b"x")], Mode::Flatten).unwrap_err();
        assert!(matches!(err, ImageError::UnsafeEntry { .. }), "{err}");
    }

    #[test]
    fn writing_through_absolute_symlink_is_refused() {
        let (tmp, root) = setup();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let target: &'static str = Box::leak(outside.display().to_string().into_boxed_str());
        let err = apply(
            tmp.path(),
            &root,
            &[symlink("link", target), file("link/evil", b"x")],
            Mode::Flatten,
        )
        .unwrap_err();
        assert!(matches!(err, ImageError::UnsafeEntry { .. }), "{err}");
        assert!(err.to_string().contains("symlink"), "{err}");
        assert!(!outside.join("evil").exists());
        // The symlink itself is fine: it is the container's business where it points.
        assert!(
            fs::symlink_metadata(root.join("link"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn symlink_from_lower_layer_is_not_followed() {
        let (tmp, root) = setup();
        apply(
            tmp.path(),
            &root,
            &[symlink("up", "../../..")],
            Mode::Flatten,
        )
        .unwrap();
        let err = apply(tmp.path(), &root, &[file("up/x", b"x")], Mode::Flatten).unwrap_err();
        assert!(matches!(err, ImageError::UnsafeEntry { .. }), "{err}");
        // A whiteout through it is refused too.
        let err = apply(tmp.path(), &root, &[file("up/.wh.x", b"")], Mode::Flatten).unwrap_err();
        assert!(matches!(err, ImageError::UnsafeEntry { .. }), "{err}");
    }

    #[test]
    fn file_replaces_symlink_instead_of_following_it() {
        let (tmp, root) = setup();
        let victim = tmp.path().join("victim");
        fs::write(&victim, b"original").unwrap();
        let target: &'static str = Box::leak(victim.display().to_string().into_boxed_str());
        apply(tmp.path(), &root, &[symlink("f", target)], Mode::Flatten).unwrap();
        apply(tmp.path(), &root, &[file("f", b"new")], Mode::Flatten).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"original");
        assert_eq!(fs::read(root.join("f")).unwrap(), b"new");
    }

    #[test]
    fn hardlink_escaping_is_refused() {
        let (tmp, root) = setup();
        let err = apply(
            tmp.path(),
            &root,
            &[hardlink("h", "../../etc/passwd")],
            Mode::Flatten,
        )
        .unwrap_err();
        assert!(matches!(err, ImageError::UnsafeEntry { .. }), "{err}");
        apply(
            tmp.path(),
            &root,
            &[dir("d"), file("d/a", b"hello"), hardlink("d/b", "d/a")],
            Mode::Flatten,
        )
        .unwrap();
        assert_eq!(fs::read(root.join("d/b")).unwrap(), b"hello");
    }

    #[test]
    fn whiteouts_and_opaque_dirs_flatten() {
        let (tmp, root) = setup();
        apply(
            tmp.path(),
            &root,
            &[
                file("a", b"a"),
                file("keep", b"k"),
                dir("d"),
                file("d/x", b"x"),
                dir("d/sub"),
                file("d/sub/y", b"y"),
            ],
            Mode::Flatten,
        )
        .unwrap();
        // Content before its whiteouts in the archive: whiteouts still only hit lower layers.
        apply(
            tmp.path(),
            &root,
            &[
                dir("d"),
                file("d/new", b"n"),
                file("d/.wh..wh..opq", b""),
                file(".wh.a", b""),
                file(".wh.missing", b""),
            ],
            Mode::Flatten,
        )
        .unwrap();
        assert!(!root.join("a").exists());
        assert!(root.join("keep").exists());
        let mut names: Vec<_> = fs::read_dir(root.join("d"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, vec!["new"]);
    }

    #[test]
    fn whiteouts_convert_to_overlay_format() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipping: needs root for mknod and trusted xattrs");
            return;
        }
        let (tmp, root) = setup();
        apply(
            tmp.path(),
            &root,
            &[dir("d"), file("d/.wh..wh..opq", b""), file(".wh.gone", b"")],
            Mode::Overlay,
        )
        .unwrap();
        let st = rustix::fs::lstat(root.join("gone")).unwrap();
        assert_eq!(
            FileType::from_raw_mode(st.st_mode),
            FileType::CharacterDevice
        );
        assert_eq!(st.st_rdev, 0);
        let mut buf = [0u8; 8];
        let n = rustix::fs::lgetxattr(root.join("d"), "trusted.overlay.opaque", &mut buf).unwrap();
        assert_eq!(&buf[..n], b"y");
    }

    #[test]
    fn uncompressed_layers_and_modes() {
        let (tmp, root) = setup();
        let blob = tmp.path().join("plain.tar");
        write_tar(&blob, &[dir("bin"), file("bin/tool", b"#!")], false);
        apply_layer(&blob, &root, Mode::Flatten, "plain").unwrap();
        let m = fs::metadata(root.join("bin/tool")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o644);
    }

    #[test]
    fn pax_xattrs_are_applied_but_not_overlay_ones() {
        let (tmp, root) = setup();
        let mut builder = tar::Builder::new(Vec::new());
        builder
            .append_pax_extensions([
                ("SCHILY.xattr.user.canopy", b"hi".as_slice()),
                ("SCHILY.xattr.trusted.overlay.opaque", b"y".as_slice()),
            ])
            .unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_path("f").unwrap();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        builder.append(&h, b"x".as_slice()).unwrap();
        let blob = tmp.path().join("pax.tar");
        fs::write(&blob, builder.into_inner().unwrap()).unwrap();
        apply_layer(&blob, &root, Mode::Flatten, "pax").unwrap();
        let mut buf = [0u8; 8];
        match rustix::fs::lgetxattr(root.join("f"), "user.canopy", &mut buf) {
            Ok(n) => assert_eq!(&buf[..n], b"hi"),
            Err(rustix::io::Errno::NOTSUP) => eprintln!("no user xattrs on this filesystem"),
            Err(e) => panic!("{e}"),
        }
        assert!(rustix::fs::lgetxattr(root.join("f"), "trusted.overlay.opaque", &mut buf).is_err());
    }

    #[test]
    fn garbage_is_a_corrupt_layer() {
        let (tmp, root) = setup();
        let blob = tmp.path().join("garbage");
        fs::write(&blob, [0x1f, 0x8b, 0, 1, 2, 3, 4, 5]).unwrap();
        let err = apply_layer(&blob, &root, Mode::Flatten, "garbage").unwrap_err();
        assert!(matches!(err, ImageError::CorruptLayer { .. }), "{err}");
    }
}
