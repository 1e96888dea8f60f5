//! The client config file, as kubeconfig: named contexts (a server and its credentials) and
//! the current one. `$CANOPY_CONFIG`, else `$XDG_CONFIG_HOME/canopy/config.yaml`, else
//! `~/.config/canopy/config.yaml`.

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_context: Option<String>,
    #[serde(default)]
    pub contexts: Vec<NamedContext>,
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamedContext {
    pub name: String,
    /// The root's API, `http://host:port`.
    pub server: String,
    /// Bearer token sent to that server; never printed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Traded for a new token when the server says the token expired (`canopy login`
    /// stores it); never printed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// Debug output (and so any error that shows a context) never carries the token.
impl std::fmt::Debug for NamedContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamedContext")
            .field("name", &self.name)
            .field("server", &self.server)
            .field(
                "token",
                &self.token.as_ref().map(|_| canopy_model::REDACTED),
            )
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| canopy_model::REDACTED),
            )
            .finish()
    }
}

/// Where the client sends its requests, and with which credentials.
#[derive(Clone, PartialEq)]
pub struct Endpoint {
    pub server: String,
    pub token: Option<String>,
    pub refresh_token: Option<String>,
    /// The context the credentials come from (where a refreshed token is saved).
    pub context: Option<String>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("server", &self.server)
            .field(
                "token",
                &self.token.as_ref().map(|_| canopy_model::REDACTED),
            )
            .finish()
    }
}

/// A token given on the command line or in `CANOPY_TOKEN`: never shown by Debug.
#[derive(Clone, PartialEq)]
pub struct BearerToken(pub String);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(canopy_model::REDACTED)
    }
}

impl std::str::FromStr for BearerToken {
    type Err = String;

    fn from_str(text: &str) -> Result<BearerToken, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("the token is empty".into());
        }
        Ok(BearerToken(text.to_string()))
    }
}

/// The config file's path, from the environment (`var` reads one variable).
pub fn config_path(var: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let set = |name: &str| var(name).filter(|v| !v.is_empty());
    if let Some(path) = set("CANOPY_CONFIG") {
        return Some(PathBuf::from(path));
    }
    if let Some(dir) = set("XDG_CONFIG_HOME") {
        return Some(Path::new(&dir).join("canopy/config.yaml"));
    }
    set("HOME").map(|home| Path::new(&home).join(".config/canopy/config.yaml"))
}

/// Precedence as kubectl's: `--server` (or `CANOPY_SERVER`), then `--context`, then the
/// current context, then `default`. An explicit server gets the token of the context named
/// with `--context`, else that of a context for exactly that server (the current one first):
/// credentials never go to a server nobody tied them to.
pub fn resolve(
    server: Option<&str>,
    context: Option<&str>,
    config: &ClientConfig,
    default: &str,
) -> anyhow::Result<Endpoint> {
    let named = match context {
        Some(name) => Some(config.context(name).with_context(|| {
            format!(
                "context {name:?} is not in the client config ({})",
                config.names()
            )
        })?),
        None => None,
    };
    if let Some(server) = server {
        let same_server = || {
            let current = config.current_context.as_deref();
            let mut matching = config.contexts.iter().filter(|c| c.server == server);
            let first = matching.clone().next();
            matching
                .find(|c| Some(c.name.as_str()) == current)
                .or(first)
        };
        let credentials = named.or_else(same_server);
        return Ok(Endpoint {
            server: server.to_string(),
            ..Endpoint::of(credentials)
        });
    }
    let chosen = match (named, &config.current_context) {
        (Some(named), _) => Some(named),
        (None, Some(current)) => Some(config.context(current).with_context(|| {
            format!("the current context {current:?} is not in the client config; `canopy config use-context NAME` picks another")
        })?),
        (None, None) => None,
    };
    Ok(match chosen {
        Some(context) => Endpoint {
            server: context.server.clone(),
            ..Endpoint::of(Some(context))
        },
        None => Endpoint {
            server: default.to_string(),
            ..Endpoint::of(None)
        },
    })
}

impl Endpoint {
    /// The credentials of `context` (none without one), for a server set afterwards.
    fn of(context: Option<&NamedContext>) -> Endpoint {
        Endpoint {
            server: String::new(),
            token: context.and_then(|c| c.token.clone()),
            refresh_token: context.and_then(|c| c.refresh_token.clone()),
            context: context.map(|c| c.name.clone()),
        }
    }
}

