//! `canopy up`'s node joins its own cluster as any node would: with a node token the
//! cluster makes for it, over the cluster's TLS node listener. A node certificate of an
//! earlier cluster (its data removed, so it has another CA) is replaced by a new join.

use anyhow::Context;
use canopy_cluster::Cluster;
use canopy_tier::child::Credentials;
use canopy_tier::trust::{self, Identity, Role};
use std::path::Path;
use std::time::Duration;

/// How long the token `canopy up` makes for its own node lives: it is spent at once.
const LOCAL_TOKEN_TTL: Duration = Duration::from_secs(600);

pub async fn local_node_credentials(
    cluster: &Cluster,
    cluster_url: &str,
    dir: &Path,
    name: &str,
) -> anyhow::Result<Credentials> {
    let enrolment = cluster
        .enrolment()
        .context("the local cluster has no CA for its node")?;
    crate::files::create_private_dir(dir)?;
    let ca_hash = enrolment.ca_hash()?;
    let saved = Identity::load(dir).context("reading the local node's certificate")?;
    if let Some(identity) = saved
        && identity.name == name
        && identity.ca_hash()? == ca_hash
    {
        return Ok(Credentials::Certificate {
            identity,
            dir: dir.to_path_buf(),
        });
    }
    enrolment
        .revoke(name)
        .await
        .context("revoking the local node's old certificate")?;
    let token = enrolment
        .create_token(
            Some(name.to_string()),
            Some(LOCAL_TOKEN_TTL),
            time::OffsetDateTime::now_utc(),
        )
        .await
        .context("creating the local node's join token")?;
    let identity = trust::join(cluster_url, &token.token, &ca_hash, name, Role::Node, dir)
        .await
        .with_context(|| format!("joining the local cluster as {name:?}"))?;
    identity
        .save(dir)
        .context("saving the local node's certificate")?;
    Ok(Credentials::Certificate {
        identity,
        dir: dir.to_path_buf(),
    })
}
