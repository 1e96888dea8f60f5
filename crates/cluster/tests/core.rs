//! The cluster's decisions, without processes or sockets: its pure core is fed events with
//! the time, and the effects it records are checked.

use canopy_cluster::{ClusterState, Effects, Now, Settings, ToNode};
use canopy_model::{Desired, InstanceState, ServiceSpec};
use canopy_tier::{Assignment, Hello, Reported, Revocation, StatusReport, Workload, pb};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(3);

fn start() -> Now {
    Now {
        at: Instant::now(),
        unix_ms: 1_700_000_000_000,
    }
}

fn cluster(now: Now) -> ClusterState {
    let settings = Settings {
        name: "site".into(),
        node_deadline: DEADLINE,
        carbon_g_per_kwh: None,
        probe_port: None,
    };
    ClusterState::recover(settings, Vec::new(), now)
}

fn member(name: &str, cpu: u64, labels: &[(&str, &str)]) -> pb::Member {
    pb::Member {
        name: name.into(),
        arch: "amd64".into(),
        runtimes: vec!["process".into()],
        capacity: Some(pb::Resources {
            cpu_millis: cpu,
            memory_mib: 4096,
            gpus: 0,
            storage_mib: 0,
        }),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ready: true,
        ..pb::Member::default()
    }
}

fn hello(member: pb::Member, instances: Vec<StatusReport>) -> Hello {
    Hello {
        member,
        instances,
        ..Hello::default()
    }
}

fn join(state: &mut ClusterState, name: &str, cpu: u64, link: u64, now: Now) -> Effects {
    let mut fx = Effects::default();
    state.node_hello(
        hello(member(name, cpu, &[]), Vec::new()),
        link,
        now,
        &mut fx,
    );
    fx
}

fn spec(service: &str, cpu: &str, extra: serde_json::Value) -> ServiceSpec {
    let mut json = serde_json::json!({
        "name": service, "runtime": "process", "command": ["/bin/true"],
        "resources": {"cpu": cpu, "memory": "16Mi"}
    });
    if let (Some(object), serde_json::Value::Object(more)) = (json.as_object_mut(), extra) {
        object.extend(more);
    }
    serde_json::from_value(json).expect("valid spec")
}

fn assignment(id: &str, generation: u64, spec: ServiceSpec) -> Assignment {
    Assignment {
        secrets: Default::default(),
        id: id.into(),
        generation,
        workload: Workload {
            namespace: "default".into(),
            application: "app".into(),
            service: spec.name.clone(),
            replica: 0,
            spec,
        },
    }
}

fn assign(state: &mut ClusterState, assignments: Vec<Assignment>, now: Now) -> Effects {
    let mut fx = Effects::default();
    state.assign(assignments, now, &mut fx);
    fx
}

/// Assigns instance `id` (generation 1) of a small `web` service.
fn assign_web(state: &mut ClusterState, id: &str, now: Now) -> Effects {
    let web = spec("web", "100m", serde_json::json!({}));
    assign(state, vec![assignment(id, 1, web)], now)
}

fn report(id: &str, state: InstanceState) -> StatusReport {
    StatusReport::new(id, 1, Reported::State(state), "")
}

fn from_node(state: &mut ClusterState, node: &str, report: StatusReport, now: Now) -> Effects {
    let mut fx = Effects::default();
    state.node_heard(node, None, now);
    state.node_status(node, report, now, &mut fx);
    fx
}

/// The assignments and revocations sent, as (node, "assign"/"revoke", id).
fn sent(fx: &Effects) -> Vec<(String, &'static str, String)> {
    fx.to_nodes
        .iter()
        .filter_map(|(node, message)| match message {
            ToNode::Assign(a) => Some((node.clone(), "assign", a.id.clone())),
            ToNode::Revoke(r) => Some((node.clone(), "revoke", r.id.clone())),
            ToNode::Peers(_) | ToNode::Routes(_) => None,
        })
        .collect()
}

fn to(node: &str, what: &'static str, id: &str) -> (String, &'static str, String) {
    (node.to_string(), what, id.to_string())
}

