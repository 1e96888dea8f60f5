//! `/ngsi-ld/v1/subscriptions`: create, list, get, delete. Kept in the store (a restarted
//! root keeps them), each owned by its creator: a caller sees and deletes its own, an
//! admin everyone's, and notifications show what its creator's grants read
//! ([`super::notifier`]).

use super::context::{self, CORE_CONTEXT, Format};
use super::problem::Problem;
use super::subscription::{MAX_SUBSCRIPTIONS, Subscription, SubscriptionRecord, problems};
use crate::api::AppState;
use crate::auth::{Action, Principal};
use crate::keys;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use canopy_store::{Precondition, Store, StoreError, StoreExt};
use serde_json::Value;

pub const PATH: &str = "/ngsi-ld/v1/subscriptions";

fn key(id: &str) -> String {
    format!("{}{id}", keys::NGSILD_SUBSCRIPTIONS)
}

/// Every stored subscription.
pub async fn all(state: &AppState) -> Result<Vec<SubscriptionRecord>, StoreError> {
    stored(state.desired.store().as_ref()).await
}

pub async fn stored(
    store: &dyn canopy_store::Store,
) -> Result<Vec<SubscriptionRecord>, StoreError> {
    let (items, _) = store
        .list_json::<SubscriptionRecord>(keys::NGSILD_SUBSCRIPTIONS)
        .await?;
    Ok(items.into_iter().map(|(_, record, _)| record).collect())
}

fn sees(principal: &Principal, record: &SubscriptionRecord) -> bool {
    record.owner == principal.name || principal.may(Action::ManageUsers, None)
}

fn rendered(record: &SubscriptionRecord, format: Format) -> Value {
    let mut body = serde_json::to_value(&record.subscription).unwrap_or(Value::Null);
    let context = body
        .as_object_mut()
        .and_then(|o| o.remove("@context"))
        .unwrap_or_else(|| Value::String(CORE_CONTEXT.into()));
    body["status"] = Value::String(
        if record.subscription.is_active {
            "active"
        } else {
            "paused"
        }
        .into(),
    );
    if format == Format::JsonLd {
        body["@context"] = context;
    }
    body
}

fn format_of(headers: &HeaderMap) -> Result<Format, Problem> {
    context::negotiate(headers).ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_ACCEPTABLE,
            "NotAcceptable",
            "this endpoint answers application/json or application/ld+json",
        )
    })
}

pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    if !matches!(
        content_type,
        Some("application/json" | "application/ld+json")
    ) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "a subscription is application/json or application/ld+json",
        ));
    }
    let body = body.map_err(|e| Problem::new(e.status(), "BadRequestData", e.body_text()))?;
    let deserializer = &mut serde_json::Deserializer::from_slice(&body);
    let mut subscription: Subscription = serde_path_to_error::deserialize(deserializer)
        .map_err(|e| Problem::bad_request(format!("{}: {}", e.path(), e.inner())))?;
    let found = problems(&subscription);
    if !found.is_empty() {
        return Err(Problem::bad_request(found.join("; ")));
    }
    let existing = all(&state).await?;
    if existing.len() >= MAX_SUBSCRIPTIONS {
        return Err(Problem::bad_request(format!(
            "this root keeps at most {MAX_SUBSCRIPTIONS} subscriptions; delete one first"
        )));
    }
    let id = subscription
        .id
        .clone()
        .unwrap_or_else(|| format!("urn:ngsi-ld:Subscription:{:016x}", rand::random::<u64>()));
    subscription.id = Some(id.clone());
    let record = SubscriptionRecord {
        subscription,
        owner: principal.name.clone(),
        grants: principal.grants.clone(),
    };
    match state
        .desired
        .store()
        .put_json(&key(&id), &record, Precondition::Absent)
        .await
    {
        Ok(_) => {}
        Err(StoreError::Conflict { .. }) => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!("subscription {id:?} exists"),
            ));
        }
        Err(other) => return Err(other.into()),
    }
    let mut response = StatusCode::CREATED.into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("{PATH}/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let format = format_of(&headers)?;
    let shown: Vec<Value> = all(&state)
        .await?
        .iter()
        .filter(|record| sees(&principal, record))
        .map(|record| rendered(record, format))
        .collect();
    Ok(context::finish(format, Value::Array(shown)))
}

async fn visible(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<SubscriptionRecord, Problem> {
    let record = state
        .desired
        .store()
        .get_json::<SubscriptionRecord>(&key(id))
        .await?
        .map(|(record, _)| record);
    // Another caller's subscription is as absent as one that does not exist.
    record
        .filter(|record| sees(principal, record))
        .ok_or_else(|| Problem::not_found(format!("no subscription {id:?}")))
}

pub async fn get_one(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, Problem> {
    let format = format_of(&headers)?;
    let Path(id) = path.map_err(|e| Problem::bad_request(e.body_text()))?;
    let record = visible(&state, &principal, &id).await?;
    Ok(context::finish(format, rendered(&record, format)))
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, Problem> {
    let Path(id) = path.map_err(|e| Problem::bad_request(e.body_text()))?;
    visible(&state, &principal, &id).await?;
    state
        .desired
        .store()
        .delete(&key(&id), Precondition::None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
