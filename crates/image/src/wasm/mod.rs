//! WebAssembly modules from registries, for the wasm runtime. A module reference is pulled
//! like any image ([`ImageStore::pull`]: same cache, same gc); [`ImageStore::wasm_module`]
//! then finds the module in it:
//!
//! - **A wasm OCI artifact**: config `application/vnd.wasm.config.v0+json` (or the older
//!   `application/vnd.wasm.config.v1+json`) and one layer `application/wasm` (or
//!   `application/vnd.wasm.content.layer.v1+wasm`). That layer's blob is the module, used from
//!   the cache as it is; its digest is the module's.
//! - **A plain image** (tar layers): the module is a regular `.wasm` file of the image's
//!   filesystem (whiteouts honoured, upper layers win): the file its entrypoint (else its
//!   cmd) names when that word ends in `.wasm` (relative to its working directory), else the
//!   only `.wasm` file in the image. Several and none named is an error listing them. The
//!   file is copied out to the caller's destination.
//!
//! Either way the layer holding the module is hashed again as it is read and must match its
//! digest, so what runs is exactly what the manifest names.

mod scan;

use std::path::{Path, PathBuf};

use crate::error::{ImageError, Result};
use crate::store::{LayerRecord, sha256_hex};
use crate::{Image, ImageStore, blocking};

/// Layer media types of wasm OCI artifacts: the CNCF wasm artifact's, and the older one
/// (wasm-to-oci, Krustlet).
pub const WASM_LAYER_MEDIA_TYPES: &[&str] = &[
    "application/wasm",
    "application/vnd.wasm.content.layer.v1+wasm",
];

/// Config media types of wasm OCI artifacts (the CNCF artifact's, then the older one).
pub const WASM_CONFIG_MEDIA_TYPES: &[&str] = &[
    "application/vnd.wasm.config.v0+json",
    "application/vnd.wasm.config.v1+json",
];

/// The largest module copied out of an image.
const MAX_MODULE_BYTES: u64 = 256 << 20;

pub(crate) fn is_wasm_layer(media_type: &str) -> bool {
    WASM_LAYER_MEDIA_TYPES.contains(&media_type)
}

pub(crate) fn is_wasm_config(media_type: &str) -> bool {
    WASM_CONFIG_MEDIA_TYPES.contains(&media_type)
}

/// Where a module found by [`ImageStore::wasm_module`] is, and what it was checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasmModule {
    /// The module's bytes: the artifact's blob in the cache, or the file copied out of a
    /// plain image to the caller's destination.
    pub path: PathBuf,
    /// The digest (`sha256:…`) of the layer holding the module, verified as it was read.
    pub layer: String,
    /// Where the module is in a plain image's filesystem (`/app/filter.wasm`); `None` for an
    /// artifact, whose layer is the module itself (so the module's sha256 is the layer's).
    pub file: Option<String>,
}

impl ImageStore {
    /// The module of `image` (pulled by [`pull`](Self::pull)); see the module docs for which
    /// file is taken. A plain image's module is written to `dest` (replaced if there); an
    /// artifact's is used from the cache and `dest` is left alone.
    pub async fn wasm_module(&self, image: &Image, dest: &Path) -> Result<WasmModule> {
        let _shared = self.inner.gc_lock.read().await;
        let store = self.inner.store.clone();
        let (image, dest) = (image.clone(), dest.to_path_buf());
        blocking(move || {
            let record = match store.read_manifest(&image.digest)? {
                Some(r) if store.complete(&r)? => r,
                _ => return Err(ImageError::NotCached(image.digest.clone())),
            };
            let blobs: Vec<(PathBuf, String)> = record
                .layers
                .iter()
                .map(|l| Ok((store.blob(&sha256_hex(&l.digest)?), l.digest.clone())))
                .collect::<Result<_>>()?;
            if let Some(i) = artifact_layer(&image.reference, &record.layers)? {
                let (blob, digest) = &blobs[i];
                scan::verify_blob(blob, digest)?;
                return Ok(WasmModule {
                    path: blob.clone(),
                    layer: digest.clone(),
                    file: None,
                });
            }
            let found = scan::wasm_files(&blobs)?;
            let named = named_module(&record.config);
            let (i, rel) = choose(&image.reference, &found, named.as_deref())?;
            let (blob, digest) = &blobs[i];
            scan::copy_out(blob, digest, &rel, &dest, MAX_MODULE_BYTES)?;
            Ok(WasmModule {
                path: dest,
                layer: digest.clone(),
                file: Some(format!("/{}", rel.display())),
            })
        })
        .await
    }
}

