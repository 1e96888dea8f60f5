//! `canopy rollout status|pause|resume|undo APP/SERVICE`: a service's rolling update.

use crate::cli::ClientArgs;
use crate::client::{Client, encode};
use crate::commands::split_service;
use crate::output::{Table, timestamp};
use canopy_root::desired::RolloutStatus;
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub command: RolloutCommand,
}

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Show a service's rollout: revision, updated and ready instances, history.
    Status(Target),
    /// Pause a service's rollout: old instances stay, no new ones start.
    Pause(Target),
    /// Resume a paused rollout (also one that paused itself on a failing instance).
    Resume(Target),
    /// Roll a service back to its previous revision (or `--to-revision N`).
    Undo {
        #[command(flatten)]
        target: Target,
        /// The revision to go back to (see `rollout status`); the previous one when absent.
        #[arg(long)]
        to_revision: Option<u64>,
    },
}

#[derive(Debug, Args)]
pub struct Target {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The service, as `APPLICATION/SERVICE`.
    pub service: String,
    /// The application's namespace.
    #[arg(short, long, default_value = canopy_model::DEFAULT_NAMESPACE)]
    pub namespace: String,
}

impl Target {
    fn path(&self, verb: &str) -> anyhow::Result<String> {
        let (app, service) = split_service(&self.service)?;
        Ok(format!(
            "/api/v1/services/{}/{}/{}/rollout{verb}",
            encode(&self.namespace),
            encode(app),
            encode(service)
        ))
    }
}

pub async fn run(args: RolloutArgs) -> anyhow::Result<()> {
    let (target, verb, body) = match &args.command {
        RolloutCommand::Status(target) => (target, "", None),
        RolloutCommand::Pause(target) => (target, "/pause", Some(serde_json::json!({}))),
        RolloutCommand::Resume(target) => (target, "/resume", Some(serde_json::json!({}))),
        RolloutCommand::Undo {
            target,
            to_revision,
        } => (
            target,
            "/undo",
            Some(match to_revision {
                Some(n) => serde_json::json!({ "toRevision": n }),
                None => serde_json::json!({}),
            }),
        ),
    };
    let client: Client = target.client.connect()?;
    let path = target.path(verb)?;
    let status: RolloutStatus = match body {
        None => client.get(&path).await?,
        Some(body) => client.post_json(&path, &body).await?,
    };
    print!("{}", render(&status));
    Ok(())
}

fn render(status: &RolloutStatus) -> String {
    let mut out = format!(
        "service/{}/{} revision {}: {}\n",
        status.application, status.service, status.revision, status.phase
    );
    out.push_str(&format!(
        "  {} of {} updated, {} of them ready; {} ready in all; {} old\n",
        status.updated, status.replicas, status.updated_ready, status.ready, status.old
    ));
    if let Some(reason) = &status.reason {
        out.push_str(&format!("  {reason}\n"));
    }
    let mut table = Table::new(vec!["REVISION", "TEMPLATE", "CREATED"]);
    for revision in &status.history {
        table.row(vec![
            revision.revision.to_string(),
            revision.template_hash.clone(),
            timestamp(revision.created_at),
        ]);
    }
    out.push_str(&table.render());
    out
}
