//! `canopy create user|namespace|secret NAME`: the objects an administrator makes by name.

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(subcommand)]
    pub what: CreateWhat,
}

#[derive(Debug, Subcommand)]
pub enum CreateWhat {
    /// A user (it may log in, and do nothing until granted a role). Without
    /// --password-stdin, a random password is made and printed once.
    User(crate::users::CreateUser),
    /// A namespace (a tenant); `--trusted` lets its applications run as root, privileged,
    /// with extra capabilities or with the `process` runtime. Run again to change the mark.
    Namespace(crate::namespaces::CreateNamespace),
    /// A secret of a namespace, or all its keys anew if it exists (values are write-only).
    Secret(crate::secret_verbs::CreateSecret),
}

pub async fn run(args: CreateArgs) -> anyhow::Result<()> {
    match args.what {
        CreateWhat::User(user) => crate::users::create(user).await,
        CreateWhat::Namespace(namespace) => crate::namespaces::create(namespace).await,
        CreateWhat::Secret(secret) => crate::secret_verbs::create(secret).await,
    }
}
