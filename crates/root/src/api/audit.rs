//! The audit log: every mutating call (who, what, when, result), kept in memory (the newest
//! [`AUDIT_CAPACITY`]) and written to the daemon's log, readable at `GET /api/v1/audit`.
//!
//! Who: the [`AuditSubject`] slot this layer puts in the request's extensions before the
//! authentication middleware runs; that middleware fills it with the caller's name. A call it
//! never fills (refused before, or no authentication configured) is `anonymous`.

use super::ClientAddr;
use super::error::{ApiError, ErrorBody};
use super::guard::is_mutating;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

/// Entries kept; older ones are dropped (they stay in the daemon's log).
pub const AUDIT_CAPACITY: usize = 10_000;

/// One mutating call.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// Counts calls since the root started, from 1.
    pub id: u64,
    /// When the call arrived (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub time: OffsetDateTime,
    /// Who called: the authenticated name, or `anonymous`.
    pub subject: String,
    /// The client's IP address, when known.
    pub client: Option<String>,
    pub method: String,
    /// Path and query of the call.
    pub path: String,
    /// The HTTP status it was answered with.
    pub status: u16,
}

/// Where the authentication middleware writes who is calling.
#[derive(Debug, Clone, Default)]
pub struct AuditSubject(Arc<OnceLock<String>>);

impl AuditSubject {
    /// Records the caller's name; the first name set wins.
    pub fn set(&self, name: &str) {
        let _ = self.0.set(name.to_string());
    }

    fn name(&self) -> String {
        self.0
            .get()
            .cloned()
            .unwrap_or_else(|| "anonymous".to_string())
    }
}

#[derive(Debug, Default)]
pub struct AuditLog {
    entries: Mutex<(u64, VecDeque<AuditEntry>)>,
}

impl AuditLog {
    fn record(&self, mut entry: AuditEntry) {
        let mut guard = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (next, entries) = &mut *guard;
        *next += 1;
        entry.id = *next;
        tracing::info!(
            target: "canopy::audit",
            id = entry.id, subject = %entry.subject, client = ?entry.client,
            method = %entry.method, path = %entry.path, status = entry.status,
            "mutating call"
        );
        if entries.len() >= AUDIT_CAPACITY {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// The newest `limit` entries with an id above `after`, oldest first.
    pub fn read(&self, after: u64, limit: usize) -> Vec<AuditEntry> {
        let guard = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let newer: Vec<&AuditEntry> = guard.1.iter().filter(|e| e.id > after).collect();
        let skip = newer.len().saturating_sub(limit);
        newer.into_iter().skip(skip).cloned().collect()
    }
}

pub async fn audit(State(log): State<Arc<AuditLog>>, mut request: Request, next: Next) -> Response {
    if !is_mutating(request.method()) {
        return next.run(request).await;
    }
    let subject = AuditSubject::default();
    request.extensions_mut().insert(subject.clone());
    let time = OffsetDateTime::now_utc();
    let method = request.method().to_string();
    // Inside the nested `/api/v1` router the URI has lost its prefix; the original has it.
    let uri = request
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map_or_else(|| request.uri().clone(), |original| original.0.clone());
    let path = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_string(), |p| p.to_string());
    let client = request
        .extensions()
        .get::<axum::extract::ConnectInfo<ClientAddr>>()
        .map(|info| info.0.0.ip().to_string());
    let response = next.run(request).await;
    log.record(AuditEntry {
        id: 0,
        time,
        subject: subject.name(),
        client,
        method,
        path,
        status: response.status().as_u16(),
    });
    response
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only entries with a greater id (to read on from the last one seen).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// At most this many (the newest), 100 by default, up to 10000.
    #[param(minimum = 0, maximum = 10000)]
    pub limit: Option<u32>,
}

/// The audit log: the newest mutating calls, oldest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = [AuditEntry]), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(state): State<super::AppState>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    let Query(query) = query?;
    let after = u64::try_from(query.after.unwrap_or(0)).map_err(|_| {
        ApiError::bad_request("after must not be negative").with_details(vec![
            canopy_model::FieldError::new("after", "must not be negative"),
        ])
    })?;
    let limit = usize::try_from(query.limit.unwrap_or(100)).unwrap_or(usize::MAX);
    if limit > AUDIT_CAPACITY {
        return Err(
            ApiError::bad_request(format!("limit is at most {AUDIT_CAPACITY}")).with_details(vec![
                canopy_model::FieldError::new("limit", format!("at most {AUDIT_CAPACITY}")),
            ]),
        );
    }
    Ok(Json(state.audit.read(after, limit)))
}
