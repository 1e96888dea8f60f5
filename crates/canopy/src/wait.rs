//! `canopy wait --for=state=Running|--for=delete KIND NAME`: woken by the root's event
//! stream, checked against the API after each relevant change, until it holds or time runs out.

use crate::cli::{ClientArgs, Kind};
use crate::client::{Client, encode};
use crate::commands::split_service;
use crate::sse::Changes;
use anyhow::bail;
use canopy_model::Instance;
use canopy_root::api::ChangeEvent;
use canopy_root::records::{ApplicationView, ServiceStatus, ServiceView};
use clap::Args;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Args)]
pub struct WaitArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// What to wait for: `state=STATE` (an instance's state, e.g. `Running`, `Succeeded`,
    /// `CrashLoopBackOff`; services and applications are `Running` once every replica runs,
    /// a job service `Complete` or `Failed` once its latest job ended)
    /// or `delete` (the resource is gone).
    #[arg(long = "for", value_parser = parse_condition)]
    pub condition: Condition,
    /// `instances`, `services` or `application`.
    pub kind: Kind,
    /// An instance id, `APPLICATION/SERVICE`, or an application's name.
    pub name: String,
    /// Namespace of the service or application.
    #[arg(short, long, default_value = canopy_model::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// How long to wait: `500ms`, `30s`, `2m`, `1h`.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    State(String),
    Delete,
}

pub fn parse_condition(text: &str) -> Result<Condition, String> {
    if text == "delete" {
        return Ok(Condition::Delete);
    }
    match text.split_once('=') {
        Some(("state", state)) if !state.trim().is_empty() => {
            Ok(Condition::State(state.trim().to_string()))
        }
        _ => Err(format!("expected `state=STATE` or `delete`, got {text:?}")),
    }
}

/// `500ms`, `30s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("expected a duration like 30s, 2m or 500ms, got {text:?}"))?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use ms, s, m or h"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} is not a duration"))
}

/// What is waited on, named as the API names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Instance(String),
    Service {
        namespace: String,
        application: String,
        service: String,
    },
    Application {
        namespace: String,
        name: String,
    },
}

impl Target {
    pub fn new(kind: Kind, name: &str, namespace: &str) -> anyhow::Result<Target> {
        Ok(match kind {
            Kind::Instance => Target::Instance(name.to_string()),
            Kind::Service => {
                let (application, service) = split_service(name)?;
                Target::Service {
                    namespace: namespace.to_string(),
                    application: application.to_string(),
                    service: service.to_string(),
                }
            }
            Kind::Application => Target::Application {
                namespace: namespace.to_string(),
                name: name.to_string(),
            },
            Kind::Cluster | Kind::Node | Kind::User | Kind::Namespace | Kind::Secret => {
                bail!("wait works on instances, services and applications")
            }
        })
    }

    fn describe(&self) -> String {
        match self {
            Target::Instance(id) => format!("instance/{id}"),
            Target::Service {
                application,
                service,
                ..
            } => format!("service/{application}/{service}"),
            Target::Application { name, .. } => format!("application/{name}"),
        }
    }

    /// Whether a change may have moved this target: its own record, or one of its instances.
    pub fn touched_by(&self, change: &ChangeEvent) -> bool {
        let object = change.object.as_ref();
        let field = |name: &str| object.and_then(|o| o[name].as_str()).map(str::to_string);
        match self {
            Target::Instance(id) => {
                change.kind == "instance" && change.key.ends_with(&format!("/{id}"))
            }
            Target::Service {
                namespace,
                application,
                ..
            }
            | Target::Application {
                namespace,
                name: application,
            } => match change.kind.as_str() {
                "application" => change.key.ends_with(&format!("/{namespace}/{application}")),
                // A deleted instance has no object: it may have been one of ours.
                "instance" => {
                    object.is_none()
                        || (field("namespace").as_deref() == Some(namespace)
                            && field("application").as_deref() == Some(application))
                }
                _ => false,
            },
        }
    }
}

/// A service is Running when exactly its desired replicas run and nothing else is under way;
/// a job service is in its latest job's phase (`Active`, `Complete`, `Failed`).
pub fn service_state(status: &ServiceStatus) -> String {
    if let Some(job) = &status.job {
        return job.phase.clone();
    }
    if status.running == status.desired && status.pending == 0 && status.other == 0 {
        "Running".to_string()
    } else {
        format!(
            "Progressing ({}/{} running, {} pending)",
            status.running, status.desired, status.pending
        )
    }
}

/// Whether what was observed (`None`: the resource does not exist) meets the condition.
pub fn satisfied(condition: &Condition, observed: Option<&str>) -> bool {
    match (condition, observed) {
        (Condition::Delete, observed) => observed.is_none(),
        (Condition::State(wanted), Some(state)) => wanted.eq_ignore_ascii_case(state),
        (Condition::State(_), None) => false,
    }
}

