//! An NGSI-LD entity in its normalised form (ETSI GS CIM 009 §4.5): `id`, `type`, and each
//! attribute a Property, Relationship or GeoProperty object. Pure values, no I/O.

use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// One entity. Attributes are kept sorted so that two views of the same object compare
/// equal (what the notifier diffs).
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub id: String,
    pub kind: &'static str,
    pub attributes: BTreeMap<String, Value>,
}

impl Entity {
    pub fn new(kind: &'static str, id: String) -> Entity {
        Entity {
            id,
            kind,
            attributes: BTreeMap::new(),
        }
    }

    /// Adds a Property holding `value`.
    pub fn property(&mut self, name: &str, value: impl Into<Value>) -> &mut Entity {
        self.attributes.insert(
            name.to_string(),
            json!({"type": "Property", "value": value.into()}),
        );
        self
    }

    /// Adds a Relationship to the entity `object` (a URN).
    pub fn relationship(&mut self, name: &str, object: String) -> &mut Entity {
        self.attributes.insert(
            name.to_string(),
            json!({"type": "Relationship", "object": object}),
        );
        self
    }

    /// Adds a GeoProperty holding a GeoJSON point (longitude first, as GeoJSON orders it).
    pub fn point(&mut self, name: &str, lat: f64, lon: f64) -> &mut Entity {
        self.attributes.insert(
            name.to_string(),
            json!({"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}),
        );
        self
    }

    /// What a query or a subscription's `q` compares: a Property's value, a
    /// Relationship's object, a GeoProperty's GeoJSON.
    pub fn value_of(&self, attribute: &str) -> Option<&Value> {
        let attribute = self.attributes.get(attribute)?;
        attribute.get("value").or_else(|| attribute.get("object"))
    }

    /// The JSON body: only `attrs` when given (id and type always), `@context` when the
    /// answer is JSON-LD.
    pub fn to_json(&self, attrs: Option<&[String]>, context: Option<&Value>) -> Value {
        let mut body = Map::new();
        body.insert("id".into(), Value::String(self.id.clone()));
        body.insert("type".into(), Value::String(self.kind.to_string()));
        for (name, value) in &self.attributes {
            if attrs.is_none_or(|wanted| wanted.iter().any(|w| w == name)) {
                body.insert(name.clone(), value.clone());
            }
        }
        if let Some(context) = context {
            body.insert("@context".into(), context.clone());
        }
        Value::Object(body)
    }
}

/// The URN of an entity: `urn:ngsi-ld:<Type>:<parts joined by ':'>`, as aerOS names them
/// (`urn:ngsi-ld:InfrastructureElement:<domain>:<node>`).
pub fn urn(kind: &str, parts: &[&str]) -> String {
    format!("urn:ngsi-ld:{kind}:{}", parts.join(":"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_keep_their_ngsi_ld_shape_and_projection_keeps_id_and_type() {
        let mut entity = Entity::new("Domain", urn("Domain", &["c1"]));
        entity
            .property("name", "c1")
            .relationship("owner", urn("Organization", &["x"]))
            .point("location", 48.1, 11.5);
        assert_eq!(entity.value_of("name"), Some(&json!("c1")));
        assert_eq!(
            entity.value_of("owner"),
            Some(&json!("urn:ngsi-ld:Organization:x"))
        );
        let full = entity.to_json(None, None);
        assert_eq!(
            full["location"]["value"]["coordinates"],
            json!([11.5, 48.1])
        );
        assert!(full.get("@context").is_none());
        let only = entity.to_json(Some(&["name".to_string()]), Some(&json!(["ctx"])));
        assert_eq!(
            only,
            json!({"id": "urn:ngsi-ld:Domain:c1", "type": "Domain",
                "name": {"type": "Property", "value": "c1"}, "@context": ["ctx"]})
        );
    }
}
