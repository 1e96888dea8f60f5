//! Reading a descriptor out of a request body: JSON or YAML, native or Oakestra.
//!
//! Parsing runs on tokio's blocking threads, a bounded number at a time, so that no request,
//! however costly its descriptor, takes an async worker away from the tier links' heartbeats.

use super::AppState;
use super::error::ApiError;
use super::guard::BODY_TYPES;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use canopy_model::{ParsedDescriptor, parse_descriptor};
use std::time::Duration;
use tokio::sync::Semaphore;

/// How long a request may wait for a parsing slot before it is told to come back.
const PARSE_QUEUE_WAIT: Duration = Duration::from_secs(30);

/// Parsing slots: one core is always left to the async workers.
pub fn parse_slots() -> Semaphore {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Semaphore::new(cores.saturating_sub(1).max(1))
}

pub async fn descriptor(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<ParsedDescriptor, ApiError> {
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let essence = content_type
            .to_str()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if !BODY_TYPES.contains(&essence.as_str()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "content type {essence:?} is not accepted; send one of {}",
                    BODY_TYPES.join(", ")
                ),
            ));
        }
    }
    let body = body?;
    std::str::from_utf8(&body)
        .map_err(|e| ApiError::bad_request(format!("body is not UTF-8: {e}")))?;
    let busy = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "the root is busy parsing other descriptors; retry later",
        )
    };
    let slot = tokio::time::timeout(PARSE_QUEUE_WAIT, state.parsing.clone().acquire_owned())
        .await
        .map_err(|_| busy())?
        .map_err(|_| busy())?;
    let parsed = tokio::task::spawn_blocking(move || {
        // The slot is held until the parse ends, also when the client has gone meanwhile.
        let _slot = slot;
        // Checked as UTF-8 above.
        let text = String::from_utf8_lossy(&body);
        parse_descriptor(&text)
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "descriptor parsing task failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "parsing the descriptor failed",
        )
    })?;
    Ok(parsed.map_err(crate::desired::RootError::from)?)
}

/// What `POST /api/v1/apply` takes: one application or several (a JSON array; in YAML,
/// several documents); `contract.rs` gives its schema. An Oakestra SLA v2 is also read.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // A name for the OpenAPI document; the handler reads text.
pub struct Descriptor;
