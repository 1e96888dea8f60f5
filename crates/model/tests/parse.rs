//! Descriptor parsing: formats, shape errors with paths, multi-document input, limits,
//! round trips, and the files in examples/.

use canopy_model::*;
use proptest::prelude::*;

const HELLO: &str = r#"
apiVersion: canopy.dev/v1
kind: Application
metadata:
  name: hello
spec:
  services:
    - name: greeter
      runtime: process
      command: ["/bin/echo", "hi"]
"#;

fn errors(text: &str) -> Vec<FieldError> {
    match parse_descriptor(text) {
        Ok(p) => panic!("expected errors, parsed {:#?}", p.applications),
        Err(e) => e.errors,
    }
}

fn has(errors: &[FieldError], path: &str, reason: &str) -> bool {
    errors
        .iter()
        .any(|e| e.path == path && e.reason.contains(reason))
}

#[test]
fn minimal_yaml_gets_defaults() {
    let p = parse_descriptor(HELLO).unwrap();
    assert_eq!(p.format, DescriptorFormat::Native);
    assert!(p.warnings.is_empty());
    let app = &p.applications[0];
    assert_eq!(app.metadata.namespace, "default");
    let svc = &app.spec.services[0];
    assert_eq!(svc.replicas, 1);
    assert_eq!(svc.resources.cpu, Millicores(100));
    assert_eq!(svc.resources.memory, Mebibytes(64));
    assert_eq!(svc.restart_policy, RestartPolicy::Always);
}

#[test]
fn json_and_yaml_give_the_same_application() {
    let yaml = parse_descriptor(HELLO).unwrap().applications;
    let json = parse_descriptor(&to_json(&yaml[0])).unwrap().applications;
    assert_eq!(yaml, json);
}

#[test]
fn yaml_type_error_has_path_and_position() {
    let text = HELLO.replace(
        "command: [\"/bin/echo\", \"hi\"]",
        "command: [\"/bin/echo\"]\n      replicas: many",
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].path, "spec.services[0].replicas");
    assert!(
        errs[0]
            .reason
            .contains("invalid type: string \"many\", expected u32"),
        "{}",
        errs[0].reason
    );
    assert!(errs[0].reason.contains("line 11"), "{}", errs[0].reason);
}

#[test]
fn json_type_error_has_path_and_position() {
    let text = r#"{"metadata": {"name": "a"},
      "spec": {"services": [
        {"name": "x", "runtime": "process", "command": ["a"]},
        {"name": "y", "runtime": "process", "command": ["a"], "resources": {"memory": true}}]}}"#;
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].path, "spec.services[1].resources.memory");
    assert!(
        errs[0].reason.contains("expected a size"),
        "{}",
        errs[0].reason
    );
    assert!(errs[0].reason.contains("line 4"), "{}", errs[0].reason);
}

#[test]
fn bad_enum_value_names_the_choices() {
    let errs = errors(&HELLO.replace("runtime: process", "runtime: docker"));
    assert_eq!(errs[0].path, "spec.services[0].runtime");
    assert!(errs[0].reason.contains(
        "unknown variant `docker`, expected one of `container`, `wasm`, `process`, `vm`"
    ));
}

#[test]
fn unknown_field_is_named_with_its_path() {
    let errs = errors(&HELLO.replace("runtime: process", "runtime: process\n      replica: 3"));
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].path, "spec.services[0].replica");
    assert!(
        errs[0]
            .reason
            .starts_with("unknown field `replica` (did you mean `replicas`?)"),
        "{}",
        errs[0].reason
    );

    let errs = errors(r#"{"metadata": {"name": "a", "owner": "me"}, "spec": {"services": []}}"#);
    assert_eq!(errs[0].path, "metadata.owner");
    assert!(
        errs[0]
            .reason
            .starts_with("unknown field `owner`; expected one of `name`"),
        "{}",
        errs[0].reason
    );

    let errs = errors(&HELLO.replace("kind: Application", "kind: Application\nstatus: {}"));
    assert_eq!(errs[0].path, "status");
}

#[test]
fn missing_field_points_at_the_field() {
    let errs = errors("apiVersion: canopy.dev/v1\nkind: Application\nspec:\n  services: []\n");
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].path, "metadata");
    assert!(
        errs[0].reason.starts_with("is required"),
        "{}",
        errs[0].reason
    );
    let errs = errors(&HELLO.replace("      runtime: process\n", ""));
    assert_eq!(errs[0].path, "spec.services[0].runtime");
}

