//! Overlay routes from the cluster's pure core: only interested nodes get a service's
//! routes, when they ask and when they change, until their interest lapses.

use canopy_cluster::{ClusterState, Effects, Now, Settings, ToNode};
use canopy_model::{InstanceState, ServiceSpec};
use canopy_tier::{Assignment, Hello, Reported, StatusReport, Workload, pb};
use std::time::{Duration, Instant};

fn start() -> Now {
    Now {
        at: Instant::now(),
        unix_ms: 1_700_000_000_000,
    }
}

/// A cluster with nodes `a` and `b`, and instance `web-0` of `web` (port 8080) placed.
fn cluster(now: Now) -> (ClusterState, String) {
    let settings = Settings {
        name: "site".into(),
        node_deadline: Duration::from_secs(3),
        carbon_g_per_kwh: None,
        probe_port: None,
    };
    let mut state = ClusterState::recover(settings, Vec::new(), now);
    for (link, name) in ["a", "b"].iter().enumerate() {
        let member = pb::Member {
            name: name.to_string(),
            arch: "amd64".into(),
            runtimes: vec!["process".into()],
            capacity: Some(pb::Resources {
                cpu_millis: 4000,
                memory_mib: 4096,
                gpus: 0,
                storage_mib: 0,
            }),
            ready: true,
            ..pb::Member::default()
        };
        let hello = Hello {
            member,
            ..Hello::default()
        };
        state.node_hello(hello, link as u64, now, &mut Effects::default());
    }
    let spec: ServiceSpec = serde_json::from_value(serde_json::json!({
        "name": "web", "runtime": "process", "command": ["/bin/true"],
        "resources": {"cpu": "100m", "memory": "16Mi"}, "ports": [{"port": 8080}]
    }))
    .expect("valid spec");
    let assignment = Assignment {
        id: "web-0".into(),
        generation: 1,
        workload: Workload {
            namespace: "default".into(),
            application: "app".into(),
            service: "web".into(),
            replica: 0,
            spec,
        },
        secrets: Default::default(),
    };
    let mut fx = Effects::default();
    state.assign(vec![assignment], now, &mut fx);
    let node = fx
        .to_nodes
        .iter()
        .find_map(|(node, m)| matches!(m, ToNode::Assign(_)).then(|| node.clone()))
        .expect("placed");
    (state, node)
}

fn name(service: &str) -> pb::ServiceName {
    pb::ServiceName {
        namespace: "default".into(),
        application: "app".into(),
        service: service.into(),
    }
}

fn interest(
    state: &mut ClusterState,
    node: &str,
    services: &[&str],
    address: &str,
    now: Now,
) -> Effects {
    ask(state, node, services, address, false, now)
}

fn ask(
    state: &mut ClusterState,
    node: &str,
    services: &[&str],
    address: &str,
    renewal: bool,
    now: Now,
) -> Effects {
    let mut fx = Effects::default();
    let interest = pb::Interest {
        services: services.iter().map(|s| name(s)).collect(),
        address: address.into(),
        renewal,
        applications: Vec::new(),
    };
    state.node_interest(node, interest, now, &mut fx);
    fx
}

/// The routes sent, as (node, service, known, endpoints as "instance@address:target").
fn routes(fx: &Effects) -> Vec<(String, String, bool, Vec<String>)> {
    let mut out = Vec::new();
    for (node, message) in &fx.to_nodes {
        if let ToNode::Routes(routes) = message {
            for service in &routes.services {
                let endpoints = service
                    .endpoints
                    .iter()
                    .flat_map(|e| {
                        e.ports
                            .iter()
                            .map(move |p| format!("{}@{}:{}", e.instance_id, e.address, p.target))
                    })
                    .collect();
                let svc = service
                    .name
                    .as_ref()
                    .map(|n| n.service.clone())
                    .unwrap_or_default();
                out.push((node.clone(), svc, service.known, endpoints));
            }
        }
    }
    out
}

fn running(state: &mut ClusterState, node: &str, now: Now) -> Effects {
    let mut report = StatusReport::new("web-0", 1, Reported::State(InstanceState::Running), "");
    report.ready = true;
    let mut fx = Effects::default();
    state.node_status(node, report, now, &mut fx);
    state.refresh_routes(now, &mut fx);
    fx
}

