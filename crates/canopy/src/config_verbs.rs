//! `canopy config ...`: the contexts of the client config file, as `kubectl config`.

use crate::cli::{ClientArgs, DEFAULT_SERVER};
use crate::client::{Client, Refresh};
use crate::config::{self, ClientConfig};
use crate::output::Table;
use anyhow::Context as _;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// List the contexts; `*` marks the current one.
    GetContexts,
    /// Print the name of the current context.
    CurrentContext,
    /// Make a context the current one.
    UseContext {
        /// The context's name.
        name: String,
    },
    /// Add a context, or change the server of an existing one (its token is kept).
    SetContext {
        /// The context's name.
        name: String,
        /// The root's API for this context (`http://host:port`); required for a new context.
        #[arg(long)]
        server: Option<String>,
    },
    /// Remove a context (and unset it if it was the current one).
    DeleteContext {
        /// The context's name.
        name: String,
    },
}

/// Where the client config lives for this process.
pub fn path() -> anyhow::Result<PathBuf> {
    config::config_path(|name| std::env::var(name).ok())
        .context("no place for the client config: set CANOPY_CONFIG, XDG_CONFIG_HOME or HOME")
}

impl ClientArgs {
    /// A client of the root these flags, the environment and the client config choose.
    pub fn connect(&self) -> anyhow::Result<Client> {
        // An explicit server alone needs no config file (nor a readable one): the file only
        // lends it the credentials of a context for that server.
        let path = path().ok();
        let config = match (&self.server, &self.context, &path) {
            (_, _, None) => ClientConfig::default(),
            (Some(_), None, Some(path)) => config::load(path).unwrap_or_default(),
            (_, _, Some(path)) => config::load(path)?,
        };
        let endpoint = config::resolve(
            self.server.as_deref(),
            self.context.as_deref(),
            &config,
            DEFAULT_SERVER,
        )?;
        if let Some(token) = &self.token {
            // A token given outright is used as it is: no refresh, nothing saved.
            return Client::with_token(&endpoint.server, Some(token.0.clone()));
        }
        let refresh = endpoint.refresh_token.map(|token| Refresh {
            token,
            save_to: path.zip(endpoint.context),
        });
        Ok(Client::with_token(&endpoint.server, endpoint.token)?.with_refresh(refresh))
    }
}

pub fn run(command: ConfigCommand) -> anyhow::Result<()> {
    let path = path()?;
    let mut config = config::load(&path)?;
    match command {
        ConfigCommand::GetContexts => {
            print_contexts(&config);
            return Ok(());
        }
        ConfigCommand::CurrentContext => {
            let current = config
                .current_context
                .context("no current context is set")?;
            println!("{current}");
            return Ok(());
        }
        ConfigCommand::UseContext { name } => {
            config.use_context(&name)?;
            println!("Switched to context {name:?}.");
        }
        ConfigCommand::SetContext { name, server } => {
            let existed = config.context(&name).is_some();
            config.set_context(&name, server.as_deref())?;
            let verb = if existed { "modified" } else { "created" };
            println!("Context {name:?} {verb}.");
        }
        ConfigCommand::DeleteContext { name } => {
            config.delete_context(&name)?;
            println!("Deleted context {name:?} from {}.", path.display());
        }
    }
    config::save(&path, &config)
}

fn print_contexts(config: &ClientConfig) {
    if config.contexts.is_empty() {
        eprintln!("No contexts found.");
        return;
    }
    let mut table = Table::new(vec!["CURRENT", "NAME", "SERVER"]);
    for context in &config.contexts {
        let current = config.current_context.as_deref() == Some(context.name.as_str());
        table.row(vec![
            if current { "*" } else { "" }.to_string(),
            context.name.clone(),
            context.server.clone(),
        ]);
    }
    println!("{}", table.render());
}