fn up_states(fx: &Effects, id: &str) -> Vec<Reported> {
    fx.up
        .iter()
        .filter(|s| s.id == id)
        .map(|s| s.state)
        .collect()
}

fn node_of(state: &ClusterState, id: &str) -> Option<String> {
    state.instances.get(id).and_then(|p| p.node.clone())
}

#[test]
fn a_batch_is_placed_in_order_each_seeing_the_reservations_before_it() {
    let now = start();
    let mut state = cluster(now);
    join(&mut state, "n1", 1000, 1, now);
    let batch = ["a", "b", "c"]
        .map(|id| assignment(id, 1, spec("web", "400m", serde_json::json!({}))))
        .to_vec();
    let fx = assign(&mut state, batch, now);

    assert_eq!(
        sent(&fx),
        [to("n1", "assign", "a"), to("n1", "assign", "b")]
    );
    assert!(
        fx.decided,
        "placements are decisions: durable before they are sent"
    );
    assert!(fx.writes["a"].is_some() && fx.writes["b"].is_some());
    assert_eq!(fx.writes["c"], None, "the refused one is forgotten");
    let refusal = fx.up.iter().find(|s| s.id == "c").expect("c reported");
    assert_eq!(refusal.state, Reported::Refused);
    assert!(
        refusal.reason.contains("insufficient cpu"),
        "{}",
        refusal.reason
    );
    assert_eq!(
        state.instances["a"].state,
        InstanceState::NodeScheduled,
        "bound to its node"
    );
}

#[test]
fn a_repeated_assignment_is_answered_with_where_it_stands_and_not_placed_twice() {
    let now = start();
    let mut state = cluster(now);
    join(&mut state, "n1", 1000, 1, now);
    let web = spec("web", "100m", serde_json::json!({}));
    assign(&mut state, vec![assignment("a", 1, web.clone())], now);
    let fx = assign(&mut state, vec![assignment("a", 1, web)], now);
    assert!(sent(&fx).is_empty(), "{:?}", sent(&fx));
    assert_eq!(
        up_states(&fx, "a"),
        [Reported::State(InstanceState::NodeScheduled)]
    );
    assert!(fx.writes.is_empty());
}

#[test]
fn a_refusal_moves_the_instance_to_the_next_node_then_up_with_the_node_s_reason() {
    let now = start();
    let mut state = cluster(now);
    join(&mut state, "n1", 1000, 1, now);
    join(&mut state, "n2", 1000, 2, now);
    assign_web(&mut state, "a", now);
    let first = node_of(&state, "a").expect("placed");
    let refusal = |why: &str| StatusReport::new("a", 1, Reported::Refused, why);

    let fx = from_node(&mut state, &first, refusal("host port 80/tcp taken"), now);
    let second = node_of(&state, "a").expect("placed again");
    assert_ne!(first, second);
    assert_eq!(sent(&fx), [to(&second, "assign", "a")]);

    let fx = from_node(&mut state, &second, refusal("out of file descriptors"), now);
    assert!(!state.instances.contains_key("a"), "given back to the root");
    let up = fx.up.last().expect("a refusal up");
    assert_eq!(up.state, Reported::Refused);
    assert!(
        up.reason.contains("out of file descriptors"),
        "{}",
        up.reason
    );
}

/// A cluster with one node, n1, running instance "a".
fn running_on_n1(now: Now) -> ClusterState {
    let mut state = cluster(now);
    join(&mut state, "n1", 1000, 1, now);
    let web = spec("web", "100m", serde_json::json!({}));
    assign(&mut state, vec![assignment("a", 1, web)], now);
    from_node(&mut state, "n1", report("a", InstanceState::Running), now);
    state
}

