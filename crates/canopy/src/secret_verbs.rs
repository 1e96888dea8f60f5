//! `canopy create secret`, and the secret rows of `canopy get|delete secret`: values go to
//! the root once (`--from-literal`, `--from-file`) and are never printed, not even by the
//! client: what comes back are names, keys and metadata.

use crate::cli::{ClientArgs, Scope};
use crate::client::{Client, encode};
use crate::output::{Table, age};
use anyhow::{Context, bail};
use canopy_model::SecretInfo;
use clap::Args;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct CreateSecret {
    #[command(flatten)]
    client: ClientArgs,
    /// The secret's name (a DNS label).
    name: String,
    /// A key and its value, `KEY=VALUE`; may be given several times.
    #[arg(long = "from-literal", value_name = "KEY=VALUE")]
    literals: Vec<String>,
    /// A key and the file whose content (UTF-8) is its value, `KEY=PATH`.
    #[arg(long = "from-file", value_name = "KEY=PATH")]
    files: Vec<String>,
    #[command(flatten)]
    scope: Scope,
}

pub async fn create(args: CreateSecret) -> anyhow::Result<()> {
    let CreateSecret {
        client,
        name,
        literals,
        files,
        scope,
    } = args;
    let data = data(&literals, &files)?;
    let info: SecretInfo = client
        .connect()?
        .put_json(
            &format!(
                "/api/v1/namespaces/{}/secrets/{}",
                encode(&scope.namespace),
                encode(&name)
            ),
            &json!({ "data": data }),
        )
        .await?;
    println!(
        "secret/{} configured (keys: {})",
        info.name,
        info.keys.join(", ")
    );
    Ok(())
}

/// Key → value from `KEY=VALUE` literals and `KEY=PATH` files; a key given twice is an error.
fn data(literals: &[String], files: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut data = BTreeMap::new();
    let mut add = |key: &str, value: String| {
        if data.insert(key.to_string(), value).is_some() {
            bail!("key {key:?} is given twice");
        }
        Ok(())
    };
    for literal in literals {
        // The value is never echoed: only the key appears in errors.
        let Some((key, value)) = literal.split_once('=') else {
            bail!("--from-literal takes KEY=VALUE (no '=' found)");
        };
        add(key, value.to_string())?;
    }
    for file in files {
        let Some((key, path)) = file.split_once('=') else {
            bail!("--from-file takes KEY=PATH, got {file:?}");
        };
        let path = PathBuf::from(path);
        let value = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {} for key {key:?}", path.display()))?;
        add(key, value)?;
    }
    if data.is_empty() {
        bail!("say what the secret holds: --from-literal KEY=VALUE or --from-file KEY=PATH");
    }
    Ok(data)
}

/// The secrets of `scope`'s namespace (only `name` when given).
pub async fn list(
    client: &Client,
    name: Option<&str>,
    scope: &Scope,
) -> anyhow::Result<Vec<SecretInfo>> {
    if scope.all_namespaces {
        bail!("secrets are listed per namespace: give -n NAMESPACE");
    }
    let mut secrets: Vec<SecretInfo> = client
        .get(&format!(
            "/api/v1/namespaces/{}/secrets",
            encode(&scope.namespace)
        ))
        .await?;
    if let Some(name) = name {
        secrets.retain(|s| s.name == name);
    }
    Ok(secrets)
}

pub async fn delete(client: &Client, namespace: &str, name: &str) -> anyhow::Result<()> {
    let _: SecretInfo = client
        .delete(&format!(
            "/api/v1/namespaces/{}/secrets/{}",
            encode(namespace),
            encode(name)
        ))
        .await?;
    println!("secret/{name} deleted");
    Ok(())
}

pub fn secret_table(secrets: &[SecretInfo], _wide: bool) -> Table {
    let mut table = Table::new(vec!["NAMESPACE", "NAME", "KEYS", "AGE"]);
    for secret in secrets {
        table.row(vec![
            secret.namespace.clone(),
            secret.name.clone(),
            secret.keys.join(","),
            age(secret.created_at),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_files_make_the_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("config.json");
        std::fs::write(&file, "{\"a\":1}").expect("write");
        let data = data(
            &["username=robot".into(), "password=a=b".into()],
            &[format!("config={}", file.display())],
        )
        .expect("data");
        assert_eq!(data["password"], "a=b", "only the first '=' splits");
        assert_eq!(data["config"], "{\"a\":1}");
        assert_eq!(data.len(), 3);
    }

    #[test]
    fn errors_never_echo_a_value() {
        let error = data(&["no-equals-s3cret".into()], &[]).unwrap_err();
        assert!(!error.to_string().contains("s3cret"), "{error}");
        let twice = data(&["k=1".into(), "k=2".into()], &[]).unwrap_err();
        assert!(twice.to_string().contains("twice"));
        assert!(data(&[], &[]).is_err());
    }
}
