use super::*;

fn spec(probes: serde_json::Value) -> ServiceSpec {
    let mut value =
        serde_json::json!({"name": "s", "runtime": "process", "command": ["/bin/true"]});
    if let (Some(into), Some(from)) = (value.as_object_mut(), probes.as_object()) {
        into.extend(from.clone());
    }
    match serde_json::from_value(value) {
        Ok(spec) => spec,
        Err(e) => panic!("test spec: {e}"),
    }
}

fn tcp(extra: serde_json::Value) -> serde_json::Value {
    let mut probe = serde_json::json!({"tcpSocket": {"port": 80}});
    if let (Some(into), Some(from)) = (probe.as_object_mut(), extra.as_object()) {
        into.extend(from.clone());
    }
    probe
}

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn health(probes: serde_json::Value) -> Health {
    match Health::of(&spec(probes)) {
        Some(h) => h,
        None => panic!("no probes"),
    }
}

fn fail() -> Result<(), String> {
    Err("refused".into())
}
const PASS: Result<(), String> = Ok(());

#[test]
fn a_service_without_probes_has_nothing_to_watch() {
    assert!(Health::of(&spec(serde_json::json!({}))).is_none());
}

#[test]
fn readiness_starts_failing_and_passes_after_its_success_threshold() {
    let mut h = health(serde_json::json!({
        "readinessProbe": tcp(serde_json::json!({"successThreshold": 2, "failureThreshold": 2, "periodSeconds": 1}))
    }));
    assert!(!h.ready());
    assert_eq!(h.due(s(0)), [Kind::Readiness]);
    assert_eq!(h.record(Kind::Readiness, PASS, s(0)), Verdict::Healthy);
    assert!(!h.ready(), "one pass of two");
    assert_eq!(h.due(s(0)), []);
    assert_eq!(h.next_due(), Some(s(1)));
    h.record(Kind::Readiness, PASS, s(1));
    assert!(h.ready());
    // One failure of two keeps it ready; the second takes it out; it never restarts.
    assert_eq!(h.record(Kind::Readiness, fail(), s(2)), Verdict::Healthy);
    assert!(h.ready());
    assert_eq!(h.record(Kind::Readiness, fail(), s(3)), Verdict::Healthy);
    assert!(!h.ready());
    for at in 4..20 {
        assert_eq!(h.record(Kind::Readiness, fail(), s(at)), Verdict::Healthy);
    }
    assert!(!h.ready());
}

#[test]
fn liveness_restarts_after_its_failure_threshold_in_a_row_only() {
    let mut h = health(serde_json::json!({
        "livenessProbe": tcp(serde_json::json!({"failureThreshold": 3, "initialDelaySeconds": 5, "periodSeconds": 2}))
    }));
    // Without a readiness probe a started instance is ready; liveness waits its delay.
    assert!(h.ready());
    assert_eq!(h.due(s(4)), []);
    assert_eq!(h.next_due(), Some(s(5)));
    assert_eq!(h.due(s(5)), [Kind::Liveness]);
    h.record(Kind::Liveness, fail(), s(5));
    h.record(Kind::Liveness, fail(), s(7));
    // A pass resets the count.
    h.record(Kind::Liveness, PASS, s(9));
    assert_eq!(h.record(Kind::Liveness, fail(), s(11)), Verdict::Healthy);
    assert_eq!(h.record(Kind::Liveness, fail(), s(13)), Verdict::Healthy);
    assert_eq!(
        h.record(Kind::Liveness, fail(), s(15)),
        Verdict::Restart("liveness probe failed 3 times: refused".into())
    );
}

#[test]
fn a_startup_probe_holds_the_others_off_until_it_passes() {
    let mut h = health(serde_json::json!({
        "startupProbe": tcp(serde_json::json!({"failureThreshold": 10, "periodSeconds": 1})),
        "livenessProbe": tcp(serde_json::json!({"failureThreshold": 1, "periodSeconds": 1})),
        "readinessProbe": tcp(serde_json::json!({"periodSeconds": 1, "initialDelaySeconds": 12})),
    }));
    for at in 0..5 {
        assert_eq!(h.due(s(at)), [Kind::Startup], "at {at}");
        assert_eq!(h.record(Kind::Startup, fail(), s(at)), Verdict::Healthy);
        assert!(!h.ready());
    }
    assert_eq!(h.record(Kind::Startup, PASS, s(5)), Verdict::Healthy);
    // Liveness starts at once; readiness after its own initial delay; startup is done.
    assert_eq!(h.due(s(5)), [Kind::Liveness]);
    assert_eq!(h.next_due(), Some(s(5)));
    assert_eq!(h.due(s(12)), [Kind::Liveness, Kind::Readiness]);
    assert!(!h.ready(), "readiness has not passed yet");
    h.record(Kind::Readiness, PASS, s(12));
    assert!(h.ready());
    assert!(matches!(
        h.record(Kind::Liveness, fail(), s(13)),
        Verdict::Restart(_)
    ));
}

#[test]
fn a_startup_probe_that_keeps_failing_restarts() {
    let mut h = health(serde_json::json!({
        "startupProbe": tcp(serde_json::json!({"failureThreshold": 2, "periodSeconds": 1})),
    }));
    assert!(!h.ready(), "not started yet");
    assert_eq!(h.record(Kind::Startup, fail(), s(0)), Verdict::Healthy);
    assert_eq!(
        h.record(Kind::Startup, Err("timed out".into()), s(1)),
        Verdict::Restart("startup probe failed 2 times: timed out".into())
    );
}

#[test]
fn a_started_instance_without_readiness_is_ready() {
    let mut h = health(serde_json::json!({
        "startupProbe": tcp(serde_json::json!({"periodSeconds": 1})),
    }));
    assert!(!h.ready());
    h.record(Kind::Startup, PASS, s(0));
    assert!(h.ready());
    assert_eq!(h.next_due(), None, "nothing runs after startup");
}

#[test]
fn a_result_for_a_probe_the_service_lacks_changes_nothing() {
    let mut h = health(serde_json::json!({"readinessProbe": tcp(serde_json::json!({}))}));
    assert_eq!(h.record(Kind::Liveness, fail(), s(0)), Verdict::Healthy);
    assert_eq!(h.record(Kind::Startup, fail(), s(0)), Verdict::Healthy);
    assert!(h.probe(Kind::Liveness).is_none());
    assert!(h.probe(Kind::Readiness).is_some());
    // The default period is 10 s.
    h.record(Kind::Readiness, PASS, s(0));
    assert_eq!(h.next_due(), Some(s(10)));
}