#[test]
fn syntax_errors() {
    let errs = errors("metadata: [1, 2\n");
    assert_eq!(errs[0].path, "");
    assert!(
        errs[0].reason.starts_with("invalid YAML"),
        "{}",
        errs[0].reason
    );
    let errs = errors("{\"metadata\": }");
    assert!(
        errs[0].reason.starts_with("invalid JSON"),
        "{}",
        errs[0].reason
    );
    assert!(errs[0].reason.contains("line 1"), "{}", errs[0].reason);
    assert!(has(&errors(""), "", "empty"));
    assert!(has(&errors("# just a comment\n"), "", "empty"));
    assert!(has(&errors("[]"), "", "empty array"));
    assert!(has(&errors("42"), "", "expected an Application mapping"));
    assert!(has(&errors("[1]"), "", "expected an Application object"));
}

#[test]
fn multi_document_yaml() {
    let two = format!("{HELLO}---\n{}", HELLO.replace("name: hello", "name: bye"));
    let p = parse_descriptor(&two).unwrap();
    let names: Vec<&str> = p
        .applications
        .iter()
        .map(|a| a.metadata.name.as_str())
        .collect();
    assert_eq!(names, ["hello", "bye"]);
    // A leading and a trailing separator make no empty applications.
    assert_eq!(
        parse_descriptor(&format!("---\n{two}---\n"))
            .unwrap()
            .applications
            .len(),
        2
    );

    // Every document of a multi-document input is addressed as documents[N].
    let bad = format!(
        "{}---\n{}",
        HELLO.replace("name: greeter", "name: Greeter"),
        HELLO
            .replace("name: hello", "name: bye")
            .replace("runtime: process", "runtime: process\n      replicas: -1")
    );
    let errs = errors(&bad);
    assert!(
        has(&errs, "documents[0].spec.services[0].name", "DNS label"),
        "{errs:#?}"
    );
    assert!(
        has(
            &errs,
            "documents[1].spec.services[0].replicas",
            "invalid type: integer `-1`"
        ),
        "{errs:#?}"
    );
    assert_eq!(errs.len(), 2, "{errs:#?}");
}

#[test]
fn json_array_of_applications() {
    let app = parse_descriptor(HELLO).unwrap().applications.remove(0);
    let mut other = app.clone();
    other.metadata.name = "bye".into();
    let text = serde_json::to_string(&vec![&app, &other]).unwrap();
    assert_eq!(
        parse_descriptor(&text).unwrap().applications,
        vec![app.clone(), other.clone()]
    );
    // A one-element array is a single document: no prefix.
    let mut bad = app.clone();
    bad.spec.services[0].replicas = 5000;
    let errs = errors(&serde_json::to_string(&vec![&bad]).unwrap());
    assert_eq!(errs[0].path, "spec.services[0].replicas");
    let errs = errors(&serde_json::to_string(&vec![&app, &bad]).unwrap());
    assert_eq!(errs[0].path, "documents[1].spec.services[0].replicas");
}

#[test]
fn duplicate_applications_in_one_input() {
    let errs = errors(&format!("{HELLO}---\n{HELLO}"));
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].path, "documents[1].metadata.name");
    assert!(
        errs[0]
            .reason
            .contains("duplicate application default/hello"),
        "{}",
        errs[0].reason
    );
    // The same name in another namespace is another application.
    let other_ns = HELLO.replace("name: hello", "name: hello\n  namespace: prod");
    assert_eq!(
        parse_descriptor(&format!("{HELLO}---\n{other_ns}"))
            .unwrap()
            .applications
            .len(),
        2
    );
}

#[test]
fn size_limit_is_enforced_first() {
    let padding = "#".repeat(MAX_DESCRIPTOR_BYTES);
    let errs = errors(&format!("{HELLO}{padding}"));
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].reason.contains("the limit is 1048576 bytes"),
        "{}",
        errs[0].reason
    );
    // Just under the limit is fine.
    let room = MAX_DESCRIPTOR_BYTES - HELLO.len() - 1;
    assert!(parse_descriptor(&format!("{HELLO}#{}", "x".repeat(room - 1))).is_ok());
}

