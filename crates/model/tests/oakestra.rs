//! Oakestra SLA v2 → native mapping.

use canopy_model::*;
use serde_json::{Value, json};

fn example() -> ParsedDescriptor {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/oakestra-sla.json"
    ))
    .unwrap();
    parse_descriptor(&text).unwrap()
}

fn has(list: &[FieldError], path: &str, reason: &str) -> bool {
    list.iter()
        .any(|e| e.path == path && e.reason.contains(reason))
}

/// A valid one-microservice SLA to mutate.
fn sla() -> Value {
    json!({
        "sla_version": "v2.0",
        "customerID": "Admin",
        "applications": [{
            "applicationID": "",
            "application_name": "clientsrvr",
            "application_namespace": "test",
            "application_desc": "",
            "microservices": [{
                "microserviceID": "",
                "microservice_name": "server",
                "microservice_namespace": "test",
                "virtualization": "container",
                "cmd": [],
                "memory": 100,
                "vcpus": 1,
                "code": "docker.io/library/nginx:latest",
                "port": "80"
            }]
        }]
    })
}

fn parse(value: &Value) -> Result<ParsedDescriptor, DescriptorError> {
    parse_descriptor(&value.to_string())
}

fn errors(value: &Value) -> Vec<FieldError> {
    match parse(value) {
        Ok(p) => panic!("expected errors, got {:#?}", p.applications),
        Err(e) => e.errors,
    }
}

fn ms(v: &mut Value) -> &mut Value {
    &mut v["applications"][0]["microservices"][0]
}

#[test]
fn example_maps_to_the_expected_native_model() {
    let p = example();
    assert_eq!(p.format, DescriptorFormat::Oakestra);
    assert_eq!(p.applications.len(), 1);
    let app = &p.applications[0];
    assert_eq!(app.api_version, API_VERSION);
    assert_eq!(app.metadata.name, "pipeline");
    assert_eq!(app.metadata.namespace, "test");
    assert_eq!(
        app.metadata.annotations["description"],
        "Video analytics pipeline, imported from Oakestra"
    );
    assert_eq!(app.metadata.annotations["oakestra.io/customerID"], "Admin");

    let [front, det] = app.spec.services.as_slice() else {
        panic!("two services")
    };
    assert_eq!(front.name, "frontend");
    assert_eq!(front.runtime, RuntimeKind::Container);
    assert_eq!(front.image.as_deref(), Some("docker.io/library/nginx:1.25"));
    assert_eq!(front.resources.cpu, Millicores(1000)); // vcpus 1
    assert_eq!(front.resources.memory, Mebibytes(256));
    assert_eq!(front.replicas, 1);
    assert_eq!(
        front.ports,
        vec![
            PortSpec {
                name: None,
                port: 80,
                protocol: Protocol::Tcp,
                host_port: Some(8080)
            },
            PortSpec {
                name: None,
                port: 53,
                protocol: Protocol::Udp,
                host_port: Some(5353)
            },
        ]
    );
    assert_eq!(front.env["MODE"], "edge");
    assert_eq!(front.env["LOG_LEVEL"], "info");
    let geo = &front.constraints[0];
    assert_eq!(
        geo.geo,
        Some(GeoConstraint {
            location: GeoPoint {
                lat: 48.262,
                lon: 11.667
            },
            radius_km: 50.0
        })
    );
    assert_eq!(geo.rigidness, Some(0.9));
    assert_eq!(geo.convergence_time, Some(300));
    assert_eq!(
        front.constraints[1].direct,
        Some(DirectPlacement {
            cluster: Some("munich-edge".into()),
            nodes: vec![]
        })
    );
    // Fields without a native home: kept and reported.
    assert_eq!(front.annotations["oakestra.io/bandwidth_in"], "20000");
    assert_eq!(
        front.annotations["oakestra.io/addresses"],
        r#"{"rr_ip":"10.30.30.30"}"#
    );
    assert_eq!(
        front.annotations["oakestra.io/microservice_namespace"],
        "test"
    );
    // Zeros and empties are Oakestra's defaults: nothing to keep.
    assert!(!front.annotations.contains_key("oakestra.io/bandwidth_out"));
    assert!(!front.annotations.contains_key("oakestra.io/state"));

    assert_eq!(det.name, "objectdetector");
    assert_eq!(
        det.annotations["oakestra.io/microservice_name"],
        "objectDetector"
    );
    assert_eq!(det.command, ["python3", "detect.py", "--model", "yolo"]);
    assert_eq!(det.resources.cpu, Millicores(2000));
    assert_eq!(det.resources.memory, Mebibytes(2048));
    assert_eq!(det.resources.gpus, 1);
    assert_eq!(det.resources.storage, Mebibytes(1024));
    assert_eq!(
        det.ports,
        vec![PortSpec {
            name: None,
            port: 9000,
            protocol: Protocol::Tcp,
            host_port: Some(9000)
        }]
    );
    assert_eq!(det.restart_policy, RestartPolicy::Always);
    assert_eq!(det.job, None, "a service that is not one-shot is no job");
    let to_point = det.constraints[0].latency.as_ref().unwrap();
    assert_eq!(to_point.max_ms, 30.0);
    assert_eq!(
        to_point.to_point,
        Some(GeoPoint {
            lat: 48.1374,
            lon: 11.5755
        })
    );
    assert!(det.constraints[0].is_hard());
    let to_service = &det.constraints[1];
    assert_eq!(
        to_service.latency.as_ref().unwrap().to_service.as_deref(),
        Some("frontend")
    );
    assert_eq!(to_service.latency.as_ref().unwrap().max_ms, 15.0);
    assert_eq!(to_service.rigidness, Some(0.5));
    assert_eq!(to_service.convergence_time, Some(120));

    let w = &p.warnings;
    assert!(
        has(w, "customerID", "kept in annotation oakestra.io/customerID"),
        "{w:#?}"
    );
    assert!(
        has(
            w,
            "applications[0].microservices[0].bandwidth_in",
            "kept in annotation oakestra.io/bandwidth_in"
        ),
        "{w:#?}"
    );
    assert!(
        has(
            w,
            "applications[0].microservices[0].addresses",
            "oakestra.io/addresses"
        ),
        "{w:#?}"
    );
    assert!(
        has(
            w,
            "applications[0].microservices[1].microservice_name",
            "lowercased to \"objectdetector\""
        ),
        "{w:#?}"
    );
    // Every annotation an Oakestra field became has a warning naming it.
    for svc in &app.spec.services {
        for key in svc
            .annotations
            .keys()
            .filter(|k| k.starts_with("oakestra.io/"))
        {
            assert!(
                w.iter().any(|x| x.reason.contains(key.as_str())),
                "no warning for {key}"
            );
        }
    }
}

