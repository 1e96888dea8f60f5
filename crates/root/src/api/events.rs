//! `GET /api/v1/events`: every change of the state as a Server-Sent Event, resumable by revision.

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::auth::{Action, Namespaces, Principal};
use crate::keys;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use canopy_store::WatchEvent;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Send the changes after this revision (default: only new changes). `Last-Event-ID` does the same.
    pub since: Option<u64>,
}

/// The data of one event; the SSE `event:` field is `<kind>.<action>` and `id:` the revision.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChangeEvent {
    pub revision: u64,
    #[schema(value_type = String, pattern = "^(application|instance|cluster|node|autoscale)$")]
    pub kind: String,
    #[schema(value_type = String, pattern = "^(put|delete)$")]
    pub action: String,
    pub key: String,
    /// The object after the change (absent on delete).
    #[schema(value_type = Object)]
    pub object: Option<serde_json::Value>,
}

/// Never ends while the root runs: one SSE event per change, and a comment line as keep-alive.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventsQuery),
    responses(
        (status = 200, content_type = "text/event-stream", body = String,
            description = "Server-Sent Events: `id:` the revision, `event:` `<kind>.<action>`, `data:` one ChangeEvent as JSON"),
        (status = 400, body = ErrorBody, description = "`since` (or `Last-Event-ID`) is not a revision number"),
        (status = 410, body = ErrorBody, description = "`since` is older than the retained history"),
        (status = 500, body = ErrorBody, description = "The state store failed")))]
pub async fn events(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(query) = query?;
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let store = state.desired.store();
    let after = match query.since.or(last_event_id) {
        Some(revision) => revision,
        None => store.revision().await?,
    };
    let changes = store.watch("/", after).await?;
    let mut stopping = state.stopping.clone();
    let mut visibility = Visibility::new(principal.namespaces(Action::Read));
    let events = changes
        .take_until(async move {
            let _ = stopping.wait_for(|stopping| *stopping).await;
        })
        .take_while(|change| {
            // A lagging or closed watch ends the stream; the client resumes with Last-Event-ID.
            futures::future::ready(change.is_ok())
        })
        .filter_map(move |change| {
            let shown = change.ok().filter(|change| visibility.shows(change));
            futures::future::ready(shown.and_then(to_sse))
        })
        .map(Ok);
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// Which changes one stream may show: those of the namespaces its caller may read, and
/// clusters and nodes (every role reads those). An instance's delete names only its key, so
/// the stream remembers the instances it showed.
struct Visibility {
    namespaces: Namespaces,
    shown_instances: std::collections::HashSet<String>,
}

impl Visibility {
    fn new(namespaces: Namespaces) -> Visibility {
        Visibility {
            namespaces,
            shown_instances: Default::default(),
        }
    }

    fn shows(&mut self, change: &WatchEvent) -> bool {
        if self.namespaces == Namespaces::All {
            return true;
        }
        let key = change.key();
        match keys::kind_of(key) {
            Some("cluster" | "node") => true,
            Some("application") => key
                .strip_prefix(keys::APPLICATIONS)
                .and_then(|rest| rest.split('/').next())
                .is_some_and(|namespace| self.namespaces.contains(namespace)),
            Some("autoscale") => key
                .strip_prefix(keys::AUTOSCALE)
                .and_then(|rest| rest.split('/').next())
                .is_some_and(|namespace| self.namespaces.contains(namespace)),
            Some("instance") => match change {
                WatchEvent::Put { entry } => {
                    let namespace = serde_json::from_slice::<serde_json::Value>(&entry.value)
                        .ok()
                        .and_then(|v| v["namespace"].as_str().map(str::to_string));
                    let shown = namespace.is_some_and(|ns| self.namespaces.contains(&ns));
                    if shown {
                        self.shown_instances.insert(key.to_string());
                    }
                    shown
                }
                WatchEvent::Delete { .. } => self.shown_instances.remove(key),
            },
            _ => false,
        }
    }
}

fn to_sse(change: WatchEvent) -> Option<Event> {
    let kind = keys::kind_of(change.key())?;
    // Secrets (`/secrets/`) have no kind here: their changes are not streamed.
    let (action, object) = match &change {
        WatchEvent::Put { entry } => ("put", serde_json::from_slice(&entry.value).ok()),
        WatchEvent::Delete { .. } => ("delete", None),
    };
    let data = ChangeEvent {
        revision: change.revision(),
        kind: kind.to_string(),
        action: action.to_string(),
        key: change.key().to_string(),
        object,
    };
    Event::default()
        .id(change.revision().to_string())
        .event(format!("{kind}.{action}"))
        .json_data(&data)
        .ok()
}