#[test]
fn too_many_documents() {
    let docs: Vec<String> = (0..=MAX_APPLICATIONS_PER_DESCRIPTOR)
        .map(|i| HELLO.replace("name: hello", &format!("name: app{i}")))
        .collect();
    let errs = errors(&docs.join("---\n"));
    assert!(has(&errs, "", "more than 64 applications"), "{errs:#?}");
}

/// HELLO with `args` replaced by `args_value`: a valid application around it.
fn hello_with_args(args_value: &str) -> String {
    let text = HELLO.replace(
        "      command: [\"/bin/echo\", \"hi\"]\n",
        &format!("      command: [\"/bin/echo\", \"hi\"]\n      args: {args_value}\n"),
    );
    assert_ne!(text, HELLO, "HELLO changed shape; fix the test");
    text
}

#[test]
fn alias_bombs_are_refused() {
    // The document around the bomb is valid, so only the alias bound can be what refuses it.
    assert!(parse_descriptor(&hello_with_args("[\"lol\"]")).is_ok());

    // Billion laughs: nine levels of nine aliases would expand to 9^9 strings.
    let mut bomb = String::from(
        "[&a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]",
    );
    let mut prev = 'a';
    for name in 'b'..='i' {
        let aliases = vec![format!("*{prev}"); 9].join(",");
        bomb.push_str(&format!(", &{name} [{aliases}]"));
        prev = name;
    }
    bomb.push(']');
    let text = hello_with_args(&bomb);

    let started = std::time::Instant::now();
    let result = parse_descriptor(&text);
    let took = started.elapsed();
    // Refusing takes microseconds; an expanding parser needs minutes (or all memory). 2 s leaves
    // room for a loaded machine without letting a quadratic or exponential parse through.
    assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
    let errs = match result {
        Ok(p) => panic!("alias bomb parsed: {} applications", p.applications.len()),
        Err(e) => e.errors,
    };
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].reason.contains("aliases expand the descriptor"),
        "refused for another reason than the alias bound: {errs:#?}"
    );
}

#[test]
fn bom_is_ignored() {
    assert!(parse_descriptor(&format!("\u{feff}{HELLO}")).is_ok());
}

#[test]
fn every_example_parses_and_validates() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let mut seen = 0;
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let Some(ext) = path.extension().and_then(|e| e.to_str()) else {
            continue;
        };
        if !matches!(ext, "yaml" | "yml" | "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed = parse_descriptor(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!parsed.applications.is_empty(), "{}", path.display());
        for app in &parsed.applications {
            assert_eq!(validate_application(app), vec![], "{}", path.display());
            // And each survives a trip through both wire forms.
            assert_eq!(
                &parse_descriptor(&to_yaml(app)).unwrap().applications[0],
                app
            );
            assert_eq!(
                &parse_descriptor(&to_json(app)).unwrap().applications[0],
                app
            );
        }
        seen += 1;
    }
    assert!(seen >= 5, "only {seen} examples found in {dir}");
}

#[test]
fn example_details() {
    let read = |f: &str| {
        let text =
            std::fs::read_to_string(format!("{}/../../examples/{f}", env!("CARGO_MANIFEST_DIR")))
                .unwrap();
        parse_descriptor(&text).unwrap().applications.remove(0)
    };
    let hello = read("hello-process.yaml");
    assert_eq!(hello.spec.services[0].runtime, RuntimeKind::Process);
    assert_eq!(hello.spec.services[0].replicas, 3);
    let edge = read("edge-analytics.yaml");
    let names: Vec<&str> = edge.spec.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["camera-ingest", "detector", "dashboard"]);
    let geo = &edge.spec.services[0].constraints[0];
    assert!(geo.geo.is_some() && !geo.is_hard());
    assert_eq!(geo.rigidness, Some(0.8));
    assert_eq!(geo.convergence_time, Some(120));
    let det = &edge.spec.services[1];
    assert_eq!(det.resources.gpus, 1);
    assert_eq!(det.resources.cpu, Millicores(2000));
    assert_eq!(det.resources.memory, Mebibytes(4096));
    assert_eq!(
        det.constraints[0]
            .latency
            .as_ref()
            .unwrap()
            .to_service
            .as_deref(),
        Some("camera-ingest")
    );
    assert_eq!(
        edge.spec.services[2].constraints[0]
            .spread
            .as_ref()
            .unwrap()
            .max_per_node,
        Some(1)
    );
    assert_eq!(
        read("wasm-filter.yaml").spec.services[0].runtime,
        RuntimeKind::Wasm
    );
}