#[test]
fn a_lost_node_s_instances_are_placed_on_another_node() {
    let now = start();
    let mut state = running_on_n1(now);
    let later = now.later(Duration::from_secs(2));
    join(&mut state, "n2", 1000, 2, later);

    // Within the deadline nothing happens; past it, n1 is lost (n2 was heard since).
    let mut fx = Effects::default();
    let lost = state.detect_lost_nodes(now.later(DEADLINE), &mut fx);
    assert!(lost.is_empty() && fx.is_empty(), "{lost:?}");
    let past = now.later(DEADLINE + Duration::from_millis(1));
    let lost = state.detect_lost_nodes(past, &mut fx);

    assert_eq!(lost, ["n1"]);
    assert_eq!(node_of(&state, "a").as_deref(), Some("n2"));
    assert_eq!(sent(&fx), [to("n2", "assign", "a")]);
    assert_eq!(
        up_states(&fx, "a"),
        [
            Reported::State(InstanceState::Lost),
            Reported::State(InstanceState::NodeScheduled)
        ]
    );
    assert!(fx.membership_changed);
}

#[test]
fn a_returning_node_has_exactly_its_stale_copies_stopped() {
    let now = start();
    let mut state = cluster(now);
    join(&mut state, "n1", 1000, 1, now);
    let web = spec("web", "100m", serde_json::json!({}));
    assign(&mut state, vec![assignment("moved", 1, web.clone())], now);
    from_node(
        &mut state,
        "n1",
        report("moved", InstanceState::Running),
        now,
    );
    let later = now.later(DEADLINE);
    join(&mut state, "n2", 1000, 2, later);
    let mut fx = Effects::default();
    state.detect_lost_nodes(later.later(Duration::from_millis(1)), &mut fx);
    assert_eq!(node_of(&state, "moved").as_deref(), Some("n2"));
    // Placed on n1 once it is back: the copy it should keep.
    assign(&mut state, vec![assignment("kept", 1, web)], later);

    // n1 returns, still running its old copy of "moved", an instance nobody knows, and not
    // (yet) "kept", which it never received.
    let back = later.later(Duration::from_secs(1));
    let mut fx = Effects::default();
    let reports = vec![
        report("moved", InstanceState::Running),
        report("stranger", InstanceState::Running),
    ];
    state.node_hello(hello(member("n1", 1000, &[]), reports), 3, back, &mut fx);
    let mut sent = sent(&fx);
    sent.sort();
    let kept_on_n1 = node_of(&state, "kept").as_deref() == Some("n1");
    let mut want = vec![to("n1", "revoke", "moved"), to("n1", "revoke", "stranger")];
    if kept_on_n1 {
        want.push(to("n1", "assign", "kept"));
    }
    want.sort();
    assert_eq!(sent, want);
    assert_eq!(
        node_of(&state, "moved").as_deref(),
        Some("n2"),
        "the replacement stays"
    );
}

#[test]
fn a_revoke_asks_a_stop_that_only_the_node_confirms() {
    let now = start();
    let mut state = running_on_n1(now);
    let mut fx = Effects::default();
    state.revoke(Revocation::new("a", 1, "scaled down"), now, &mut fx);
    assert_eq!(sent(&fx), [to("n1", "revoke", "a")]);
    let a = &state.instances["a"];
    assert_eq!(
        (a.desired, a.state),
        (Desired::Stop, InstanceState::Running),
        "asked, not observed"
    );
    assert!(fx.up.is_empty(), "nothing was observed: nothing to report");
    assert!(fx.writes["a"].is_some(), "the stop is persisted");

    // Sent before the node heard the revoke: no placement, the stop stands.
    let fx = from_node(&mut state, "n1", report("a", InstanceState::Running), now);
    assert_eq!(state.instances["a"].desired, Desired::Stop);
    assert!(sent(&fx).is_empty() && fx.writes.is_empty());

    let fx = from_node(
        &mut state,
        "n1",
        report("a", InstanceState::Terminating),
        now,
    );
    assert_eq!(state.instances["a"].state, InstanceState::Terminating);
    assert_eq!(
        up_states(&fx, "a"),
        [Reported::State(InstanceState::Terminating)]
    );
    // A late report never undoes what the node said.
    let fx = from_node(&mut state, "n1", report("a", InstanceState::Starting), now);
    assert_eq!(state.instances["a"].state, InstanceState::Terminating);
    assert!(fx.up.is_empty() && fx.writes.is_empty());

    let fx = from_node(
        &mut state,
        "n1",
        report("a", InstanceState::Terminated),
        now,
    );
    assert!(!state.instances.contains_key("a"));
    assert_eq!(
        up_states(&fx, "a"),
        [Reported::State(InstanceState::Terminated)]
    );
    assert_eq!(fx.writes["a"], None);
}

