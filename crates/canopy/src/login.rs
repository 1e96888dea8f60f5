//! `canopy login`: a user name and password for tokens, kept in a context of the client
//! config (which becomes the current one).

use crate::cli::{ClientArgs, DEFAULT_SERVER};
use crate::client::Client;
use crate::config;
use crate::config_verbs;
use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::{Value, json};
use std::io::BufRead;

#[derive(Debug, Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The user to log in as.
    #[arg(long)]
    pub user: String,
    /// Read the password from the first line of standard input instead of the terminal.
    #[arg(long)]
    pub password_stdin: bool,
}

pub async fn login(args: LoginArgs) -> anyhow::Result<()> {
    let path = config_verbs::path()?;
    let mut client_config = config::load(&path)?;
    let (name, server) = target(&client_config, &args.client)?;
    let password = read_password(args.password_stdin, "Password: ")?;
    let tokens: Value = Client::with_token(&server, None)?
        .post_json(
            "/api/v1/login",
            &json!({ "user": args.user, "password": password }),
        )
        .await
        .with_context(|| format!("logging in to {server} as {}", args.user))?;
    let access = tokens["access_token"]
        .as_str()
        .context("the login answer has no access token")?;
    let refresh = tokens["refresh_token"].as_str().map(str::to_string);
    client_config.set_credentials(&name, &server, access.to_string(), refresh)?;
    client_config.use_context(&name)?;
    config::save(&path, &client_config)?;
    println!(
        "Logged in to {server} as {} (context {name:?} in {}).",
        args.user,
        path.display()
    );
    Ok(())
}

/// Which context gets the tokens, and its server: `--context` (created with `--server` when
/// new); else a context for `--server` (or a new one named after it); else the current one;
/// else `default` for the default server.
fn target(
    client_config: &config::ClientConfig,
    client: &ClientArgs,
) -> anyhow::Result<(String, String)> {
    if let Some(name) = &client.context {
        let server = match (&client.server, client_config.context(name)) {
            (Some(server), _) => server.clone(),
            (None, Some(context)) => context.server.clone(),
            (None, None) => bail!("context {name:?} is new: give its --server"),
        };
        return Ok((name.clone(), server));
    }
    if let Some(server) = &client.server {
        let existing = client_config
            .contexts
            .iter()
            .find(|c| &c.server == server)
            .map(|c| c.name.clone());
        return Ok((
            existing.unwrap_or_else(|| context_name(server)),
            server.clone(),
        ));
    }
    match client_config
        .current_context
        .as_deref()
        .and_then(|name| client_config.context(name))
    {
        Some(context) => Ok((context.name.clone(), context.server.clone())),
        None => Ok(("default".to_string(), DEFAULT_SERVER.to_string())),
    }
}

/// `https://root.example:7700/` → `root.example:7700`.
pub fn context_name(server: &str) -> String {
    let bare = server.split_once("://").map_or(server, |(_, rest)| rest);
    bare.trim_end_matches('/').to_string()
}

/// A password from standard input's first line, or typed at the terminal without echo.
pub fn read_password(from_stdin: bool, prompt: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let typed = !from_stdin && rustix::termios::isatty(&stdin);
    if !from_stdin && !typed {
        bail!("standard input is not a terminal: give --password-stdin and pipe the password");
    }
    let _quiet = if typed {
        eprint!("{prompt}");
        Some(NoEcho::start()?)
    } else {
        None
    };
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("reading the password")?;
    if typed {
        eprintln!();
    }
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!("the password is empty");
    }
    Ok(password)
}

/// The terminal without echo while it lives.
struct NoEcho(rustix::termios::Termios);

impl NoEcho {
    fn start() -> anyhow::Result<NoEcho> {
        use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).context("reading the terminal's settings")?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        tcsetattr(&stdin, OptionalActions::Now, &quiet).context("turning echo off")?;
        Ok(NoEcho(saved))
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        let stdin = std::io::stdin();
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_are_named_after_their_server() {
        assert_eq!(context_name("http://127.0.0.1:7700"), "127.0.0.1:7700");
        assert_eq!(
            context_name("https://root.example:7700/"),
            "root.example:7700"
        );
        assert_eq!(context_name("root:1"), "root:1");
    }
}
