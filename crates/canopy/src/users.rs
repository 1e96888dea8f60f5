//! User management: `canopy create user`, `get users`, `delete user`, `grant` and `revoke`.

use crate::cli::{ClientArgs, OutputFormat};
use crate::client::{Client, encode};
use crate::output::Table;
use clap::Args;
use serde_json::{Value, json};

#[derive(Debug, Args)]
pub struct CreateUser {
    #[command(flatten)]
    client: ClientArgs,
    /// The user's name (a DNS label).
    name: String,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
}

/// `canopy grant ROLE --user U [--namespace N | --all-namespaces]` (and `revoke`).
#[derive(Debug, Args)]
pub struct GrantArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// admin, operator (clusters and nodes), developer (applications) or viewer (reads).
    #[arg(value_parser = ROLES)]
    pub role: String,
    /// The user.
    #[arg(long)]
    pub user: String,
    /// The one namespace the role covers.
    #[arg(short, long, required_unless_present = "all_namespaces")]
    pub namespace: Option<String>,
    /// Every namespace (and, for admins and operators, the installation itself).
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
}

pub const ROLES: [&str; 4] = ["admin", "operator", "developer", "viewer"];

pub async fn create(args: CreateUser) -> anyhow::Result<()> {
    let CreateUser {
        client,
        name,
        password_stdin,
    } = args;
    let (password, made) = if password_stdin {
        (crate::login::read_password(true, "")?, false)
    } else {
        (random_password(), true)
    };
    let _: Value = client
        .connect()?
        .post_json(
            "/api/v1/users",
            &json!({ "name": name, "password": password }),
        )
        .await?;
    println!("user/{name} created");
    if made {
        println!("password (shown once): {password}");
    }
    Ok(())
}

fn random_password() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

pub async fn grant(args: GrantArgs, add: bool) -> anyhow::Result<()> {
    let client = args.client.connect()?;
    let path = format!("/api/v1/users/{}/grants", encode(&args.user));
    let scope = match &args.namespace {
        Some(namespace) => format!("namespace {namespace:?}"),
        None => "all namespaces".to_string(),
    };
    if add {
        let mut body = json!({ "role": args.role });
        if let Some(namespace) = &args.namespace {
            body["namespace"] = json!(namespace);
        }
        let _: Value = client.post_json(&path, &body).await?;
        println!("{} granted to user/{} in {scope}", args.role, args.user);
    } else {
        let mut query = format!("?role={}", encode(&args.role));
        if let Some(namespace) = &args.namespace {
            query.push_str(&format!("&namespace={}", encode(namespace)));
        }
        let _: Value = client.delete(&format!("{path}{query}")).await?;
        println!("{} revoked from user/{} in {scope}", args.role, args.user);
    }
    Ok(())
}

pub async fn list(client: &Client, name: Option<&str>, output: OutputFormat) -> anyhow::Result<()> {
    let mut users: Vec<Value> = client.get("/api/v1/users").await?;
    if let Some(name) = name {
        users.retain(|u| u["name"] == name);
        anyhow::ensure!(!users.is_empty(), "user {name:?} not found");
    }
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&users)?),
        OutputFormat::Yaml => print!("{}", yaml_serde::to_string(&users)?),
        OutputFormat::Table | OutputFormat::Wide => {
            let mut table = Table::new(vec!["NAME", "ROLES", "CREATED"]);
            for user in &users {
                table.row(vec![
                    user["name"].as_str().unwrap_or_default().to_string(),
                    grants(&user["grants"]),
                    user["created_at"].as_str().unwrap_or_default().to_string(),
                ]);
            }
            if users.is_empty() {
                eprintln!("No resources found.");
            } else {
                println!("{}", table.render());
            }
        }
    }
    Ok(())
}

/// `admin`, `developer@team-a`: a role over all namespaces, or over one.
fn grants(grants: &Value) -> String {
    let shown: Vec<String> = grants
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| {
            let role = g["role"].as_str().unwrap_or_default();
            match g["namespace"].as_str() {
                Some(namespace) => format!("{role}@{namespace}"),
                None => role.to_string(),
            }
        })
        .collect();
    if shown.is_empty() {
        "<none>".to_string()
    } else {
        shown.join(",")
    }
}

pub async fn describe(client: &Client, name: &str) -> anyhow::Result<()> {
    let user: Value = client
        .get(&format!("/api/v1/users/{}", encode(name)))
        .await?;
    print!("{}", yaml_serde::to_string(&user)?);
    Ok(())
}

pub async fn delete(client: &Client, name: &str) -> anyhow::Result<()> {
    let _: Value = client
        .delete(&format!("/api/v1/users/{}", encode(name)))
        .await?;
    println!("user/{name} deleted; its tokens no longer work");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_read_as_role_at_namespace() {
        let value = json!([{"role": "admin"}, {"role": "developer", "namespace": "team-a"}]);
        assert_eq!(grants(&value), "admin,developer@team-a");
        assert_eq!(grants(&json!([])), "<none>");
    }
}
