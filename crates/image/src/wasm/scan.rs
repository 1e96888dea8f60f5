//! Reading image layers for `.wasm` files: which ones the flattened filesystem shows (upper
//! layers first, OCI whiteouts applied), and copying one out. Each layer read is hashed on
//! the way and must match its digest. Blocking code (callers use `spawn_blocking`).

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::error::{ImageError, IoContext, Result};
use crate::unpack::clean_path;

/// A file read through a hash of everything read.
struct Hashing {
    file: File,
    hasher: Sha256,
}

impl Read for Hashing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A layer's tar stream, decompressed when it is gzip (recognised by its magic bytes).
enum Layer {
    Gzip(flate2::read::MultiGzDecoder<BufReader<Hashing>>),
    Plain(BufReader<Hashing>),
}

impl Read for Layer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Layer::Gzip(r) => r.read(buf),
            Layer::Plain(r) => r.read(buf),
        }
    }
}

impl Layer {
    fn open(blob: &Path, digest: &str) -> Result<Layer> {
        let file = File::open(blob).ctx("open layer", blob)?;
        let mut reader = BufReader::with_capacity(
            256 * 1024,
            Hashing {
                file,
                hasher: Sha256::new(),
            },
        );
        let (gzip, zstd) = {
            let magic = reader.fill_buf().ctx("read layer", blob)?;
            (
                magic.starts_with(&[0x1f, 0x8b]),
                magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
            )
        };
        if gzip {
            Ok(Layer::Gzip(flate2::read::MultiGzDecoder::new(reader)))
        } else if zstd {
            Err(ImageError::Unsupported(format!(
                "layer {digest} is zstd-compressed, which this store does not read yet"
            )))
        } else {
            Ok(Layer::Plain(reader))
        }
    }

    /// Reads the rest of the blob and checks that all of it hashes to `digest`.
    fn verify(self, blob: &Path, digest: &str) -> Result<()> {
        let mut hashing = match self {
            Layer::Gzip(r) => r.into_inner().into_inner(),
            Layer::Plain(r) => r.into_inner(),
        };
        io::copy(&mut hashing, &mut io::sink()).ctx("read layer", blob)?;
        check(digest, hashing.hasher)
    }
}

fn check(digest: &str, hasher: Sha256) -> Result<()> {
    let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
    if actual == digest {
        Ok(())
    } else {
        Err(ImageError::DigestMismatch {
            what: format!("layer {digest} in the cache"),
            expected: digest.to_string(),
            actual,
        })
    }
}

fn corrupt(digest: &str, e: impl std::fmt::Display) -> ImageError {
    ImageError::CorruptLayer {
        layer: digest.to_string(),
        reason: e.to_string(),
    }
}

/// Checks that a blob (an artifact's module) hashes to its digest.
pub(super) fn verify_blob(blob: &Path, digest: &str) -> Result<()> {
    let mut hashing = Hashing {
        file: File::open(blob).ctx("open", blob)?,
        hasher: Sha256::new(),
    };
    io::copy(&mut hashing, &mut io::sink()).ctx("read", blob)?;
    check(digest, hashing.hasher)
}

/// The regular `.wasm` files the image's filesystem shows, as (layer index, path relative to
/// its root), from the top layer down. `blobs` are the layers bottom first.
pub(super) fn wasm_files(blobs: &[(PathBuf, String)]) -> Result<Vec<(usize, PathBuf)>> {
    // What upper layers decided: paths they hold, whiteouts, opaque directories.
    let mut seen: HashSet<PathBuf> = HashSet::new();
    let mut hidden: HashSet<PathBuf> = HashSet::new();
    let mut opaque: HashSet<PathBuf> = HashSet::new();
    let mut found: Vec<(usize, PathBuf)> = Vec::new();
    for (i, (blob, digest)) in blobs.iter().enumerate().rev() {
        let (mut layer_seen, mut layer_hidden, mut layer_opaque) =
            (Vec::new(), Vec::new(), Vec::new());
        let mut archive = tar::Archive::new(Layer::open(blob, digest)?);
        for entry in archive.entries().map_err(|e| corrupt(digest, e))? {
            let entry = entry.map_err(|e| corrupt(digest, e))?;
            let raw = entry.path().map_err(|e| corrupt(digest, e))?.into_owned();
            // Unsafe paths matter to unpacking (which refuses them), not to a search.
            let Ok(path) = clean_path(&raw) else {
                continue;
            };
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
            if name == ".wh..wh..opq" {
                layer_opaque.push(parent);
                continue;
            }
            if let Some(target) = name.strip_prefix(".wh.") {
                layer_hidden.push(parent.join(target));
                continue;
            }
            let covered = path.ancestors().any(|a| hidden.contains(a))
                || path.ancestors().skip(1).any(|a| opaque.contains(a));
            if covered || seen.contains(&path) {
                continue;
            }
            let is_module = entry.header().entry_type().is_file()
                && path.extension().is_some_and(|e| e == "wasm");
            if is_module && !found.iter().any(|(_, p)| *p == path) {
                found.push((i, path.clone()));
            }
            layer_seen.push(path);
        }
        archive.into_inner().verify(blob, digest)?;
        seen.extend(layer_seen);
        hidden.extend(layer_hidden);
        opaque.extend(layer_opaque);
    }
    Ok(found)
}

/// Copies the regular file `rel` of the layer to `dest` (through a temp file beside it),
/// verifying the layer's digest; at most `max_bytes`.
pub(super) fn copy_out(
    blob: &Path,
    digest: &str,
    rel: &Path,
    dest: &Path,
    max_bytes: u64,
) -> Result<()> {
    let mut archive = tar::Archive::new(Layer::open(blob, digest)?);
    let mut tmp_name = dest.as_os_str().to_os_string();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut copied = false;
    for entry in archive.entries().map_err(|e| corrupt(digest, e))? {
        let mut entry = entry.map_err(|e| corrupt(digest, e))?;
        let raw = entry.path().map_err(|e| corrupt(digest, e))?.into_owned();
        // A path written twice in one layer: the later entry is the file.
        if clean_path(&raw).ok().as_deref() != Some(rel) {
            continue;
        }
        if !entry.header().entry_type().is_file() {
            continue;
        }
        if entry.size() > max_bytes {
            return Err(ImageError::Unsupported(format!(
                "module /{} is larger than {} MiB",
                rel.display(),
                max_bytes >> 20
            )));
        }
        let mut out = File::create(&tmp).ctx("create", &tmp)?;
        io::copy(&mut entry, &mut out).ctx("write", &tmp)?;
        out.flush().ctx("write", &tmp)?;
        copied = true;
    }
    let verified = archive.into_inner().verify(blob, digest);
    if let Err(e) = verified {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if !copied {
        return Err(corrupt(
            digest,
            format!("/{} is no longer in the layer", rel.display()),
        ));
    }
    std::fs::rename(&tmp, dest).ctx("rename into", dest)
}
