use crate::{DescriptorFormat, parse_descriptor};

/// Descriptors the aeriOS front end publishes (see each file's first lines).
const TWO_COMPONENTS: &str = include_str!("../../tests/data/aerios/two-components.yaml");
const PORTAL_EXAMPLE: &str = include_str!("../../tests/data/aerios/portal-example.yaml");

fn warned(parsed: &crate::ParsedDescriptor, path: &str) -> String {
    parsed
        .warnings
        .iter()
        .find(|w| w.path == path)
        .map(|w| w.reason.clone())
        .unwrap_or_else(|| panic!("no warning at {path}: {:?}", parsed.warnings))
}

#[test]
fn the_published_two_component_service_maps_onto_two_container_services() {
    let parsed = parse_descriptor(TWO_COMPONENTS).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(parsed.format, DescriptorFormat::Tosca);
    let [app] = parsed.applications.as_slice() else {
        panic!("one application: {:?}", parsed.applications)
    };
    assert_eq!(app.metadata.name, "nginx-component-nmosquitto-component");
    assert_eq!(app.metadata.namespace, "default");
    assert!(app.metadata.annotations["description"].starts_with("TOSCA simple container"));
    let [nginx, mosquitto] = app.spec.services.as_slice() else {
        panic!("two services: {:?}", app.spec.services)
    };

    assert_eq!(nginx.name, "nginx-component");
    assert_eq!(nginx.image.as_deref(), Some("nginx:latest"));
    assert_eq!(
        nginx.annotations["aerios.eu/node_template"],
        "nginx_component"
    );
    assert_eq!(
        nginx.env["SOME_NGINX_ENV_VARIABLE"],
        "SOME_NGINX_ENV_VARIABLE_VALUE"
    );
    let ports: Vec<(u16, Option<u16>)> =
        nginx.ports.iter().map(|p| (p.port, p.host_port)).collect();
    assert_eq!(ports, [(80, None), (443, None)]);
    let direct = nginx.constraints[0]
        .direct
        .as_ref()
        .expect("a direct placement");
    assert_eq!(direct.nodes, ["ncsrd-w2"]);
    assert_eq!(direct.cluster, None);

    assert_eq!(mosquitto.image.as_deref(), Some("eclipse-mosquitto:latest"));
    assert_eq!(mosquitto.resources.memory.0, 4096);
    assert!(
        mosquitto
            .constraints
            .iter()
            .any(|c| c.arch.as_deref() == Some(&["amd64".to_string()][..])),
        "{:?}",
        mosquitto.constraints
    );
    let geo = mosquitto
        .constraints
        .iter()
        .find_map(|c| c.geo.as_ref())
        .expect("the area as a circle");
    assert!((geo.location.lat - 39.463).abs() < 0.01, "{geo:?}");
    assert!(geo.radius_km > 5.0 && geo.radius_km < 6.5, "{geo:?}");
    // Kept, and said.
    let base = "node_templates.nmosquitto_component.requirements[0].host.node_filter.capabilities[0].host.properties";
    assert!(warned(&parsed, &format!("{base}.cpu_usage")).contains("aerios.eu/host.cpu_usage"));
    assert!(warned(&parsed, &format!("{base}.realtime")).contains("kept in annotation"));
    assert!(warned(&parsed, &format!("{base}.area")).contains("approximated"));
    assert_eq!(
        mosquitto.annotations["aerios.eu/host.cpu_usage"],
        r#"{"less_or_equal":0.5}"#
    );
    assert!(warned(&parsed, "metadata.template_name").contains("after its node templates"));
}

