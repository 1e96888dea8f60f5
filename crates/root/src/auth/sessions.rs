//! Tokens: a login opens a session (an access token and a refresh token naming one record);
//! an API token carries one grant. Every token names its record by id (`jti`): deleting the
//! record revokes it, and deleting a user deletes its records.

use super::Principal;
use super::accounts::{Accounts, random_id};
use super::decide::may_delegate;
use super::error::AuthError;
use super::jwt::{Claims, TokenError, TokenKind};
use super::passwords;
use super::roles::Grant;
use super::users::{UserRecord, rfc3339};
use crate::keys;
use canopy_store::{Precondition, Store as _, StoreExt};
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;
use utoipa::ToSchema;

/// How long an access token is good for.
pub const ACCESS_LIFETIME: i64 = 3600;
/// How long a login lasts (its refresh token).
pub const SESSION_LIFETIME: i64 = 30 * 24 * 3600;
/// The default and the longest lifetime of an API token.
pub const API_TOKEN_DEFAULT: i64 = 30 * 24 * 3600;
pub const API_TOKEN_MAX: i64 = 366 * 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    Session,
    Api,
}

/// What the store keeps of a token: never the token itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    pub user: String,
    pub uid: String,
    pub kind: RecordKind,
    /// What an API token allows (always within its creator's grants).
    pub grant: Option<Grant>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A token record as the API lists it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    pub id: String,
    pub user: String,
    pub kind: RecordKind,
    pub grant: Option<Grant>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub expires_at: String,
}

impl TokenRecord {
    pub fn info(&self) -> TokenInfo {
        TokenInfo {
            id: self.id.clone(),
            user: self.user.clone(),
            kind: self.kind,
            grant: self.grant.clone(),
            created_at: rfc3339(self.created_at),
            expires_at: rfc3339(self.expires_at),
        }
    }
}

/// What a login or a refresh gives.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct LoginTokens {
    /// Sent as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Traded at `/api/v1/login/refresh` for a new access token.
    pub refresh_token: String,
    /// `Bearer`.
    pub token_type: String,
    /// When the access token expires (RFC 3339).
    pub expires_at: String,
    /// The session's id (`DELETE /api/v1/tokens/{id}` ends it).
    pub session: String,
}

impl std::fmt::Debug for LoginTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginTokens")
            .field("session", &self.session)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// An API token, shown once.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ApiToken {
    pub token: String,
    #[serde(flatten)]
    pub info: TokenInfo,
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiToken")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

const WRONG_LOGIN: &str = "wrong user name or password";

impl Accounts {
    /// Checks the password and opens a session.
    pub async fn login(
        &self,
        user: &str,
        password: &str,
        now: i64,
    ) -> Result<LoginTokens, AuthError> {
        let record = self.user(user).await?;
        let stored = record.as_ref().map(|r| r.password_hash.clone());
        let password = password.to_string();
        // An unknown user costs the same hashing as a wrong password: no timing tells them apart.
        let matches = tokio::task::spawn_blocking(move || {
            let phc = stored.unwrap_or_else(|| dummy_hash().to_string());
            passwords::verify(&password, &phc)
        })
        .await
        .unwrap_or(false);
        match record {
            Some(record) if matches => self.open_session(&record, now).await,
            _ => Err(AuthError::Unauthenticated(WRONG_LOGIN.into())),
        }
    }

    /// A session for `record` without its password: for `canopy up`, which logs its own CLI in.
    pub async fn open_session(
        &self,
        record: &UserRecord,
        now: i64,
    ) -> Result<LoginTokens, AuthError> {
        let session = TokenRecord {
            id: random_id(),
            user: record.name.clone(),
            uid: record.uid.clone(),
            kind: RecordKind::Session,
            grant: None,
            created_at: now,
            expires_at: now.saturating_add(SESSION_LIFETIME),
        };
        self.store
            .put_json(&keys::token(&session.id), &session, Precondition::Absent)
            .await?;
        let refresh = Claims::new(
            &record.name,
            &record.uid,
            &session.id,
            TokenKind::Refresh,
            now,
            SESSION_LIFETIME,
        );
        let refresh_token = self.keys.sign(&refresh)?;
        self.access(&session, refresh_token, now)
    }

    /// A new access token for the session `refresh_token` names, while it lasts.
    pub async fn refresh(&self, refresh_token: &str, now: i64) -> Result<LoginTokens, AuthError> {
        let claims = self
            .keys
            .verify(refresh_token, now)
            .map_err(unauthenticated)?;
        if claims.typ != TokenKind::Refresh {
            return Err(AuthError::Unauthenticated("not a refresh token".into()));
        }
        let (session, _) = self.live_record(&claims, now).await?;
        self.access(&session, refresh_token.to_string(), now)
    }

    fn access(
        &self,
        session: &TokenRecord,
        refresh_token: String,
        now: i64,
    ) -> Result<LoginTokens, AuthError> {
        let lifetime = ACCESS_LIFETIME.min(session.expires_at - now);
        let claims = Claims::new(
            &session.user,
            &session.uid,
            &session.id,
            TokenKind::Access,
            now,
            lifetime,
        );
        Ok(LoginTokens {
            access_token: self.keys.sign(&claims)?,
            refresh_token,
            token_type: "Bearer".into(),
            expires_at: rfc3339(claims.exp),
            session: session.id.clone(),
        })
    }

