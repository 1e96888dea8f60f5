//! `GET /api/v1/version`: which build of Canopy the root runs.

use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    #[schema(example = "0.1.0")]
    pub version: String,
    /// The git commit it was built from, when the build knew it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_commit: Option<String>,
}

impl VersionInfo {
    /// This build's.
    pub fn current() -> VersionInfo {
        VersionInfo {
            version: crate::build_info::VERSION.to_string(),
            git_commit: crate::build_info::GIT_COMMIT.map(str::to_string),
        }
    }
}

#[utoipa::path(get, path = "/api/v1/version", tag = "version",
    responses((status = 200, body = VersionInfo)))]
pub async fn version() -> Json<VersionInfo> {
    Json(VersionInfo::current())
}