#[test]
fn a_stopping_instance_whose_node_is_lost_or_refuses_ends_instead_of_moving() {
    for refuse in [true, false] {
        let now = start();
        let mut state = running_on_n1(now);
        join(&mut state, "n2", 1000, 2, now);
        let mut fx = Effects::default();
        state.revoke(Revocation::new("a", 1, "scaled down"), now, &mut fx);
        let fx = if refuse {
            let refused = StatusReport::new("a", 1, Reported::Refused, "gone already");
            from_node(&mut state, "n1", refused, now)
        } else {
            let mut fx = Effects::default();
            state.node_heard("n2", None, now.later(DEADLINE));
            let lost =
                state.detect_lost_nodes(now.later(DEADLINE + Duration::from_millis(1)), &mut fx);
            assert_eq!(lost, ["n1"]);
            fx
        };
        assert!(!state.instances.contains_key("a"), "refuse={refuse}");
        assert!(
            sent(&fx).iter().all(|(_, verb, _)| *verb != "assign"),
            "not placed again: {:?}",
            sent(&fx)
        );
        assert_eq!(
            up_states(&fx, "a"),
            [Reported::State(InstanceState::Terminated)]
        );
    }
}

#[test]
fn a_revoke_for_an_instance_on_a_disconnected_node_finishes_at_once() {
    let now = start();
    let mut state = cluster(now);
    join(&mut state, "n1", 1000, 7, now);
    assign_web(&mut state, "a", now);
    assert!(state.node_goodbye("n1", 7));
    let mut fx = Effects::default();
    state.revoke(Revocation::new("a", 1, "deleted"), now, &mut fx);
    assert!(!state.instances.contains_key("a"));
    assert_eq!(
        up_states(&fx, "a"),
        [Reported::State(InstanceState::Terminated)]
    );
}

/// A service that prefers nodes labelled `zone=b`, on a cluster whose only node is in zone a.
fn preferring_zone_b(now: Now, replicas: &[&str]) -> ClusterState {
    let mut state = cluster(now);
    let mut fx = Effects::default();
    state.node_hello(
        hello(member("a", 4000, &[("zone", "a")]), Vec::new()),
        1,
        now,
        &mut fx,
    );
    let web = spec(
        "web",
        "100m",
        serde_json::json!({"constraints": [{
            "nodeSelector": [{"key": "zone", "values": ["b"]}],
            "rigidness": 0.5, "convergenceTime": 1
        }]}),
    );
    let batch = replicas
        .iter()
        .map(|id| assignment(id, 1, web.clone()))
        .collect();
    assign(&mut state, batch, now);
    for id in replicas {
        from_node(&mut state, "a", report(id, InstanceState::Running), now);
    }
    let mut fx = Effects::default();
    state.node_hello(
        hello(member("b", 4000, &[("zone", "b")]), Vec::new()),
        2,
        now,
        &mut fx,
    );
    state
}

fn converge(state: &mut ClusterState, now: Now) -> Effects {
    let mut fx = Effects::default();
    state.converge(now, &mut fx);
    fx
}

#[test]
fn a_move_starts_after_the_convergence_time_and_completes_when_the_new_copy_runs() {
    let now = start();
    let mut state = preferring_zone_b(now, &["m"]);
    assert!(
        converge(&mut state, now).to_nodes.is_empty(),
        "not before 1 s"
    );

    let later = now.later(Duration::from_secs(2));
    let fx = converge(&mut state, later);
    assert_eq!(sent(&fx), [to("b", "assign", "m")]);
    assert_eq!(
        node_of(&state, "m").as_deref(),
        Some("a"),
        "the old copy serves"
    );
    assert_eq!(state.instances["m"].state, InstanceState::Running);

    let fx = from_node(&mut state, "b", report("m", InstanceState::Starting), later);
    assert!(
        sent(&fx).is_empty(),
        "the old copy stays until the new one runs"
    );
    let fx = from_node(&mut state, "b", report("m", InstanceState::Running), later);
    assert_eq!(sent(&fx), [to("a", "revoke", "m")]);
    assert_eq!(node_of(&state, "m").as_deref(), Some("b"));
    assert!(state.instances["m"].moving.is_none());
    assert!(state.instances["m"].soft_violation_since.is_none());
}

