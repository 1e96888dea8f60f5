//! `canopy create namespace NAME [--trusted] [--quota-cpu ...]`, and the namespace rows of
//! `get` and `delete`.

use crate::cli::ClientArgs;
use crate::client::{Client, encode};
use crate::output::{Table, age};
use canopy_root::desired::Namespace;
use clap::Args;

#[derive(Debug, Args)]
pub struct CreateNamespace {
    #[command(flatten)]
    client: ClientArgs,
    /// The namespace's name (a DNS label).
    name: String,
    /// Its applications may run as root, privileged, with extra capabilities or with the
    /// `process` runtime.
    #[arg(long)]
    trusted: bool,
    /// CPU its applications may request in total (`8`, `2500m`).
    #[arg(long)]
    quota_cpu: Option<String>,
    /// Memory its applications may request in total (`16Gi`).
    #[arg(long)]
    quota_memory: Option<String>,
    /// Instances (replicas, a job's parallel runs) it may hold in total.
    #[arg(long)]
    quota_instances: Option<u32>,
}

pub async fn create(args: CreateNamespace) -> anyhow::Result<()> {
    let CreateNamespace {
        client,
        name,
        trusted,
        quota_cpu,
        quota_memory,
        quota_instances,
    } = args;
    let mut body = serde_json::json!({ "trusted": trusted });
    if quota_cpu.is_some() || quota_memory.is_some() || quota_instances.is_some() {
        let mut quota = serde_json::Map::new();
        if let Some(cpu) = quota_cpu {
            quota.insert("cpu".into(), cpu.into());
        }
        if let Some(memory) = quota_memory {
            quota.insert("memory".into(), memory.into());
        }
        if let Some(instances) = quota_instances {
            quota.insert("instances".into(), instances.into());
        }
        body["quota"] = quota.into();
    }
    let namespace: Namespace = client
        .connect()?
        .put_json(&format!("/api/v1/namespaces/{}", encode(&name)), &body)
        .await?;
    let mark = if namespace.trusted {
        "trusted"
    } else {
        "untrusted"
    };
    println!("namespace/{} {mark}", namespace.name);
    Ok(())
}

pub fn namespace_table(namespaces: &[Namespace], _wide: bool) -> Table {
    let mut table = Table::new(vec!["NAME", "TRUSTED", "AGE", "QUOTA"]);
    for namespace in namespaces {
        table.row(vec![
            namespace.name.clone(),
            namespace.trusted.to_string(),
            age(namespace.created_at),
            namespace
                .quota
                .as_ref()
                .map_or_else(|| "-".to_string(), quota_cell),
        ]);
    }
    table
}

/// `cpu=8000m,memory=16384Mi,instances=20`, what is bounded.
fn quota_cell(quota: &canopy_model::Quota) -> String {
    let mut parts = Vec::new();
    if let Some(cpu) = quota.cpu {
        parts.push(format!("cpu={cpu}"));
    }
    if let Some(memory) = quota.memory {
        parts.push(format!("memory={memory}"));
    }
    if let Some(instances) = quota.instances {
        parts.push(format!("instances={instances}"));
    }
    if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join(",")
    }
}

pub async fn delete(client: &Client, name: &str) -> anyhow::Result<()> {
    let namespace: Namespace = client
        .delete(&format!("/api/v1/namespaces/{}", encode(name)))
        .await?;
    println!("namespace/{} deleted", namespace.name);
    Ok(())
}
