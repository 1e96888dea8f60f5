//! `canopy create namespace NAME [--trusted]`, and the namespace rows of `get` and `delete`.

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
}

pub async fn create(args: CreateNamespace) -> anyhow::Result<()> {
    let CreateNamespace {
        client,
        name,
        trusted,
    } = args;
    let namespace: Namespace = client
        .connect()?
        .put_json(
            &format!("/api/v1/namespaces/{}", encode(&name)),
            &serde_json::json!({ "trusted": trusted }),
        )
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
    let mut table = Table::new(vec!["NAME", "TRUSTED", "AGE"]);
    for namespace in namespaces {
        table.row(vec![
            namespace.name.clone(),
            namespace.trusted.to_string(),
            age(namespace.created_at),
        ]);
    }
    table
}

pub async fn delete(client: &Client, name: &str) -> anyhow::Result<()> {
    let namespace: Namespace = client
        .delete(&format!("/api/v1/namespaces/{}", encode(name)))
        .await?;
    println!("namespace/{} deleted", namespace.name);
    Ok(())
}
