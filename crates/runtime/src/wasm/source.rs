//! Where a module comes from: a file on the node (`/path`, `file:///path`, or a relative
//! `*.wasm`/`*.wat` path from the agent's working directory; `.wat` text is assembled here,
//! so no wasm toolchain is needed), an http(s) URL checked against the
//! service's `wasm.sha256` (or, for a URL without one, against the digest its first download
//! pinned on this node), or an OCI reference (anything else), which the node's image hook
//! pulls and hands over as [`PreparedModule`] (an artifact's module must hash to its layer's
//! digest). Downloads are kept by digest, so a restart does not download again.

use crate::{PreparedModule, RuntimeError};
use canopy_model::WasmOptions;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// The largest module accepted (download or file).
const MAX_MODULE_BYTES: u64 = 256 << 20;
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// A module location, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    File(PathBuf),
    Url(String),
    /// Pulled by the node's image hook, never by the runtime.
    Oci,
}

/// Parses `module`.
pub(crate) fn parse(module: &str) -> Result<Source, String> {
    if let Some(path) = module.strip_prefix("file://") {
        return parse_path(path);
    }
    if canopy_model::is_url_module(module) {
        return Ok(Source::Url(module.to_string()));
    }
    if module.contains("://") {
        return Err(format!(
            "module {module}: unsupported scheme (file://, http:// and https:// are)"
        ));
    }
    if module.starts_with('/') {
        return parse_path(module);
    }
    // A relative file is the agent's (e.g. `canopy up` run in a checkout); an OCI
    // reference never ends in `.wasm` or `.wat`.
    if canopy_model::is_oci_module(module) {
        Ok(Source::Oci)
    } else {
        Ok(Source::File(PathBuf::from(module)))
    }
}

fn parse_path(path: &str) -> Result<Source, String> {
    if !path.starts_with('/') {
        return Err(format!("module path {path} must be absolute"));
    }
    Ok(Source::File(PathBuf::from(path)))
}

/// The module's bytes in binary form, and their hex SHA-256.
pub(crate) struct Loaded {
    pub wasm: Vec<u8>,
    pub digest: String,
    /// Something its owner should know (a digest pinned on first download).
    pub warning: Option<String>,
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Fetches modules and remembers downloads under `dir` (`<sha256>.wasm`, `pins.json`).
pub(crate) struct Sources {
    dir: PathBuf,
    pins: Mutex<()>,
}

impl Sources {
    pub(crate) fn new(dir: PathBuf) -> Result<Sources, RuntimeError> {
        fs::create_dir_all(&dir).map_err(|e| RuntimeError::io("create", &dir, e))?;
        Ok(Sources {
            dir,
            pins: Mutex::new(()),
        })
    }

    /// Loads `module` for service `service` (its errors name the service); `pulled` is what
    /// the image hook made of an OCI reference.
    pub(crate) async fn load(
        &self,
        service: &str,
        module: &str,
        options: Option<&WasmOptions>,
        pulled: Option<&PreparedModule>,
    ) -> Result<Loaded, RuntimeError> {
        let invalid = |reason: String| RuntimeError::InvalidSpec {
            service: service.to_string(),
            reason,
        };
        let expected = options.and_then(|o| o.sha256.as_deref().map(str::to_ascii_lowercase));
        let pin = options.is_some_and(|o| o.pin_first_fetch);
        let mismatch = |got: &str, want: &str| {
            invalid(format!("module {module} has sha256 {got}, expected {want}"))
        };
        let (raw, warning) = match parse(module).map_err(invalid)? {
            Source::File(path) => {
                let raw = read_file(&path)?;
                if let Some(want) = &expected
                    && *want != sha256_hex(&raw)
                {
                    return Err(mismatch(&sha256_hex(&raw), want));
                }
                (raw, None)
            }
            Source::Oci => {
                let Some(pulled) = pulled else {
                    return Err(invalid(format!(
                        "module {module} is an OCI reference, and this node has no image store \
                         to pull it with"
                    )));
                };
                let raw = read_file(&pulled.path)?;
                let got = sha256_hex(&raw);
                // An artifact's layer is the module: the same digest, checked again here.
                if pulled.file.is_none() && pulled.layer != format!("sha256:{got}") {
                    return Err(mismatch(&got, &pulled.layer));
                }
                if let Some(want) = &expected
                    && *want != got
                {
                    return Err(mismatch(&got, want));
                }
                (raw, None)
            }
            Source::Url(url) => {
                let pinned = expected.is_none().then(|| self.pinned(&url)).flatten();
                let want = expected.or(pinned);
                if want.is_none() && !pin {
                    return Err(invalid(format!(
                        "module {url} is an http(s) URL: wasm.sha256 is required"
                    )));
                }
                let raw = match want.as_deref().and_then(|d| self.kept(d)) {
                    Some(bytes) => bytes,
                    None => crate::download::download(
                        &url,
                        "module",
                        MAX_MODULE_BYTES,
                        DOWNLOAD_TIMEOUT,
                    )
                    .await
                    .map_err(invalid)?,
                };
                let got = sha256_hex(&raw);
                let warning = match &want {
                    Some(want) if *want != got => return Err(mismatch(&got, want)),
                    Some(_) => None,
                    None => {
                        self.pin(&url, &got)?;
                        Some(format!(
                            "module {url} has no sha256: pinned its first download, sha256 {got}"
                        ))
                    }
                };
                self.keep(&got, &raw)?;
                (raw, warning)
            }
        };
        // Text modules (`.wat`) become binary here; binary ones pass through unchanged.
        let wasm = wat::parse_bytes(&raw)
            .map_err(|e| invalid(format!("module {module} is not WebAssembly: {e}")))?
            .into_owned();
        let digest = sha256_hex(&wasm);
        if let Some(w) = &warning {
            tracing::warn!(service, "{w}");
        }
        Ok(Loaded {
            wasm,
            digest,
            warning,
        })
    }