/// Oakestra's CLI ships `blank_app_without_services.json`: an application with no
/// microservices is an application all the same.
#[test]
fn an_application_without_microservices_is_accepted() {
    let mut blank = sla();
    blank["applications"][0]["microservices"] = json!([]);
    let parsed = parse(&blank).expect("accepted");
    assert_eq!(parsed.applications.len(), 1);
    assert!(parsed.applications[0].spec.services.is_empty());
}

#[test]
fn minimal_sla_and_defaults() {
    let p = parse(&sla()).unwrap();
    let svc = &p.applications[0].spec.services[0];
    assert_eq!(
        svc.ports,
        vec![PortSpec {
            name: None,
            port: 80,
            protocol: Protocol::Tcp,
            host_port: Some(80)
        }]
    );
    assert!(svc.command.is_empty());
    // vcpus absent = Oakestra's default of one core; memory 0 = Canopy's default.
    let mut v = sla();
    ms(&mut v).as_object_mut().unwrap().remove("vcpus");
    ms(&mut v)["memory"] = json!(0);
    let p = parse(&v).unwrap();
    let r = &p.applications[0].spec.services[0].resources;
    assert_eq!(r.cpu, Millicores(1000));
    assert_eq!(r.memory, Mebibytes(64));
    assert!(has(
        &p.warnings,
        "applications[0].microservices[0].memory",
        "uses 64Mi"
    ));
    // vcpus 0 and the documented alias `vcpu`.
    let mut v = sla();
    ms(&mut v).as_object_mut().unwrap().remove("vcpus");
    ms(&mut v)["vcpu"] = json!(0.5);
    assert_eq!(
        parse(&v).unwrap().applications[0].spec.services[0]
            .resources
            .cpu,
        Millicores(500)
    );
    ms(&mut v)["vcpu"] = json!(0);
    let p = parse(&v).unwrap();
    assert_eq!(
        p.applications[0].spec.services[0].resources.cpu,
        Millicores(100)
    );
    assert!(has(
        &p.warnings,
        "applications[0].microservices[0].vcpu",
        "0 means no CPU reservation"
    ));
}

