//! The operator's verbs: `cordon`, `uncordon`, `drain`, `label`, `top`, and deleting an
//! instance (it is replaced), plus how nodes are named on the command line
//! (`CLUSTER/NODE`, or a node name that is unique across clusters).

use crate::cli::ClientArgs;
use crate::client::{Client, encode};
use crate::output::{Table, or_dash};
use anyhow::{Context, bail};
use canopy_model::{ClusterInfo, Instance, LabelEdit, NodeInfo, Usage};
use clap::{Args, ValueEnum};
use serde_json::{Map, Value};

#[derive(Debug, Args)]
pub struct NodeArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// `CLUSTER/NODE`, or a node name no other cluster has.
    pub node: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LabelKind {
    #[value(alias = "nodes", alias = "no")]
    Node,
    #[value(alias = "clusters")]
    Cluster,
}

#[derive(Debug, Args)]
pub struct LabelArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    pub kind: LabelKind,
    /// The node (`CLUSTER/NODE` or a unique node name) or cluster.
    pub name: String,
    /// `KEY=VALUE` sets (or overwrites) a label, `KEY-` removes it.
    #[arg(required = true)]
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TopKind {
    #[value(alias = "node", alias = "no")]
    Nodes,
    #[value(alias = "instance", alias = "inst")]
    Instances,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    pub kind: TopKind,
    /// Namespace (instances).
    #[arg(short, long, default_value = canopy_model::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Every namespace (instances).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

/// `CLUSTER/NODE` as it is, or the one cluster that has a node of that name.
pub async fn resolve_node(client: &Client, name: &str) -> anyhow::Result<(String, String)> {
    if let Some((cluster, node)) = name.split_once('/') {
        if cluster.is_empty() || node.is_empty() {
            bail!("name nodes as CLUSTER/NODE or NODE, not {name:?}");
        }
        return Ok((cluster.to_string(), node.to_string()));
    }
    let nodes: Vec<NodeInfo> = client.get("/api/v1/nodes").await?;
    let matches: Vec<&NodeInfo> = nodes.iter().filter(|n| n.name == name).collect();
    match matches.as_slice() {
        [node] => Ok((node.cluster.clone(), node.name.clone())),
        [] => bail!("node {name:?} not found"),
        several => {
            let names: Vec<String> = several
                .iter()
                .map(|n| format!("{}/{}", n.cluster, n.name))
                .collect();
            bail!(
                "node name {name:?} is ambiguous: say which, one of {}",
                names.join(", ")
            )
        }
    }
}

fn node_path(cluster: &str, node: &str) -> String {
    format!("/api/v1/nodes/{}/{}", encode(cluster), encode(node))
}

/// `Ready`, `Unreachable`, with `,SchedulingDisabled` when cordoned (as kubectl shows it).
pub fn node_status(node: &NodeInfo) -> String {
    let state = format!("{:?}", node.state);
    if node.unschedulable {
        format!("{state},SchedulingDisabled")
    } else {
        state
    }
}

async fn node_action(args: &NodeArgs, action: &str) -> anyhow::Result<(Client, String)> {
    let client = args.client.connect()?;
    let (cluster, node) = resolve_node(&client, &args.node).await?;
    let path = format!("{}/{action}", node_path(&cluster, &node));
    Ok((client, path))
}

pub async fn cordon(args: NodeArgs, cordon: bool) -> anyhow::Result<()> {
    let action = if cordon { "cordon" } else { "uncordon" };
    let (client, path) = node_action(&args, action).await?;
    let node: NodeInfo = client.post_json(&path, &Value::Null).await?;
    println!("node/{}/{} {action}ed", node.cluster, node.name);
    Ok(())
}

pub async fn drain(args: NodeArgs) -> anyhow::Result<()> {
    let (client, path) = node_action(&args, "drain").await?;
    let result: Value = client.post_json(&path, &Value::Null).await?;
    let node: NodeInfo =
        serde_json::from_value(result["node"].clone()).context("unexpected answer to a drain")?;
    println!("node/{}/{} cordoned", node.cluster, node.name);
    for instance in result["stopped"].as_array().into_iter().flatten() {
        println!(
            "instance/{} evicted",
            instance["id"].as_str().unwrap_or_default()
        );
    }
    println!("node/{}/{} drained", node.cluster, node.name);
    Ok(())
}

pub async fn label(args: LabelArgs) -> anyhow::Result<()> {
    let client = args.client.connect()?;
    let mut patch = Map::new();
    for text in &args.labels {
        match LabelEdit::parse(text).map_err(anyhow::Error::msg)? {
            LabelEdit::Set { key, value } => patch.insert(key, Value::String(value)),
            LabelEdit::Remove { key } => patch.insert(key, Value::Null),
        };
    }
    let body = serde_json::json!({ "labels": patch });
    match args.kind {
        LabelKind::Node => {
            let (cluster, node) = resolve_node(&client, &args.name).await?;
            let path = format!("{}/labels", node_path(&cluster, &node));
            let node: NodeInfo = client.patch_json(&path, &body).await?;
            println!("node/{}/{} labeled", node.cluster, node.name);
        }
        LabelKind::Cluster => {
            let path = format!("/api/v1/clusters/{}/labels", encode(&args.name));
            let cluster: ClusterInfo = client.patch_json(&path, &body).await?;
            println!("cluster/{} labeled", cluster.name);
        }
    }
    Ok(())
}

/// `canopy delete instance ID`: stopped, and replaced by its service.
pub async fn delete_instance(client: &Client, id: &str) -> anyhow::Result<()> {
    let instance: Instance = client
        .delete(&format!("/api/v1/instances/{}", encode(id)))
        .await?;
    println!("instance/{} deleted", instance.id);
    Ok(())
}

fn cpu(usage: Option<Usage>) -> String {
    or_dash(usage.map(|u| format!("{}m", u.cpu_millis)))
}

fn memory(usage: Option<Usage>) -> String {
    or_dash(usage.map(|u| format!("{}Mi", u.memory_bytes >> 20)))
}

/// Use as a share of what the node offers, as `kubectl top nodes` shows it.
fn percent(used: u64, of: u64) -> String {
    (used * 100)
        .checked_div(of)
        .map_or_else(|| "-".into(), |p| format!("{p}%"))
}

pub fn nodes_top(nodes: &[NodeInfo]) -> Table {
    let mut table = Table::new(vec![
        "NAME",
        "CLUSTER",
        "CPU(cores)",
        "CPU%",
        "MEMORY(bytes)",
        "MEMORY%",
    ]);
    for node in nodes {
        let u = node.usage;
        table.row(vec![
            node.name.clone(),
            node.cluster.clone(),
            cpu(u),
            u.map_or("-".into(), |u| {
                percent(u.cpu_millis, node.capacity.cpu_millis)
            }),
            memory(u),
            u.map_or("-".into(), |u| {
                percent(u.memory_bytes >> 20, node.capacity.memory_mib)
            }),
        ]);
    }
    table
}

pub fn instances_top(instances: &[Instance]) -> Table {
    let mut table = Table::new(vec!["ID", "SERVICE", "NODE", "CPU(cores)", "MEMORY(bytes)"]);
    for instance in instances {
        table.row(vec![
            instance.id.clone(),
            format!("{}/{}", instance.application, instance.service),
            or_dash(instance.node.as_ref()),
            cpu(instance.usage),
            memory(instance.usage),
        ]);
    }
    table
}

pub async fn top(args: TopArgs) -> anyhow::Result<()> {
    let client = args.client.connect()?;
    let table = match args.kind {
        TopKind::Nodes => {
            let nodes: Vec<NodeInfo> = client.get("/api/v1/nodes").await?;
            if nodes.iter().all(|n| n.usage.is_none()) {
                bail!("no usage measured yet: nodes sample every 10 s");
            }
            nodes_top(&nodes)
        }
        TopKind::Instances => {
            let query = if args.all_namespaces {
                String::new()
            } else {
                format!("?namespace={}", encode(&args.namespace))
            };
            let mut instances: Vec<Instance> =
                client.get(&format!("/api/v1/instances{query}")).await?;
            instances.retain(|i| i.usage.is_some());
            if instances.is_empty() {
                bail!("no usage measured yet: nodes sample running instances every 10 s");
            }
            instances_top(&instances)
        }
    };
    println!("{}", table.render());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_are_of_what_the_node_offers() {
        assert_eq!(percent(500, 2000), "25%");
        assert_eq!(percent(1, 0), "-");
        assert_eq!(cpu(None), "-");
        assert_eq!(
            memory(Some(Usage {
                cpu_millis: 0,
                memory_bytes: 3 << 20
            })),
            "3Mi"
        );
    }
}