impl ClientConfig {
    pub fn context(&self, name: &str) -> Option<&NamedContext> {
        self.contexts.iter().find(|c| c.name == name)
    }

    fn names(&self) -> String {
        if self.contexts.is_empty() {
            return "it has none".to_string();
        }
        let names: Vec<&str> = self.contexts.iter().map(|c| c.name.as_str()).collect();
        format!("it has {}", names.join(", "))
    }

    /// Adds the context, or changes its server (keeping its token).
    pub fn set_context(&mut self, name: &str, server: Option<&str>) -> anyhow::Result<()> {
        if name.trim().is_empty() {
            bail!("a context needs a name");
        }
        match (self.contexts.iter_mut().find(|c| c.name == name), server) {
            (Some(context), Some(server)) => context.server = server.to_string(),
            (Some(_), None) => {}
            (None, Some(server)) => self.contexts.push(NamedContext {
                name: name.to_string(),
                server: server.to_string(),
                token: None,
                refresh_token: None,
            }),
            (None, None) => bail!("context {name:?} is new: give its --server"),
        }
        Ok(())
    }

    /// Sets the context's server and credentials (adding it if new), as a login does.
    pub fn set_credentials(
        &mut self,
        name: &str,
        server: &str,
        token: String,
        refresh_token: Option<String>,
    ) -> anyhow::Result<()> {
        self.set_context(name, Some(server))?;
        if let Some(context) = self.contexts.iter_mut().find(|c| c.name == name) {
            context.token = Some(token);
            context.refresh_token = refresh_token;
        }
        Ok(())
    }

    /// Replaces the token of `name` (after a refresh); nothing when the context is gone.
    pub fn set_token(&mut self, name: &str, token: String) {
        if let Some(context) = self.contexts.iter_mut().find(|c| c.name == name) {
            context.token = Some(token);
        }
    }

    pub fn use_context(&mut self, name: &str) -> anyhow::Result<()> {
        if self.context(name).is_none() {
            bail!("no context {name:?} ({})", self.names());
        }
        self.current_context = Some(name.to_string());
        Ok(())
    }

    /// Removes the context; the current context is unset if it was this one.
    pub fn delete_context(&mut self, name: &str) -> anyhow::Result<()> {
        let before = self.contexts.len();
        self.contexts.retain(|c| c.name != name);
        if self.contexts.len() == before {
            bail!("no context {name:?} ({})", self.names());
        }
        if self.current_context.as_deref() == Some(name) {
            self.current_context = None;
        }
        Ok(())
    }
}

/// The config at `path`; an empty one when the file does not exist.
pub fn load(path: &Path) -> anyhow::Result<ClientConfig> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Ok(ClientConfig::default()),
        Ok(text) => yaml_serde::from_str(&text)
            .with_context(|| format!("reading the client config {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ClientConfig::default()),
        Err(e) => Err(e).with_context(|| format!("reading the client config {}", path.display())),
    }
}

