//! The OpenAPI document as served at `/openapi.json`: utoipa's, with what its model cannot
//! say added as plain JSON Schema: the descriptor's rules (`canopy_model::schema`), the
//! pattern of the names in paths, the body `apply` takes, and the event stream's frames.

use super::ApiDoc;
use super::rules::{self, Rule};
use serde_json::{Value, json};
use utoipa::OpenApi;

/// Path segments that name a namespace, an application or a service.
const NAME_SEGMENTS: [&str; 3] = ["namespace", "application", "name"];

pub fn document() -> Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    if let Some(schemas) = document
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        let missing = canopy_model::schema::refine(schemas);
        if !missing.is_empty() {
            // A type lost a field its rules name; the OpenAPI test fails on this too.
            tracing::error!(?missing, "descriptor rules name fields the schema lacks");
        }
        schemas.insert("Descriptor".into(), descriptor());
        flatten_application_view(schemas);
        token_request(schemas);
    }
    if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
        for operations in paths.values_mut() {
            selector_parameters(operations);
        }
        for (path, operations) in paths.iter_mut() {
            if ![
                "/api/v1/applications/",
                "/api/v1/services/",
                "/api/v1/namespaces/",
            ]
            .iter()
            .any(|prefix| path.starts_with(prefix))
            {
                continue;
            }
            name_parameters(operations);
        }
    }
    security(&mut document);
    if let Some(stream) = document
        .pointer_mut("/paths/~1api~1v1~1events/get/responses/200/content/text~1event-stream/schema")
    {
        *stream = event_stream();
    }
    document
}

/// A token request is a join token's (`join`) or an API token's (`role`): exactly one of
/// the two, and neither may be null (serde reads a null as absent).
fn token_request(schemas: &mut serde_json::Map<String, Value>) {
    const JOIN_TTL_MAX: u64 = super::joins::MAX_TTL.as_secs();
    const API_TTL_MAX: i64 = crate::auth::API_TOKEN_MAX;
    let Some(request) = schemas.get_mut("TokenRequest") else {
        return;
    };
    // What the handler refuses, said in the schema: a cluster token has no `cluster` or
    // `uses`; a node token names its cluster, and one for several joins names no member;
    // join tokens belong to no namespace; an API token says nothing a join token says.
    let absent = json!({"type": "null"});
    request["oneOf"] = json!([
        {"required": ["join"], "properties": {"join": {"const": "cluster"},
            "cluster": absent, "uses": absent, "role": absent, "namespace": absent,
            "ttl_seconds": {"maximum": JOIN_TTL_MAX}}},
        {"required": ["join", "cluster"], "properties": {"join": {"const": "node"},
            "cluster": {"type": "string"}, "role": absent, "namespace": absent,
            "ttl_seconds": {"maximum": JOIN_TTL_MAX}},
         "anyOf": [{"properties": {"name": absent}},
                   {"properties": {"uses": {"anyOf": [absent, {"const": 1}]}}}]},
        {"required": ["role"], "properties": {"join": absent, "cluster": absent, "uses": absent,
            "name": absent, "ttl_seconds": {"maximum": API_TTL_MAX}}},
    ]);
    for field in ["join", "role"] {
        if let Some(property) = request["properties"].get_mut(field) {
            not_null(property);
        }
    }
}

/// `property` without the null that utoipa adds for an `Option`.
fn not_null(property: &mut Value) {
    if let Some(types) = property.get_mut("type").and_then(Value::as_array_mut) {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            property["type"] = types[0].clone();
        }
    }
    let variants = property.get("oneOf").and_then(Value::as_array).map(|all| {
        all.iter()
            .filter(|v| v.get("type") != Some(&json!("null")))
            .cloned()
            .collect::<Vec<_>>()
    });
    if let (Some(object), Some(variants)) = (property.as_object_mut(), variants) {
        object.remove("oneOf");
        if let [only] = variants.as_slice()
            && let Some(only) = only.as_object()
        {
            object.extend(only.clone());
        } else {
            object.insert("oneOf".into(), Value::Array(variants));
        }
    }
}