// ---- round trips over generated valid applications ----

fn label() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,8}[a-z0-9]"
}

fn point() -> impl Strategy<Value = GeoPoint> {
    // Whole thousandths of a degree: exact in both text forms.
    (-90_000i32..=90_000, -180_000i32..=180_000).prop_map(|(lat, lon)| GeoPoint {
        lat: f64::from(lat) / 1000.0,
        lon: f64::from(lon) / 1000.0,
    })
}

fn constraint_kind() -> impl Strategy<Value = Constraint> {
    let reqs = || {
        prop::collection::vec(
            (label(), prop::collection::vec(label(), 1..3)).prop_map(|(key, values)| {
                LabelRequirement {
                    key,
                    operator: LabelOperator::In,
                    values,
                }
            }),
            1..3,
        )
    };
    prop_oneof![
        prop::sample::subsequence(ARCHITECTURES.to_vec(), 1..3).prop_map(|a| Constraint {
            arch: Some(a.into_iter().map(String::from).collect()),
            ..Default::default()
        }),
        reqs().prop_map(|r| Constraint {
            node_selector: Some(r),
            ..Default::default()
        }),
        reqs().prop_map(|r| Constraint {
            cluster_selector: Some(r),
            ..Default::default()
        }),
        (
            prop::option::of(label()),
            prop::collection::vec(label(), 1..3)
        )
            .prop_map(|(cluster, nodes)| {
                Constraint {
                    direct: Some(DirectPlacement { cluster, nodes }),
                    ..Default::default()
                }
            }),
        prop::collection::vec(label(), 1..3).prop_map(|c| Constraint {
            clusters: Some(c),
            ..Default::default()
        }),
        (point(), 1u32..5000).prop_map(|(location, r)| Constraint {
            geo: Some(GeoConstraint {
                location,
                radius_km: f64::from(r) / 4.0
            }),
            ..Default::default()
        }),
        (point(), 1u32..1000).prop_map(|(p, ms)| Constraint {
            latency: Some(LatencyConstraint {
                max_ms: f64::from(ms),
                to_point: Some(p),
                to_service: None
            }),
            ..Default::default()
        }),
        (prop::option::of(1u32..10), 1u32..10).prop_map(|(n, c)| Constraint {
            spread: Some(SpreadConstraint {
                max_per_node: n,
                max_per_cluster: Some(c)
            }),
            ..Default::default()
        }),
        (0u32..=100).prop_map(|s| Constraint {
            trust: Some(TrustConstraint {
                min_score: f64::from(s) / 100.0
            }),
            ..Default::default()
        }),
    ]
}

fn constraint() -> impl Strategy<Value = Constraint> {
    (
        constraint_kind(),
        prop::option::of(0u32..=100),
        prop::option::of(1u64..3600),
    )
        .prop_map(|(mut c, r, t)| {
            c.rigidness = r.map(|r| f64::from(r) / 100.0);
            c.convergence_time = t;
            c
        })
}

fn text() -> impl Strategy<Value = String> {
    // Printable text, including YAML-significant words and characters.
    prop_oneof![
        "[ -~]{0,20}",
        Just("yes".to_string()),
        Just("null".to_string()),
        Just("1.5".to_string()),
        Just("- x: y".to_string()),
        Just("ünïcödé ✓".to_string()),
    ]
}

