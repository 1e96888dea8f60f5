//! `canopy token create` (join tokens) and `canopy delete cluster` (revocation).

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
        /// The one name it admits (any free name when omitted).
        #[arg(long)]
        name: Option<String>,
        /// Lifetime: seconds, or with a unit (`90s`, `30m`, `24h`, `7d`); default 24h.
        #[arg(long, value_parser = crate::duration::parse_seconds)]
        ttl: Option<u64>,
        /// Output format (the table also prints the command that joins).
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Joining {
    Cluster,
}

pub async fn run(args: TokenArgs) -> anyhow::Result<()> {
    match args.action {
        TokenAction::Create {
            client,
            join,
            name,
            ttl,
            output,
        } => {
            let Joining::Cluster = join;
            let mut body = json!({ "join": "cluster" });
            if let Some(name) = &name {
                body["name"] = json!(name);
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
            println!(
                "  canopy cluster --root https://ROOT:7710 --name {name} --token {} --ca-hash {}",
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
