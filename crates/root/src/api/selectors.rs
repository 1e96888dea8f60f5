//! The `labelSelector` query parameter of the list endpoints.

use super::error::ApiError;
use axum::http::StatusCode;
use canopy_model::{FieldError, Selector};
use std::collections::BTreeMap;

/// The parsed selector, `None` when absent; a 400 naming the bad part when it does not parse.
pub fn parse(text: Option<&str>) -> Result<Option<Selector>, ApiError> {
    let Some(text) = text else {
        return Ok(None);
    };
    Selector::parse(text).map(Some).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_label_selector",
            e.to_string(),
        )
        .with_details(vec![FieldError::new(
            "labelSelector",
            format!("{:?}: {}", e.part, e.reason),
        )])
    })
}

/// Keeps the items whose labels (`None`: it has none) match, when there is a selector.
pub fn retain<T>(
    items: &mut Vec<T>,
    selector: Option<&Selector>,
    labels: impl Fn(&T) -> Option<BTreeMap<String, String>>,
) {
    if let Some(selector) = selector {
        items.retain(|item| selector.matches(&labels(item).unwrap_or_default()));
    }
}
