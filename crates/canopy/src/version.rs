//! `canopy version`: this client's build and the root's (`GET /api/v1/version`).

use crate::cli::ClientArgs;
use anyhow::Context;
use canopy_root::api::VersionInfo;
use clap::{Args, ValueEnum};
use serde::Serialize;

#[derive(Debug, Args)]
pub struct VersionArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Only the client's version; the server is not asked.
    #[arg(long = "client")]
    pub client_only: bool,
    /// Output format.
    #[arg(short, long, value_enum)]
    pub output: Option<VersionFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VersionFormat {
    Json,
    Yaml,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Versions {
    client_version: VersionInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_version: Option<VersionInfo>,
}

/// `0.1.0 (commit 0123abcd4567)`, or just the version when the build did not know its commit.
pub fn describe(version: &VersionInfo) -> String {
    match &version.git_commit {
        Some(commit) => format!("{} (commit {commit})", version.version),
        None => version.version.clone(),
    }
}

pub async fn run(args: VersionArgs) -> anyhow::Result<()> {
    let client_version = VersionInfo::current();
    let server = if args.client_only {
        None
    } else {
        let client = args.client.connect()?;
        // The client's version is worth printing even when the server cannot be reached.
        if args.output.is_none() {
            println!("Client Version: {}", describe(&client_version));
        }
        let server: VersionInfo = client
            .get("/api/v1/version")
            .await
            .with_context(|| format!("asking {} for its version", client.server()))?;
        Some(server)
    };
    match args.output {
        None if args.client_only => println!("Client Version: {}", describe(&client_version)),
        None => {
            if let Some(server) = &server {
                println!("Server Version: {}", describe(server));
            }
        }
        Some(format) => {
            let versions = Versions {
                client_version,
                server_version: server,
            };
            match format {
                VersionFormat::Json => println!("{}", serde_json::to_string_pretty(&versions)?),
                VersionFormat::Yaml => print!("{}", yaml_serde::to_string(&versions)?),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commit_is_shown_when_known() {
        let mut version = VersionInfo {
            version: "1.2.3".into(),
            git_commit: None,
        };
        assert_eq!(describe(&version), "1.2.3");
        version.git_commit = Some("abc".into());
        assert_eq!(describe(&version), "1.2.3 (commit abc)");
    }
}
