//! Hostile YAML (the attacks of the security review) is refused with an error naming the bound,
//! before the YAML parser does work quadratic in the input or expands aliases without end.

use canopy_model::*;

fn refused(text: &str) -> Vec<FieldError> {
    match parse_descriptor(text) {
        Ok(p) => panic!("expected a refusal, parsed {:#?}", p.applications),
        Err(e) => e.errors,
    }
}

/// `a: [[[…` of 200 KB took about 40 s of CPU in the parser: now refused by the pre-scan.
#[test]
fn deep_flow_nesting_is_refused_naming_the_limit() {
    let text = format!("a: {}", "[".repeat(200 * 1024));
    let errors = refused(&text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].path, "");
    assert!(
        errors[0]
            .reason
            .contains(&format!("deeper than {MAX_YAML_FLOW_DEPTH} flow levels")),
        "{errors:#?}"
    );
}

/// One 500 KB scalar referenced 10,000 times made the root allocate about 5 GB.
#[test]
fn an_alias_bomb_of_one_large_scalar_is_refused_naming_the_expanded_size() {
    let mut text = format!("big: &b {}\nl:\n", "x".repeat(500 * 1024));
    for _ in 0..10_000 {
        text.push_str("- *b\n");
    }
    assert!(text.len() < MAX_DESCRIPTOR_BYTES);
    let errors = refused(&text);
    assert!(
        errors[0].reason.contains("aliases")
            && (errors[0]
                .reason
                .contains(&MAX_YAML_EXPANDED_BYTES.to_string())
                || errors[0].reason.contains(&MAX_YAML_ALIASES.to_string())),
        "{errors:#?}"
    );
    // Few aliases of a large scalar are refused on size alone, not on their count.
    let mut text = format!("big: &b {}\nl:\n", "x".repeat(500 * 1024));
    for _ in 0..20 {
        text.push_str("- *b\n");
    }
    let errors = refused(&text);
    assert!(
        errors[0]
            .reason
            .contains(&format!("the limit is {MAX_YAML_EXPANDED_BYTES} bytes")),
        "{errors:#?}"
    );
}

/// An ordinary descriptor with anchors and aliases still parses.
#[test]
fn anchors_in_an_ordinary_descriptor_still_work() {
    let text = r#"
apiVersion: canopy.dev/v1
kind: Application
metadata:
  name: hello
spec:
  services:
    - name: a
      runtime: process
      command: &cmd ["/bin/echo", "hi"]
    - name: b
      runtime: process
      command: *cmd
"#;
    let parsed = parse_descriptor(text).unwrap();
    let services = &parsed.applications[0].spec.services;
    assert_eq!(services[0].command, services[1].command);
}

/// Nesting just under the limit is not refused by the pre-scan (the parser then judges it).
#[test]
fn nesting_at_the_limit_passes_the_pre_scan() {
    let inner = format!(
        "{}{}",
        "[".repeat(MAX_YAML_FLOW_DEPTH),
        "]".repeat(MAX_YAML_FLOW_DEPTH)
    );
    assert_eq!(check_yaml_bounds(&format!("a: {inner}")), Ok(()));
    let over = format!(
        "{}{}",
        "[".repeat(MAX_YAML_FLOW_DEPTH + 1),
        "]".repeat(MAX_YAML_FLOW_DEPTH + 1)
    );
    assert!(check_yaml_bounds(&format!("a: {over}")).is_err());
}