fn service(index: usize) -> impl Strategy<Value = ServiceSpec> {
    (
        label(),
        0..3usize,
        prop::collection::vec(text(), 0..3),
        prop::collection::btree_map("[A-Z][A-Z0-9_]{0,6}", text(), 0..3),
        (1u64..64_000, 1u64..100_000, 0u32..4, 0u64..10_000),
        0u32..=MAX_REPLICAS,
        prop::collection::vec((1u16.., any::<bool>(), prop::option::of(1u16..)), 0..3),
        prop::sample::select(vec![
            RestartPolicy::Always,
            RestartPolicy::OnFailure,
            RestartPolicy::Never,
        ]),
        prop::collection::vec(constraint(), 0..4),
    )
        .prop_map(
            move |(
                name,
                runtime,
                args,
                env,
                (cpu, mem, gpus, storage),
                replicas,
                ports,
                restart_policy,
                constraints,
            )| {
                let runtime = [
                    RuntimeKind::Container,
                    RuntimeKind::Wasm,
                    RuntimeKind::Process,
                ][runtime];
                // Unique per (port, protocol) and host port: derive from the index in the list.
                // A module has no sockets, so no ports (validation refuses them).
                let ports = ports
                    .into_iter()
                    .filter(|_| runtime != RuntimeKind::Wasm)
                    .enumerate()
                    .map(|(i, (_, udp, host))| PortSpec {
                        name: Some(format!("p{i}")),
                        port: 1000 + i as u16,
                        protocol: if udp { Protocol::Udp } else { Protocol::Tcp },
                        host_port: host.map(|_| 30_000 + i as u16),
                    })
                    .collect();
                ServiceSpec {
                    name: format!("{name}-{index}"),
                    runtime,
                    image: (runtime == RuntimeKind::Container)
                        .then(|| "registry.example.org/app:1".to_string()),
                    sandbox: None,
                    module: (runtime == RuntimeKind::Wasm).then(|| "file:///m.wasm".to_string()),
                    wasm: None,
                    vm: None,
                    command: if runtime == RuntimeKind::Process {
                        vec!["/bin/app".into()]
                    } else {
                        vec![]
                    },
                    args,
                    env,
                    working_dir: None,
                    resources: Resources {
                        cpu: Millicores(cpu),
                        memory: Mebibytes(mem),
                        gpus,
                        gpu_model: (gpus > 0).then(|| "nvidia-t4".to_string()),
                        storage: Mebibytes(storage),
                    },
                    replicas,
                    ports,
                    restart_policy,
                    job: None,
                    liveness_probe: None,
                    readiness_probe: None,
                    startup_probe: None,
                    strategy: None,
                    autoscale: None,
                    constraints,
                    objective: None,
                    image_pull_secret: None,
                    security_context: Default::default(),
                    secret_env: Default::default(),
                    files: Vec::new(),
                    volumes: Vec::new(),
                    labels: Default::default(),
                    annotations: Default::default(),
                }
            },
        )
}

fn application() -> impl Strategy<Value = Application> {
    (
        label(),
        label(),
        service(0),
        prop::option::of(service(1)),
        prop::collection::btree_map(label(), text(), 0..3),
    )
        .prop_map(|(name, namespace, a, b, annotations)| Application {
            api_version: API_VERSION.into(),
            kind: KIND_APPLICATION.into(),
            metadata: Metadata {
                name,
                namespace,
                labels: Default::default(),
                annotations,
            },
            spec: ApplicationSpec {
                services: std::iter::once(a).chain(b).collect(),
            },
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn generated_applications_are_valid_and_round_trip(app in application()) {
        prop_assert_eq!(validate_application(&app), vec![]);
        let via_json = parse_descriptor(&to_json(&app)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&via_json.applications[0], &app);
        let via_yaml = parse_descriptor(&to_yaml(&app)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&via_yaml.applications[0], &app);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = parse_descriptor(&text);
    }
}

#[test]
fn a_key_given_twice_is_refused_not_overwritten() {
    let json = r#"{"apiVersion": "canopy.dev/v1", "kind": "Application",
        "metadata": {"name": "twice", "labels": {"a": "1", "a": "2"}},
        "spec": {"services": [{"name": "web", "runtime": "process", "command": ["/bin/true"],
                               "env": {"MODE": "safe", "MODE": "unsafe"}}]}}"#;
    let errs = errors(json);
    assert!(
        errs.iter()
            .any(|e| e.path.starts_with("metadata.labels")
                && e.reason.contains("duplicate key \"a\"")),
        "{errs:#?}"
    );
    let only_env = json.replace(r#""a": "1", "a": "2""#, r#""a": "1""#);
    let errs = errors(&only_env);
    assert!(
        errs.iter()
            .any(|e| e.path.starts_with("spec.services[0].env")
                && e.reason.contains("duplicate key \"MODE\"")),
        "{errs:#?}"
    );
    let yaml = "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {name: twice}\nspec:\n  services:\n    - name: web\n      runtime: process\n      command: [/bin/true]\n      env:\n        MODE: safe\n        MODE: unsafe\n";
    let errs = errors(yaml);
    assert!(
        errs.iter().any(|e| e.reason.contains("MODE")),
        "YAML refuses it too: {errs:#?}"
    );
}
