//! Node tokens made at the root for a cluster's nodes. The root cannot dial a cluster (it may
//! sit behind NAT), so it makes the token, keeps nothing of it, and sends the cluster what
//! verifies it (the secret's hash, the name, the expiry) down the cluster's link; the cluster
//! keeps that as if it had made the token itself. The CA hash handed out with it is the
//! cluster's intermediate CA's, which the root certified at the cluster's join.

use super::enrolment::{CreatedToken, DEFAULT_TOKEN_TTL, Enrolment, MemberRecord};
use super::tokens::{self, Fresh, Role, TokenRecord};
use super::{Refusal, TrustError};
use crate::pb;
use canopy_store::{Precondition, StoreExt};
use std::time::Duration;
use time::OffsetDateTime;

impl Enrolment {
    /// At the root: a node token for `cluster`'s nodes (admitting `name` only when given),
    /// and the message that makes `cluster` accept it (`request` is for its answer).
    pub async fn node_token(
        &self,
        cluster: &str,
        name: Option<String>,
        ttl: Option<Duration>,
        extra_uses: u32,
        now: OffsetDateTime,
    ) -> Result<(CreatedToken, pb::NodeToken), TrustError> {
        if self.role != Role::Cluster {
            return Err(TrustError::Certificate(
                "only the root makes node tokens for its clusters".into(),
            ));
        }
        if let Some(name) = &name {
            tokens::check_name(name)?;
        }
        if name.is_some() && extra_uses > 0 {
            return Err(Refusal::NamedReuse.into());
        }
        let member = self
            .store
            .get_json::<MemberRecord>(&self.member_key(cluster))
            .await?
            .ok_or_else(|| TrustError::NotMember(cluster.to_string()))?
            .0;
        let ca_hash = member.ca_hash.ok_or_else(|| {
            TrustError::Certificate(format!(
                "cluster {cluster:?} joined without a CA of its own (an older canopy): \
                 delete it and join it again"
            ))
        })?;
        let fresh = Fresh::generate();
        let expires_unix = (now + ttl.unwrap_or(DEFAULT_TOKEN_TTL)).unix_timestamp();
        let message = pb::NodeToken {
            request: 0,
            id: fresh.id.clone(),
            secret_sha256: tokens::secret_hash(&fresh.secret),
            name: name.clone().unwrap_or_default(),
            expires_unix,
            extra_uses,
        };
        let created = CreatedToken {
            token: fresh.token(),
            ca_hash,
            role: Role::Node,
            name,
            expires_unix,
        };
        Ok((created, message))
    }

    /// At a cluster: keeps a node token the root made (its id must be new).
    pub async fn keep_token(&self, token: &pb::NodeToken) -> Result<(), TrustError> {
        if self.role != Role::Node {
            return Err(TrustError::Certificate(
                "node tokens are kept by clusters only".into(),
            ));
        }
        tokens::parse(&format!("{}.{}", token.id, "0".repeat(16)))?;
        let name = Some(token.name.clone()).filter(|n| !n.is_empty());
        if let Some(name) = &name {
            tokens::check_name(name)?;
        }
        let record = TokenRecord {
            role: Role::Node,
            name,
            secret_sha256: token.secret_sha256.clone(),
            expires_unix: token.expires_unix,
            used: false,
            extra_uses: token.extra_uses,
        };
        self.store
            .put_json(&self.token_key(&token.id), &record, Precondition::Absent)
            .await?;
        tracing::info!(token = %token.id, name = ?record.name, "kept a node token from the root");
        Ok(())
    }
}
