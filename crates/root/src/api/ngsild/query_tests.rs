use super::*;
use crate::api::ngsild::entity::Entity;
use serde_json::json;

fn element() -> Entity {
    let mut e = Entity::new(
        "InfrastructureElement",
        "urn:ngsi-ld:InfrastructureElement:edge:n1".into(),
    );
    e.property("hostname", "n1")
        .property("cpuCores", 4.0)
        .property("ramCapacity", 8192)
        .property("infrastructureElementStatus", "Ready")
        .property("gpu", false)
        .property("containerTechnology", json!(["container", "wasm"]))
        .property("labels", json!({"zone": "a", "tier": {"name": "edge"}}))
        .relationship("domain", "urn:ngsi-ld:Domain:edge".into());
    e
}

fn holds(q: &str) -> bool {
    parse(q)
        .unwrap_or_else(|e| panic!("{q}: {e}"))
        .matches(&element())
}

#[test]
fn equality_on_strings_numbers_booleans_and_relationships() {
    assert!(holds(r#"infrastructureElementStatus=="Ready""#));
    assert!(holds("infrastructureElementStatus==Ready"));
    assert!(!holds(r#"infrastructureElementStatus=="Disabled""#));
    assert!(holds("cpuCores==4"));
    assert!(holds("gpu==false"));
    assert!(holds(r#"domain=="urn:ngsi-ld:Domain:edge""#));
    assert!(holds(r#"hostname!="n2""#));
    assert!(!holds(r#"hostname!="n1""#));
}

#[test]
fn numeric_comparisons_and_ranges() {
    assert!(holds("ramCapacity>=8192"));
    assert!(!holds("ramCapacity>8192"));
    assert!(holds("cpuCores<4.5"));
    assert!(!holds("cpuCores<=3"));
    assert!(holds("ramCapacity==4096..16384"));
    assert!(!holds("ramCapacity!=4096..16384"));
    // A number never orders against a string.
    assert!(!holds(r#"ramCapacity>"a""#));
}

#[test]
fn and_or_parentheses_and_presence() {
    assert!(holds(r#"hostname=="n1";cpuCores>2"#));
    assert!(!holds(r#"hostname=="n1";cpuCores>8"#));
    assert!(holds(r#"hostname=="n9"|cpuCores>2"#));
    assert!(holds(r#"(hostname=="n9"|hostname=="n1");gpu==false"#));
    assert!(holds("labels"));
    assert!(!holds("location"));
}

#[test]
fn lists_members_arrays_and_patterns() {
    assert!(holds(r#"hostname=="n0","n1""#));
    assert!(!holds(r#"hostname=="n0","n2""#));
    assert!(holds(r#"labels[zone]=="a""#));
    assert!(holds(r#"labels[tier.name]=="edge""#));
    assert!(!holds(r#"labels[region]=="a""#));
    assert!(holds(r#"containerTechnology=="wasm""#));
    assert!(holds(r#"hostname~="^n[0-9]$""#));
    assert!(holds(r#"hostname!~="^x""#));
}

#[test]
fn malformed_queries_say_where() {
    for (q, expected) in [
        ("", "attribute name"),
        ("hostname=", "unexpected"),
        ("hostname==", "needs a value"),
        ("(hostname==a", "missing ')'"),
        ("labels[zone==a", "missing ']'"),
        ("hostname~=\"(\"", "invalid pattern"),
    ] {
        let error = parse(q).expect_err(q);
        assert!(error.contains(expected), "{q}: {error}");
    }
    let deep = format!("{}a{}", "(".repeat(20), ")".repeat(20));
    assert!(parse(&deep).unwrap_err().contains("deeper"));
    assert!(parse(&"a;".repeat(3000)).unwrap_err().contains("longer"));
}

#[test]
fn percent_encoded_queries_decode() {
    assert_eq!(
        percent_decoded("serviceComponentStatus%3D%3D%22Running%22").unwrap(),
        r#"serviceComponentStatus=="Running""#
    );
    assert_eq!(percent_decoded("a==1").unwrap(), "a==1");
    assert!(percent_decoded("a%zz").is_err());
}
