//! `canopy get`: resources by kind, name and labels; `-w` then prints a line per change, as
//! `kubectl get -w` does.

use crate::cli::{Kind, OutputFormat, Scope};
use crate::client::{Client, encode};
use crate::commands::{
    application_table, cluster_table, instance_table, node_table, service_table, split_service,
};
use crate::output::{Table, line};
use crate::sse::Changes;
use anyhow::bail;
use canopy_model::{ClusterInfo, Instance, NodeInfo, Selector};
use canopy_root::api::ChangeEvent;
use canopy_root::records::{ApplicationView, ServiceView};
use serde::Serialize;
use std::collections::BTreeMap;

/// What to list.
pub struct Request<'a> {
    pub kind: Kind,
    pub name: Option<&'a str>,
    pub scope: &'a Scope,
    pub selector: Option<&'a Selector>,
    pub output: OutputFormat,
}

/// One listing, rendered for its output format.
struct Listing {
    /// For `table` and `wide`.
    table: Option<Table>,
    /// Each item's identity, in the order of the rows or documents.
    keys: Vec<String>,
    /// Each item on its own, for `json` and `yaml` (what `-w` prints per change).
    documents: Vec<String>,
    /// The whole list, for `json` and `yaml`.
    document: String,
}

pub async fn run(client: &Client, request: &Request<'_>, watch: bool) -> anyhow::Result<()> {
    if watch {
        return follow(client, request).await;
    }
    let listing = list(client, request).await?;
    require_found(&listing, request)?;
    match &listing.table {
        Some(table) if table.rows().is_empty() => eprintln!("No resources found."),
        Some(table) => println!("{}", table.render()),
        None => print!("{}", listing.document),
    }
    Ok(())
}

fn require_found(listing: &Listing, request: &Request<'_>) -> anyhow::Result<()> {
    if let Some(name) = request.name
        && listing.keys.is_empty()
    {
        let kind = match request.kind {
            Kind::Application => "application",
            Kind::Service => "service",
            Kind::Instance => "instance",
            Kind::Cluster => "cluster",
            Kind::Node => "node",
            Kind::User => "user",
            Kind::Namespace => "namespace",
            Kind::Secret => "secret",
        };
        bail!("{kind} {name:?} not found");
    }
    Ok(())
}

/// The list, then a line (or document) for each item that changes, appears or goes.
async fn follow(client: &Client, request: &Request<'_>) -> anyhow::Result<()> {
    // Watching first: a change between the listing and the watch would otherwise be lost.
    let mut changes = Changes::open(client).await?;
    let first = list(client, request).await?;
    require_found(&first, request)?;
    let widths = match &first.table {
        Some(table) => {
            if table.rows().is_empty() {
                eprintln!("No resources found.");
            } else {
                println!("{}", table.render());
            }
            table.widths()
        }
        None => {
            first.documents.iter().for_each(|d| print!("{d}"));
            Vec::new()
        }
    };
    let mut seen = fingerprints(&first);
    loop {
        let Some(change) = changes.next().await? else {
            bail!("the root closed the event stream");
        };
        if !relevant(request, &change) {
            continue;
        }
        // A burst of changes (a rollout) is one new listing.
        while changes.next_ready().is_some() {}
        let now = list(client, request).await?;
        let current = fingerprints(&now);
        for (index, key) in now.keys.iter().enumerate() {
            if seen.get(key) == current.get(key) {
                continue;
            }
            match &now.table {
                Some(table) => println!("{}", line(&table.rows()[index], &widths)),
                None => print!("{}", now.documents[index]),
            }
        }
        seen = current;
    }
}