/// The bearer scheme, and on each operation what its rule (`rules::RULES`) implies: which
/// need a token, and their 401 and 403 answers.
fn security(document: &mut Value) {
    document["components"]["securitySchemes"] =
        json!({"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}});
    let error = json!({"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}});
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, operations) in paths.iter_mut() {
        let Some(operations) = operations.as_object_mut() else {
            continue;
        };
        for (method, operation) in operations.iter_mut() {
            let method = axum::http::Method::from_bytes(method.to_uppercase().as_bytes());
            let rule = method.ok().and_then(|m| rules::rule_for(&m, path));
            match rule {
                None | Some(Rule::Public) => operation["security"] = json!([]),
                Some(_) => {
                    operation["security"] = json!([{"bearer": []}]);
                    let responses = &mut operation["responses"];
                    if responses.get("401").is_none() {
                        responses["401"] = json!({
                            "description": "No token, or one that is invalid, expired or revoked",
                            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
                            "content": error.clone(),
                        });
                    }
                    if responses.get("403").is_none() {
                        responses["403"] = json!({
                            "description": "The caller's roles do not allow this (here, or in this namespace)",
                            "content": error.clone(),
                        });
                    }
                }
            }
        }
    }
}

/// Calls `patch` on every parameter of every operation of one path.
fn each_parameter(operations: &mut Value, patch: impl Fn(&mut Value)) {
    let Some(operations) = operations.as_object_mut() else {
        return;
    };
    for operation in operations.values_mut() {
        if let Some(parameters) = operation
            .get_mut("parameters")
            .and_then(Value::as_array_mut)
        {
            parameters.iter_mut().for_each(&patch);
        }
    }
}

/// `labelSelector` takes the selector grammar (`canopy_model::Selector`), not any text.
fn selector_parameters(operations: &mut Value) {
    each_parameter(operations, |parameter| {
        if parameter["in"] == "query" && parameter["name"] == "labelSelector" {
            parameter["schema"]["pattern"] = canopy_model::patterns::label_selector().into();
        }
    });
}

fn name_parameters(operations: &mut Value) {
    each_parameter(operations, |parameter| {
        let named = parameter["in"] == "path"
            && NAME_SEGMENTS
                .iter()
                .any(|segment| parameter["name"] == *segment);
        if named {
            parameter["schema"] = canopy_model::schema::name_parameter();
        }
    });
}

/// `ApplicationView` is an application's fields and `status` in one object (serde's
/// `flatten`). utoipa says `allOf: [Application, {status}]`, which no object can match, since
/// `Application` allows no other property: spell the fields out instead.
fn flatten_application_view(schemas: &mut serde_json::Map<String, Value>) {
    let Some(application) = schemas.get("Application").cloned() else {
        return;
    };
    let mut view = application;
    view["description"] =
        json!("An application as the API shows it: the descriptor plus its status.");
    view["properties"]["status"] = json!({"$ref": "#/components/schemas/ApplicationStatus"});
    if let Some(required) = view["required"].as_array_mut() {
        required.push(json!("status"));
    }
    schemas.insert("ApplicationView".into(), view);
}

/// One application, or several in a JSON array.
fn descriptor() -> Value {
    let application = json!({"$ref": "#/components/schemas/Application"});
    json!({
        "description": "One application, or several (a JSON array; in YAML, several documents). An Oakestra SLA v2 or an aeriOS TOSCA service descriptor is also read.",
        "oneOf": [
            application,
            {"type": "array", "minItems": 1,
             "maxItems": canopy_model::limits::MAX_APPLICATIONS_PER_DESCRIPTOR,
             "items": application},
        ],
    })
}

/// The stream is text; each event's `data:` line is a ChangeEvent.
fn event_stream() -> Value {
    json!({
        "type": "string",
        "contentMediaType": "text/event-stream",
        "description": "Server-Sent Events, separated by blank lines: `id: <revision>`, `event: <kind>.<action>`, `data: <ChangeEvent as JSON>`; comment lines (`:`) keep the connection alive.",
        "x-event-data": {"$ref": "#/components/schemas/ChangeEvent"},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_descriptor_rule_finds_its_field() {
        let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let schemas = document["components"]["schemas"].as_object_mut().unwrap();
        assert_eq!(canopy_model::schema::refine(schemas), Vec::<String>::new());
    }

    #[test]
    fn the_served_document_has_the_rules_and_the_stream() {
        let document = document();
        let schemas = &document["components"]["schemas"];
        assert_eq!(
            schemas["Application"]["properties"]["apiVersion"]["const"],
            "canopy.dev/v1"
        );
        assert!(schemas["Metadata"]["properties"]["name"]["pattern"].is_string());
        assert!(schemas["Descriptor"]["oneOf"].is_array());
        assert_eq!(
            schemas["ApplicationView"]["properties"]["status"]["$ref"],
            "#/components/schemas/ApplicationStatus"
        );
        let get = &document["paths"]["/api/v1/applications/{namespace}/{name}"]["get"];
        assert_eq!(get["security"][0]["bearer"], json!([]));
        assert!(get["responses"]["401"]["content"].is_object());
        assert!(get["responses"]["403"]["content"].is_object());
        assert_eq!(
            document["paths"]["/api/v1/login"]["post"]["security"],
            json!([])
        );
        assert_eq!(document["paths"]["/healthz"]["get"]["security"], json!([]));
        let parameter = &get["parameters"][0];
        assert_eq!(
            parameter["schema"]["pattern"],
            schemas["Metadata"]["properties"]["name"]["pattern"]
        );
    }
}
