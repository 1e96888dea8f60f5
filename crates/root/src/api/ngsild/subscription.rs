//! An NGSI-LD subscription (ETSI GS CIM 009 §5.2.12), the part Canopy honours: entity
//! selectors (`type`, `id`, `idPattern`), `watchedAttributes`, `q`, `isActive`, and an
//! HTTP `notification.endpoint`. Members it does not honour (`expiresAt`, `throttling`,
//! `geoQ`, ...) are refused by name rather than ignored. Pure: validation and matching.

use super::entities::pattern;
use super::entity::Entity;
use super::query;
use crate::auth::Grant;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How many subscriptions one root keeps (each is matched against every change).
pub const MAX_SUBSCRIPTIONS: usize = 1000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Subscription {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default = "subscription_type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<EntitySelector>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watched_attributes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    #[serde(default = "active")]
    pub is_active: bool,
    pub notification: NotificationParams,
    /// The context the client sent (kept, answered back; Canopy's terms are fixed).
    #[serde(rename = "@context", default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
}

fn subscription_type() -> String {
    "Subscription".into()
}

fn active() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EntitySelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_pattern: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotificationParams {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<String>,
    #[serde(default = "normalized")]
    pub format: String,
    pub endpoint: Endpoint,
}

fn normalized() -> String {
    "normalized".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Endpoint {
    pub uri: String,
    #[serde(default = "json_type")]
    pub accept: String,
}

fn json_type() -> String {
    "application/json".into()
}

/// A subscription as the store keeps it: who made it, with which grants (notifications
/// show what those grants read, while their owner could still hand them on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionRecord {
    pub subscription: Subscription,
    pub owner: String,
    pub grants: Vec<Grant>,
}

/// Problems of a subscription, each naming its member.
pub fn problems(subscription: &Subscription) -> Vec<String> {
    let mut problems = Vec::new();
    if subscription.kind != "Subscription" {
        problems.push(format!(
            "type must be \"Subscription\", got {:?}",
            subscription.kind
        ));
    }
    if let Some(id) = &subscription.id
        && !is_uri(id)
    {
        problems.push(format!(
            "id must be a URI such as urn:ngsi-ld:Subscription:x, got {id:?}"
        ));
    }
    if subscription.entities.is_empty() && subscription.watched_attributes.is_empty() {
        problems.push("entities or watchedAttributes must be present".into());
    }
    for (i, selector) in subscription.entities.iter().enumerate() {
        if selector.id.is_none() && selector.id_pattern.is_none() && selector.kind.is_none() {
            problems.push(format!(
                "entities[{i}] selects nothing: give type, id or idPattern"
            ));
        }
        if let Some(p) = &selector.id_pattern
            && let Err(e) = pattern(p)
        {
            problems.push(format!("entities[{i}].idPattern: {e}"));
        }
    }
    if let Some(q) = &subscription.q
        && let Err(e) = query::percent_decoded(q).and_then(|q| query::parse(&q))
    {
        problems.push(format!("q: {e}"));
    }
    let notification = &subscription.notification;
    if !matches!(notification.format.as_str(), "normalized" | "keyValues") {
        problems.push(format!(
            "notification.format must be normalized or keyValues, got {:?}",
            notification.format
        ));
    }
    if !matches!(
        notification.endpoint.accept.as_str(),
        "application/json" | "application/ld+json"
    ) {
        problems.push(format!(
            "notification.endpoint.accept must be application/json or application/ld+json, got {:?}",
            notification.endpoint.accept
        ));
    }
    match reqwest::Url::parse(&notification.endpoint.uri) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
        _ => problems.push(format!(
            "notification.endpoint.uri must be an http(s) URL, got {:?}",
            notification.endpoint.uri
        )),
    }
    problems
}

fn is_uri(text: &str) -> bool {
    text.split_once(':')
        .is_some_and(|(scheme, rest)| !scheme.is_empty() && !rest.is_empty())
        && !text.contains(['/', '?', '#', ' '])
}

/// Whether a change of one entity (`before` → `after`) is worth a notification.
pub fn notifies(subscription: &Subscription, before: Option<&Entity>, after: &Entity) -> bool {
    if !subscription.is_active {
        return false;
    }
    let selected = subscription.entities.is_empty()
        || subscription
            .entities
            .iter()
            .any(|selector| selects(selector, after));
    if !selected {
        return false;
    }
    let changed =
        |name: &String| before.and_then(|b| b.attributes.get(name)) != after.attributes.get(name);
    let watched_changed = if subscription.watched_attributes.is_empty() {
        before.is_none_or(|b| b.attributes != after.attributes)
    } else {
        subscription.watched_attributes.iter().any(changed)
    };
    if !watched_changed {
        return false;
    }
    // Validated at creation; a query that no longer parses matches nothing.
    subscription.q.as_ref().is_none_or(|q| {
        query::percent_decoded(q)
            .and_then(|q| query::parse(&q))
            .is_ok_and(|q| q.matches(after))
    })
}

fn selects(selector: &EntitySelector, entity: &Entity) -> bool {
    selector.kind.as_ref().is_none_or(|k| k == entity.kind)
        && selector.id.as_ref().is_none_or(|id| *id == entity.id)
        && selector
            .id_pattern
            .as_ref()
            .is_none_or(|p| pattern(p).is_ok_and(|re| re.is_match(&entity.id)))
}

#[cfg(test)]
#[path = "subscription_tests.rs"]
mod tests;
