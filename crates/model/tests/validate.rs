//! One valid baseline application, then one mutation per rule: the exact path and a reason.

use canopy_model::*;
use std::collections::BTreeMap;

fn baseline() -> Application {
    let text = r#"
apiVersion: canopy.dev/v1
kind: Application
metadata:
  name: shop
  namespace: team-a
  labels: { tier: web, app.kubernetes.io/name: shop }
  annotations: { description: "a shop" }
spec:
  services:
    - name: web
      runtime: container
      image: docker.io/library/nginx:1.25
      command: ["/docker-entrypoint.sh"]
      args: ["nginx", "-g", "daemon off;"]
      env: { MODE: prod }
      workingDir: /srv
      replicas: 2
      resources: { cpu: 500m, memory: 128Mi, gpus: 1, gpuModel: nvidia-t4, storage: 1Gi }
      ports:
        - { name: http, port: 80, hostPort: 8080 }
        - { name: dns, port: 53, protocol: udp, hostPort: 53 }
        - { name: dns-tcp, port: 53, protocol: tcp }
      constraints:
        - arch: [amd64, arm64]
        - nodeSelector: [{ key: disk, operator: In, values: [ssd] }, { key: gpu, operator: Exists }]
        - clusterSelector: [{ key: region, operator: NotIn, values: [us] }]
        - direct: { cluster: edge-1, nodes: [node-a] }
        - clusters: [edge-1, edge-2]
        - geo: { location: { lat: 48.1, lon: 11.5 }, radiusKm: 25 }
          rigidness: 0.5
          convergenceTime: 60
        - latency: { maxMs: 20, toService: db }
        - latency: { maxMs: 50, toPoint: { lat: -33.9, lon: 151.2 } }
        - spread: { maxPerNode: 1, maxPerCluster: 3 }
        - trust: { minScore: 0.7 }
    - name: db
      runtime: process
      command: ["/usr/bin/db", "--port", "5432"]
      replicas: 0
    - name: filter
      runtime: wasm
      module: oci://registry.example.org/filter:1
      args: ["--fast"]
"#;
    let parsed = parse_descriptor(text).expect("baseline parses and validates");
    parsed
        .applications
        .into_iter()
        .next()
        .expect("one application")
}

fn web(app: &mut Application) -> &mut ServiceSpec {
    &mut app.spec.services[0]
}

fn constraint(app: &mut Application, i: usize) -> &mut Constraint {
    &mut app.spec.services[0].constraints[i]
}

type Mutation = fn(&mut Application);

#[test]
fn baseline_is_valid() {
    assert_eq!(validate_application(&baseline()), vec![]);
}

#[test]
fn an_application_without_services_is_valid() {
    let mut app = baseline();
    app.spec.services.clear();
    assert_eq!(validate_application(&app), Vec::<FieldError>::new());
}

