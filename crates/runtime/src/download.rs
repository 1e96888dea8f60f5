//! Artifacts fetched over http(s) for a start (wasm modules, microVM kernels): one bounded
//! download into memory, checked by the caller against the sha256 the descriptor names.

use std::time::Duration;

/// The body at `url`, at most `max_bytes`; errors say `what` was fetched and why it failed.
pub(crate) async fn download(
    url: &str,
    what: &str,
    max_bytes: u64,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    // HTTPS needs a rustls provider: ring, the workspace's, unless the process has one.
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| format!("{what} {url}: {e}"))?;
    let mut resp = client
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("downloading {what} {url}: {e}"))?;
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("downloading {what} {url}: {e}"))?
    {
        body.extend_from_slice(&chunk);
        if body.len() as u64 > max_bytes {
            return Err(format!(
                "{what} {url} is larger than {} MiB",
                max_bytes >> 20
            ));
        }
    }
    Ok(body)
}
