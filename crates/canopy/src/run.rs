//! `canopy run APP/SERVICE -- ARGS...`: a function on demand. Starts a job of a job service
//! with these arguments in place of the service's, waits for its first run to end, prints the
//! run's output and exits with its exit code.

use crate::cli::{ClientArgs, Scope};
use crate::client::encode;
use crate::commands::split_service;
use anyhow::{Context, bail};
use canopy_model::{Instance, InstanceState};
use clap::Args;
use std::io::Write;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The job service, as `APPLICATION/SERVICE`.
    pub service: String,
    /// How long to wait for the run to end: `30s`, `5m`, `1h`.
    #[arg(long, default_value = "5m", value_parser = crate::wait::parse_duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub scope: Scope,
    /// The run's arguments, in place of the service's `args` (after `--`).
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// How often the run is read while it runs.
const POLL: Duration = Duration::from_millis(200);

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let client = args.client.connect()?;
    let (application, service) = split_service(&args.service)?;
    let path = format!(
        "/api/v1/services/{}/{}/{}/runs",
        encode(&args.scope.namespace),
        encode(application),
        encode(service)
    );
    let started: Instance = client
        .post_json(&path, &serde_json::json!({ "args": args.args }))
        .await?;
    let id = started.id;
    let instance_path = format!("/api/v1/instances/{}", encode(&id));
    let deadline = Instant::now() + args.timeout;
    let ended = loop {
        let Some(instance) = client.get_if_found::<Instance>(&instance_path).await? else {
            bail!("run {id} was removed before it ended");
        };
        if matches!(
            instance.state,
            InstanceState::Succeeded | InstanceState::Failed
        ) {
            break instance;
        }
        if Instant::now() >= deadline {
            bail!(
                "run {id} is still {} after {:?} (`canopy logs {id}` shows its output so far)",
                instance.display_state(),
                args.timeout
            );
        }
        tokio::time::sleep(POLL).await;
    };
    let output = client
        .get_streaming(&format!(
            "/api/v1/instances/{}/logs?follow=false",
            encode(&id)
        ))
        .await?
        .bytes()
        .await
        .with_context(|| format!("the output of {id} broke off"))?;
    let mut stdout = std::io::stdout();
    stdout.write_all(&output)?;
    stdout.flush()?;
    let termination = ended.last_termination.as_ref();
    match termination.and_then(|t| t.exit_code) {
        Some(0) => Ok(()),
        Some(code) => Err(crate::exit::ExitStatus::of_code(code).into()),
        None if ended.state == InstanceState::Succeeded => Ok(()),
        None => bail!(
            "run {id} failed: {}",
            termination.map_or("no reason given", |t| t.reason.as_str())
        ),
    }
}
