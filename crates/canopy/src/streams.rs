//! `canopy logs`: an instance's output, or every instance of a service interleaved line by
//! line with an `[instance]` prefix (as `kubectl logs -l` or `stern` do), streamed from the
//! nodes through the tiers.

use crate::cli::{ClientArgs, Scope};
use crate::client::{Client, encode};
use anyhow::Context;
use canopy_model::Instance;
use clap::Args;
use futures::StreamExt;
use std::io::Write;
use tokio::sync::mpsc;

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// An instance id, or APPLICATION/SERVICE for all of its instances.
    pub target: String,
    /// Keep printing lines as they are written, until Ctrl-C.
    #[arg(short, long)]
    pub follow: bool,
    /// Start with the last N lines of each output (default: all).
    #[arg(long)]
    pub tail: Option<u64>,
    /// The run before the current one (after a restart).
    #[arg(short, long)]
    pub previous: bool,
    /// Only lines written in this last while (`90s`, `5m`, `1h30m`; to about a second).
    #[arg(long, value_parser = crate::duration::parse_seconds)]
    pub since: Option<u64>,
    #[command(flatten)]
    pub scope: Scope,
}

pub async fn logs(args: LogsArgs) -> anyhow::Result<()> {
    let client = args.client.connect()?;
    let mut query = vec![format!("follow={}", args.follow)];
    if let Some(tail) = args.tail {
        query.push(format!("tail={tail}"));
    }
    if args.previous {
        query.push("previous=true".to_string());
    }
    if let Some(since) = args.since {
        query.push(format!("sinceSeconds={since}"));
    }
    let query = query.join("&");
    let work = async {
        match args.target.split_once('/') {
            None => single(&client, &args.target, &query).await,
            Some((application, service)) => {
                let instances = instances_of(&client, application, service, &args.scope).await?;
                interleaved(&client, instances, &query).await
            }
        }
    };
    tokio::select! {
        result = work => result,
        // Ctrl-C ends a follow: not an error.
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

fn logs_path(id: &str, query: &str) -> String {
    format!("/api/v1/instances/{}/logs?{query}", encode(id))
}

/// One instance: its bytes as they come.
async fn single(client: &Client, id: &str, query: &str) -> anyhow::Result<()> {
    let response = client.get_streaming(&logs_path(id, query)).await?;
    let mut body = response.bytes_stream();
    let mut stdout = std::io::stdout();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.with_context(|| format!("the logs of {id} broke off"))?;
        stdout.write_all(&chunk)?;
        stdout.flush()?;
    }
    Ok(())
}

async fn instances_of(
    client: &Client,
    application: &str,
    service: &str,
    scope: &Scope,
) -> anyhow::Result<Vec<Instance>> {
    let path = format!(
        "/api/v1/instances?namespace={}&application={}&service={}",
        encode(&scope.namespace),
        encode(application),
        encode(service)
    );
    let instances: Vec<Instance> = client.get(&path).await?;
    anyhow::ensure!(
        !instances.is_empty(),
        "service {application}/{service} has no instances in namespace {}",
        scope.namespace
    );
    Ok(instances)
}

/// Every instance at once, whole lines each with its instance's prefix.
async fn interleaved(client: &Client, instances: Vec<Instance>, query: &str) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::channel::<Result<String, String>>(256);
    for instance in instances.into_iter().filter(|i| i.node.is_some()) {
        let response = client.get_streaming(&logs_path(&instance.id, query)).await;
        let tx = tx.clone();
        tokio::spawn(async move {
            let id = instance.id;
            let mut body = match response {
                Ok(response) => response.bytes_stream(),
                Err(e) => {
                    let _ = tx.send(Err(format!("[{id}] {e:#}"))).await;
                    return;
                }
            };
            let mut partial: Vec<u8> = Vec::new();
            while let Some(chunk) = body.next().await {
                let Ok(chunk) = chunk else {
                    let _ = tx.send(Err(format!("[{id}] the logs broke off"))).await;
                    return;
                };
                partial.extend_from_slice(&chunk);
                while let Some(end) = partial.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = partial.drain(..=end).collect();
                    let text = String::from_utf8_lossy(&line[..end]).into_owned();
                    if tx.send(Ok(format!("[{id}] {text}"))).await.is_err() {
                        return;
                    }
                }
            }
            if !partial.is_empty() {
                let text = String::from_utf8_lossy(&partial).into_owned();
                let _ = tx.send(Ok(format!("[{id}] {text}"))).await;
            }
        });
    }
    drop(tx);
    let mut failed = false;
    let mut stdout = std::io::stdout();
    while let Some(line) = rx.recv().await {
        match line {
            Ok(line) => {
                writeln!(stdout, "{line}")?;
                stdout.flush()?;
            }
            Err(error) => {
                eprintln!("error: {error}");
                failed = true;
            }
        }
    }
    anyhow::ensure!(!failed, "the logs of some instances could not be read");
    Ok(())
}
