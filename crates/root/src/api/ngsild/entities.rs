//! `GET /ngsi-ld/v1/entities`, `GET /ngsi-ld/v1/entities/{id}` and `GET /ngsi-ld/v1/types`:
//! read-only, over [`view::continuum`], narrowed to what the caller may read.

use super::context::{self, Format};
use super::entity::Entity;
use super::mapping::{Scoped, TYPES};
use super::problem::Problem;
use super::{query, view};
use crate::api::AppState;
use crate::auth::{Action, Principal};
use axum::Extension;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

const DEFAULT_LIMIT: usize = 20;
/// The most entities one page holds (Orion-LD's limit too).
pub const MAX_LIMIT: usize = 1000;
/// `NGSILD-Results-Count` (header names are case-insensitive; `http` spells them lowercase).
pub const COUNT_HEADER: &str = "ngsild-results-count";

/// A listing's parameters, checked.
#[derive(Debug, Default)]
pub struct Selection {
    pub types: Option<Vec<String>>,
    pub ids: Option<Vec<String>>,
    pub id_pattern: Option<regex::Regex>,
    pub q: Option<query::Query>,
    pub attrs: Option<Vec<String>>,
    pub limit: usize,
    pub offset: usize,
    pub count: bool,
    pub key_values: bool,
}

fn list(value: Option<&String>) -> Option<Vec<String>> {
    value.map(|v| {
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
}

fn number(params: &HashMap<String, String>, name: &str, default: usize) -> Result<usize, Problem> {
    match params.get(name) {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| {
            Problem::bad_request(format!(
                "{name} must be a non-negative integer, got {text:?}"
            ))
        }),
    }
}

/// An `idPattern`, bounded like a query's `~=`.
pub fn pattern(text: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(text)
        .size_limit(64 * 1024)
        .build()
        .map_err(|e| format!("invalid idPattern {text:?}: {e}"))
}

impl Selection {
    pub fn parse(params: &HashMap<String, String>) -> Result<Selection, Problem> {
        let limit = number(params, "limit", DEFAULT_LIMIT)?;
        if limit > MAX_LIMIT {
            return Err(Problem::bad_request(format!(
                "limit must be at most {MAX_LIMIT}, got {limit}"
            )));
        }
        let options = list(params.get("options")).unwrap_or_default();
        let key_values = options.iter().any(|o| o == "keyValues")
            || params.get("format").is_some_and(|f| f == "keyValues");
        let q = match params.get("q") {
            Some(text) => {
                Some(query::parse(text).map_err(|e| Problem::invalid(format!("q: {e}")))?)
            }
            None => None,
        };
        let id_pattern = match params.get("idPattern") {
            Some(text) => Some(pattern(text).map_err(Problem::bad_request)?),
            None => None,
        };
        Ok(Selection {
            types: list(params.get("type")),
            ids: list(params.get("id")),
            id_pattern,
            q,
            attrs: list(params.get("attrs")),
            limit,
            offset: number(params, "offset", 0)?,
            count: params.get("count").is_some_and(|c| c == "true"),
            key_values,
        })
    }

    pub fn selects(&self, entity: &Entity) -> bool {
        self.types
            .as_ref()
            .is_none_or(|types| types.iter().any(|t| t == entity.kind))
            && self.ids.as_ref().is_none_or(|ids| ids.contains(&entity.id))
            && self
                .id_pattern
                .as_ref()
                .is_none_or(|p| p.is_match(&entity.id))
            && self.q.as_ref().is_none_or(|q| q.matches(entity))
            && self.attrs.as_ref().is_none_or(|attrs| {
                // `attrs` also selects: only entities with at least one of them (§6.4.3.2).
                attrs.iter().any(|a| entity.attributes.contains_key(a))
            })
    }
}

/// The body of one entity in the requested format.
pub fn body(entity: &Entity, attrs: Option<&[String]>, key_values: bool, format: Format) -> Value {
    let context = (format == Format::JsonLd).then(context::reference);
    let normalized = entity.to_json(attrs, context.as_ref());
    if !key_values {
        return normalized;
    }
    let mut simplified = Map::new();
    for (name, value) in normalized.as_object().into_iter().flatten() {
        let plain = match value.get("type").and_then(Value::as_str) {
            Some("Property" | "GeoProperty") if name != "@context" => value["value"].clone(),
            Some("Relationship") => value["object"].clone(),
            _ => value.clone(),
        };
        simplified.insert(name.clone(), plain);
    }
    Value::Object(simplified)
}

fn accepted(headers: &HeaderMap) -> Result<Format, Problem> {
    context::negotiate(headers).ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_ACCEPTABLE,
            "NotAcceptable",
            "this endpoint answers application/json or application/ld+json",
        )
    })
}

async fn readable(state: &AppState, principal: &Principal) -> Result<Vec<Scoped>, Problem> {
    let namespaces = principal.namespaces(Action::Read);
    let mut all = view::continuum(&state.desired).await?;
    all.retain(|scoped| view::visible(scoped, &namespaces));
    Ok(all)
}

pub async fn query_entities(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    params: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, Problem> {
    let format = accepted(&headers)?;
    let Query(params) = params.map_err(|e| Problem::bad_request(e.body_text()))?;
    let selection = Selection::parse(&params)?;
    let mut selected = readable(&state, &principal).await?;
    selected.retain(|scoped| selection.selects(&scoped.entity));
    let total = selected.len();
    let page: Vec<Value> = selected
        .iter()
        .skip(selection.offset)
        .take(selection.limit)
        .map(|s| {
            body(
                &s.entity,
                selection.attrs.as_deref(),
                selection.key_values,
                format,
            )
        })
        .collect();
    let mut response = context::finish(format, Value::Array(page));
    if selection.count
        && let Ok(value) = HeaderValue::from_str(&total.to_string())
    {
        response.headers_mut().insert(COUNT_HEADER, value);
    }
    Ok(response)
}

pub async fn retrieve_entity(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    params: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, Problem> {
    let format = accepted(&headers)?;
    let Path(id) = path.map_err(|e| Problem::bad_request(e.body_text()))?;
    let Query(params) = params.map_err(|e| Problem::bad_request(e.body_text()))?;
    let selection = Selection::parse(&params)?;
    // One the caller may not read is as absent as one that does not exist.
    let found = readable(&state, &principal)
        .await?
        .into_iter()
        .find(|s| s.entity.id == id)
        .ok_or_else(|| Problem::not_found(format!("no entity {id:?}")))?;
    let entity = body(
        &found.entity,
        selection.attrs.as_deref(),
        selection.key_values,
        format,
    );
    Ok(context::finish(format, entity))
}

pub async fn types(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let format = accepted(&headers)?;
    let present = readable(&state, &principal).await?;
    let list: Vec<&str> = TYPES
        .into_iter()
        .filter(|t| present.iter().any(|s| s.entity.kind == *t))
        .collect();
    let mut body = json!({
        "id": "urn:ngsi-ld:EntityTypeList:canopy",
        "type": "EntityTypeList",
        "typeList": list,
    });
    if format == Format::JsonLd {
        body["@context"] = context::reference();
    }
    Ok(context::finish(format, body))
}
