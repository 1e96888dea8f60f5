//! Talking to registries through `oci-client`: manifest resolution (with platform selection),
//! verified blob downloads into the cache, and the mapping of registry failures to
//! [`ImageError`]s.

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};
use oci_client::manifest::{OciDescriptor, OciImageManifest, OciManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use crate::error::{ImageError, IoContext, Result};
use crate::platform::{self, Platform};
use crate::{Credentials, ImageStoreConfig, PullProgress};

/// One pull's connection to one registry. A fresh `oci_client::Client` per pull: the client
/// remembers the first credentials it saw for a registry, and a pull with other credentials
/// must not reuse them.
pub(crate) struct Registry {
    client: Client,
    auth: RegistryAuth,
    registry: String,
    timeout: Duration,
}

/// A manifest resolved to this platform.
pub(crate) struct Resolved {
    pub manifest: OciImageManifest,
    pub digest: String,
    pub index_digest: Option<String>,
}

impl Registry {
    pub fn new(
        reference: &Reference,
        credentials: Option<&Credentials>,
        settings: &ImageStoreConfig,
    ) -> Result<Self> {
        let timeout = settings.timeout;
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(settings.insecure_registries.clone()),
            connect_timeout: Some(timeout),
            read_timeout: Some(timeout),
            extra_root_certificates: settings
                .ca_certificates
                .iter()
                .map(|pem| Certificate {
                    encoding: CertificateEncoding::Pem,
                    data: pem.clone(),
                })
                .collect(),
            // We resolve indexes ourselves, to name the platforms on offer when none fits.
            platform_resolver: None,
            ..Default::default()
        };
        let registry = reference.resolve_registry().to_string();
        // Not `Client::new`: on a bad config it silently falls back to defaults (no insecure
        // list, no timeouts, no extra CAs).
        let client = Client::try_from(config).map_err(|e| ImageError::Registry {
            registry: registry.clone(),
            message: format!("cannot set up a client: {e}"),
        })?;
        let auth = match credentials {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        };
        Ok(Registry {
            client,
            auth,
            registry,
            timeout,
        })
    }

    /// Fetches the manifest of `reference`, resolving an index to `platform`.
    pub async fn resolve(&self, reference: &Reference, platform: &Platform) -> Result<Resolved> {
        let (manifest, digest) = self.pull_manifest(reference).await?;
        match manifest {
            OciManifest::Image(manifest) => Ok(Resolved {
                manifest,
                digest,
                index_digest: None,
            }),
            OciManifest::ImageIndex(index) => {
                let entry = platform::select(&index.manifests, platform).map_err(|available| {
                    ImageError::UnsupportedPlatform {
                        reference: reference.whole(),
                        wanted: platform.to_string(),
                        available,
                    }
                })?;
                tracing::debug!(reference = %reference, digest = %entry.digest, "index resolved");
                let by_digest = reference.clone_with_digest(entry.digest.clone());
                let (manifest, resolved) = self.pull_manifest(&by_digest).await?;
                match manifest {
                    OciManifest::Image(manifest) => Ok(Resolved {
                        manifest,
                        digest: resolved,
                        index_digest: Some(digest),
                    }),
                    OciManifest::ImageIndex(_) => Err(ImageError::Unsupported(format!(
                        "{reference}: index entry {} is itself an index",
                        entry.digest
                    ))),
                }
            }
        }
    }

    async fn pull_manifest(&self, reference: &Reference) -> Result<(OciManifest, String)> {
        let op = self.client.pull_manifest(reference, &self.auth);
        match tokio::time::timeout(self.timeout, op).await {
            Ok(result) => result.map_err(|e| self.map_err(reference, e)),
            Err(_) => Err(ImageError::Timeout {
                operation: format!("fetching the manifest of {reference}"),
                seconds: self.timeout.as_secs_f64(),
            }),
        }
    }

    /// Downloads `desc` into `dest` (a new file), hashing as it goes. `Ok` only when both the
    /// size and the sha256 match the descriptor; on any error the caller drops the file.
    pub async fn download(
        &self,
        reference: &Reference,
        desc: &OciDescriptor,
        dest: &Path,
        progress: &(dyn Fn(PullProgress) + Send + Sync),
    ) -> Result<()> {
        let expected_size = u64::try_from(desc.size).map_err(|_| {
            ImageError::Unsupported(format!("blob {} has a negative size", desc.digest))
        })?;
        // Enough for a slow link (256 KiB/s) on top of the base timeout; stalls are caught
        // sooner by the read timeout.
        let deadline = self.timeout + Duration::from_secs(expected_size / (256 * 1024));
        match tokio::time::timeout(
            deadline,
            self.download_inner(reference, desc, expected_size, dest, progress),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(ImageError::Timeout {
                operation: format!("downloading blob {} of {reference}", desc.digest),
                seconds: deadline.as_secs_f64(),
            }),
        }
    }

    async fn download_inner(
        &self,
        reference: &Reference,
        desc: &OciDescriptor,
        expected_size: u64,
        dest: &Path,
        progress: &(dyn Fn(PullProgress) + Send + Sync),
    ) -> Result<()> {
        let expected_hex = crate::store::sha256_hex(&desc.digest)?;
        let mut stream = self
            .client
            .pull_blob_stream(reference, desc)
            .await
            .map_err(|e| self.map_err(reference, e))?;
        let mut file = tokio::fs::File::create(dest).await.ctx("create", dest)?;
        let mut hasher = Sha256::new();
        let mut received: u64 = 0;
        let mut reported: u64 = 0;
        let mismatch = |actual: String| ImageError::DigestMismatch {
            what: format!("blob of {reference}"),
            expected: format!("{} ({expected_size} bytes)", desc.digest),
            actual,
        };
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    // oci-client's own verification fails the stream at its end: report the
                    // digest of what actually came.
                    let actual = hex::encode(hasher.clone().finalize());
                    if received == expected_size && actual != expected_hex {
                        return Err(mismatch(format!("sha256:{actual} ({received} bytes)")));
                    }
                    return Err(self.map_io(reference, e));
                }
            };
            received += chunk.len() as u64;
            if received > expected_size {
                return Err(mismatch(format!("more than {expected_size} bytes")));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.ctx("write", dest)?;
            if received - reported >= 1 << 20 || received == expected_size {
                reported = received;
                progress(PullProgress::Layer {
                    digest: desc.digest.clone(),
                    bytes: received,
                    total: expected_size,
                    cached: false,
                });
            }
        }
        let actual = hex::encode(hasher.finalize());
        if received != expected_size || actual != expected_hex {
            return Err(mismatch(format!("sha256:{actual} ({received} bytes)")));
        }
        file.sync_all().await.ctx("sync", dest)?;
        Ok(())
    }

    fn map_io(&self, reference: &Reference, e: std::io::Error) -> ImageError {
        match e.into_inner() {
            Some(inner) => match inner.downcast::<OciDistributionError>() {
                Ok(oci) => self.map_err(reference, *oci),
                Err(other) => match other.downcast::<reqwest::Error>() {
                    Ok(req) => self.map_err(reference, OciDistributionError::RequestError(*req)),
                    Err(other) => ImageError::Registry {
                        registry: self.registry.clone(),
                        message: other.to_string(),
                    },
                },
            },
            None => ImageError::Registry {
                registry: self.registry.clone(),
                message: "download failed".to_string(),
            },
        }
    }

    /// Registry failures → the store's errors. Messages never include credentials.
    fn map_err(&self, reference: &Reference, e: OciDistributionError) -> ImageError {
        let registry = self.registry.clone();
        let not_found = || ImageError::NotFound {
            reference: reference.whole(),
            registry: registry.clone(),
        };
        let auth = || ImageError::AuthFailed {
            registry: registry.clone(),
        };
        match e {
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => auth(),
            OciDistributionError::ImageManifestNotFoundError(_) => not_found(),
            OciDistributionError::RegistryError { envelope, .. } => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
                if codes.iter().any(|c| {
                    matches!(
                        c,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::NotFound
                            | OciErrorCode::BlobUnknown
                    )
                }) {
                    not_found()
                } else if codes
                    .iter()
                    .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
                {
                    auth()
                } else {
                    ImageError::Registry {
                        registry,
                        message: envelope.to_string(),
                    }
                }
            }
            OciDistributionError::ServerError { code, message, .. } => match code {
                404 => not_found(),
                401 | 403 => auth(),
                _ => ImageError::Registry {
                    registry,
                    message: format!("HTTP {code}: {}", message.trim()),
                },
            },
            OciDistributionError::RequestError(e) => {
                if e.is_timeout() && !e.is_connect() {
                    // Connected, then silent for the read timeout: a stall, not unreachable.
                    ImageError::Timeout {
                        operation: format!("reading from registry {registry} for {reference}"),
                        seconds: self.timeout.as_secs_f64(),
                    }
                } else if e.is_connect() || e.is_timeout() {
                    let mut reason = error_chain(&e);
                    if reason.contains("InvalidContentType") {
                        // rustls reading a plain-HTTP answer where it expects TLS.
                        reason.push_str(&format!(
                            " (the registry answers plain HTTP, not HTTPS: if it is meant to, \
                             name it with --insecure-registry {registry})"
                        ));
                    }
                    ImageError::Unreachable {
                        address: registry,
                        reason,
                    }
                } else if e
                    .status()
                    .is_some_and(|s| s.as_u16() == 401 || s.as_u16() == 403)
                {
                    auth()
                } else {
                    ImageError::Registry {
                        registry,
                        message: error_chain(&e),
                    }
                }
            }
            OciDistributionError::DigestError(DigestError::VerificationError {
                expected,
                actual,
            }) => ImageError::DigestMismatch {
                what: format!("manifest of {reference}"),
                expected,
                actual,
            },
            other => ImageError::Registry {
                registry,
                message: other.to_string(),
            },
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