#[test]
fn every_rule_reports_its_path() {
    let rows: &[(&str, Mutation, &str, &str)] = &[
        (
            "api version",
            |a| a.api_version = "v1".into(),
            "apiVersion",
            "canopy.dev/v1",
        ),
        ("kind", |a| a.kind = "Job".into(), "kind", "Application"),
        (
            "empty name",
            |a| a.metadata.name = String::new(),
            "metadata.name",
            "must not be empty",
        ),
        (
            "uppercase name",
            |a| a.metadata.name = "Shop".into(),
            "metadata.name",
            "DNS label",
        ),
        (
            "name with dot",
            |a| a.metadata.name = "my.shop".into(),
            "metadata.name",
            "'.'",
        ),
        (
            "name starts with digit",
            |a| a.metadata.name = "1shop".into(),
            "metadata.name",
            "start with a lowercase letter",
        ),
        (
            "name ends with dash",
            |a| a.metadata.name = "shop-".into(),
            "metadata.name",
            "end with a letter or digit",
        ),
        (
            "name too long",
            |a| a.metadata.name = "a".repeat(64),
            "metadata.name",
            "at most 63",
        ),
        (
            "namespace",
            |a| a.metadata.namespace = "Team_A".into(),
            "metadata.namespace",
            "DNS label",
        ),
        (
            "bad label key",
            |a| {
                a.metadata.labels.insert("-x".into(), "y".into());
            },
            "metadata.labels[\"-x\"]",
            "start and end",
        ),
        (
            "bad label prefix",
            |a| {
                a.metadata.labels.insert("Ex.com/x".into(), "y".into());
            },
            "metadata.labels[\"Ex.com/x\"]",
            "DNS subdomain",
        ),
        (
            "bad label value",
            |a| {
                a.metadata.labels.insert("tier".into(), "a b".into());
            },
            "metadata.labels.tier",
            "invalid value",
        ),
        (
            "too many labels",
            |a| {
                for i in 0..65 {
                    a.metadata.labels.insert(format!("l{i}"), "v".into());
                }
            },
            "metadata.labels",
            "at most 64 labels",
        ),
        (
            "empty annotation key",
            |a| {
                a.metadata.annotations.insert(String::new(), "v".into());
            },
            "metadata.annotations[\"\"]",
            "must not be empty",
        ),
        (
            "huge annotation",
            |a| {
                a.metadata
                    .annotations
                    .insert("big".into(), "x".repeat(MAX_ANNOTATION_VALUE_LEN + 1));
            },
            "metadata.annotations.big",
            "at most",
        ),
        (
            "too many services",
            |a| {
                let s = a.spec.services[1].clone();
                a.spec.services = (0..65)
                    .map(|i| ServiceSpec {
                        name: format!("s{i}"),
                        ..s.clone()
                    })
                    .collect();
            },
            "spec.services",
            "at most 64 services",
        ),
        (
            "duplicate service",
            |a| a.spec.services[2].name = "web".into(),
            "spec.services[2].name",
            "duplicate service name \"web\" (also spec.services[0].name)",
        ),
        (
            "service name",
            |a| a.spec.services[2].name = "Filter".into(),
            "spec.services[2].name",
            "DNS label",
        ),
        (
            "container without image",
            |a| web(a).image = None,
            "spec.services[0].image",
            "required for runtime container",
        ),
        (
            "container with module",
            |a| web(a).module = Some("x.wasm".into()),
            "spec.services[0].module",
            "only applies to runtime wasm",
        ),
        (
            "image with space",
            |a| web(a).image = Some("nginx latest".into()),
            "spec.services[0].image",
            "whitespace",
        ),
        (
            "empty image",
            |a| web(a).image = Some(String::new()),
            "spec.services[0].image",
            "must not be empty",
        ),
        (
            "wasm without module",
            |a| a.spec.services[2].module = None,
            "spec.services[2].module",
            "required for runtime wasm",
        ),
        (
            "wasm with image",
            |a| a.spec.services[2].image = Some("nginx".into()),
            "spec.services[2].image",
            "only applies to runtime container",
        ),
        (
            "wasm with command",
            |a| a.spec.services[2].command = vec!["run".into()],
            "spec.services[2].command",
            "does not apply to runtime wasm",
        ),
        (
            "process without command",
            |a| a.spec.services[1].command.clear(),
            "spec.services[1].command",
            "required for runtime process",
        ),
        (
            "process with image",
            |a| a.spec.services[1].image = Some("nginx".into()),
            "spec.services[1].image",
            "only applies to runtime container",
        ),
        (
            "empty program",
            |a| a.spec.services[1].command[0] = " ".into(),
            "spec.services[1].command[0]",
            "must not be empty",
        ),
        (
            "NUL in arg",
            |a| web(a).args[1] = "a\0b".into(),
            "spec.services[0].args[1]",
            "NUL",
        ),
        (
            "too many args",
            |a| web(a).args = vec!["x".into(); MAX_COMMAND_WORDS + 1],
            "spec.services[0].args",
            "at most 256",
        ),
        (
            "long string",
            |a| web(a).args[0] = "x".repeat(MAX_STRING_LEN + 1),
            "spec.services[0].args[0]",
            "at most 4096 characters",
        ),
        (
            "empty working dir",
            |a| web(a).working_dir = Some(String::new()),
            "spec.services[0].workingDir",
            "must not be empty",
        ),
        (
            "empty env key",
            |a| {
                web(a).env.insert(String::new(), "v".into());
            },
            "spec.services[0].env[\"\"]",
            "must not be empty",
        ),
        (
            "env key with =",
            |a| {
                web(a).env.insert("A=B".into(), "v".into());
            },
            "spec.services[0].env[\"A=B\"]",
            "'='",
        ),
        (
            "env key with NUL",
            |a| {
                web(a).env.insert("A\0".into(), "v".into());
            },
            "spec.services[0].env[\"A\\0\"]",
            "NUL",
        ),
        (
            "env value with NUL",
            |a| {
                web(a).env.insert("B".into(), "\0".into());
            },
            "spec.services[0].env.B",
            "NUL",
        ),
        (
            "too many env",
            |a| {
                web(a).env = (0..257)
                    .map(|i| (format!("V{i}"), String::new()))
                    .collect::<BTreeMap<_, _>>();
            },
            "spec.services[0].env",
            "at most 256",
        ),
        (
            "too many replicas",
            |a| web(a).replicas = MAX_REPLICAS + 1,
            "spec.services[0].replicas",
            "at most 1000",
        ),
        (
            "zero cpu",
            |a| web(a).resources.cpu = Millicores(0),
            "spec.services[0].resources.cpu",
            "must be > 0",
        ),
        (
            "huge cpu",
            |a| web(a).resources.cpu = Millicores(MAX_CPU_MILLICORES + 1),
            "spec.services[0].resources.cpu",
            "at most",
        ),
        (
            "zero memory",
            |a| web(a).resources.memory = Mebibytes(0),
            "spec.services[0].resources.memory",
            "must be > 0",
        ),
        (
            "huge memory",
            |a| web(a).resources.memory = Mebibytes(MAX_MEMORY_MIB + 1),
            "spec.services[0].resources.memory",
            "at most",
        ),
        (
            "huge storage",
            |a| web(a).resources.storage = Mebibytes(MAX_STORAGE_MIB + 1),
            "spec.services[0].resources.storage",
            "at most",
        ),
        (
            "too many gpus",
            |a| web(a).resources.gpus = MAX_GPUS + 1,
            "spec.services[0].resources.gpus",
            "at most 64",
        ),
        (
            "gpu model without gpus",
            |a| web(a).resources.gpus = 0,
            "spec.services[0].resources.gpuModel",
            "requires gpus > 0",
        ),
        (
            "bad gpu model",
            |a| web(a).resources.gpu_model = Some("nvidia a100".into()),
            "spec.services[0].resources.gpuModel",
            "invalid value",
        ),
        (
            "port zero",
            |a| web(a).ports[0].port = 0,
            "spec.services[0].ports[0].port",
            "must be >= 1",
        ),
        (
            "duplicate port",
            |a| web(a).ports[2].protocol = Protocol::Udp,
            "spec.services[0].ports[2].port",
            "duplicate port 53/udp (also spec.services[0].ports[1])",
        ),
        (
            "host port zero",
            |a| web(a).ports[0].host_port = Some(0),
            "spec.services[0].ports[0].hostPort",
            "must be >= 1",
        ),
        (
            "duplicate host port",
            |a| {
                web(a).ports[1].protocol = Protocol::Tcp;
                web(a).ports[1].port = 54;
                web(a).ports[1].host_port = Some(8080);
            },
            "spec.services[0].ports[1].hostPort",
            "duplicate host port 8080/tcp",
        ),
        (
            "duplicate port name",
            |a| web(a).ports[1].name = Some("http".into()),
            "spec.services[0].ports[1].name",
            "duplicate port name",
        ),
        (
            "port name",
            |a| web(a).ports[0].name = Some("HTTP".into()),
            "spec.services[0].ports[0].name",
            "DNS label",
        ),
        (
            "too many ports",
            |a| {
                web(a).ports = (1..=65)
                    .map(|p| PortSpec {
                        name: None,
                        port: p,
                        protocol: Protocol::Tcp,
                        host_port: None,
                    })
                    .collect();
            },
            "spec.services[0].ports",
            "at most 64 ports",
        ),
        (
            "too many constraints",
            |a| {
                let c = web(a).constraints[0].clone();
                web(a).constraints = vec![c; MAX_CONSTRAINTS + 1];
            },
            "spec.services[0].constraints",
            "at most 32",
        ),
        (
            "constraint with no kind",
            |a| *constraint(a, 0) = Constraint::default(),
            "spec.services[0].constraints[0]",
            "must set exactly one of arch, nodeSelector, clusterSelector, direct, clusters, geo, latency, spread, trust",
        ),
        (
            "constraint with two kinds",
            |a| constraint(a, 0).clusters = Some(vec!["x".into()]),
            "spec.services[0].constraints[0]",
            "sets arch, clusters",
        ),
        (
            "rigidness above 1",
            |a| constraint(a, 5).rigidness = Some(1.5),
            "spec.services[0].constraints[5].rigidness",
            "[0, 1]",
        ),
        (
            "rigidness negative",
            |a| constraint(a, 5).rigidness = Some(-0.1),
            "spec.services[0].constraints[5].rigidness",
            "[0, 1]",
        ),
        (
            "rigidness NaN",
            |a| constraint(a, 5).rigidness = Some(f64::NAN),
            "spec.services[0].constraints[5].rigidness",
            "[0, 1]",
        ),
        (
            "convergence zero",
            |a| constraint(a, 5).convergence_time = Some(0),
            "spec.services[0].constraints[5].convergenceTime",
            "must be > 0",
        ),
        (
            "convergence huge",
            |a| constraint(a, 5).convergence_time = Some(MAX_CONVERGENCE_TIME_SECS + 1),
            "spec.services[0].constraints[5].convergenceTime",
            "at most",
        ),
        (
            "unknown arch",
            |a| constraint(a, 0).arch = Some(vec!["amd64".into(), "x86".into()]),
            "spec.services[0].constraints[0].arch[1]",
            "unknown architecture \"x86\"",
        ),
        (
            "empty arch",
            |a| constraint(a, 0).arch = Some(vec![]),
            "spec.services[0].constraints[0].arch",
            "at least one",
        ),
        (
            "empty selector",
            |a| constraint(a, 1).node_selector = Some(vec![]),
            "spec.services[0].constraints[1].nodeSelector",
            "at least one",
        ),
        (
            "selector empty key",
            |a| constraint(a, 1).node_selector.as_mut().unwrap()[0].key = String::new(),
            "spec.services[0].constraints[1].nodeSelector[0].key",
            "must not be empty",
        ),
        (
            "In without values",
            |a| {
                constraint(a, 1).node_selector.as_mut().unwrap()[0]
                    .values
                    .clear()
            },
            "spec.services[0].constraints[1].nodeSelector[0].values",
            "needs at least one value",
        ),
        (
            "NotIn without values",
            |a| {
                constraint(a, 2).cluster_selector.as_mut().unwrap()[0]
                    .values
                    .clear()
            },
            "spec.services[0].constraints[2].clusterSelector[0].values",
            "needs at least one value",
        ),
        (
            "Exists with values",
            |a| constraint(a, 1).node_selector.as_mut().unwrap()[1].values = vec!["x".into()],
            "spec.services[0].constraints[1].nodeSelector[1].values",
            "takes no values",
        ),
        (
            "DoesNotExist with values",
            |a| {
                let r = &mut constraint(a, 1).node_selector.as_mut().unwrap()[1];
                r.operator = LabelOperator::DoesNotExist;
                r.values = vec!["x".into()];
            },
            "spec.services[0].constraints[1].nodeSelector[1].values",
            "takes no values",
        ),
        (
            "direct empty",
            |a| constraint(a, 3).direct = Some(DirectPlacement::default()),
            "spec.services[0].constraints[3].direct",
            "a cluster or at least one node",
        ),
        (
            "direct empty node",
            |a| constraint(a, 3).direct.as_mut().unwrap().nodes = vec![String::new()],
            "spec.services[0].constraints[3].direct.nodes[0]",
            "must not be empty",
        ),
        (
            "clusters empty",
            |a| constraint(a, 4).clusters = Some(vec![]),
            "spec.services[0].constraints[4].clusters",
            "at least one cluster",
        ),
        (
            "latitude",
            |a| constraint(a, 5).geo.as_mut().unwrap().location.lat = 91.0,
            "spec.services[0].constraints[5].geo.location.lat",
            "[-90, 90]",
        ),
        (
            "longitude",
            |a| constraint(a, 5).geo.as_mut().unwrap().location.lon = -180.5,
            "spec.services[0].constraints[5].geo.location.lon",
            "[-180, 180]",
        ),
        (
            "latitude NaN",
            |a| constraint(a, 5).geo.as_mut().unwrap().location.lat = f64::NAN,
            "spec.services[0].constraints[5].geo.location.lat",
            "latitude",
        ),
        (
            "radius zero",
            |a| constraint(a, 5).geo.as_mut().unwrap().radius_km = 0.0,
            "spec.services[0].constraints[5].geo.radiusKm",
            "> 0",
        ),
        (
            "radius infinite",
            |a| constraint(a, 5).geo.as_mut().unwrap().radius_km = f64::INFINITY,
            "spec.services[0].constraints[5].geo.radiusKm",
            "finite",
        ),
        (
            "latency zero",
            |a| constraint(a, 6).latency.as_mut().unwrap().max_ms = 0.0,
            "spec.services[0].constraints[6].latency.maxMs",
            "> 0",
        ),
        (
            "latency NaN",
            |a| constraint(a, 6).latency.as_mut().unwrap().max_ms = f64::NAN,
            "spec.services[0].constraints[6].latency.maxMs",
            "finite",
        ),
        (
            "latency without target",
            |a| constraint(a, 6).latency.as_mut().unwrap().to_service = None,
            "spec.services[0].constraints[6].latency",
            "none is set",
        ),
        (
            "latency with two targets",
            |a| {
                constraint(a, 6).latency.as_mut().unwrap().to_point =
                    Some(GeoPoint { lat: 0.0, lon: 0.0 })
            },
            "spec.services[0].constraints[6].latency",
            "both are set",
        ),
        (
            "latency to itself",
            |a| constraint(a, 6).latency.as_mut().unwrap().to_service = Some("web".into()),
            "spec.services[0].constraints[6].latency.toService",
            "not itself",
        ),
        (
            "latency to unknown service",
            |a| constraint(a, 6).latency.as_mut().unwrap().to_service = Some("cache".into()),
            "spec.services[0].constraints[6].latency.toService",
            "no service named \"cache\" in this application: expected one of db, filter",
        ),
        (
            "latency point",
            |a| {
                constraint(a, 7).latency.as_mut().unwrap().to_point = Some(GeoPoint {
                    lat: 0.0,
                    lon: 200.0,
                })
            },
            "spec.services[0].constraints[7].latency.toPoint.lon",
            "[-180, 180]",
        ),
        (
            "spread empty",
            |a| constraint(a, 8).spread = Some(SpreadConstraint::default()),
            "spec.services[0].constraints[8].spread",
            "at least one of maxPerNode, maxPerCluster",
        ),
        (
            "spread per node zero",
            |a| constraint(a, 8).spread.as_mut().unwrap().max_per_node = Some(0),
            "spec.services[0].constraints[8].spread.maxPerNode",
            ">= 1",
        ),
        (
            "spread per cluster zero",
            |a| constraint(a, 8).spread.as_mut().unwrap().max_per_cluster = Some(0),
            "spec.services[0].constraints[8].spread.maxPerCluster",
            ">= 1",
        ),
        (
            "trust above 1",
            |a| constraint(a, 9).trust = Some(TrustConstraint { min_score: 1.1 }),
            "spec.services[0].constraints[9].trust.minScore",
            "[0, 1]",
        ),
        (
            "trust NaN",
            |a| {
                constraint(a, 9).trust = Some(TrustConstraint {
                    min_score: f64::NAN,
                })
            },
            "spec.services[0].constraints[9].trust.minScore",
            "[0, 1]",
        ),
        (
            "service label",
            |a| {
                web(a).labels.insert("a b".into(), "c".into());
            },
            "spec.services[0].labels[\"a b\"]",
            "invalid key",
        ),
        (
            "service annotation",
            |a| {
                web(a).annotations.insert("x/".into(), "c".into());
            },
            "spec.services[0].annotations[\"x/\"]",
            "the name must not be empty",
        ),
    ];
    let mut failures = Vec::new();
    for (name, mutate, path, reason) in rows {
        let mut app = baseline();
        mutate(&mut app);
        let errors = validate_application(&app);
        let hit = errors
            .iter()
            .any(|e| e.path == *path && e.reason.contains(reason));
        if !hit || errors.len() != 1 {
            failures.push(format!(
                "{name}: expected only {path}: …{reason}…, got {errors:#?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn all_errors_are_reported() {
    let mut app = baseline();
    app.metadata.name = "Bad_Name".into();
    app.spec.services[0].resources.memory = Mebibytes(0);
    app.spec.services[1].replicas = 5000;
    let errors = validate_application(&app);
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "metadata.name",
            "spec.services[0].resources.memory",
            "spec.services[1].replicas"
        ],
        "{errors:#?}"
    );
    assert_eq!(errors[1].reason, "must be > 0");
}

#[test]
fn dns_labels() {
    for ok in ["a", "web", "a-1", "x9", &"a".repeat(63)] {
        assert_eq!(validate_dns_label(ok), Ok(()), "{ok}");
    }
    for bad in [
        "",
        "A",
        "1a",
        "a-",
        "-a",
        "a_b",
        "a.b",
        "é",
        &"a".repeat(64),
    ] {
        assert!(validate_dns_label(bad).is_err(), "{bad}");
    }
}

#[test]
fn zero_replicas_and_container_command_are_allowed() {
    let mut app = baseline();
    app.spec.services[0].replicas = 0;
    app.spec.services[0].command = vec!["/bin/sh".into()];
    assert_eq!(validate_application(&app), vec![]);
}

/// The hash is stored with every instance and compared after restarts and upgrades, so it must
/// be a pure function of the spec: these literals were computed once and must never change.
/// A change here (field order, serde names, map order, a seeded hasher) would make every running
/// instance look outdated and restart it: treat a failure as a wire-format break.
const MINIMAL_HASH: &str = "49be7a46a2aad8d1";
const MINIMAL_COMMAND_61_HASH: &str = "06ca57cf39e3df74";
const MINIMAL_ENV_HASH: &str = "61099494e61296ab";
const BASELINE_WEB_HASH: &str = "99545fe662e55d0e";

fn minimal_spec() -> ServiceSpec {
    serde_json::from_value(serde_json::json!({
        "name": "web", "runtime": "process", "command": ["/bin/sleep", "60"], "replicas": 2
    }))
    .unwrap()
}

#[test]
fn the_template_hash_is_pinned() {
    let spec = minimal_spec();
    assert_eq!(spec.template_hash(), MINIMAL_HASH);

    let mut changed = spec.clone();
    changed.command[1] = "61".into();
    assert_eq!(changed.template_hash(), MINIMAL_COMMAND_61_HASH);

    let mut env = spec.clone();
    // Inserted out of order: the hash must not depend on insertion order.
    env.env.insert("ZONE".into(), "b".into());
    env.env.insert("MODE".into(), "fast".into());
    assert_eq!(env.template_hash(), MINIMAL_ENV_HASH);
    let mut env_reversed = spec.clone();
    env_reversed.env.insert("MODE".into(), "fast".into());
    env_reversed.env.insert("ZONE".into(), "b".into());
    assert_eq!(env_reversed.template_hash(), MINIMAL_ENV_HASH);

    // Every kind of field at once: maps, options, enums, nested constraints.
    let mut app = baseline();
    assert_eq!(web(&mut app).template_hash(), BASELINE_WEB_HASH);

    let all = [
        MINIMAL_HASH,
        MINIMAL_COMMAND_61_HASH,
        MINIMAL_ENV_HASH,
        BASELINE_WEB_HASH,
    ];
    let distinct: std::collections::BTreeSet<_> = all.iter().collect();
    assert_eq!(distinct.len(), all.len(), "distinct specs share a hash");
}

#[test]
fn the_template_hash_ignores_replicas_and_sees_everything_else() {
    let spec = minimal_spec();
    let hash = spec.template_hash();
    assert_eq!(hash.len(), 16);
    assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{hash}");
    let scaled = ServiceSpec {
        replicas: 7,
        ..spec.clone()
    };
    assert_eq!(
        scaled.template_hash(),
        hash,
        "scaling is not a new template"
    );
    let mut args = spec.clone();
    args.args.push("--verbose".into());
    assert_ne!(args.template_hash(), hash);
    let mut env_value = spec.clone();
    env_value.env.insert("MODE".into(), "fast".into());
    let fast = env_value.template_hash();
    env_value.env.insert("MODE".into(), "slow".into());
    assert_ne!(
        env_value.template_hash(),
        fast,
        "an env value is part of the template"
    );
    let mut resources = spec.clone();
    resources.resources.memory = Mebibytes(65);
    assert_ne!(resources.template_hash(), hash);
    let mut restart = spec.clone();
    restart.restart_policy = RestartPolicy::Never;
    assert_ne!(restart.template_hash(), hash);
}

#[test]
fn secret_references_are_checked_with_their_field_paths() {
    let mut app = baseline();
    {
        let svc = web(&mut app);
        svc.runtime = canopy_model::RuntimeKind::Process;
        svc.image = None;
        svc.command = vec!["/bin/true".into()];
        svc.image_pull_secret = Some("Reg_Cred".into());
        svc.env.insert("TOKEN".into(), "plain".into());
        svc.secret_env.insert(
            "TOKEN".into(),
            canopy_model::SecretKeyRef {
                name: "api".into(),
                key: "a/b".into(),
            },
        );
    }
    let errors = validate_application(&app);
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    for expected in [
        "spec.services[0].imagePullSecret",
        "spec.services[0].secretEnv.TOKEN",
        "spec.services[0].secretEnv.TOKEN.key",
    ] {
        assert!(paths.contains(&expected), "{expected} in {paths:?}");
    }
    assert_eq!(
        paths
            .iter()
            .filter(|p| **p == "spec.services[0].imagePullSecret")
            .count(),
        2,
        "not a DNS label, and a process pulls no image: {errors:?}"
    );
}

#[test]
fn a_descriptor_references_secrets_by_name_and_round_trips() {
    let text = r#"{"apiVersion":"canopy.dev/v1","kind":"Application","metadata":{"name":"a"},
         "spec":{"services":[{"name":"s","runtime":"container","image":"reg:5000/x:1",
         "imagePullSecret":"regcred",
         "secretEnv":{"DB_PASSWORD":{"name":"db","key":"password"}}}]}}"#;
    let parsed = canopy_model::parse_descriptor(text).expect("valid");
    let app = &parsed.applications[0];
    let svc = &app.spec.services[0];
    assert_eq!(svc.image_pull_secret.as_deref(), Some("regcred"));
    assert_eq!(svc.secret_env["DB_PASSWORD"].key, "password");
    let yaml = canopy_model::to_yaml(app);
    let again = canopy_model::parse_descriptor(&yaml).expect("its own output parses");
    assert_eq!(&again.applications[0], app);
}

#[test]
fn objective_parses_in_camel_case() {
    let parsed = canopy_model::parse_descriptor(
        r#"{"apiVersion":"canopy.dev/v1","kind":"Application","metadata":{"name":"a"},
             "spec":{"services":[{"name":"s","runtime":"process","command":["/bin/true"],
             "objective":"energy"}]}}"#,
    )
    .expect("valid");
    assert_eq!(
        parsed.applications[0].spec.services[0].objective,
        Some(canopy_model::Objective::Energy)
    );
}