/// Writes the config readable by its owner only (it holds tokens), atomically.
pub fn save(path: &Path, config: &ClientConfig) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = yaml_serde::to_string(config)?;
    let temporary = path.with_extension("yaml.tmp");
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .with_context(|| format!("writing {}", temporary.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    // The mode given at creation is masked by the umask; set it outright.
    std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&temporary, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = "http://127.0.0.1:7700";

    fn config() -> ClientConfig {
        ClientConfig {
            current_context: Some("lab".into()),
            contexts: vec![
                NamedContext {
                    name: "lab".into(),
                    server: "http://lab:7700".into(),
                    token: Some("lab-secret".into()),
                    refresh_token: Some("lab-refresh".into()),
                },
                NamedContext {
                    name: "edge".into(),
                    server: "http://edge:7700".into(),
                    token: None,
                    refresh_token: None,
                },
            ],
        }
    }

    #[test]
    fn an_explicit_server_gets_a_token_only_from_a_context_for_it_or_one_named() {
        let endpoint = resolve(Some("http://x:1"), None, &config(), DEFAULT).unwrap();
        assert_eq!(endpoint.server, "http://x:1");
        assert_eq!(endpoint.token, None);
        let endpoint = resolve(Some("http://lab:7700"), None, &config(), DEFAULT).unwrap();
        assert_eq!(endpoint.token.as_deref(), Some("lab-secret"));
        assert_eq!(endpoint.context.as_deref(), Some("lab"));
        let endpoint = resolve(Some("http://edge:7700"), None, &config(), DEFAULT).unwrap();
        assert_eq!(endpoint.token, None);
        assert_eq!(endpoint.context.as_deref(), Some("edge"));
        let endpoint = resolve(Some("http://x:1"), Some("lab"), &config(), DEFAULT).unwrap();
        assert_eq!(endpoint.server, "http://x:1");
        assert_eq!(endpoint.token.as_deref(), Some("lab-secret"));
    }

    #[test]
    fn the_context_flag_beats_the_current_context() {
        let endpoint = resolve(None, Some("edge"), &config(), DEFAULT).unwrap();
        assert_eq!(endpoint.server, "http://edge:7700");
        let endpoint = resolve(None, None, &config(), DEFAULT).unwrap();
        assert_eq!(endpoint.server, "http://lab:7700");
        assert_eq!(endpoint.token.as_deref(), Some("lab-secret"));
    }

    #[test]
    fn without_a_context_the_default_server() {
        let endpoint = resolve(None, None, &ClientConfig::default(), DEFAULT).unwrap();
        assert_eq!(endpoint.server, DEFAULT);
        let mut no_current = config();
        no_current.current_context = None;
        assert_eq!(
            resolve(None, None, &no_current, DEFAULT).unwrap().server,
            DEFAULT
        );
    }

    #[test]
    fn unknown_contexts_are_errors_that_list_the_known_ones() {
        let error = resolve(None, Some("nope"), &config(), DEFAULT).unwrap_err();
        assert!(error.to_string().contains("\"nope\""), "{error}");
        assert!(error.to_string().contains("lab, edge"), "{error}");
        let mut dangling = config();
        dangling.current_context = Some("gone".into());
        let error = resolve(None, None, &dangling, DEFAULT).unwrap_err();
        assert!(error.to_string().contains("\"gone\""), "{error}");
    }

    #[test]
    fn set_use_and_delete_contexts() {
        let mut config = config();
        config.set_context("lab", Some("http://new:1")).unwrap();
        let lab = config.context("lab").unwrap();
        assert_eq!(lab.server, "http://new:1");
        assert_eq!(
            lab.token.as_deref(),
            Some("lab-secret"),
            "the token is kept"
        );
        assert!(config.set_context("fresh", None).is_err());
        config.set_context("fresh", Some("http://fresh:1")).unwrap();
        config.use_context("fresh").unwrap();
        assert_eq!(config.current_context.as_deref(), Some("fresh"));
        assert!(config.use_context("nope").is_err());
        config.delete_context("fresh").unwrap();
        assert_eq!(config.current_context, None);
        assert!(config.delete_context("fresh").is_err());
        config
            .set_credentials("new", "http://n:1", "t".into(), Some("r".into()))
            .unwrap();
        let new = config.context("new").unwrap();
        assert_eq!(
            (new.token.as_deref(), new.refresh_token.as_deref()),
            (Some("t"), Some("r"))
        );
        config.set_token("new", "t2".into());
        assert_eq!(config.context("new").unwrap().token.as_deref(), Some("t2"));
    }

    #[test]
    fn the_path_follows_canopy_config_then_xdg_then_home() {
        fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        }
        let all = [
            ("CANOPY_CONFIG", "/c.yaml"),
            ("XDG_CONFIG_HOME", "/xdg"),
            ("HOME", "/home/u"),
        ];
        assert_eq!(config_path(env(&all)), Some("/c.yaml".into()));
        assert_eq!(
            config_path(env(&all[1..])),
            Some("/xdg/canopy/config.yaml".into())
        );
        assert_eq!(
            config_path(env(&all[2..])),
            Some("/home/u/.config/canopy/config.yaml".into())
        );
        assert_eq!(config_path(env(&[("XDG_CONFIG_HOME", "")])), None);
    }

    #[test]
    fn tokens_never_show_in_debug_output() {
        let text = format!(
            "{:?} {:?}",
            config(),
            resolve(None, None, &config(), DEFAULT)
        );
        assert!(!text.contains("lab-secret"), "{text}");
        assert!(!text.contains("lab-refresh"), "{text}");
    }

    #[test]
    fn saved_files_are_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.yaml");
        save(&path, &config()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load(&path).unwrap(), config());
        assert_eq!(
            load(&dir.path().join("missing.yaml")).unwrap(),
            ClientConfig::default()
        );
    }
}