    fn kept(&self, digest: &str) -> Option<Vec<u8>> {
        let bytes = fs::read(self.dir.join(format!("{digest}.wasm"))).ok()?;
        (sha256_hex(&bytes) == digest).then_some(bytes)
    }

    fn keep(&self, digest: &str, bytes: &[u8]) -> Result<(), RuntimeError> {
        let path = self.dir.join(format!("{digest}.wasm"));
        if path.exists() {
            return Ok(());
        }
        write_atomic(&path, bytes)
    }

    fn pins_path(&self) -> PathBuf {
        self.dir.join("pins.json")
    }

    fn read_pins(&self) -> BTreeMap<String, String> {
        fs::read(self.pins_path())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn pinned(&self, url: &str) -> Option<String> {
        let _guard = self.pins.lock().unwrap_or_else(|p| p.into_inner());
        self.read_pins().get(url).cloned()
    }

    fn pin(&self, url: &str, digest: &str) -> Result<(), RuntimeError> {
        let _guard = self.pins.lock().unwrap_or_else(|p| p.into_inner());
        let mut pins = self.read_pins();
        pins.entry(url.to_string())
            .or_insert_with(|| digest.to_string());
        let json = serde_json::to_vec_pretty(&pins).unwrap_or_default();
        write_atomic(&self.pins_path(), &json)
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, RuntimeError> {
    let len = fs::metadata(path)
        .map_err(|e| RuntimeError::io("read module", path, e))?
        .len();
    if len > MAX_MODULE_BYTES {
        return Err(RuntimeError::io(
            "read module",
            path,
            std::io::Error::other(format!("larger than {} MiB", MAX_MODULE_BYTES >> 20)),
        ));
    }
    fs::read(path).map_err(|e| RuntimeError::io("read module", path, e))
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RuntimeError> {
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, bytes).map_err(|e| RuntimeError::io("write", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| RuntimeError::io("rename into", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_with_clear_errors() {
        assert_eq!(parse("/opt/m.wasm"), Ok(Source::File("/opt/m.wasm".into())));
        assert_eq!(
            parse("file:///opt/m.wat"),
            Ok(Source::File("/opt/m.wat".into()))
        );
        assert_eq!(
            parse("https://x.org/m.wasm"),
            Ok(Source::Url("https://x.org/m.wasm".into()))
        );
        assert!(parse("file://rel/m.wasm").unwrap_err().contains("absolute"));
        assert!(
            parse("ftp://x/m")
                .unwrap_err()
                .contains("unsupported scheme")
        );
        assert_eq!(parse("registry.local/m:1"), Ok(Source::Oci));
        assert_eq!(
            parse("examples/wasm/filter.wat"),
            Ok(Source::File("examples/wasm/filter.wat".into()))
        );
    }
}