#[test]
fn job_rules_name_their_fields() {
    let mut app = baseline();
    app.spec.services[1].job = Some(JobSpec {
        completions: 0,
        parallelism: job::MAX_COMPLETIONS + 1,
        backoff_limit: job::MAX_BACKOFF_LIMIT + 1,
        active_deadline_seconds: Some(0),
        ttl_seconds_after_finished: Some(job::MAX_JOB_SECONDS + 1),
        schedule: Some("61 * * * *".into()),
        concurrency_policy: ConcurrencyPolicy::Forbid,
        successful_jobs_history_limit: job::MAX_HISTORY_LIMIT + 1,
        failed_jobs_history_limit: 0,
        on_demand: false,
    });
    let paths: Vec<String> = validate_application(&app)
        .into_iter()
        .map(|e| format!("{}: {}", e.path, e.reason))
        .collect();
    for (path, says) in [
        ("spec.services[1].job.completions", "from 1 to"),
        ("spec.services[1].job.parallelism", "from 1 to"),
        ("spec.services[1].job.backoffLimit", "from 0 to"),
        (
            "spec.services[1].job.successfulJobsHistoryLimit",
            "from 0 to",
        ),
        ("spec.services[1].job.activeDeadlineSeconds", "from 1 to"),
        ("spec.services[1].job.ttlSecondsAfterFinished", "at most"),
        ("spec.services[1].job.schedule", "minute \"61\""),
    ] {
        assert!(
            paths
                .iter()
                .any(|p| p.starts_with(path) && p.contains(says)),
            "{path} ({says}) not in {paths:?}"
        );
    }
    assert_eq!(paths.len(), 7, "{paths:?}");

    // The defaults, a schedule and a policy as YAML spells them are valid.
    let text = r#"
apiVersion: canopy.dev/v1
kind: Application
metadata: { name: nightly }
spec:
  services:
    - name: report
      runtime: process
      command: [/bin/true]
      restartPolicy: never
      job: { completions: 3, parallelism: 2, schedule: "@daily", concurrencyPolicy: Replace }
"#;
    let parsed = parse_descriptor(text).expect("a cron job validates");
    let job = parsed.applications[0].spec.services[0].job.clone().unwrap();
    assert_eq!(job.backoff_limit, 6);
    assert_eq!(job.concurrency_policy, ConcurrencyPolicy::Replace);
    assert_eq!(job.successful_jobs_history_limit, 3);
    let unknown = text.replace("concurrencyPolicy: Replace", "concurrency: Replace");
    let error = parse_descriptor(&unknown).expect_err("an unknown job field");
    assert!(error.to_string().contains("concurrency"), "{error}");
}

