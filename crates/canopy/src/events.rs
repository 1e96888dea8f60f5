//! `canopy events [-w]`: the recent transitions of instances, oldest first, and with `-w`
//! every change after them as the root's event stream reports it (as `kubectl events -w`).

use crate::cli::{ClientArgs, Scope};
use crate::client::{Client, encode};
use crate::output::{Table, age, line};
use crate::sse::Changes;
use anyhow::bail;
use canopy_model::{Instance, InstanceEvent};
use canopy_root::api::ChangeEvent;
use clap::Args;
use std::collections::HashMap;
use time::OffsetDateTime;

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub scope: Scope,
    /// After the recent events, print each new one as it happens, until interrupted.
    #[arg(short = 'w', long)]
    pub watch: bool,
}

const HEADERS: [&str; 5] = ["AGE", "NAMESPACE", "OBJECT", "STATE", "REASON"];

/// One line of the listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub at: OffsetDateTime,
    pub namespace: String,
    pub object: String,
    pub state: String,
    pub reason: String,
}

impl Line {
    fn cells(&self) -> Vec<String> {
        vec![
            age(self.at),
            self.namespace.clone(),
            self.object.clone(),
            self.state.clone(),
            self.reason.clone(),
        ]
    }
}

fn instance_line(instance: &Instance, event: &InstanceEvent) -> Line {
    Line {
        at: event.at,
        namespace: instance.namespace.clone(),
        object: format!("instance/{}", instance.id),
        state: event.state.to_string(),
        reason: event.reason.clone(),
    }
}

/// Every transition the instances remember, oldest first.
pub fn recent(instances: &[Instance]) -> Vec<Line> {
    let mut lines: Vec<Line> = instances
        .iter()
        .flat_map(|i| i.events.iter().map(move |e| instance_line(i, e)))
        .collect();
    lines.sort_by_key(|l| l.at);
    lines
}

/// What was printed already, so a rewritten record only adds what is new.
#[derive(Debug, Default)]
pub struct Printed {
    /// Each instance's newest transition printed.
    instances: HashMap<String, OffsetDateTime>,
    /// Each cluster's and node's state printed (heartbeats rewrite their records).
    states: HashMap<String, String>,
}

/// The lines a change adds: an instance's transitions newer than those printed, or an
/// application's, a cluster's or node's change itself, or an autoscaler's scaling.
pub fn lines_of(change: &ChangeEvent, printed: &mut Printed, scope: &Scope) -> Vec<Line> {
    let now = OffsetDateTime::now_utc();
    let in_scope = |namespace: &str| scope.all_namespaces || namespace == scope.namespace;
    let name = change
        .key
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    match (change.kind.as_str(), &change.object) {
        ("instance", Some(object)) => {
            let Ok(instance) = serde_json::from_value::<Instance>(object.clone()) else {
                return Vec::new();
            };
            if !in_scope(&instance.namespace) {
                return Vec::new();
            }
            let after = printed.instances.get(&instance.id).copied();
            let new: Vec<Line> = instance
                .events
                .iter()
                .filter(|e| after.is_none_or(|after| e.at > after))
                .map(|e| instance_line(&instance, e))
                .collect();
            if let Some(last) = new.last() {
                printed.instances.insert(instance.id.clone(), last.at);
            }
            new
        }
        ("instance", None) => {
            // Ours if we printed it; a deleted record no longer says its namespace.
            if printed.instances.remove(&name).is_none() {
                return Vec::new();
            }
            vec![Line {
                at: now,
                namespace: "-".into(),
                object: format!("instance/{name}"),
                state: "Deleted".into(),
                reason: "record removed".into(),
            }]
        }
        ("application", object) => {
            let namespace = change
                .key
                .rsplit('/')
                .nth(1)
                .unwrap_or_default()
                .to_string();
            if !in_scope(&namespace) {
                return Vec::new();
            }
            let (state, reason) = match object {
                Some(record) => (
                    "Applied".to_string(),
                    format!("generation {}", record["generation"]),
                ),
                None => ("Deleted".to_string(), String::new()),
            };
            vec![Line {
                at: now,
                namespace,
                object: format!("application/{name}"),
                state,
                reason,
            }]
        }
        ("autoscale", Some(object)) => {
            let Ok(event) =
                serde_json::from_value::<canopy_root::desired::ScalingEvent>(object.clone())
            else {
                return Vec::new();
            };
            if !in_scope(&event.namespace) {
                return Vec::new();
            }
            let state = if event.error.is_some() {
                "ScaleRefused"
            } else {
                "Scaled"
            };
            vec![Line {
                at: event.at,
                namespace: event.namespace.clone(),
                object: format!("service/{}/{}", event.application, event.service),
                state: state.to_string(),
                reason: format!(
                    "{} ({})",
                    crate::scaling::change(&event),
                    crate::scaling::readings(&event)
                ),
            }]
        }
        (kind @ ("cluster" | "node"), object) => {
            let state = object
                .as_ref()
                .and_then(|o| o["state"].as_str())
                .unwrap_or("Deleted")
                .to_string();
            // Heartbeats rewrite these records; only a change of state is an event.
            let previous = printed.states.insert(change.key.clone(), state.clone());
            if previous.as_ref() == Some(&state) {
                return Vec::new();
            }
            vec![Line {
                at: now,
                namespace: "-".into(),
                object: format!("{kind}/{name}"),
                state,
                reason: String::new(),
            }]
        }
        _ => Vec::new(),
    }
}

