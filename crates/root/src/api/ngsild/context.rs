//! The JSON-LD `@context` Canopy serves for its terms, and how an answer names it: in the
//! body (`application/ld+json`) or in a `Link` header (`application/json`), as ETSI GS CIM
//! 009 §6.3.5 asks. The aerOS data model's terms expand to their Smart Data Model IRIs;
//! Canopy's own to `urn:canopy:ngsi-ld:`.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

pub const CORE_CONTEXT: &str = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld";
/// Where Canopy serves its context (public: JSON-LD processors fetch it without a token).
pub const CONTEXT_PATH: &str = "/ngsi-ld/v1/jsonldContexts/canopy";
const LINK_REL: &str = "http://www.w3.org/ns/json-ld#context";

const DATA_MODEL: &str = "https://smartdatamodels.org/dataModel.IT/";
const CANOPY: &str = "urn:canopy:ngsi-ld:";

/// Terms of the aerOS data model (dataModel.IT) that the entities use.
const MODEL_TERMS: &[&str] = &[
    "Domain",
    "InfrastructureElement",
    "Service",
    "ServiceComponent",
    "domain",
    "domainStatus",
    "hostname",
    "cpuCores",
    "cpuArchitecture",
    "ramCapacity",
    "availableRam",
    "currentCpuUsage",
    "currentRamUsage",
    "gpu",
    "containerTechnology",
    "trustScore",
    "infrastructureElementStatus",
    "infrastructureElement",
    "service",
    "serviceComponentStatus",
];

/// Canopy's own terms.
const CANOPY_TERMS: &[&str] = &[
    "nodeCount",
    "allocatedCpuCores",
    "labels",
    "unschedulable",
    "instanceCount",
    "namespace",
    "application",
    "runtime",
    "artifact",
    "replicas",
    "runningReplicas",
    "readyReplicas",
    "replica",
    "ready",
    "restarts",
    "reason",
];

/// The document served at [`CONTEXT_PATH`].
pub fn document() -> Value {
    let mut terms = Map::new();
    terms.insert("name".into(), json!("https://smartdatamodels.org/name"));
    for term in MODEL_TERMS {
        terms.insert(term.to_string(), json!(format!("{DATA_MODEL}{term}")));
    }
    for term in CANOPY_TERMS {
        terms.insert(term.to_string(), json!(format!("{CANOPY}{term}")));
    }
    // `labels` is a JSON object, not a graph of nodes.
    terms.insert(
        "labels".into(),
        json!({"@id": format!("{CANOPY}labels"), "@type": "@json"}),
    );
    json!({ "@context": [Value::Object(terms), CORE_CONTEXT] })
}

/// What an entity's `@context` holds in a JSON-LD answer.
pub fn reference() -> Value {
    json!([CONTEXT_PATH, CORE_CONTEXT])
}

pub async fn serve() -> Response {
    let mut response = axum::Json(document()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/ld+json"),
    );
    response
}

/// How the caller wants the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/ld+json`: `@context` in the body.
    JsonLd,
    /// `application/json` (or anything): the context in a `Link` header.
    Json,
}

/// The format from `Accept`; `None` when it accepts neither JSON nor JSON-LD (406).
pub fn negotiate(headers: &HeaderMap) -> Option<Format> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(Format::Json);
    };
    let types: Vec<&str> = accept
        .split(',')
        .map(|t| t.split(';').next().unwrap_or("").trim())
        .collect();
    if types.contains(&"application/ld+json") {
        Some(Format::JsonLd)
    } else if types
        .iter()
        .any(|t| matches!(*t, "application/json" | "application/*" | "*/*"))
    {
        Some(Format::Json)
    } else {
        None
    }
}

/// The answer's body context (JSON-LD) or its headers (JSON).
pub fn finish(format: Format, body: Value) -> Response {
    match format {
        Format::JsonLd => {
            let mut response = axum::Json(body).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/ld+json"),
            );
            response
        }
        Format::Json => {
            let mut response = axum::Json(body).into_response();
            let link = format!(r#"<{CONTEXT_PATH}>; rel="{LINK_REL}"; type="application/ld+json""#);
            if let Ok(value) = HeaderValue::from_str(&link) {
                response.headers_mut().insert(header::LINK, value);
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_ld_is_chosen_only_when_asked_for_and_other_types_are_refused() {
        let accept = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
            negotiate(&headers)
        };
        assert_eq!(negotiate(&HeaderMap::new()), Some(Format::Json));
        assert_eq!(accept("application/ld+json"), Some(Format::JsonLd));
        assert_eq!(
            accept("application/json, application/ld+json;q=0.9"),
            Some(Format::JsonLd)
        );
        assert_eq!(accept("application/json"), Some(Format::Json));
        assert_eq!(accept("*/*"), Some(Format::Json));
        assert_eq!(accept("text/html"), None);
    }

    #[test]
    fn every_attribute_the_mapping_writes_has_a_term() {
        let document = document();
        let terms = document["@context"][0].as_object().unwrap();
        for term in [
            "Domain",
            "hostname",
            "serviceComponentStatus",
            "labels",
            "restarts",
        ] {
            assert!(terms.contains_key(term), "{term}");
        }
        assert_eq!(document["@context"][1], CORE_CONTEXT);
    }
}