#[test]
fn an_interested_node_gets_a_service_s_routes_when_it_asks_and_when_they_change() {
    let now = start();
    let (mut state, server) = cluster(now);
    let client = if server == "a" { "b" } else { "a" };
    // The server's node says where its processes are reached (and wants nothing).
    let fx = interest(&mut state, &server, &[], "127.0.0.12", now);
    assert!(routes(&fx).is_empty());

    // Asked before the instance runs: a known service, no endpoint yet; unknown ones say so.
    let fx = interest(&mut state, client, &["web", "nosuch"], "127.0.0.11", now);
    assert_eq!(
        routes(&fx),
        [
            (client.to_string(), "web".to_string(), true, vec![]),
            (client.to_string(), "nosuch".to_string(), false, vec![])
        ]
    );

    // Running and ready: the client (only it) hears, at the server node's address.
    let fx = running(&mut state, &server, now);
    assert_eq!(
        routes(&fx),
        [(
            client.to_string(),
            "web".to_string(),
            true,
            vec!["web-0@127.0.0.12:8080".to_string()]
        )]
    );
    // Nothing changed: nothing sent again.
    let mut fx = Effects::default();
    state.refresh_routes(now, &mut fx);
    assert!(routes(&fx).is_empty());

    // It ended: its endpoint goes.
    let mut fx = Effects::default();
    let ended = StatusReport::new("web-0", 1, Reported::State(InstanceState::Failed), "exit 1");
    state.node_status(&server, ended, now, &mut fx);
    state.refresh_routes(now, &mut fx);
    assert_eq!(
        routes(&fx),
        [(client.to_string(), "web".to_string(), true, vec![])]
    );
}

#[test]
fn interest_not_renewed_lapses_and_no_routes_follow() {
    let now = start();
    let (mut state, server) = cluster(now);
    let client = if server == "a" { "b" } else { "a" };
    interest(&mut state, &server, &[], "127.0.0.12", now);
    interest(&mut state, client, &["web"], "127.0.0.11", now);
    let later = now.later(Duration::from_secs(60));
    let fx = running(&mut state, &server, later);
    assert!(routes(&fx).is_empty(), "{:?}", routes(&fx));

    // Asked again: sent; a renewal within the expiry keeps it and resends nothing unchanged;
    // a node that lost its routes (its link was down) gets them again.
    let fx = interest(&mut state, client, &["web"], "127.0.0.11", later);
    assert_eq!(routes(&fx).len(), 1);
    let renewed = later.later(Duration::from_secs(20));
    let fx = ask(&mut state, client, &["web"], "127.0.0.11", true, renewed);
    assert!(routes(&fx).is_empty(), "{:?}", routes(&fx));
    let fx = ask(&mut state, client, &["web"], "127.0.0.11", false, renewed);
    assert_eq!(routes(&fx).len(), 1);
}

#[test]
fn an_application_s_services_are_sent_with_their_ports_before_any_instance_is_ready() {
    let now = start();
    let (mut state, _) = cluster(now);
    let mut fx = Effects::default();
    let interest = pb::Interest {
        applications: vec![name("")],
        ..pb::Interest::default()
    };
    state.node_interest("b", interest, now, &mut fx);
    let sent: Vec<&pb::ServiceRoutes> = fx
        .to_nodes
        .iter()
        .filter_map(|(node, m)| match m {
            ToNode::Routes(r) if node == "b" => Some(r),
            _ => None,
        })
        .flat_map(|r| &r.services)
        .collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].name, Some(name("web")));
    assert!(sent[0].known && sent[0].endpoints.is_empty());
    let ports: Vec<(u32, u32, &str)> = sent[0]
        .ports
        .iter()
        .map(|p| (p.port, p.target, p.protocol.as_str()))
        .collect();
    assert_eq!(ports, [(8080, 8080, "tcp")]);
    // Another application of the namespace has nothing here.
    let mut fx = Effects::default();
    let other = pb::Interest {
        applications: vec![pb::ServiceName {
            application: "other".into(),
            ..name("")
        }],
        ..pb::Interest::default()
    };
    state.node_interest("b", other, now, &mut fx);
    assert!(fx.to_nodes.is_empty(), "{:?}", fx.to_nodes);
}