pub async fn run(args: EventsArgs) -> anyhow::Result<()> {
    let client = args.client.connect()?;
    // Watching first: a change between the listing and the watch would otherwise be lost.
    let mut changes = if args.watch {
        Some(Changes::open(&client).await?)
    } else {
        None
    };
    let instances = list_instances(&client, &args.scope).await?;
    let lines = recent(&instances);
    let mut table = Table::new(HEADERS.to_vec());
    for l in &lines {
        table.row(l.cells());
    }
    if lines.is_empty() {
        eprintln!("No events found.");
    } else {
        println!("{}", table.render());
    }
    let Some(changes) = changes.as_mut() else {
        return Ok(());
    };
    let mut printed = Printed {
        instances: instances
            .iter()
            .filter_map(|i| i.events.last().map(|e| (i.id.clone(), e.at)))
            .collect(),
        states: HashMap::new(),
    };
    let mut widths = table.widths();
    widths[2] = widths[2].max(40);
    loop {
        let Some(change) = changes.next().await? else {
            bail!("the root closed the event stream");
        };
        for l in lines_of(&change, &mut printed, &args.scope) {
            println!("{}", line(&l.cells(), &widths));
        }
    }
}

async fn list_instances(client: &Client, scope: &Scope) -> anyhow::Result<Vec<Instance>> {
    let query = if scope.all_namespaces {
        String::new()
    } else {
        format!("?namespace={}", encode(&scope.namespace))
    };
    client.get(&format!("/api/v1/instances{query}")).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use canopy_model::InstanceState;

    fn instance(id: &str, namespace: &str, events: &[(i64, InstanceState)]) -> Instance {
        let at = |s: i64| OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(s);
        serde_json::from_value(serde_json::json!({
            "id": id, "namespace": namespace, "application": "shop", "service": "web",
            "replica": 0, "generation": 1, "state": "Running",
            "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z",
            "events": events.iter().map(|(s, state)| serde_json::json!({
                "at": at(*s).format(&time::format_description::well_known::Rfc3339).unwrap(),
                "state": state, "reason": format!("r{s}"),
            })).collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    fn put(instance: &Instance) -> ChangeEvent {
        ChangeEvent {
            revision: 1,
            kind: "instance".into(),
            action: "put".into(),
            key: format!("/instances/{}", instance.id),
            object: Some(serde_json::to_value(instance).unwrap()),
        }
    }

    fn scope(all: bool) -> Scope {
        Scope {
            namespace: "default".into(),
            all_namespaces: all,
        }
    }

    #[test]
    fn recent_events_are_merged_oldest_first() {
        let a = instance(
            "a",
            "default",
            &[(1, InstanceState::Pending), (5, InstanceState::Running)],
        );
        let b = instance("b", "default", &[(3, InstanceState::Pending)]);
        let lines = recent(&[a, b]);
        let order: Vec<(&str, &str)> = lines
            .iter()
            .map(|l| (l.object.as_str(), l.reason.as_str()))
            .collect();
        assert_eq!(
            order,
            [
                ("instance/a", "r1"),
                ("instance/b", "r3"),
                ("instance/a", "r5")
            ]
        );
    }

    #[test]
    fn a_change_prints_only_the_transitions_not_yet_printed() {
        let mut printed = Printed::default();
        let first = instance("a", "default", &[(1, InstanceState::Pending)]);
        assert_eq!(lines_of(&put(&first), &mut printed, &scope(false)).len(), 1);
        assert!(lines_of(&put(&first), &mut printed, &scope(false)).is_empty());
        let later = instance(
            "a",
            "default",
            &[(1, InstanceState::Pending), (2, InstanceState::Running)],
        );
        let lines = lines_of(&put(&later), &mut printed, &scope(false));
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].state, "Running");
        let elsewhere = instance("z", "other", &[(1, InstanceState::Pending)]);
        assert!(lines_of(&put(&elsewhere), &mut printed, &scope(false)).is_empty());
        assert_eq!(
            lines_of(&put(&elsewhere), &mut printed, &scope(true)).len(),
            1
        );
    }

    #[test]
    fn nodes_make_an_event_only_when_their_state_changes() {
        let mut printed = Printed::default();
        let node = |state: &str| ChangeEvent {
            revision: 1,
            kind: "node".into(),
            action: "put".into(),
            key: "/nodes/c1/n1".into(),
            object: Some(serde_json::json!({ "state": state })),
        };
        assert_eq!(
            lines_of(&node("Ready"), &mut printed, &scope(false)).len(),
            1
        );
        assert!(lines_of(&node("Ready"), &mut printed, &scope(false)).is_empty());
        let lines = lines_of(&node("Unreachable"), &mut printed, &scope(false));
        assert_eq!(lines[0].object, "node/n1");
        assert_eq!(lines[0].state, "Unreachable");
    }

    #[test]
    fn a_scaling_is_an_event_with_its_numbers_in_its_namespace() {
        let mut printed = Printed::default();
        let scaled = |namespace: &str| ChangeEvent {
            revision: 7,
            kind: "autoscale".into(),
            action: "put".into(),
            key: format!("/autoscale/{namespace}/shop/web"),
            object: Some(serde_json::json!({
                "namespace": namespace, "application": "shop", "service": "web",
                "at": "2026-12-02T02:00:00Z", "current": 1, "desired": 3,
                "readings": [{"resource": "cpu", "usage": 900, "target": 50, "measured": 1,
                    "missing": 0, "unready": 0, "proposal": 18}],
                "reason": "cpu at 900% of its 50% target",
            })),
        };
        let lines = lines_of(&scaled("default"), &mut printed, &scope(false));
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].object, "service/shop/web");
        assert_eq!(lines[0].state, "Scaled");
        assert_eq!(
            lines[0].reason,
            "1 -> 3: cpu at 900% of its 50% target (cpu 900%/50%)"
        );
        assert!(lines_of(&scaled("other"), &mut printed, &scope(false)).is_empty());
    }
}