#[test]
fn the_front_ends_own_example_maps_domains_jobs_arguments_and_published_ports() {
    let parsed = parse_descriptor(PORTAL_EXAMPLE).unwrap_or_else(|e| panic!("{e:?}"));
    let app = &parsed.applications[0];
    let auto = &app.spec.services[0];
    assert_eq!(auto.name, "auto-component");
    assert_eq!(
        auto.image.as_deref(),
        Some("registry.gitlab.aerios-project.eu/aerios-public/common-deployments/nginx:latest")
    );
    assert_eq!(auto.args, ["-a", "aa"]);
    let file = "node_templates.auto-component.artifacts.application_image.file";
    assert!(warned(&parsed, file).contains("lowercase"));
    assert_eq!(auto.env["URL"], "bb");
    let published: Vec<Option<u16>> = auto.ports.iter().map(|p| p.host_port).collect();
    assert_eq!(published, [Some(80), Some(443)], "exposePorts: True");
    assert!(
        auto.constraints
            .iter()
            .any(|c| c.clusters.as_deref() == Some(&["ncsrd".to_string()][..])),
        "{:?}",
        auto.constraints
    );
    assert_eq!(
        auto.restart_policy,
        crate::RestartPolicy::Always,
        "isJob: False"
    );
    for kept in ["energy_efficiency", "green", "cpu_usage", "realtime"] {
        assert!(
            auto.annotations
                .contains_key(&format!("aerios.eu/host.{kept}")),
            "{kept}: {:?}",
            auto.annotations
        );
    }
    let manual = &app.spec.services[1];
    let direct = manual.constraints[0].direct.as_ref().expect("direct");
    assert_eq!(direct.cluster.as_deref(), Some("ncsrd"));
    assert_eq!(direct.nodes, ["fac2b1a81a2e"]);
    assert!(manual.ports.iter().all(|p| p.host_port.is_none()));
}

#[test]
fn what_canopy_cannot_run_is_refused_at_its_tosca_path() {
    let bad = r#"
tosca_definitions_version: tosca_simple_yaml_1_3
node_templates:
  db:
    type: tosca.nodes.Database
    isJob: true
    artifacts:
      img:
        file: postgres
        type: tosca.artifacts.Deployment.Image.VM
        repository: registry.example.org
        isPrivate: true
        username: robot
        password: hunter2
    interfaces: {Standard: {create: {implementation: img}}}
    requirements:
      - host: {node_filter: {capabilities: [{host: {properties: {cpu_arch: {equal: sparc}}}}]}}
      - network: {properties: {ports: {p: {properties: {protocol: [sctp], source: 99999}}}}}
"#;
    let errors = parse_descriptor(bad).expect_err("refused").errors;
    let at = |path: &str| {
        errors
            .iter()
            .find(|e| e.path == path)
            .map(|e| e.reason.clone())
            .unwrap_or_else(|| panic!("no error at {path}: {errors:?}"))
    };
    assert!(at("node_templates.db.type").contains("tosca.nodes.Container.Application"));
    assert!(at("node_templates.db.artifacts.img.type").contains("Docker"));
    assert!(at("node_templates.db.artifacts.img.password").contains("imagePullSecret"));
    assert!(at("node_templates.db.artifacts.img.username").contains("secret"));
    let arch = "node_templates.db.requirements[0].host.node_filter.capabilities[0].host.properties.cpu_arch.equal";
    assert!(at(arch).contains("sparc"));
    assert!(
        at("node_templates.db.requirements[1].network.properties.ports.p.source").contains("65535")
    );
    // No secret value in any error.
    assert!(errors.iter().all(|e| !e.reason.contains("hunter2")));
}

#[test]
fn native_validation_errors_name_the_node_template() {
    let too_big = r#"
tosca_definitions_version: tosca_simple_yaml_1_3
metadata: {template_name: Big_App, namespace: team-a}
node_templates:
  huge:
    type: tosca.nodes.Container.Application
    artifacts: {img: {file: nginx, type: tosca.artifacts.Deployment.Image.Container.Docker}}
    requirements:
      - host: {node_filter: {capabilities: [{host: {properties: {mem_size: {greater_or_equal: 99999999999 MB}}}}]}}
"#;
    let errors = parse_descriptor(too_big).expect_err("refused").errors;
    assert!(
        errors
            .iter()
            .any(|e| e.path == "node_templates.huge" && e.reason.starts_with("resources.memory")),
        "{errors:?}"
    );
    let fine = too_big.replace("99999999999 MB", "256 MB");
    let parsed = parse_descriptor(&fine).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(parsed.applications[0].metadata.name, "big-app");
    assert_eq!(parsed.applications[0].metadata.namespace, "team-a");
    assert_eq!(
        parsed.applications[0].spec.services[0].resources.memory.0,
        256
    );
}