#[test]
fn wasm_one_shot_and_environment() {
    let mut v = sla();
    let m = ms(&mut v);
    m["virtualization"] = json!("wasm");
    m["code"] = json!("https://example.org/f.wasm");
    m["cmd"] = json!(["--fast"]);
    m["one_shot"] = json!(true);
    m["environment"] = json!(["A=1", "B=x=y"]);
    // A module has no sockets: no port (see the test below).
    m["port"] = json!("");
    let p = parse(&v).unwrap();
    let svc = &p.applications[0].spec.services[0];
    assert_eq!(svc.runtime, RuntimeKind::Wasm);
    assert_eq!(svc.module.as_deref(), Some("https://example.org/f.wasm"));
    assert_eq!(svc.image, None);
    assert_eq!(svc.args, ["--fast"]);
    assert!(svc.command.is_empty());
    assert_eq!(svc.restart_policy, RestartPolicy::Never);
    // A job of one run that is not retried: what one-shot did before jobs existed.
    let job = svc.job.as_ref().expect("one_shot is a job");
    assert_eq!(
        (job.completions, job.parallelism, job.backoff_limit),
        (1, 1, 0)
    );
    assert_eq!(svc.env["B"], "x=y");
    assert!(has(
        &p.warnings,
        "applications[0].microservices[0].cmd",
        "passed as its arguments"
    ));
    // Its code URL has no digest: the node pins its first download's, and says so here.
    assert_eq!(svc.wasm.as_ref().map(|w| w.pin_first_fetch), Some(true));
    assert!(has(
        &p.warnings,
        "applications[0].microservices[0].code",
        "pins the digest of its first download"
    ));
}

#[test]
fn multi_ports_map_and_a_wasm_service_with_ports_is_refused_at_its_port() {
    let mut v = sla();
    ms(&mut v)["port"] = json!("8080:80; 53/udp ;9000:90/tcp;");
    let p = parse(&v).unwrap();
    let ports: Vec<(u16, Protocol, Option<u16>)> = p.applications[0].spec.services[0]
        .ports
        .iter()
        .map(|p| (p.port, p.protocol, p.host_port))
        .collect();
    assert_eq!(
        ports,
        [
            (80, Protocol::Tcp, Some(8080)),
            (53, Protocol::Udp, Some(53)),
            (90, Protocol::Tcp, Some(9000))
        ]
    );
    // A module gets no sockets: the SLA's port is refused where the SLA wrote it.
    let m = ms(&mut v);
    m["virtualization"] = json!("wasm");
    m["code"] = json!("https://example.org/f.wasm");
    let errors = errors(&v);
    assert!(
        has(
            &errors,
            "applications[0].microservices[0].port",
            "entry \"8080:80\": does not apply to runtime wasm"
        ),
        "{errors:#?}"
    );
}

