//! What each subcommand does.

use crate::cli::{Cli, Command, Kind, Scope};
use crate::client::{Client, encode};
use crate::daemon;
use crate::operations;
use crate::output::{Table, age, or_dash, timestamp};
use anyhow::{Context, bail};
use canopy_model::{ClusterInfo, Instance, NodeInfo};
use canopy_root::records::{ApplicationView, ApplyResult, ServiceView};
use std::io::Read;
use std::path::{Path, PathBuf};

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Up(args) => {
            init_logging();
            daemon::up(args).await
        }
        Command::Root(args) => {
            init_logging();
            daemon::root(args).await
        }
        Command::Cluster(args) => {
            init_logging();
            daemon::cluster(args).await
        }
        Command::Node(args) => {
            init_logging();
            daemon::node(args).await
        }
        Command::Sim(args) => {
            init_logging();
            crate::sim::run(args).await
        }
        Command::Apply {
            client,
            files,
            dry_run,
        } => apply(&client.connect()?, &files, dry_run).await,
        Command::Diff { client, files } => crate::diff::run(&client.connect()?, &files).await,
        Command::Get {
            client,
            kind: Kind::User,
            name,
            output,
            watch,
            ..
        } => {
            if watch {
                bail!("users have no change events to watch");
            }
            crate::users::list(&client.connect()?, name.as_deref(), output).await
        }
        Command::Get {
            client,
            kind,
            name,
            scope,
            output,
            selector,
            watch,
        } => {
            let request = crate::get::Request {
                kind,
                name: name.as_deref(),
                scope: &scope,
                selector: selector.as_ref(),
                output,
            };
            crate::get::run(&client.connect()?, &request, watch).await
        }
        Command::Events(args) => crate::events::run(args).await,
        Command::Wait(args) => crate::wait::run(args).await,
        Command::Version(args) => crate::version::run(args).await,
        Command::Config { command } => crate::config_verbs::run(command),
        Command::Describe {
            client,
            kind,
            name,
            scope,
        } => describe(&client.connect()?, kind, &name, &scope).await,
        Command::Delete {
            client,
            kind,
            name,
            files,
            scope,
        } => delete(&client.connect()?, kind, name, &files, &scope).await,
        Command::Scale {
            client,
            service,
            replicas,
            scope,
        } => scale(&client.connect()?, &service, replicas, &scope).await,
        Command::Rollout(args) => crate::rollout::run(args).await,
        Command::Run(args) => crate::run::run(args).await,
        Command::Logs(args) => crate::streams::logs(args).await,
        Command::Exec(args) => crate::exec::exec(args).await,
        Command::PortForward(args) => crate::forward::port_forward(args).await,
        Command::Cordon(args) => operations::cordon(args, true).await,
        Command::Uncordon(args) => operations::cordon(args, false).await,
        Command::Drain(args) => operations::drain(args).await,
        Command::Label(args) => operations::label(args).await,
        Command::Top(args) => operations::top(args).await,
        Command::Token(args) => crate::tokens::run(args).await,
        Command::Login(args) => crate::login::login(args).await,
        Command::Create(args) => crate::create::run(args).await,
        Command::Grant(args) => crate::users::grant(args, true).await,
        Command::Revoke(args) => crate::users::grant(args, false).await,
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in files or pipes.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

