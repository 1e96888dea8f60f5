use super::*;
use serde_json::json;

fn subscription(body: Value) -> Subscription {
    serde_json::from_value(body).unwrap()
}

/// What ngsildclient's `SubscriptionBuilder` sends.
fn components_on_status() -> Subscription {
    subscription(json!({
        "type": "Subscription",
        "entities": [{"type": "ServiceComponent"}],
        "watchedAttributes": ["serviceComponentStatus"],
        "isActive": true,
        "notification": {"format": "normalized",
            "endpoint": {"uri": "http://127.0.0.1:9/notify", "accept": "application/ld+json"}},
        "@context": "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
    }))
}

fn component(status: &str, restarts: u32) -> Entity {
    let mut e = Entity::new("ServiceComponent", "urn:ngsi-ld:ServiceComponent:i1".into());
    e.property("serviceComponentStatus", status)
        .property("restarts", restarts);
    e
}

#[test]
fn a_watched_attribute_that_changes_notifies_and_others_do_not() {
    let s = components_on_status();
    assert!(problems(&s).is_empty(), "{:?}", problems(&s));
    let pending = component("Pending", 0);
    assert!(notifies(&s, None, &pending), "a new entity");
    assert!(notifies(&s, Some(&pending), &component("Running", 0)));
    assert!(!notifies(&s, Some(&pending), &component("Pending", 1)));
    let mut other = component("Running", 0);
    other.kind = "Service";
    assert!(!notifies(&s, None, &other), "another type");
    let inactive = Subscription {
        is_active: false,
        ..components_on_status()
    };
    assert!(!notifies(&inactive, None, &pending));
}

#[test]
fn without_watched_attributes_any_change_notifies_and_q_narrows() {
    let s = subscription(json!({
        "entities": [{"idPattern": "^urn:ngsi-ld:ServiceComponent:"}],
        "q": "serviceComponentStatus%3D%3D%22Running%22",
        "notification": {"endpoint": {"uri": "https://example.org/n"}}
    }));
    assert!(problems(&s).is_empty(), "{:?}", problems(&s));
    assert_eq!(s.notification.format, "normalized");
    let running = component("Running", 0);
    assert!(notifies(&s, Some(&component("Starting", 0)), &running));
    assert!(notifies(&s, Some(&running), &component("Running", 1)));
    assert!(!notifies(&s, Some(&running), &running), "nothing changed");
    assert!(
        !notifies(&s, None, &component("Failed", 0)),
        "q does not hold"
    );
}

#[test]
fn bad_subscriptions_name_each_problem() {
    let s = subscription(json!({
        "id": "not a uri",
        "type": "Sub",
        "entities": [{}, {"idPattern": "("}],
        "q": "a==",
        "notification": {"format": "compact",
            "endpoint": {"uri": "file:///etc/passwd", "accept": "text/html"}}
    }));
    let found = problems(&s).join("\n");
    for expected in [
        "type must be",
        "id must be a URI",
        "entities[0] selects nothing",
        "entities[1].idPattern",
        "q: ",
        "notification.format",
        "notification.endpoint.accept",
        "notification.endpoint.uri",
    ] {
        assert!(found.contains(expected), "{expected} in {found}");
    }
    let nothing = subscription(json!({"notification": {"endpoint": {"uri": "http://x/"}}}));
    assert!(problems(&nothing)[0].contains("entities or watchedAttributes"));
}

#[test]
fn unsupported_members_are_refused_by_name() {
    let error = serde_json::from_value::<Subscription>(json!({
        "entities": [{"type": "Domain"}], "throttling": 5,
        "notification": {"endpoint": {"uri": "http://x/"}}
    }))
    .unwrap_err();
    assert!(error.to_string().contains("throttling"), "{error}");
}