#[test]
fn unknown_and_unhomed_fields_are_kept_and_reported() {
    let mut v = sla();
    v["tenant_tier"] = json!("gold");
    v["applications"][0]["applicationID"] = json!("64f1c0");
    let m = ms(&mut v);
    m["vtpus"] = json!(2);
    m["privileged"] = json!(true);
    m["added_files"] = json!(["https://example.org/cfg"]);
    m["gpu_driver"] = json!({ "cuda": "12" });
    m["constraints"] = json!([{ "type": "addons", "needs": ["flops"] }]);
    let p = parse(&v).unwrap();
    let app = &p.applications[0];
    let svc = &app.spec.services[0];
    assert_eq!(app.metadata.annotations["oakestra.io/tenant_tier"], "gold");
    assert_eq!(
        app.metadata.annotations["oakestra.io/applicationID"],
        "64f1c0"
    );
    assert_eq!(svc.annotations["oakestra.io/vtpus"], "2");
    assert_eq!(svc.annotations["oakestra.io/privileged"], "true");
    assert_eq!(
        svc.annotations["oakestra.io/added_files"],
        r#"["https://example.org/cfg"]"#
    );
    assert_eq!(
        svc.annotations["oakestra.io/gpu_driver"],
        r#"{"cuda":"12"}"#
    );
    assert_eq!(
        svc.annotations["oakestra.io/constraints.0"],
        r#"{"needs":["flops"],"type":"addons"}"#
    );
    assert!(svc.constraints.is_empty());
    let w = &p.warnings;
    let base = "applications[0].microservices[0]";
    assert!(
        has(w, "tenant_tier", "not an Oakestra SLA v2 field"),
        "{w:#?}"
    );
    assert!(
        has(
            w,
            "applications[0].applicationID",
            "oakestra.io/applicationID"
        ),
        "{w:#?}"
    );
    assert!(has(w, &format!("{base}.vtpus"), "TPUs"), "{w:#?}");
    assert!(
        has(w, &format!("{base}.privileged"), "not granted"),
        "{w:#?}"
    );
    assert!(
        has(
            w,
            &format!("{base}.gpu_driver"),
            "not an Oakestra SLA v2 field"
        ),
        "{w:#?}"
    );
    assert!(
        has(w, &format!("{base}.constraints[0]"), "not enforced"),
        "{w:#?}"
    );
}

#[test]
fn constraint_mapping() {
    let mut v = sla();
    ms(&mut v)["constraints"] = json!([
        { "type": "direct", "node": "xavier1;xavier2", "cluster": "gpu" },
        { "type": "clusters", "allowed": ["a", "b"], "rigidness": 0.3 },
        { "type": "geo", "location": " 52.52 , 13.405 ", "threshold": 10.5, "area": "berlin" },
    ]);
    let p = parse(&v).unwrap();
    let c = &p.applications[0].spec.services[0].constraints;
    assert_eq!(
        c[0].direct,
        Some(DirectPlacement {
            cluster: Some("gpu".into()),
            nodes: vec!["xavier1".into(), "xavier2".into()]
        })
    );
    assert_eq!(c[1].clusters, Some(vec!["a".into(), "b".into()]));
    assert_eq!(c[1].rigidness, Some(0.3));
    assert_eq!(
        c[2].geo.as_ref().unwrap().location,
        GeoPoint {
            lat: 52.52,
            lon: 13.405
        }
    );
    // The unused `area` of a geo constraint is kept.
    assert!(
        has(
            &p.warnings,
            "applications[0].microservices[0].constraints[2]",
            "\"area\" not used by a geo constraint"
        ),
        "{:#?}",
        p.warnings
    );
}

/// Name, mutation, expected path, expected reason fragment.
type Case = (&'static str, fn(&mut Value), String, &'static str);