#[test]
fn a_refused_move_is_cancelled_and_the_old_copy_stays() {
    let now = start();
    let mut state = preferring_zone_b(now, &["m"]);
    let later = now.later(Duration::from_secs(2));
    converge(&mut state, later);
    let refusal = StatusReport::new("m", 1, Reported::Refused, "busy");
    let fx = from_node(&mut state, "b", refusal, later);

    assert_eq!(node_of(&state, "m").as_deref(), Some("a"));
    assert!(state.instances["m"].moving.is_none());
    assert_eq!(state.instances["m"].state, InstanceState::Running);
    assert!(state.instances["m"].reason.contains("busy"));
    assert!(
        !sent(&fx).contains(&to("a", "revoke", "m")),
        "the serving copy is never stopped"
    );
    assert_eq!(
        state.instances["m"].soft_violation_since,
        Some(later.unix_ms),
        "the violation's clock starts again"
    );
}

#[test]
fn a_move_target_lost_mid_move_cancels_it() {
    let now = start();
    let mut state = preferring_zone_b(now, &["m"]);
    let later = now.later(Duration::from_secs(2));
    converge(&mut state, later);
    // Only node a keeps talking.
    let past = later.later(DEADLINE + Duration::from_millis(1));
    state.node_heard("a", None, past);
    let mut fx = Effects::default();
    assert_eq!(state.detect_lost_nodes(past, &mut fx), ["b"]);
    assert_eq!(node_of(&state, "m").as_deref(), Some("a"));
    assert!(state.instances["m"].moving.is_none());
    assert_eq!(state.instances["m"].state, InstanceState::Running);
}

#[test]
fn only_one_instance_of_a_service_moves_at_a_time() {
    let now = start();
    let mut state = preferring_zone_b(now, &["m1", "m2"]);
    let later = now.later(Duration::from_secs(2));
    let fx = converge(&mut state, later);
    assert_eq!(sent(&fx).len(), 1, "{:?}", sent(&fx));
    let moving = state
        .instances
        .values()
        .filter(|p| p.moving.is_some())
        .count();
    assert_eq!(moving, 1);
    // The next round waits for the first move to end.
    assert!(
        converge(&mut state, later.later(Duration::from_secs(1)))
            .to_nodes
            .is_empty()
    );
}

#[test]
fn a_taken_host_port_sends_the_next_replica_to_another_node_or_refuses_it_saying_so() {
    let now = start();
    let mut state = cluster(now);
    join(&mut state, "n1", 4000, 1, now);
    let web = spec(
        "web",
        "100m",
        serde_json::json!({"ports": [{"name": "http", "port": 80, "hostPort": 8080}]}),
    );
    let fx = assign(
        &mut state,
        vec![
            assignment("a", 1, web.clone()),
            assignment("b", 1, web.clone()),
        ],
        now,
    );
    assert_eq!(sent(&fx), [to("n1", "assign", "a")]);
    let refusal = fx.up.iter().find(|s| s.id == "b").expect("b refused");
    assert_eq!(refusal.state, Reported::Refused);
    assert!(
        refusal.reason.contains("host port taken"),
        "{}",
        refusal.reason
    );

    // With a second node the port is free there; the summary says no node has it free
    // only while every node publishes it.
    join(&mut state, "n2", 4000, 2, now);
    let (summary, _) = state.summary(&canopy_cluster::Site::default(), now);
    assert!(
        summary.host_ports_taken_everywhere.is_empty(),
        "{summary:?}"
    );
    let fx = assign(&mut state, vec![assignment("b", 2, web)], now);
    assert_eq!(sent(&fx), [to("n2", "assign", "b")]);
    let (summary, _) = state.summary(&canopy_cluster::Site::default(), now);
    assert_eq!(summary.host_ports_taken_everywhere, ["8080/tcp"]);
}
