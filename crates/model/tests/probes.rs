//! Health probes and rollout strategies in descriptors: spelled as Kubernetes spells them,
//! defaults filled in, every problem named by its field path.

use canopy_model::*;

fn service(extra: &str) -> String {
    format!(
        "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {{name: app}}\nspec:\n  services:\n\
         \x20 - name: web\n    runtime: process\n    command: [/srv/web]\n{extra}"
    )
}

fn errors(extra: &str) -> Vec<FieldError> {
    match parse_descriptor(&service(extra)) {
        Ok(_) => Vec::new(),
        Err(e) => e.errors,
    }
}

#[test]
fn probes_parse_with_kubernetes_defaults() {
    let parsed = parse_descriptor(&service(
        "    livenessProbe: {exec: {command: [cat, /tmp/healthy]}}\n\
         \x20   readinessProbe: {httpGet: {port: 8080}, periodSeconds: 2, successThreshold: 2}\n\
         \x20   startupProbe: {tcpSocket: {port: 8080}, failureThreshold: 30}\n\
         \x20   strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 2, maxUnavailable: \"10%\"}}\n",
    ))
    .expect("valid");
    let spec = &parsed.applications[0].spec.services[0];
    let liveness = spec.liveness_probe.as_ref().expect("liveness");
    let command = ["cat".to_string(), "/tmp/healthy".to_string()];
    assert_eq!(liveness.handler(), Some(ProbeHandler::Exec(&command[..])));
    assert_eq!(
        (
            liveness.initial_delay_seconds,
            liveness.period_seconds,
            liveness.timeout_seconds,
            liveness.success_threshold,
            liveness.failure_threshold
        ),
        (0, 10, 1, 1, 3)
    );
    let readiness = spec.readiness_probe.as_ref().expect("readiness");
    assert_eq!(
        readiness.handler(),
        Some(ProbeHandler::HttpGet {
            path: "/",
            port: 8080
        })
    );
    assert_eq!(
        (readiness.period_seconds, readiness.success_threshold),
        (2, 2)
    );
    let startup = spec.startup_probe.as_ref().expect("startup");
    assert_eq!(
        startup.handler(),
        Some(ProbeHandler::TcpSocket { port: 8080 })
    );
    let strategy = spec.strategy.as_ref().expect("strategy");
    assert_eq!(strategy.bounds(20), (2, 2));
    // The strategy says how to roll, not what runs: it leaves the template hash alone.
    let mut without = spec.clone();
    without.strategy = None;
    assert_eq!(without.template_hash(), spec.template_hash());
    without.readiness_probe = None;
    assert_ne!(without.template_hash(), spec.template_hash());
}

#[test]
fn every_probe_and_strategy_rule_names_its_field() {
    let rows: &[(&str, &str, &str)] = &[
        (
            "    livenessProbe: {periodSeconds: 1}\n",
            "spec.services[0].livenessProbe",
            "exactly one of exec, httpGet and tcpSocket, got 0",
        ),
        (
            "    readinessProbe: {tcpSocket: {port: 1}, httpGet: {port: 1}}\n",
            "spec.services[0].readinessProbe",
            "got 2",
        ),
        (
            "    livenessProbe: {exec: {command: []}}\n",
            "spec.services[0].livenessProbe.exec.command",
            "must not be empty",
        ),
        (
            "    readinessProbe: {httpGet: {path: healthz, port: 80}}\n",
            "spec.services[0].readinessProbe.httpGet.path",
            "must start with '/'",
        ),
        (
            "    readinessProbe: {httpGet: {port: 0}}\n",
            "spec.services[0].readinessProbe.httpGet.port",
            ">= 1",
        ),
        (
            "    startupProbe: {tcpSocket: {port: 0}}\n",
            "spec.services[0].startupProbe.tcpSocket.port",
            ">= 1",
        ),
        (
            "    readinessProbe: {tcpSocket: {port: 80}, periodSeconds: 0}\n",
            "spec.services[0].readinessProbe.periodSeconds",
            "must be in [1, 3600], got 0",
        ),
        (
            "    readinessProbe: {tcpSocket: {port: 80}, timeoutSeconds: 3601}\n",
            "spec.services[0].readinessProbe.timeoutSeconds",
            "must be in [1, 3600]",
        ),
        (
            "    readinessProbe: {tcpSocket: {port: 80}, failureThreshold: 0}\n",
            "spec.services[0].readinessProbe.failureThreshold",
            "must be in [1, 1000]",
        ),
        (
            "    livenessProbe: {tcpSocket: {port: 80}, successThreshold: 2}\n",
            "spec.services[0].livenessProbe.successThreshold",
            "must be 1 for liveness and startup probes",
        ),
        (
            "    strategy: {type: Recreate, rollingUpdate: {maxSurge: 1}}\n",
            "spec.services[0].strategy.rollingUpdate",
            "only applies to type RollingUpdate",
        ),
        (
            "    strategy: {rollingUpdate: {maxSurge: 0, maxUnavailable: \"0%\"}}\n",
            "spec.services[0].strategy.rollingUpdate.maxUnavailable",
            "must not be 0 when maxSurge is 0",
        ),
    ];
    let mut failures = Vec::new();
    for (extra, path, reason) in rows {
        let errors = errors(extra);
        let hit = errors
            .iter()
            .any(|e| e.path == *path && e.reason.contains(reason));
        if !hit || errors.len() != 1 {
            failures.push(format!(
                "{extra}: expected only {path}: …{reason}…, got {errors:#?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_module_has_nothing_to_exec_in() {
    let text = "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {name: app}\nspec:\n  services:\n\
                \x20 - name: filter\n    runtime: wasm\n    module: file:///m.wasm\n\
                \x20   livenessProbe: {exec: {command: [/bin/true]}}\n";
    let errors = parse_descriptor(text)
        .err()
        .map(|e| e.errors)
        .unwrap_or_default();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].path, "spec.services[0].livenessProbe.exec");
}

#[test]
fn a_share_that_is_not_a_count_or_percentage_is_refused() {
    for bad in ["\"25\"", "\"150%\"", "-1", "\"x%\""] {
        let extra = format!("    strategy: {{rollingUpdate: {{maxSurge: {bad}}}}}\n");
        assert!(
            parse_descriptor(&service(&extra)).is_err(),
            "{bad} was accepted"
        );
    }
}

#[test]
fn a_module_has_no_sockets_to_publish_or_probe() {
    let text = "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {name: app}\nspec:\n  services:\n\
                \x20 - name: filter\n    runtime: wasm\n    module: registry.local/filter:1\n\
                \x20   ports: [{port: 80}, {port: 53, protocol: udp, hostPort: 5353}]\n\
                \x20   readinessProbe: {httpGet: {path: /, port: 80}}\n\
                \x20   livenessProbe: {tcpSocket: {port: 80}}\n";
    let errors = parse_descriptor(text)
        .err()
        .map(|e| e.errors)
        .unwrap_or_default();
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "spec.services[0].ports[0]",
            "spec.services[0].ports[1]",
            "spec.services[0].livenessProbe.tcpSocket",
            "spec.services[0].readinessProbe.httpGet",
        ],
        "{errors:#?}"
    );
    assert!(
        errors.iter().all(|e| e.reason.contains("no sockets")),
        "{errors:#?}"
    );
}