#[test]
fn autoscale_problems_are_named_by_their_path_in_the_descriptor() {
    let text = |autoscale: &str| {
        format!(
            "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {{ name: shop }}\nspec:\n  services:\n\
             \x20   - name: web\n      runtime: process\n      command: [/srv/web]\n      replicas: 2\n\
             \x20     autoscale: {autoscale}\n"
        )
    };
    let parsed = parse_descriptor(&text(
        "{ max: 5, targetCPU: 60, scaleDownStabilizationSeconds: 5 }",
    ))
    .expect("an autoscaled service validates");
    let service = &parsed.applications[0].spec.services[0];
    let autoscale = service.autoscale.clone().unwrap();
    assert_eq!(
        (autoscale.min, autoscale.max, autoscale.target_cpu),
        (1, 5, Some(60))
    );
    assert_eq!(autoscale.scale_down_stabilization_seconds, 5);
    assert_eq!(service.replicas, 2, "the starting point");

    let error =
        parse_descriptor(&text("{ min: 6, max: 5 }")).expect_err("min above max, no target");
    let found: Vec<String> = error.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        found,
        [
            "spec.services[0].autoscale.min: must be at most max (5), got 6",
            "spec.services[0].autoscale: needs a target: targetCPU, targetMemory or both (percent of the request)",
        ]
    );
    // The autoscaler's fields are not what an instance runs: no rollout for them.
    let other = parse_descriptor(&text("{ max: 9, targetMemory: 70 }")).unwrap();
    assert_eq!(
        other.applications[0].spec.services[0].template_hash(),
        service.template_hash()
    );
}
