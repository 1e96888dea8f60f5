//! `canopy token create` (join tokens) and `canopy delete cluster|node` (revocation).

use crate::cli::{ClientArgs, OutputFormat};
use crate::client::{Client, encode};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub action: TokenAction,
}

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// A one-time join token and the CA hash the joining side pins.
    Create {
        #[command(flatten)]
        client: ClientArgs,
        /// What joins with it.
        #[arg(long, value_enum)]
        join: Joining,
        /// For `--join node`: the cluster the node joins (it must be linked: the root hands
        /// it the token over its link).
        #[arg(long)]
        cluster: Option<String>,
        /// The one name it admits (any free name when omitted).
        #[arg(long)]
        name: Option<String>,
        /// For `--join node` without `--name`: how many nodes may join with it (default 1).
        #[arg(long)]
        uses: Option<u32>,
        /// Lifetime: seconds, or with a unit (`90s`, `30m`, `24h`, `7d`); default 24h.
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<u64>,
        /// Output format (the table also prints the command that joins).
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Joining {
    Cluster,
    Node,
}

pub async fn run(args: TokenArgs) -> anyhow::Result<()> {
    match args.action {
        TokenAction::Create {
            client,
            join,
            cluster,
            name,
            uses,
            ttl,
            output,
        } => {
            let join = match join {
                Joining::Cluster => "cluster",
                Joining::Node => "node",
            };
            let mut body = json!({ "join": join });
            if let Some(cluster) = &cluster {
                body["cluster"] = json!(cluster);
            }
            if let Some(name) = &name {
                body["name"] = json!(name);
            }
            if let Some(uses) = uses {
                body["uses"] = json!(uses);
            }
            if let Some(ttl) = ttl {
                body["ttl_seconds"] = json!(ttl);
            }
            let created: Value = client.connect()?.post_json("/api/v1/tokens", &body).await?;
            print_token(&created, output)
        }
    }
}

fn print_token(created: &Value, output: OutputFormat) -> anyhow::Result<()> {
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(created)?),
        OutputFormat::Yaml => print!("{}", yaml_serde::to_string(created)?),
        OutputFormat::Table | OutputFormat::Wide => {
            let field = |key: &str| created[key].as_str().unwrap_or("").to_string();
            let name = created["name"].as_str().unwrap_or("NAME");
            println!("token:    {}", field("token"));
            println!("ca-hash:  {}", field("ca_hash"));
            println!("expires:  {}", field("expires_at"));
            println!("join with (once; the certificate it gets is kept in the data directory):");
            let joins = if created["join"] == "node" {
                "canopy node --cluster https://CLUSTER:7701"
            } else {
                "canopy cluster --root https://ROOT:7710"
            };
            println!(
                "  {joins} --name {name} --token {} --ca-hash {}",
                field("token"),
                field("ca_hash")
            );
        }
    }
    Ok(())
}

pub async fn revoke_cluster(client: &Client, name: &str) -> anyhow::Result<()> {
    let _: Value = client
        .delete(&format!("/api/v1/clusters/{}", encode(name)))
        .await?;
    println!("cluster/{name} revoked: its certificates no longer link");
    Ok(())
}

/// `CLUSTER/NAME`: the node's cluster revokes its certificates and forgets it.
pub async fn remove_node(client: &Client, node: &str) -> anyhow::Result<()> {
    let Some((cluster, name)) = node.split_once('/') else {
        anyhow::bail!("name the node as CLUSTER/NAME, got {node:?}");
    };
    let _: Value = client
        .delete(&format!(
            "/api/v1/nodes/{}/{}",
            encode(cluster),
            encode(name)
        ))
        .await?;
    println!("node/{cluster}/{name} removed: its certificates no longer link");
    Ok(())
}

/// Seconds from `90`, `90s`, `30m`, `24h` or `7d`.
fn parse_ttl(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("expected a duration like 90s, 30m, 24h or 7d, got {text:?}"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        other => return Err(format!("unknown unit {other:?}: use s, m, h or d")),
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_lifetimes_read_with_units() {
        assert_eq!(parse_ttl("90"), Ok(90));
        assert_eq!(parse_ttl("30m"), Ok(1800));
        assert_eq!(parse_ttl("24h"), Ok(86400));
        assert_eq!(parse_ttl("7d"), Ok(604800));
        assert!(parse_ttl("1w").is_err());
        assert!(parse_ttl("h").is_err());
    }
}
