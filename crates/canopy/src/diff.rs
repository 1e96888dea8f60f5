//! `canopy diff -f FILE`: what `apply` would change, as a unified diff of each application's
//! YAML, live against proposed. The root's dry run decides whether anything changes (it makes
//! every check apply makes); the diff shows what.

use crate::client::{Client, encode};
use crate::commands::read_descriptor;
use anyhow::Context;
use canopy_model::Application;
use canopy_root::records::{ApplicationView, ApplyAction, ApplyResult};
use similar::TextDiff;
use std::path::PathBuf;

use crate::exit::ExitStatus;

/// As `kubectl diff`: 0 nothing would change, 1 something would, 2 the diff itself failed.
pub async fn run(client: &Client, files: &[PathBuf]) -> anyhow::Result<()> {
    match diff_files(client, files).await {
        Ok(false) => Ok(()),
        Ok(true) => Err(ExitStatus(1).into()),
        Err(e) => {
            eprintln!("error: {e:#}");
            Err(ExitStatus(2).into())
        }
    }
}

async fn diff_files(client: &Client, files: &[PathBuf]) -> anyhow::Result<bool> {
    let mut changed = false;
    for file in files {
        let text = read_descriptor(file)?;
        let verdict: ApplyResult = client
            .post_text("/api/v1/apply?dryRun=true", text.clone())
            .await
            .with_context(|| format!("checking {}", file.display()))?;
        let parsed = canopy_model::parse_descriptor(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        for (proposed, applied) in parsed.applications.into_iter().zip(&verdict.applications) {
            if applied.action == ApplyAction::Unchanged {
                continue;
            }
            changed = true;
            let (namespace, name) = (&applied.namespace, &applied.name);
            let live = client
                .get_if_found::<ApplicationView>(&format!(
                    "/api/v1/applications/{}/{}",
                    encode(namespace),
                    encode(name)
                ))
                .await?
                .map(|view| view.application);
            let rendered = render(
                &format!("application/{namespace}/{name}"),
                live.as_ref().map(to_yaml).transpose()?.as_deref(),
                &to_yaml(&proposed)?,
            );
            if rendered.is_empty() {
                println!("application/{namespace}/{name}: changes, but not in what its YAML shows");
            } else {
                print!("{rendered}");
            }
        }
    }
    Ok(changed)
}

fn to_yaml(application: &Application) -> anyhow::Result<String> {
    Ok(yaml_serde::to_string(application)?)
}

/// A unified diff from `live` (`None`: it does not exist yet) to `proposed`; empty when they
/// are the same text.
pub fn render(name: &str, live: Option<&str>, proposed: &str) -> String {
    let old = live.unwrap_or("");
    if old == proposed {
        return String::new();
    }
    let from = if live.is_some() {
        format!("live/{name}")
    } else {
        "/dev/null".to_string()
    };
    TextDiff::from_lines(old, proposed)
        .unified_diff()
        .context_radius(3)
        .header(&from, &format!("applied/{name}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_a_hunk_with_context() {
        let live = "a: 1\nb: 2\nc: 3\n";
        let proposed = "a: 1\nb: 5\nc: 3\n";
        assert_eq!(
            render("application/default/x", Some(live), proposed),
            "--- live/application/default/x\n+++ applied/application/default/x\n\
             @@ -1,3 +1,3 @@\n a: 1\n-b: 2\n+b: 5\n c: 3\n"
        );
    }

    #[test]
    fn a_new_application_is_all_additions() {
        let diff = render("application/default/x", None, "a: 1\nb: 2\n");
        assert!(diff.starts_with("--- /dev/null\n+++ applied/application/default/x\n"));
        assert!(diff.contains("@@ -0,0 +1,2 @@\n+a: 1\n+b: 2\n"), "{diff}");
    }

    #[test]
    fn the_same_text_is_no_diff() {
        assert_eq!(render("x", Some("a: 1\n"), "a: 1\n"), "");
    }
}