/// The index of an artifact's wasm layer; `None` for a plain image (no wasm layer).
fn artifact_layer(reference: &str, layers: &[LayerRecord]) -> Result<Option<usize>> {
    let wasm: Vec<usize> = (0..layers.len())
        .filter(|&i| is_wasm_layer(&layers[i].media_type))
        .collect();
    match wasm.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        several => Err(ImageError::Unsupported(format!(
            "{reference} has {} wasm layers: an artifact holds one module",
            several.len()
        ))),
    }
}

/// The absolute path of the `.wasm` file the image's entrypoint (else cmd) names, if any.
fn named_module(config: &crate::ImageConfig) -> Option<String> {
    let word = config.entrypoint.first().or(config.cmd.first())?;
    if !word.ends_with(".wasm") {
        return None;
    }
    if word.starts_with('/') {
        return Some(word.clone());
    }
    let dir = config.working_dir.as_deref().unwrap_or("/");
    Some(format!("{}/{word}", dir.trim_end_matches('/')))
}

/// Picks the module among the image's `.wasm` files (layer index, path in the image).
fn choose(
    reference: &str,
    found: &[(usize, PathBuf)],
    named: Option<&str>,
) -> Result<(usize, PathBuf)> {
    if let Some(named) = named {
        let rel = crate::unpack::clean_path(Path::new(named.trim_start_matches('/')))
            .map_err(|reason| ImageError::Unsupported(format!("{reference}: {named}: {reason}")))?;
        return found
            .iter()
            .find(|(_, p)| *p == rel)
            .cloned()
            .ok_or_else(|| {
                ImageError::Unsupported(format!(
                    "{reference}: its entrypoint names {named}, which is not a regular file \
                     of the image"
                ))
            });
    }
    match found {
        [one] => Ok(one.clone()),
        [] => Err(ImageError::Unsupported(format!(
            "{reference} is neither a wasm artifact nor an image with a .wasm file"
        ))),
        several => {
            let names: Vec<String> = several
                .iter()
                .take(5)
                .map(|(_, p)| format!("/{}", p.display()))
                .collect();
            Err(ImageError::Unsupported(format!(
                "{reference} holds {} .wasm files ({}{}): name the module with the image's \
                 entrypoint",
                several.len(),
                names.join(", "),
                if several.len() > 5 { ", ..." } else { "" }
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(media_type: &str) -> LayerRecord {
        LayerRecord {
            digest: format!("sha256:{}", "a".repeat(64)),
            size: 1,
            media_type: media_type.to_string(),
        }
    }

    #[test]
    fn an_artifact_is_its_one_wasm_layer() {
        let tar = layer("application/vnd.oci.image.layer.v1.tar");
        let wasm = layer("application/wasm");
        let old = layer("application/vnd.wasm.content.layer.v1+wasm");
        assert_eq!(
            artifact_layer("r", std::slice::from_ref(&tar)).unwrap(),
            None
        );
        assert_eq!(artifact_layer("r", &[tar, wasm.clone()]).unwrap(), Some(1));
        assert_eq!(
            artifact_layer("r", std::slice::from_ref(&old)).unwrap(),
            Some(0)
        );
        assert!(artifact_layer("r", &[wasm, old]).is_err());
    }

    #[test]
    fn the_entrypoint_names_the_module_else_the_only_one_is_taken() {
        let found = vec![
            (1, PathBuf::from("app/a.wasm")),
            (0, PathBuf::from("b.wasm")),
        ];
        assert_eq!(
            choose("r", &found, Some("/app/a.wasm")).unwrap(),
            (1, PathBuf::from("app/a.wasm"))
        );
        assert!(choose("r", &found, Some("/c.wasm")).is_err());
        let several = choose("r", &found, None).unwrap_err().to_string();
        assert!(several.contains("/app/a.wasm, /b.wasm"), "{several}");
        assert_eq!(
            choose("r", &found[1..], None).unwrap().1,
            PathBuf::from("b.wasm")
        );
        assert!(choose("r", &[], None).is_err());

        let mut config = crate::ImageConfig {
            cmd: vec!["filter.wasm".into()],
            working_dir: Some("/app/".into()),
            ..Default::default()
        };
        assert_eq!(named_module(&config).as_deref(), Some("/app/filter.wasm"));
        config.entrypoint = vec!["/bin/sh".into()];
        assert_eq!(named_module(&config), None);
    }
}
