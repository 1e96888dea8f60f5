//! Users and their grants in the store.

use super::accounts::{Accounts, random_id};
use super::decide::{Action, may};
use super::error::AuthError;
use super::passwords;
use super::roles::{Grant, Role};
use crate::keys;
use canopy_store::{Op, Precondition, StoreExt};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A user as stored: the password only as its argon2 hash.
#[derive(Clone, Serialize, Deserialize)]
pub struct UserRecord {
    pub name: String,
    /// Changes when the user is created again: old tokens name the old id.
    pub uid: String,
    pub password_hash: String,
    pub grants: Vec<Grant>,
    pub created_at: i64,
}

/// Debug never shows the hash.
impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("name", &self.name)
            .field("grants", &self.grants)
            .finish_non_exhaustive()
    }
}

impl UserRecord {
    pub fn new(name: &str, password_hash: String, now: i64) -> UserRecord {
        UserRecord {
            name: name.to_string(),
            uid: random_id(),
            password_hash,
            grants: Vec::new(),
            created_at: now,
        }
    }

    pub fn with_grant(mut self, grant: Grant) -> UserRecord {
        if !self.grants.contains(&grant) {
            self.grants.push(grant);
            self.grants.sort();
        }
        self
    }

    pub fn view(&self) -> User {
        User {
            name: self.name.clone(),
            grants: self.grants.clone(),
            created_at: rfc3339(self.created_at),
        }
    }
}

/// A user as the API shows it (never its password or hash).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub name: String,
    pub grants: Vec<Grant>,
    /// RFC 3339.
    pub created_at: String,
}

pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// A user name: a DNS label, as namespaces and application names.
pub fn check_name(name: &str) -> Result<(), AuthError> {
    canopy_model::validate_dns_label(name).map_err(|reason| AuthError::invalid("name", reason))
}

/// A namespace in a grant: the rule of descriptor namespaces.
pub fn check_namespace(namespace: &str) -> Result<(), AuthError> {
    canopy_model::validate_dns_label(namespace)
        .map_err(|reason| AuthError::invalid("namespace", reason))
}

/// How many times a grant change is retried when another writer changed the user.
const CAS_ATTEMPTS: usize = 8;

impl Accounts {
    pub async fn create_user(
        &self,
        name: &str,
        password: &str,
        now: i64,
    ) -> Result<User, AuthError> {
        check_name(name)?;
        passwords::check(password).map_err(|m| AuthError::invalid("password", m))?;
        let hash = hash_off_thread(password.to_string()).await?;
        let record = UserRecord::new(name, hash, now);
        match self
            .store
            .put_json(&keys::user(name), &record, Precondition::Absent)
            .await
        {
            Ok(_) => Ok(record.view()),
            Err(canopy_store::StoreError::Conflict { .. }) => {
                Err(AuthError::Conflict(format!("user {name:?} exists")))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn user(&self, name: &str) -> Result<Option<UserRecord>, AuthError> {
        Ok(self
            .store
            .get_json::<UserRecord>(&keys::user(name))
            .await?
            .map(|(user, _)| user))
    }

    pub async fn get_user(&self, name: &str) -> Result<User, AuthError> {
        self.user(name)
            .await?
            .map(|u| u.view())
            .ok_or_else(|| not_found(name))
    }

    pub async fn list_users(&self) -> Result<Vec<User>, AuthError> {
        let (users, _) = self.store.list_json::<UserRecord>(keys::USERS).await?;
        Ok(users.into_iter().map(|(_, user, _)| user.view()).collect())
    }

    /// Deletes the user and every token record of it, in one transaction; the last user who
    /// may manage users stays.
    pub async fn delete_user(&self, name: &str) -> Result<User, AuthError> {
        let (record, revision) = self
            .store
            .get_json::<UserRecord>(&keys::user(name))
            .await?
            .ok_or_else(|| not_found(name))?;
        self.keep_an_admin(name, &[]).await?;
        let mut ops = vec![Op::Delete {
            key: keys::user(name),
            precondition: Precondition::ModRevision(revision),
        }];
        for token in self.tokens_of(name).await? {
            ops.push(Op::Delete {
                key: keys::token(&token.id),
                precondition: Precondition::None,
            });
        }
        self.store.txn(ops).await?;
        Ok(record.view())
    }

    /// Adds `grant` (nothing changes when the user holds it).
    pub async fn grant(&self, name: &str, grant: Grant) -> Result<User, AuthError> {
        if let Some(namespace) = &grant.namespace {
            check_namespace(namespace)?;
        }
        self.change_grants(name, |grants| {
            if !grants.contains(&grant) {
                grants.push(grant.clone());
                grants.sort();
            }
            Ok(())
        })
        .await
    }

    /// Removes `grant`; 404 when the user does not hold it.
    pub async fn revoke(&self, name: &str, grant: Grant) -> Result<User, AuthError> {
        let remaining = self
            .user(name)
            .await?
            .ok_or_else(|| not_found(name))?
            .grants
            .into_iter()
            .filter(|g| *g != grant)
            .collect::<Vec<_>>();
        self.keep_an_admin(name, &remaining).await?;
        self.change_grants(name, |grants| {
            let before = grants.len();
            grants.retain(|g| *g != grant);
            if grants.len() == before {
                return Err(AuthError::NotFound {
                    kind: "grant",
                    name: format!("{grant} of user {name}"),
                });
            }
            Ok(())
        })
        .await
    }

    async fn change_grants(
        &self,
        name: &str,
        change: impl Fn(&mut Vec<Grant>) -> Result<(), AuthError>,
    ) -> Result<User, AuthError> {
        for _ in 0..CAS_ATTEMPTS {
            let (mut record, revision) = self
                .store
                .get_json::<UserRecord>(&keys::user(name))
                .await?
                .ok_or_else(|| not_found(name))?;
            change(&mut record.grants)?;
            match self
                .store
                .put_json(
                    &keys::user(name),
                    &record,
                    Precondition::ModRevision(revision),
                )
                .await
            {
                Ok(_) => return Ok(record.view()),
                Err(canopy_store::StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AuthError::Conflict(format!(
            "user {name:?} changed concurrently; try again"
        )))
    }

    /// Refuses a change that would leave `name` with `remaining` grants and nobody able to
    /// manage users (an installation nobody can administer).
    async fn keep_an_admin(&self, name: &str, remaining: &[Grant]) -> Result<(), AuthError> {
        let (users, _) = self.store.list_json::<UserRecord>(keys::USERS).await?;
        let others = users
            .iter()
            .filter(|(_, user, _)| user.name != name)
            .any(|(_, user, _)| may(&user.grants, Action::ManageUsers, None));
        if others || may(remaining, Action::ManageUsers, None) {
            Ok(())
        } else {
            Err(AuthError::Conflict(format!(
                "{name:?} is the last user with {}: grant it to another user first",
                Grant::everywhere(Role::Admin)
            )))
        }
    }
}

fn not_found(name: &str) -> AuthError {
    AuthError::NotFound {
        kind: "user",
        name: name.to_string(),
    }
}

/// Argon2 takes tens of milliseconds of CPU by design: off the async workers.
pub(super) async fn hash_off_thread(password: String) -> Result<String, AuthError> {
    tokio::task::spawn_blocking(move || passwords::hash(&password))
        .await
        .map_err(|e| AuthError::Conflict(format!("hashing was interrupted: {e}")))?
        .map_err(AuthError::from)
}