async fn observe(client: &Client, target: &Target) -> anyhow::Result<Option<String>> {
    Ok(match target {
        Target::Instance(id) => client
            .get_if_found::<Instance>(&format!("/api/v1/instances/{}", encode(id)))
            .await?
            .map(|i| i.display_state().to_string()),
        Target::Service {
            namespace,
            application,
            service,
        } => client
            .get_if_found::<ServiceView>(&format!(
                "/api/v1/services/{}/{}/{}",
                encode(namespace),
                encode(application),
                encode(service)
            ))
            .await?
            .map(|view| service_state(&view.status)),
        Target::Application { namespace, name } => client
            .get_if_found::<ApplicationView>(&format!(
                "/api/v1/applications/{}/{}",
                encode(namespace),
                encode(name)
            ))
            .await?
            .map(|view| {
                let waiting: Vec<&ServiceStatus> = view
                    .status
                    .services
                    .iter()
                    // A job ends rather than runs: waited on as a service.
                    .filter(|s| s.job.is_none() && service_state(s) != "Running")
                    .collect();
                match waiting.first() {
                    None => "Running".to_string(),
                    Some(s) => format!("Progressing (service {}: {})", s.name, service_state(s)),
                }
            }),
    })
}

/// How often the state is read when the event stream is unavailable.
const FALLBACK_POLL: Duration = Duration::from_millis(500);

pub async fn run(args: WaitArgs) -> anyhow::Result<()> {
    let client = args.client.connect()?;
    let target = Target::new(args.kind, &args.name, &args.namespace)?;
    let deadline = Instant::now() + args.timeout;
    // Watching before the first look: a change in between still wakes us.
    let mut changes = Changes::open(&client).await.ok();
    loop {
        let observed = observe(&client, &target).await?;
        if satisfied(&args.condition, observed.as_deref()) {
            let met = match &args.condition {
                Condition::Delete => "deleted".to_string(),
                Condition::State(state) => format!("condition met (state={state})"),
            };
            println!("{} {met}", target.describe());
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            let wanted = match &args.condition {
                Condition::Delete => "be deleted".to_string(),
                Condition::State(state) => format!("be {state}"),
            };
            let is = observed.map_or_else(|| "does not exist".to_string(), |s| format!("is {s}"));
            bail!(
                "timed out after {:?} waiting for {} to {wanted}: it {is}",
                args.timeout,
                target.describe()
            );
        }
        let remaining = deadline - now;
        match changes.as_mut() {
            Some(stream) => {
                match tokio::time::timeout(remaining, next_touching(stream, &target)).await {
                    Err(_) | Ok(Ok(true)) => {}
                    // The stream ended or broke: keep going by reading the state now and then.
                    Ok(Ok(false)) | Ok(Err(_)) => changes = None,
                }
            }
            None => tokio::time::sleep(remaining.min(FALLBACK_POLL)).await,
        }
    }
}

/// Waits for a change that touches `target`; false when the stream ended.
async fn next_touching(changes: &mut Changes, target: &Target) -> anyhow::Result<bool> {
    while let Some(change) = changes.next().await? {
        if target.touched_by(&change) {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions() {
        assert_eq!(
            parse_condition("state=Running"),
            Ok(Condition::State("Running".into()))
        );
        assert_eq!(parse_condition("delete"), Ok(Condition::Delete));
        for bad in ["state=", "condition=Ready", "Running", ""] {
            assert!(parse_condition(bad).is_err(), "{bad}");
        }
        let running = Condition::State("running".into());
        assert!(satisfied(&running, Some("Running")));
        assert!(!satisfied(&running, Some("Pending")));
        assert!(!satisfied(&running, None));
        assert!(satisfied(&Condition::Delete, None));
        assert!(!satisfied(&Condition::Delete, Some("Running")));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        for bad in ["", "s", "5d", "-1s", "abc"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_service_runs_when_every_replica_does_and_nothing_else_is_under_way() {
        let status = |running, desired, pending, other| ServiceStatus {
            name: "web".into(),
            desired,
            running,
            ready: running,
            pending,
            other,
            job: None,
            autoscale: None,
        };
        assert_eq!(service_state(&status(3, 3, 0, 0)), "Running");
        assert_eq!(service_state(&status(0, 0, 0, 0)), "Running");
        assert!(service_state(&status(2, 3, 1, 0)).starts_with("Progressing"));
        assert!(service_state(&status(3, 3, 0, 1)).starts_with("Progressing"));
    }

    #[test]
    fn changes_that_touch_a_target() {
        let change = |kind: &str, key: &str, object: Option<serde_json::Value>| ChangeEvent {
            revision: 1,
            kind: kind.into(),
            action: "put".into(),
            key: key.into(),
            object,
        };
        let instance = Target::Instance("web-abc".into());
        assert!(instance.touched_by(&change("instance", "/instances/web-abc", None)));
        assert!(!instance.touched_by(&change("instance", "/instances/web-abcd", None)));
        let service = Target::new(Kind::Service, "shop/web", "default").unwrap();
        let ours = serde_json::json!({"namespace": "default", "application": "shop"});
        let theirs = serde_json::json!({"namespace": "default", "application": "other"});
        assert!(service.touched_by(&change("instance", "/instances/x", Some(ours))));
        assert!(!service.touched_by(&change("instance", "/instances/y", Some(theirs))));
        assert!(service.touched_by(&change("application", "/apps/default/shop", None)));
        assert!(!service.touched_by(&change("application", "/apps/default/shopping", None)));
        assert!(!service.touched_by(&change("node", "/nodes/c/n", None)));
        assert!(Target::new(Kind::Node, "n", "default").is_err());
    }
}
