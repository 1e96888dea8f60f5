//! The root's accounts in its store: the signing key, users and token records. Opening them
//! the first time creates the key and the user `admin` with a random password, which the
//! caller shows once.

use super::decide::{Action, may};
use super::error::AuthError;
use super::jwt::Keys;
use super::passwords;
use super::roles::{Grant, Role};
use super::sessions::LoginTokens;
use super::users::UserRecord;
use crate::keys;
use canopy_store::{Precondition, Store, StoreError, StoreExt};
use std::sync::Arc;

/// The user the first start creates.
pub const FIRST_ADMIN: &str = "admin";

pub struct Accounts {
    pub(super) store: Arc<dyn Store>,
    pub(super) keys: Keys,
}

/// The password of the admin the first start created: shown once, never stored in clear.
pub struct InitialPassword(pub String);

impl std::fmt::Debug for InitialPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(canopy_model::REDACTED)
    }
}

impl Accounts {
    /// The accounts of `store`; on the first start (no user at all) also the password of the
    /// `admin` it created.
    pub async fn open(
        store: Arc<dyn Store>,
    ) -> Result<(Accounts, Option<InitialPassword>), AuthError> {
        let keys = Keys::from_pkcs8(&signing_key(&store).await?)?;
        let accounts = Accounts { store, keys };
        let (users, _) = accounts.store.list(keys::USERS).await?;
        if !users.is_empty() {
            return Ok((accounts, None));
        }
        let password = passwords::random();
        let record = UserRecord::new(FIRST_ADMIN, passwords::hash(&password)?, now())
            .with_grant(Grant::everywhere(Role::Admin));
        match accounts
            .store
            .put_json(&keys::user(FIRST_ADMIN), &record, Precondition::Absent)
            .await
        {
            Ok(_) => Ok((accounts, Some(InitialPassword(password)))),
            // Another opener of the same store made it first: its password stands.
            Err(StoreError::Conflict { .. }) => Ok((accounts, None)),
            Err(e) => Err(e.into()),
        }
    }
}

impl Accounts {
    /// A login session for the local administrator without a password: for a process that
    /// runs the root itself (`canopy up` logs its own CLI in). `admin` when it may still
    /// manage users, else the first user who may.
    pub async fn local_admin_session(&self, now: i64) -> Result<LoginTokens, AuthError> {
        let (users, _) = self.store.list_json::<UserRecord>(keys::USERS).await?;
        let admin = users
            .iter()
            .map(|(_, user, _)| user)
            .filter(|user| may(&user.grants, Action::ManageUsers, None))
            .min_by_key(|user| user.name != FIRST_ADMIN)
            .ok_or_else(|| AuthError::Unauthenticated("no user may administer this root".into()))?;
        self.open_session(admin, now).await
    }
}

/// The stored signing key, made on first use.
async fn signing_key(store: &Arc<dyn Store>) -> Result<Vec<u8>, AuthError> {
    if let Some(entry) = store.get(keys::SIGNING_KEY).await? {
        return Ok(entry.value);
    }
    let fresh = Keys::generate()?;
    match store
        .put(keys::SIGNING_KEY, fresh.clone(), Precondition::Absent)
        .await
    {
        Ok(_) => Ok(fresh),
        Err(StoreError::Conflict { .. }) => store
            .get(keys::SIGNING_KEY)
            .await?
            .map(|entry| entry.value)
            .ok_or_else(|| AuthError::Conflict("the signing key vanished".into())),
        Err(e) => Err(e.into()),
    }
}

/// Unix seconds now: the one clock of the accounts (the pure parts take the time given).
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A random id (128 bits, hex) for users and token records.
pub fn random_id() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