#[test]
fn errors_carry_oakestra_paths() {
    let base = "applications[0].microservices[0]";
    let cases: Vec<Case> = vec![
        (
            "unikernel",
            |v| ms(v)["virtualization"] = json!("unikernel"),
            format!("{base}.virtualization"),
            "unsupported virtualization \"unikernel\"",
        ),
        (
            "no virtualization",
            |v| {
                ms(v).as_object_mut().unwrap().remove("virtualization");
            },
            format!("{base}.virtualization"),
            "is required",
        ),
        (
            "no code",
            |v| {
                ms(v).as_object_mut().unwrap().remove("code");
            },
            format!("{base}.code"),
            "is required for runtime container",
        ),
        (
            "bad port",
            |v| ms(v)["port"] = json!("80:http"),
            format!("{base}.port"),
            "entry \"80:http\"",
        ),
        (
            "port zero",
            |v| ms(v)["port"] = json!("0"),
            format!("{base}.port"),
            "ports 1-65535",
        ),
        (
            "port protocol",
            |v| ms(v)["port"] = json!("80/sctp"),
            format!("{base}.port"),
            "tcp or udp",
        ),
        (
            "duplicate port",
            |v| ms(v)["port"] = json!("80;8080:80"),
            format!("{base}.port"),
            "entry \"8080:80\": duplicate port 80/tcp",
        ),
        (
            "negative memory",
            |v| ms(v)["memory"] = json!(-5),
            format!("{base}.memory"),
            "must be >= 0",
        ),
        (
            "memory as text",
            |v| ms(v)["memory"] = json!("1Gi"),
            format!("{base}.memory"),
            "expected a number",
        ),
        (
            "huge vcpus",
            |v| ms(v)["vcpus"] = json!(5000),
            format!("{base}.vcpus"),
            "at most",
        ),
        (
            "fractional gpus",
            |v| ms(v)["vgpus"] = json!(0.5),
            format!("{base}.vgpus"),
            "whole number",
        ),
        (
            "env without =",
            |v| ms(v)["environment"] = json!(["A=1", "B"]),
            format!("{base}.environment[1]"),
            "NAME=value",
        ),
        (
            "env bad key",
            |v| ms(v)["environment"] = json!(["A\u{0}=1"]),
            format!("{base}.environment[0]"),
            "NUL",
        ),
        (
            "cmd not strings",
            |v| ms(v)["cmd"] = json!(["a", 1]),
            format!("{base}.cmd[1]"),
            "expected a string",
        ),
        (
            "bad name",
            |v| ms(v)["microservice_name"] = json!("9lives"),
            format!("{base}.microservice_name"),
            "start with a lowercase letter",
        ),
        (
            "empty app name",
            |v| v["applications"][0]["application_name"] = json!(""),
            "applications[0].application_name".into(),
            "must not be empty",
        ),
        (
            "duplicate microservice",
            |v| {
                let m = ms(v).clone();
                v["applications"][0]["microservices"]
                    .as_array_mut()
                    .unwrap()
                    .push(m);
            },
            "applications[0].microservices[1].microservice_name".into(),
            "duplicate service name",
        ),
        (
            "sla version",
            |v| v["sla_version"] = json!("v1.0"),
            "sla_version".into(),
            "unsupported SLA version",
        ),
        (
            "applications type",
            |v| v["applications"] = json!({}),
            "applications".into(),
            "expected an array",
        ),
        (
            "constraint type",
            |v| ms(v)["constraints"] = json!([{ "type": "weather" }]),
            format!("{base}.constraints[0].type"),
            "unsupported constraint type \"weather\"",
        ),
        (
            "constraint without type",
            |v| ms(v)["constraints"] = json!([{ "cluster": "x" }]),
            format!("{base}.constraints[0].type"),
            "is required",
        ),
        (
            "geo location",
            |v| {
                ms(v)["constraints"] =
                    json!([{ "type": "geo", "location": "north", "threshold": 5 }])
            },
            format!("{base}.constraints[0].location"),
            "\"lat,lon\"",
        ),
        (
            "geo latitude",
            |v| {
                ms(v)["constraints"] =
                    json!([{ "type": "geo", "location": "95,10", "threshold": 5 }])
            },
            format!("{base}.constraints[0].location"),
            "[-90, 90]",
        ),
        (
            "geo threshold",
            |v| {
                ms(v)["constraints"] =
                    json!([{ "type": "geo", "location": "45,10", "threshold": 0 }])
            },
            format!("{base}.constraints[0].threshold"),
            "> 0",
        ),
        (
            "geo no threshold",
            |v| ms(v)["constraints"] = json!([{ "type": "geo", "location": "45,10" }]),
            format!("{base}.constraints[0].threshold"),
            "is required (km)",
        ),
        (
            "latency area",
            |v| {
                ms(v)["constraints"] =
                    json!([{ "type": "latency", "area": "munich", "threshold": 5 }])
            },
            format!("{base}.constraints[0].area"),
            "named areas are not supported",
        ),
        (
            "rigidness",
            |v| {
                ms(v)["constraints"] =
                    json!([{ "type": "clusters", "allowed": ["a"], "rigidness": 2 }])
            },
            format!("{base}.constraints[0].rigidness"),
            "[0, 1]",
        ),
        (
            "convergence",
            |v| {
                ms(v)["constraints"] =
                    json!([{ "type": "clusters", "allowed": ["a"], "convergence_time": 0 }])
            },
            format!("{base}.constraints[0].convergence_time"),
            "> 0",
        ),
        (
            "allowed empty",
            |v| ms(v)["constraints"] = json!([{ "type": "clusters", "allowed": [] }]),
            format!("{base}.constraints[0].allowed"),
            "at least one cluster",
        ),
        (
            "direct empty",
            |v| ms(v)["constraints"] = json!([{ "type": "direct" }]),
            format!("{base}.constraints[0].node"),
            "a cluster or at least one node",
        ),
        (
            "connectivity target",
            |v| ms(v)["connectivity"] = json!([{ "target_microservice_id": "db", "con_constraints": [{ "type": "latency", "threshold": 5 }] }]),
            format!("{base}.connectivity[0].target_microservice_id"),
            "\"db\"",
        ),
        (
            "connectivity to itself",
            |v| ms(v)["connectivity"] = json!([{ "target_microservice_id": "server", "con_constraints": [{ "type": "latency", "threshold": 5 }] }]),
            format!("{base}.connectivity[0].target_microservice_id"),
            "not itself",
        ),
        (
            "connectivity type",
            |v| ms(v)["connectivity"] = json!([{ "target_microservice_id": "server", "con_constraints": [{ "type": "jitter" }] }]),
            format!("{base}.connectivity[0].con_constraints[0].type"),
            "unsupported",
        ),
        (
            "one_shot type",
            |v| ms(v)["one_shot"] = json!("yes"),
            format!("{base}.one_shot"),
            "expected a boolean",
        ),
        (
            "annotation too big",
            |v| ms(v)["state"] = json!("x".repeat(MAX_ANNOTATION_VALUE_LEN + 1)),
            base.to_string(),
            "annotations",
        ),
    ];
    let mut failures = Vec::new();
    for (name, mutate, path, reason) in cases {
        let mut v = sla();
        mutate(&mut v);
        let errs = errors(&v);
        if !has(&errs, &path, reason) || errs.len() != 1 {
            failures.push(format!(
                "{name}: expected only {path}: …{reason}…, got {errs:#?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn all_errors_of_an_sla_are_reported() {
    let mut v = sla();
    ms(&mut v)["virtualization"] = json!("vm");
    ms(&mut v)["port"] = json!("x");
    v["applications"][0]["application_name"] = json!("");
    let errs = errors(&v);
    assert_eq!(errs.len(), 3, "{errs:#?}");
}

#[test]
fn duplicate_applications_in_one_sla() {
    let mut v = sla();
    let app = v["applications"][0].clone();
    v["applications"].as_array_mut().unwrap().push(app);
    let errs = errors(&v);
    assert!(
        has(
            &errs,
            "applications[1].application_name",
            "duplicate application test/clientsrvr"
        ),
        "{errs:#?}"
    );
}

#[test]
fn detection_and_other_spellings() {
    assert!(is_oakestra_sla(&sla()));
    assert!(is_oakestra_sla(&json!({ "applications": [] })));
    assert!(!is_oakestra_sla(&json!({ "apiVersion": "canopy.dev/v1" })));
    // Without sla_version: read as v2, with a warning.
    let mut v = sla();
    v.as_object_mut().unwrap().remove("sla_version");
    assert!(has(&parse(&v).unwrap().warnings, "sla_version", "missing"));
    // YAML spelling of the same SLA.
    let yaml = yaml_serde::to_string(&sla()).unwrap();
    let p = parse_descriptor(&yaml).unwrap();
    assert_eq!(p.format, DescriptorFormat::Oakestra);
    assert_eq!(p.applications, parse(&sla()).unwrap().applications);
    // An SLA cannot share its input with native documents.
    let native = "apiVersion: canopy.dev/v1\nmetadata: {name: a}\nspec: {services: [{name: x, runtime: process, command: [a]}]}\n";
    let errs = parse_descriptor(&format!("{native}---\n{yaml}"))
        .unwrap_err()
        .errors;
    assert!(
        has(&errs, "documents[1]", "must be the only document"),
        "{errs:#?}"
    );
    let errs = parse_descriptor(&format!("[{}]", sla()))
        .unwrap_err()
        .errors;
    assert!(has(&errs, "", "submitted alone"), "{errs:#?}");
    // Names are normalised, the originals kept.
    let mut v = sla();
    v["applications"][0]["application_name"] = json!("ClientSrvr");
    v["applications"][0]["application_namespace"] = json!("");
    let p = parse(&v).unwrap();
    assert_eq!(p.applications[0].metadata.name, "clientsrvr");
    assert_eq!(p.applications[0].metadata.namespace, "default");
    assert_eq!(
        p.applications[0].metadata.annotations["oakestra.io/application_name"],
        "ClientSrvr"
    );
    assert!(has(
        &p.warnings,
        "applications[0].application_namespace",
        "using namespace \"default\""
    ));
}

#[test]
fn normalise_name_table() {
    for (raw, want) in [
        ("X1", "x1"),
        ("objectDetector", "objectdetector"),
        ("my_app", "my_app"),
        ("", ""),
    ] {
        assert_eq!(oakestra::normalise_name(raw), want, "{raw:?}");
    }
}

/// Lowercasing is the one normalisation: a name that breaks a DNS label otherwise is refused
/// with its Oakestra path (a `my_app` must not land on a native `my-app`, a `../../etc` or a
/// 300-character name must not be accepted at all).
#[test]
fn names_that_are_no_dns_label_once_lowercased_are_refused() {
    for bad in ["my_app", "../../etc", "test.special.char", &"a".repeat(300)] {
        let mut v = sla();
        v["applications"][0]["application_name"] = json!(bad);
        let errs = errors(&v);
        assert!(
            errs.iter()
                .any(|e| e.path == "applications[0].application_name"),
            "{bad:?}: {errs:#?}"
        );
        let mut v = sla();
        ms(&mut v)["microservice_name"] = json!(bad);
        let errs = errors(&v);
        assert!(
            errs.iter()
                .any(|e| e.path.ends_with("microservices[0].microservice_name")),
            "{bad:?}: {errs:#?}"
        );
    }
}

/// The security review's names (`../../etc`, 300 characters) as a namespace: refused with the
/// SLA path, never normalised into something accepted.
#[test]
fn namespaces_that_are_no_dns_label_are_refused_with_their_path() {
    for bad in ["../../etc", &"a".repeat(300)] {
        let mut v = sla();
        v["applications"][0]["application_namespace"] = json!(bad);
        let errs = errors(&v);
        assert!(
            errs.iter()
                .any(|e| e.path == "applications[0].application_namespace"),
            "{bad:?}: {errs:#?}"
        );
    }
}

/// Oakestra's documentation of its gVisor runtime gives this SLA ("simply use `runsc` as
/// virtualization type"); it runs as a container in Canopy's gVisor sandbox.
#[test]
fn oakestra_gvisor_sla_runs_in_the_gvisor_sandbox() {
    let sla = json!({
      "sla_version": "v2.0",
      "customerID": "Admin",
      "applications": [{
          "applicationID": "",
          "application_name": "clientsrvr",
          "application_namespace": "test",
          "application_desc": "Simple demo with curl client and Nginx server",
          "microservices": [{
              "microserviceID": "",
              "microservice_name": "nginx",
              "microservice_namespace": "test",
              "virtualization": "runsc",
              "cmd": [],
              "memory": 100,
              "vcpus": 1,
              "vgpus": 0,
              "vtpus": 0,
              "bandwidth_in": 0,
              "bandwidth_out": 0,
              "storage": 0,
              "code": "docker.io/library/nginx:latest",
              "state": "",
              "port": "",
              "addresses": {"rr_ip": "10.30.55.55", "rr_ip_v6": "fdff:2000::55:55"},
              "added_files": []
          }]
      }]
    });
    let parsed = parse(&sla).expect("the gVisor SLA of Oakestra's docs is accepted");
    let svc = &parsed.applications[0].spec.services[0];
    assert_eq!(svc.runtime, RuntimeKind::Container);
    assert_eq!(svc.sandbox, Some(canopy_model::Sandbox::Gvisor));
    assert_eq!(svc.image.as_deref(), Some("docker.io/library/nginx:latest"));
    // A plain container SLA asks for no sandbox.
    let plain = parse(&sla_with("container")).expect("plain");
    assert_eq!(plain.applications[0].spec.services[0].sandbox, None);
}

fn sla_with(virtualization: &str) -> Value {
    let mut v = sla();
    ms(&mut v)["virtualization"] = json!(virtualization);
    v
}