/// What tells one state of an item from the next: its row without the age (which changes
/// by itself), or its whole document.
fn fingerprints(listing: &Listing) -> BTreeMap<String, String> {
    let rows: Vec<String> = match &listing.table {
        Some(table) => {
            let age = table.headers().iter().position(|h| *h == "AGE");
            table
                .rows()
                .iter()
                .map(|row| {
                    row.iter()
                        .enumerate()
                        .filter(|(i, _)| Some(*i) != age)
                        .map(|(_, cell)| cell.as_str())
                        .collect::<Vec<_>>()
                        .join("\0")
                })
                .collect()
        }
        None => listing.documents.clone(),
    };
    listing.keys.iter().cloned().zip(rows).collect()
}

/// Whether a change can alter what the listing shows. Services and applications show their
/// instances' states; instances are selected by their application's labels.
fn relevant(request: &Request<'_>, change: &ChangeEvent) -> bool {
    let kind = change.kind.as_str();
    match request.kind {
        Kind::Application | Kind::Service => kind == "application" || kind == "instance",
        Kind::Instance => {
            kind == "instance" || (request.selector.is_some() && kind == "application")
        }
        Kind::Cluster => kind == "cluster",
        Kind::Node => kind == "node",
        Kind::User => false,
        // Namespace changes are not in the event stream.
        Kind::Namespace => false,
        // Secrets are not in the event stream.
        Kind::Secret => false,
    }
}

async fn list(client: &Client, request: &Request<'_>) -> anyhow::Result<Listing> {
    let mut query = Vec::new();
    let namespaced = matches!(
        request.kind,
        Kind::Application | Kind::Service | Kind::Instance
    );
    if namespaced && !request.scope.all_namespaces {
        query.push(format!("namespace={}", encode(&request.scope.namespace)));
    }
    if let Some(selector) = request.selector {
        query.push(format!("labelSelector={}", encode(&selector.to_string())));
    }
    let query = query.join("&");
    let output = request.output;
    match request.kind {
        Kind::Application => {
            let mut apps: Vec<ApplicationView> =
                client.get(&format!("/api/v1/applications?{query}")).await?;
            if let Some(name) = request.name {
                apps.retain(|a| a.application.metadata.name == name);
            }
            render(&apps, output, application_table, |a| {
                let m = &a.application.metadata;
                format!("{}/{}", m.namespace, m.name)
            })
        }
        Kind::Service => {
            let mut services: Vec<ServiceView> =
                client.get(&format!("/api/v1/services?{query}")).await?;
            if let Some(name) = request.name {
                let (app, service) = split_service(name)?;
                services.retain(|s| s.application == app && s.name == service);
            }
            let key = |s: &ServiceView| format!("{}/{}/{}", s.namespace, s.application, s.name);
            if output == OutputFormat::Wide {
                let instances: Vec<Instance> =
                    client.get(&format!("/api/v1/instances?{query}")).await?;
                return Ok(Listing {
                    table: Some(crate::service_wide::service_wide_table(
                        &services, &instances,
                    )),
                    keys: services.iter().map(key).collect(),
                    documents: Vec::new(),
                    document: String::new(),
                });
            }
            render(&services, output, service_table, key)
        }
        Kind::Instance => {
            let mut instances: Vec<Instance> =
                client.get(&format!("/api/v1/instances?{query}")).await?;
            if let Some(name) = request.name {
                instances.retain(|i| i.id == name);
            }
            render(&instances, output, instance_table, |i| i.id.clone())
        }
        Kind::Cluster => {
            let mut clusters: Vec<ClusterInfo> =
                client.get(&format!("/api/v1/clusters?{query}")).await?;
            if let Some(name) = request.name {
                clusters.retain(|c| c.name == name);
            }
            render(&clusters, output, cluster_table, |c| c.name.clone())
        }
        Kind::User => bail!("users are listed by `canopy get users`"),
        Kind::Node => {
            let mut nodes: Vec<NodeInfo> = client.get(&format!("/api/v1/nodes?{query}")).await?;
            if let Some(name) = request.name {
                // `CLUSTER/NODE`, or a node name alone.
                let (cluster, node) = match name.split_once('/') {
                    Some((cluster, node)) => (Some(cluster), node),
                    None => (None, name),
                };
                nodes.retain(|n| n.name == node && cluster.is_none_or(|c| n.cluster == c));
            }
            render(&nodes, output, node_table, |n| n.name.clone())
        }
        Kind::Namespace => {
            let mut namespaces: Vec<canopy_root::desired::Namespace> =
                client.get("/api/v1/namespaces").await?;
            if let Some(name) = request.name {
                namespaces.retain(|n| n.name == name);
            }
            render(
                &namespaces,
                output,
                crate::namespaces::namespace_table,
                |n| n.name.clone(),
            )
        }
        Kind::Secret => {
            let secrets = crate::secret_verbs::list(client, request.name, request.scope).await?;
            render(&secrets, output, crate::secret_verbs::secret_table, |s| {
                format!("{}/{}", s.namespace, s.name)
            })
        }
    }
}

