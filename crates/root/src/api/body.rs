//! Reading a descriptor out of a request body: JSON or YAML, native or Oakestra.

use super::error::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use canopy_model::{ParsedDescriptor, parse_descriptor};

const ACCEPTED_TYPES: [&str; 6] = [
    "application/json",
    "application/yaml",
    "application/x-yaml",
    "text/yaml",
    "text/x-yaml",
    "text/plain",
];

pub fn descriptor(
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
        if !ACCEPTED_TYPES.contains(&essence.as_str()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "content type {essence:?} is not accepted; send one of {}",
                    ACCEPTED_TYPES.join(", ")
                ),
            ));
        }
    }
    let body = body?;
    let text = std::str::from_utf8(&body)
        .map_err(|e| ApiError::bad_request(format!("body is not UTF-8: {e}")))?;
    Ok(parse_descriptor(text).map_err(crate::desired::RootError::from)?)
}

/// What `POST /api/v1/apply` takes: one application or several (a JSON array; in YAML,
/// several documents); `contract.rs` gives its schema. An Oakestra SLA v2 is also read.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // A name for the OpenAPI document; the handler reads text.
pub struct Descriptor;