    /// An API token for `grant`, which `creator` must be able to delegate.
    pub async fn create_api_token(
        &self,
        creator: &Principal,
        grant: Grant,
        lifetime: i64,
        now: i64,
    ) -> Result<ApiToken, AuthError> {
        if !may_delegate(&creator.grants, &grant) {
            return Err(AuthError::Forbidden(format!(
                "{} may not hand on {grant}",
                creator.name
            )));
        }
        let user = self
            .user(&creator.name)
            .await?
            .ok_or_else(|| AuthError::Unauthenticated("the user no longer exists".into()))?;
        let record = TokenRecord {
            id: random_id(),
            user: user.name.clone(),
            uid: user.uid.clone(),
            kind: RecordKind::Api,
            grant: Some(grant),
            created_at: now,
            expires_at: now.saturating_add(lifetime),
        };
        self.store
            .put_json(&keys::token(&record.id), &record, Precondition::Absent)
            .await?;
        let claims = Claims::new(
            &user.name,
            &user.uid,
            &record.id,
            TokenKind::Api,
            now,
            lifetime,
        );
        Ok(ApiToken {
            token: self.keys.sign(&claims)?,
            info: record.info(),
        })
    }

    /// Every live token record (expired ones are removed on the way).
    pub async fn list_tokens(&self, now: i64) -> Result<Vec<TokenRecord>, AuthError> {
        let (records, _) = self.store.list_json::<TokenRecord>(keys::TOKENS).await?;
        let mut live = Vec::new();
        for (key, record, revision) in records {
            if record.expires_at <= now {
                // Best effort: a record that changed meanwhile is looked at next time.
                let _ = self
                    .store
                    .delete(&key, Precondition::ModRevision(revision))
                    .await;
            } else {
                live.push(record);
            }
        }
        Ok(live)
    }

    pub(super) async fn tokens_of(&self, user: &str) -> Result<Vec<TokenRecord>, AuthError> {
        let (records, _) = self.store.list_json::<TokenRecord>(keys::TOKENS).await?;
        Ok(records
            .into_iter()
            .map(|(_, r, _)| r)
            .filter(|r| r.user == user)
            .collect())
    }

    pub async fn token_record(&self, id: &str) -> Result<Option<TokenRecord>, AuthError> {
        Ok(self
            .store
            .get_json::<TokenRecord>(&keys::token(id))
            .await?
            .map(|(r, _)| r))
    }

    /// Revokes the token (or session) `id`: every token naming it gets 401 from now on.
    pub async fn revoke_token(&self, id: &str) -> Result<TokenRecord, AuthError> {
        let record = self
            .token_record(id)
            .await?
            .ok_or_else(|| AuthError::NotFound {
                kind: "token",
                name: id.to_string(),
            })?;
        self.store
            .delete(&keys::token(id), Precondition::None)
            .await?;
        Ok(record)
    }

    /// Who presents `token` at `now`, with the grants it carries.
    pub async fn authenticate(&self, token: &str, now: i64) -> Result<Principal, AuthError> {
        let claims = self.keys.verify(token, now).map_err(unauthenticated)?;
        if claims.typ == TokenKind::Refresh {
            return Err(AuthError::Unauthenticated(
                "a refresh token is good only for /api/v1/login/refresh".into(),
            ));
        }
        let (record, user) = self.live_record(&claims, now).await?;
        let grants = match (claims.typ, &record.grant) {
            // An API token allows its grant while its creator still could hand it on.
            (TokenKind::Api, Some(grant)) if may_delegate(&user.grants, grant) => {
                vec![grant.clone()]
            }
            (TokenKind::Api, _) => Vec::new(),
            _ => user.grants,
        };
        Ok(Principal {
            name: user.name,
            grants,
            token: record.id,
        })
    }

    /// The record the claims name and its user, both as they are now.
    async fn live_record(
        &self,
        claims: &Claims,
        now: i64,
    ) -> Result<(TokenRecord, UserRecord), AuthError> {
        let revoked = || AuthError::Unauthenticated("the token was revoked".into());
        let record = self.token_record(&claims.jti).await?.ok_or_else(revoked)?;
        if record.expires_at <= now {
            return Err(AuthError::Unauthenticated("the token has expired".into()));
        }
        if record.user != claims.sub || record.uid != claims.uid {
            return Err(revoked());
        }
        let user = self
            .user(&claims.sub)
            .await?
            .filter(|user| user.uid == claims.uid)
            .ok_or_else(|| {
                AuthError::Unauthenticated("the token's user no longer exists".into())
            })?;
        Ok((record, user))
    }
}

fn unauthenticated(error: TokenError) -> AuthError {
    AuthError::Unauthenticated(error.to_string())
}

/// A hash no password matches, verified against for unknown users.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| passwords::hash(&passwords::random()).unwrap_or_default())
}