pub(crate) fn read_descriptor(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

async fn apply(client: &Client, files: &[PathBuf], dry_run: bool) -> anyhow::Result<()> {
    let (path, suffix) = if dry_run {
        ("/api/v1/apply?dryRun=true", " (dry run)")
    } else {
        ("/api/v1/apply", "")
    };
    for file in files {
        let text = read_descriptor(file)?;
        let result: ApplyResult = client
            .post_text(path, text)
            .await
            .with_context(|| format!("applying {}", file.display()))?;
        for warning in &result.warnings {
            eprintln!("warning: {warning}");
        }
        for app in &result.applications {
            let action = serde_json::to_value(app.action)?;
            println!(
                "application/{} {}{suffix}",
                app.name,
                action.as_str().unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// `app/service` → (app, service).
pub(crate) fn split_service(name: &str) -> anyhow::Result<(&str, &str)> {
    name.split_once('/')
        .filter(|(app, service)| !app.is_empty() && !service.is_empty())
        .with_context(|| format!("name services as APPLICATION/SERVICE, not {name:?}"))
}

pub(crate) fn application_table(apps: &[ApplicationView], wide: bool) -> Table {
    let mut headers = vec![
        "NAMESPACE",
        "NAME",
        "SERVICES",
        "READY",
        "GENERATION",
        "AGE",
    ];
    if wide {
        headers.push("UID");
    }
    let mut table = Table::new(headers);
    for app in apps {
        let status = &app.status;
        let ready: u32 = status.services.iter().map(|s| s.ready).sum();
        let desired: u32 = status.services.iter().map(|s| s.desired).sum();
        let mut row = vec![
            app.application.metadata.namespace.clone(),
            app.application.metadata.name.clone(),
            status.services.len().to_string(),
            format!("{ready}/{desired}"),
            status.generation.to_string(),
            age(status.created_at),
        ];
        if wide {
            row.push(status.uid.clone());
        }
        table.row(row);
    }
    table
}

pub(crate) fn service_table(services: &[ServiceView], wide: bool) -> Table {
    let mut headers = vec!["NAMESPACE", "NAME", "RUNTIME", "READY", "PENDING"];
    if wide {
        headers.extend(["ARTIFACT", "DNS NAME"]);
    }
    let mut table = Table::new(headers);
    for service in services {
        let mut row = vec![
            service.namespace.clone(),
            format!("{}/{}", service.application, service.name),
            service.runtime.as_str().to_string(),
            match &service.status.job {
                // A job's progress: its phase and the indexes done.
                Some(job) => format!("{} {}/{}", job.phase, job.succeeded, job.completions),
                None => format!("{}/{}", service.status.ready, service.status.desired),
            },
            service.status.pending.to_string(),
        ];
        if wide {
            row.push(service.artifact.clone());
            // Policy prefixes (`rr.`, `closest.`, `<n>.`) go in front of it.
            row.push(format!(
                "{}.{}.{}.canopy",
                service.name, service.application, service.namespace
            ));
        }
        table.row(row);
    }
    table
}

/// A job service's latest job in one line of `describe`.
fn job_line(job: &canopy_root::desired::JobStatus) -> String {
    let mut line = format!(
        "Job:         #{} {}: {}/{} succeeded, {} failed, {} active",
        job.number, job.phase, job.succeeded, job.completions, job.failed, job.active
    );
    if let Some(reason) = &job.reason {
        line.push_str(&format!(" ({reason})"));
    }
    if let Some(next) = job.next_schedule {
        line.push_str(&format!("; next scheduled {}", timestamp(next)));
    }
    line
}

pub(crate) fn instance_table(instances: &[Instance], wide: bool) -> Table {
    let mut headers = vec![
        "ID", "SERVICE", "STATE", "READY", "CLUSTER", "NODE", "RESTARTS", "AGE", "REASON",
    ];
    if wide {
        headers.extend(["NAMESPACE", "REPLICA", "PID", "IP", "PORTS", "RUNTIME"]);
    }
    let mut table = Table::new(headers);
    for instance in instances {
        let mut row = vec![
            instance.id.clone(),
            format!("{}/{}", instance.application, instance.service),
            instance.display_state().to_string(),
            // Running and passing its readiness probe, if it has one.
            if instance.ready { "true" } else { "false" }.to_string(),
            or_dash(instance.cluster.as_ref()),
            or_dash(instance.node.as_ref()),
            instance.restarts.to_string(),
            age(instance.created_at),
            or_dash(instance.reason.as_ref()),
        ];
        if wide {
            row.extend([
                instance.namespace.clone(),
                instance.replica.to_string(),
                or_dash(instance.pid),
                list(&instance.details.addresses),
                list(&instance.details.ports),
                or_dash(instance.details.runtime.as_ref()),
            ]);
        }
        table.row(row);
    }
    table
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_string()
    } else {
        items.join(",")
    }
}

fn usage(allocated: u64, capacity: u64) -> String {
    format!("{allocated}/{capacity}")
}

fn location(point: Option<&canopy_model::GeoPoint>) -> String {
    point.map_or_else(|| "-".to_string(), |p| format!("{:.4},{:.4}", p.lat, p.lon))
}

pub(crate) fn cluster_table(clusters: &[ClusterInfo], wide: bool) -> Table {
    let mut headers = vec![
        "NAME",
        "STATE",
        "NODES",
        "CPU(m)",
        "MEMORY(Mi)",
        "LOCATION",
        "AGE",
    ];
    if wide {
        headers.push("LABELS");
    }
    let mut table = Table::new(headers);
    for cluster in clusters {
        let mut row = vec![
            cluster.name.clone(),
            format!("{:?}", cluster.state),
            cluster.nodes.to_string(),
            usage(cluster.allocated.cpu_millis, cluster.capacity.cpu_millis),
            usage(cluster.allocated.memory_mib, cluster.capacity.memory_mib),
            location(cluster.location.as_ref()),
            age(cluster.joined_at),
        ];
        if wide {
            row.push(labels(&cluster.labels));
        }
        table.row(row);
    }
    table
}

pub(crate) fn node_table(nodes: &[NodeInfo], wide: bool) -> Table {
    let mut headers = vec![
        "NAME",
        "CLUSTER",
        "STATE",
        "ARCH",
        "CPU(m)",
        "MEMORY(Mi)",
        "INSTANCES",
        "AGE",
    ];
    if wide {
        headers.extend([
            "LOCATION",
            "COORDINATE(ms)",
            "RUNTIMES",
            "SANDBOXES",
            "LABELS",
        ]);
    }
    let mut table = Table::new(headers);
    for node in nodes {
        let mut row = vec![
            node.name.clone(),
            node.cluster.clone(),
            operations::node_status(node),
            node.arch.clone(),
            usage(node.allocated.cpu_millis, node.capacity.cpu_millis),
            usage(node.allocated.memory_mib, node.capacity.memory_mib),
            node.instances.to_string(),
            age(node.joined_at),
        ];
        if wide {
            row.extend([
                location(node.location.as_ref()),
                node.coordinate.map_or("-".to_string(), |c| {
                    format!(
                        "({:.1},{:.1}) h{:.1} ±{:.0}%",
                        c.x,
                        c.y,
                        c.height,
                        c.error * 100.0
                    )
                }),
                node.runtimes
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                sandboxes(node),
                labels(&node.labels),
            ]);
        }
        table.row(row);
    }
    table
}

/// What a node offers besides the shared kernel: "gvisor", "vm:kvm" or "vm:tcg" (its VMs'
/// acceleration), or "-".
fn sandboxes(node: &canopy_model::NodeInfo) -> String {
    let mut offered: Vec<&str> = node.sandboxes.iter().map(|s| s.as_str()).collect();
    if node.runtimes.contains(&canopy_model::RuntimeKind::Vm) {
        offered.push(if node.kvm { "vm:kvm" } else { "vm:tcg" });
    }
    if offered.is_empty() {
        return "-".to_string();
    }
    offered.join(",")
}

fn labels(labels: &std::collections::BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "-".to_string();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

async fn describe(client: &Client, kind: Kind, name: &str, scope: &Scope) -> anyhow::Result<()> {
    let namespace = encode(&scope.namespace);
    match kind {
        Kind::Application => {
            let app: ApplicationView = client
                .get(&format!(
                    "/api/v1/applications/{namespace}/{}",
                    encode(name)
                ))
                .await?;
            let instances: Vec<Instance> = client
                .get(&format!(
                    "/api/v1/instances?namespace={namespace}&application={}",
                    encode(name)
                ))
                .await?;
            println!("Name:        {}", app.application.metadata.name);
            println!("Namespace:   {}", app.application.metadata.namespace);
            println!("UID:         {}", app.status.uid);
            println!("Generation:  {}", app.status.generation);
            println!("Created:     {}", timestamp(app.status.created_at));
            println!("Services:");
            let mut table = Table::new(vec!["  NAME", "DESIRED", "RUNNING", "PENDING", "OTHER"]);
            for s in &app.status.services {
                table.row(vec![
                    format!("  {}", s.name),
                    s.desired.to_string(),
                    s.running.to_string(),
                    s.pending.to_string(),
                    s.other.to_string(),
                ]);
            }
            println!("{}", table.render());
            println!("Instances:");
            if instances.is_empty() {
                println!("  <none>");
            } else {
                println!("{}", indent(&instance_table(&instances, false).render()));
            }
            println!("Spec:");
            println!("{}", indent(&yaml_serde::to_string(&app.application.spec)?));
        }
        Kind::Service => {
            let (app, service) = split_service(name)?;
            let view: ServiceView = client
                .get(&format!(
                    "/api/v1/services/{namespace}/{}/{}",
                    encode(app),
                    encode(service)
                ))
                .await?;
            let instances: Vec<Instance> = client
                .get(&format!(
                    "/api/v1/instances?namespace={namespace}&application={}&service={}",
                    encode(app),
                    encode(service)
                ))
                .await?;
            println!("Name:        {}/{}", view.application, view.name);
            println!("Namespace:   {}", view.namespace);
            println!("Runtime:     {}", view.runtime.as_str());
            println!("Artifact:    {}", view.artifact);
            match &view.status.job {
                Some(job) => println!("{}", job_line(job)),
                None => println!(
                    "Replicas:    {} desired, {} running, {} pending",
                    view.status.desired, view.status.running, view.status.pending
                ),
            }
            if let Some(autoscale) = &view.spec.autoscale {
                let last = view.status.autoscale.as_ref();
                println!("Autoscale:   {}", crate::scaling::describe(autoscale, last));
            }
            println!("Instances:");
            if instances.is_empty() {
                println!("  <none>");
            } else {
                println!("{}", indent(&instance_table(&instances, true).render()));
            }
            println!("Spec:");
            println!("{}", indent(&yaml_serde::to_string(&view.spec)?));
        }
        Kind::Instance => {
            let instance: Instance = client
                .get(&format!("/api/v1/instances/{}", encode(name)))
                .await?;
            println!("ID:          {}", instance.id);
            println!("Namespace:   {}", instance.namespace);
            println!("Service:     {}/{}", instance.application, instance.service);
            println!("Replica:     {}", instance.replica);
            if let Some(job) = instance.job {
                println!("Job:         {job}");
            }
            println!("Generation:  {}", instance.generation);
            println!("State:       {}", instance.display_state());
            println!("Reason:      {}", or_dash(instance.reason.as_ref()));
            println!("Cluster:     {}", or_dash(instance.cluster.as_ref()));
            println!("Node:        {}", or_dash(instance.node.as_ref()));
            println!("PID:         {}", or_dash(instance.pid));
            println!("Restarts:    {}", instance.restarts);
            let details = &instance.details;
            println!("Runtime:     {}", or_dash(details.runtime.as_ref()));
            println!("IPs:         {}", list(&details.addresses));
            println!("Ports:       {}", list(&details.ports));
            println!("Image:       {}", or_dash(details.image_digest.as_ref()));
            println!(
                "Usage:       {}",
                or_dash(instance.usage.map(|u| format!(
                    "{}m CPU, {}Mi memory",
                    u.cpu_millis,
                    u.memory_bytes >> 20
                )))
            );
            println!("Ready:       {}", instance.ready);
            let last = instance.last_termination.as_ref();
            println!(
                "Last exit:   {}",
                or_dash(last.map(|t| format!("{} ({})", t.reason, age(t.at))))
            );
            println!("Exit code:   {}", or_dash(last.and_then(|t| t.exit_code)));
            println!("Created:     {}", timestamp(instance.created_at));
            println!("Events:");
            let mut table = Table::new(vec!["  AGE", "STATE", "REASON"]);
            for event in &instance.events {
                table.row(vec![
                    format!("  {}", age(event.at)),
                    event.state.to_string(),
                    event.reason.clone(),
                ]);
            }
            println!("{}", table.render());
        }
        // Clusters and nodes are flat records: the YAML of the record is the description.
        Kind::Cluster => {
            let cluster: ClusterInfo = client
                .get(&format!("/api/v1/clusters/{}", encode(name)))
                .await?;
            print!("{}", yaml_serde::to_string(&cluster)?);
        }
        Kind::Node => {
            let node = get_node(client, name).await?;
            print!("{}", yaml_serde::to_string(&node)?);
        }
        Kind::User => crate::users::describe(client, name).await?,
        Kind::Namespace => {
            let namespace: canopy_root::desired::Namespace = client
                .get(&format!("/api/v1/namespaces/{}", encode(name)))
                .await?;
            print!("{}", yaml_serde::to_string(&namespace)?);
        }
        Kind::Secret => {
            let secret: canopy_model::SecretInfo = client
                .get(&format!(
                    "/api/v1/namespaces/{namespace}/secrets/{}",
                    encode(name)
                ))
                .await?;
            print!("{}", yaml_serde::to_string(&secret)?);
        }
    }
    Ok(())
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn delete(
    client: &Client,
    kind: Option<Kind>,
    name: Option<String>,
    files: &[PathBuf],
    scope: &Scope,
) -> anyhow::Result<()> {
    let mut targets: Vec<(String, String)> = Vec::new();
    for file in files {
        let parsed = canopy_model::parse_descriptor(&read_descriptor(file)?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        targets.extend(
            parsed
                .applications
                .into_iter()
                .map(|a| (a.metadata.namespace, a.metadata.name)),
        );
    }
    match (kind, name) {
        (Some(Kind::Application), Some(name)) => targets.push((scope.namespace.clone(), name)),
        (Some(Kind::Instance), Some(id)) if targets.is_empty() => {
            return operations::delete_instance(client, &id).await;
        }
        (Some(Kind::Cluster), Some(name)) if targets.is_empty() => {
            return crate::tokens::revoke_cluster(client, &name).await;
        }
        (Some(Kind::User), Some(name)) if targets.is_empty() => {
            return crate::users::delete(client, &name).await;
        }
        (Some(Kind::Namespace), Some(name)) if targets.is_empty() => {
            return crate::namespaces::delete(client, &name).await;
        }
        (Some(Kind::Secret), Some(name)) if targets.is_empty() => {
            return crate::secret_verbs::delete(client, &scope.namespace, &name).await;
        }
        (Some(Kind::Node), Some(name)) if targets.is_empty() => {
            return crate::tokens::remove_node(client, &name).await;
        }
        (None, None) if !targets.is_empty() => {}
        (Some(other), _) if other != Kind::Application => {
            bail!(
                "only applications, instances, clusters, nodes, users, namespaces and secrets can be deleted; scale a service to 0 to stop its instances"
            )
        }
        _ => {
            bail!("say what to delete: `canopy delete application NAME` or `canopy delete -f FILE`")
        }
    }
    for (namespace, name) in targets {
        let _: ApplicationView = client
            .delete(&format!(
                "/api/v1/applications/{}/{}",
                encode(&namespace),
                encode(&name)
            ))
            .await?;
        println!("application/{name} deleted");
    }
    Ok(())
}

async fn scale(client: &Client, service: &str, replicas: u32, scope: &Scope) -> anyhow::Result<()> {
    let (app, name) = split_service(service)?;
    let view: ServiceView = client
        .post_json(
            &format!(
                "/api/v1/services/{}/{}/{}/scale",
                encode(&scope.namespace),
                encode(app),
                encode(name)
            ),
            &serde_json::json!({ "replicas": replicas }),
        )
        .await?;
    println!(
        "service/{}/{} scaled to {}",
        view.application, view.name, view.status.desired
    );
    Ok(())
}

/// One node, named `CLUSTER/NODE` or by a node name no other cluster has.
async fn get_node(client: &Client, name: &str) -> anyhow::Result<NodeInfo> {
    let (cluster, node) = operations::resolve_node(client, name).await?;
    client
        .get(&format!(
            "/api/v1/nodes/{}/{}",
            encode(&cluster),
            encode(&node)
        ))
        .await
}