fn render<T: Serialize>(
    items: &[T],
    output: OutputFormat,
    table: fn(&[T], bool) -> Table,
    key: fn(&T) -> String,
) -> anyhow::Result<Listing> {
    let keys = items.iter().map(key).collect();
    let (table, documents, document) = match output {
        OutputFormat::Table | OutputFormat::Wide => (
            Some(table(items, output == OutputFormat::Wide)),
            Vec::new(),
            String::new(),
        ),
        OutputFormat::Json => (
            None,
            items
                .iter()
                .map(|item| Ok(format!("{}\n", serde_json::to_string_pretty(item)?)))
                .collect::<anyhow::Result<_>>()?,
            format!("{}\n", serde_json::to_string_pretty(items)?),
        ),
        OutputFormat::Yaml => (
            None,
            items
                .iter()
                .map(|item| Ok(format!("---\n{}", yaml_serde::to_string(item)?)))
                .collect::<anyhow::Result<_>>()?,
            yaml_serde::to_string(items)?,
        ),
    };
    Ok(Listing {
        table,
        keys,
        documents,
        document,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(rows: &[[&str; 3]]) -> Listing {
        let mut table = Table::new(vec!["NAME", "AGE", "STATE"]);
        for row in rows {
            table.row(row.iter().map(|c| c.to_string()).collect());
        }
        Listing {
            keys: rows.iter().map(|r| r[0].to_string()).collect(),
            table: Some(table),
            documents: Vec::new(),
            document: String::new(),
        }
    }

    #[test]
    fn a_row_changes_by_its_content_not_by_its_age() {
        let before = fingerprints(&listing(&[["a", "5s", "Pending"], ["b", "5s", "Running"]]));
        let after = fingerprints(&listing(&[["a", "9s", "Running"], ["b", "9s", "Running"]]));
        assert_ne!(before["a"], after["a"]);
        assert_eq!(before["b"], after["b"]);
    }

    #[test]
    fn only_changes_of_what_is_shown_are_relevant() {
        let scope = Scope {
            namespace: "default".into(),
            all_namespaces: false,
        };
        let change = |kind: &str| ChangeEvent {
            revision: 1,
            kind: kind.into(),
            action: "put".into(),
            key: String::new(),
            object: None,
        };
        let selector = Selector::parse("a=b").unwrap();
        let request = |kind, selector| Request {
            kind,
            name: None,
            scope: &scope,
            selector,
            output: OutputFormat::Table,
        };
        assert!(relevant(&request(Kind::Service, None), &change("instance")));
        assert!(!relevant(&request(Kind::Service, None), &change("node")));
        assert!(!relevant(
            &request(Kind::Instance, None),
            &change("application")
        ));
        assert!(relevant(
            &request(Kind::Instance, Some(&selector)),
            &change("application")
        ));
        assert!(relevant(&request(Kind::Node, None), &change("node")));
        assert!(!relevant(
            &request(Kind::Cluster, None),
            &change("instance")
        ));
    }
}
