//! `canopy token create|list|revoke`: join tokens for clusters and nodes, and API tokens for
//! automation; and `canopy delete cluster|node` (revocation).

use crate::cli::{ClientArgs, OutputFormat};
use crate::client::{Client, encode};
use crate::output::Table;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub action: TokenAction,
}

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// A one-time join token and the CA hash the joining side pins (`--join cluster`, or
    /// `--join node --cluster C`), or an API token for automation (`--role R --namespace N` or `--all-namespaces`).
    #[command(group(clap::ArgGroup::new("kind").required(true).args(["join", "role"])))]
    Create {
        #[command(flatten)]
        client: ClientArgs,
        /// A join token: what joins with it.
        #[arg(long, value_enum)]
        join: Option<Joining>,
        /// A node's join token: the cluster the node joins (it must be linked: the root
        /// hands it the token over its link).
        #[arg(long, requires = "join")]
        cluster: Option<String>,
        /// A join token: the one name it admits (any free name when omitted).
        #[arg(long, requires = "join")]
        name: Option<String>,
        /// A node's join token without `--name`: how many nodes may join with it (default 1).
        #[arg(long, requires = "join")]
        uses: Option<u32>,
        /// An API token: the role it carries (no more than yours).
        #[arg(long, value_parser = crate::users::ROLES)]
        role: Option<String>,
        /// An API token: the one namespace its role covers.
        #[arg(short, long, requires = "role")]
        namespace: Option<String>,
        /// An API token: its role covers every namespace.
        #[arg(short = 'A', long, requires = "role", conflicts_with = "namespace")]
        all_namespaces: bool,
        /// Lifetime: seconds, or with a unit (`90s`, `30m`, `24h`, `7d`); default 24h for
        /// a join token, 30d for an API token.
        #[arg(long, value_parser = crate::duration::parse_seconds)]
        ttl: Option<u64>,
        /// Output format (the table also prints the command that joins).
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Your API tokens and login sessions (everybody's for admins).
    List {
        #[command(flatten)]
        client: ClientArgs,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Revoke an API token or end a login session, by its id: its tokens get 401 from now on.
    Revoke {
        #[command(flatten)]
        client: ClientArgs,
        /// The token's id (`canopy token list`).
        id: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Joining {
    Cluster,
    Node,
}

pub async fn run(args: TokenArgs) -> anyhow::Result<()> {
    match args.action {
        TokenAction::List { client, output } => {
            let tokens: Vec<Value> = client.connect()?.get("/api/v1/tokens").await?;
            print_tokens(&tokens, output)
        }
        TokenAction::Revoke { client, id } => {
            let _: Value = client
                .connect()?
                .delete(&format!("/api/v1/tokens/{}", encode(&id)))
                .await?;
            println!("token/{id} revoked");
            Ok(())
        }
        TokenAction::Create {
            client,
            role: Some(role),
            namespace,
            all_namespaces,
            ttl,
            output,
            ..
        } => {
            if namespace.is_none() && !all_namespaces {
                anyhow::bail!("an API token needs --namespace N or --all-namespaces");
            }
            let mut body = json!({ "role": role });
            if let Some(namespace) = &namespace {
                body["namespace"] = json!(namespace);
            }
            if let Some(ttl) = ttl {
                body["ttl_seconds"] = json!(ttl);
            }
            let created: Value = client.connect()?.post_json("/api/v1/tokens", &body).await?;
            print_api_token(&created, output)
        }
        TokenAction::Create {
            client,
            join,
            cluster,
            name,
            uses,
            ttl,
            output,
            ..
        } => {
            let join = match join {
                Some(Joining::Node) => "node",
                _ => "cluster",
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

fn print_api_token(created: &Value, output: OutputFormat) -> anyhow::Result<()> {
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(created)?),
        OutputFormat::Yaml => print!("{}", yaml_serde::to_string(created)?),
        OutputFormat::Table | OutputFormat::Wide => {
            let field = |key: &str| created[key].as_str().unwrap_or("").to_string();
            println!("token:    {}", field("token"));
            println!("id:       {}", field("id"));
            println!("expires:  {}", field("expires_at"));
            println!(
                "use with: CANOPY_TOKEN=<token> canopy ... (or --token); over HTTP, `Authorization: Bearer <token>`"
            );
        }
    }
    Ok(())
}

fn print_tokens(tokens: &[Value], output: OutputFormat) -> anyhow::Result<()> {
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(tokens)?),
        OutputFormat::Yaml => print!("{}", yaml_serde::to_string(tokens)?),
        OutputFormat::Table | OutputFormat::Wide => {
            let mut table = Table::new(vec!["ID", "USER", "KIND", "ROLE", "NAMESPACE", "EXPIRES"]);
            for token in tokens {
                let text = |v: &Value| v.as_str().unwrap_or("").to_string();
                let grant = &token["grant"];
                table.row(vec![
                    text(&token["id"]),
                    text(&token["user"]),
                    text(&token["kind"]),
                    grant["role"].as_str().unwrap_or("(user's)").to_string(),
                    match (grant.is_null(), grant["namespace"].as_str()) {
                        (true, _) => "(user's)".to_string(),
                        (false, Some(namespace)) => namespace.to_string(),
                        (false, None) => "*".to_string(),
                    },
                    text(&token["expires_at"]),
                ]);
            }
            println!("{}", table.render());
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
