//! A parent's members, kept in its store: the CA, the join tokens, who holds a certificate,
//! and what was revoked. A token is spent and the member recorded in one transaction that
//! checks the token's revision, so two joins racing on one token cannot both succeed.

use super::authority::Authority;
use super::join_group::JoinRequest;
use super::tokens::{self, Fresh, Role, TokenRecord};
use super::verify::Members;
use super::{Peer, TrustError};
use crate::pb;
use canopy_store::{Op, Precondition, Store, StoreExt};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use time::OffsetDateTime;

/// How long a child's certificate is valid; it renews at two thirds of that.
pub const CERT_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// A join token's lifetime unless asked otherwise (kubeadm's default too).
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Serialize, Deserialize)]
struct AuthorityRecord {
    cert_pem: String,
    key_pem: String,
}

/// Who holds a certificate for a name: its serials (several while one is being rotated).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct MemberRecord {
    pub(super) serials: Vec<String>,
    pub(super) not_after_unix: i64,
    /// A cluster's: the hash of the intermediate CA issued at its join, which its nodes pin.
    #[serde(default)]
    pub(super) ca_hash: Option<String>,
}

/// A token just created: shown once, then only its hash is kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedToken {
    pub token: String,
    pub ca_hash: String,
    pub role: Role,
    pub name: Option<String>,
    pub expires_unix: i64,
}

pub struct Enrolment {
    pub(super) store: Arc<dyn Store>,
    prefix: String,
    pub(super) role: Role,
    pub(super) authority: Authority,
    revoked: Arc<RwLock<HashSet<String>>>,
    pub(super) lifetime: Duration,
    /// Held by whoever spends the queued joins, from reading their tokens to the commit.
    pub(super) spending: tokio::sync::Mutex<()>,
    /// Joins waiting for the next turn.
    pub(super) queued: std::sync::Mutex<Vec<JoinRequest>>,
}

impl Enrolment {
    /// Opens the members under `prefix` of `store` (creating the CA, named `ca_name`, on
    /// first use); `role` is what this parent admits.
    pub async fn open(
        store: Arc<dyn Store>,
        prefix: &str,
        ca_name: &str,
        role: Role,
    ) -> Result<Arc<Enrolment>, TrustError> {
        let ca_key = format!("{prefix}ca");
        let authority = match store.get_json::<AuthorityRecord>(&ca_key).await? {
            Some((record, _)) => Authority::from_pem(&record.cert_pem, &record.key_pem)?,
            None => {
                let authority = Authority::generate(ca_name, OffsetDateTime::now_utc())?;
                let record = AuthorityRecord {
                    cert_pem: authority.cert_pem().to_string(),
                    key_pem: authority.key_pem().to_string(),
                };
                store
                    .put_json(&ca_key, &record, Precondition::Absent)
                    .await?;
                authority
            }
        };
        Enrolment::open_under(store, prefix, authority, role).await
    }

    /// Opens the members under `prefix` of `store`, certified by `authority` (a cluster's
    /// intermediate CA, whose key it keeps in its data directory).
    pub async fn open_under(
        store: Arc<dyn Store>,
        prefix: &str,
        authority: Authority,
        role: Role,
    ) -> Result<Arc<Enrolment>, TrustError> {
        let (revoked, _) = store.list(&format!("{prefix}revoked/")).await?;
        let revoked = revoked
            .iter()
            .filter_map(|e| e.key.rsplit('/').next().map(str::to_string))
            .collect();
        Ok(Arc::new(Enrolment {
            store,
            prefix: prefix.to_string(),
            role,
            authority,
            revoked: Arc::new(RwLock::new(revoked)),
            lifetime: CERT_LIFETIME,
            spending: tokio::sync::Mutex::new(()),
            queued: Default::default(),
        }))
    }

    pub fn ca_hash(&self) -> Result<String, TrustError> {
        self.authority.ca_hash()
    }

    /// The tier listener's TLS: its own certificate, and client certificates verified
    /// against this CA and the revocations (optional, so a joining child can connect).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TrustError> {
        let (chain, key) = self.authority.server_identity(OffsetDateTime::now_utc())?;
        let verifier = Members::new(self.authority.cert_der().clone(), self.revoked.clone())?;
        let mut config = rustls::ServerConfig::builder_with_provider(super::provider())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(Arc::new(verifier))
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    pub async fn create_token(
        &self,
        name: Option<String>,
        ttl: Option<Duration>,
        now: OffsetDateTime,
    ) -> Result<CreatedToken, TrustError> {
        if let Some(name) = &name {
            tokens::check_name(name)?;
        }
        let fresh = Fresh::generate();
        let expires_unix = (now + ttl.unwrap_or(DEFAULT_TOKEN_TTL)).unix_timestamp();
        let record = TokenRecord {
            role: self.role,
            name: name.clone(),
            secret_sha256: tokens::secret_hash(&fresh.secret),
            expires_unix,
            used: false,
            extra_uses: 0,
        };
        self.store
            .put_json(&self.token_key(&fresh.id), &record, Precondition::Absent)
            .await?;
        Ok(CreatedToken {
            token: fresh.token(),
            ca_hash: self.ca_hash()?,
            role: self.role,
            name,
            expires_unix,
        })
    }

    /// Spends `token` and certifies the key of `csr_der` as `name` (and, for a cluster, the
    /// key of `ca_csr_der` as its intermediate CA).
    pub async fn join(
        &self,
        token: &str,
        name: &str,
        csr_der: &[u8],
        ca_csr_der: &[u8],
        now: OffsetDateTime,
    ) -> Result<pb::Certified, TrustError> {
        tokens::parse(token)?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.queue(JoinRequest {
            token: token.to_string(),
            name: name.to_string(),
            csr_der: csr_der.to_vec(),
            ca_csr_der: ca_csr_der.to_vec(),
            now,
            reply,
        });
        // Joins racing on a token of several uses (a fleet booting) would change its record
        // under each other: they take turns, and whoever has the turn spends every join
        // queued by then in one commit (one fsync for the lot, not one each).
        {
            let _turn = self.spending.lock().await;
            let group = self.take_queued();
            if !group.is_empty() {
                self.join_group(group).await;
            }
        }
        answer
            .await
            .map_err(|_| TrustError::Busy("the join was dropped; try again".into()))?
    }

    /// A new certificate for the member `peer` proved to be, over a new key.
    pub async fn renew(
        &self,
        peer: &Peer,
        csr_der: &[u8],
        now: OffsetDateTime,
    ) -> Result<pb::Certified, TrustError> {
        let member_key = self.member_key(&peer.name);
        let Some((mut member, revision)) = self.store.get_json::<MemberRecord>(&member_key).await?
        else {
            return Err(TrustError::ParentRefused(format!(
                "{} is no longer a member",
                peer.name
            )));
        };
        let issued = self
            .authority
            .issue(csr_der, &peer.name, now, self.lifetime)?;
        // The certificate renewing stays valid until it expires (links up on it are kept);
        // older ones are dropped from the record.
        member.serials.retain(|s| *s == peer.serial);
        member.serials.push(issued.serial.clone());
        member.not_after_unix = issued.not_after_unix;
        self.store
            .put_json(&member_key, &member, Precondition::ModRevision(revision))
            .await?;
        tracing::info!(member = %peer.name, "certificate renewed");
        Ok(self.certified(issued.der, peer.name.clone()))
    }

    /// Revokes every certificate of `name`: none of them completes a handshake again, and
    /// the name is free for a new join. False when `name` held none.
    pub async fn revoke(&self, name: &str) -> Result<bool, TrustError> {
        let member_key = self.member_key(name);
        let Some((member, revision)) = self.store.get_json::<MemberRecord>(&member_key).await?
        else {
            return Ok(false);
        };
        let mut ops = vec![Op::Delete {
            key: member_key,
            precondition: Precondition::ModRevision(revision),
        }];
        for serial in &member.serials {
            ops.push(put(
                &format!("{}revoked/{serial}", self.prefix),
                name,
                Precondition::None,
            )?);
        }
        self.store.txn(ops).await?;
        if let Ok(mut revoked) = self.revoked.write() {
            revoked.extend(member.serials.iter().cloned());
        }
        tracing::info!(member = %name, "certificates revoked");
        Ok(true)
    }

    pub(super) fn certified(&self, der: Vec<u8>, name: String) -> pb::Certified {
        pb::Certified {
            chain_der: vec![der],
            ca_der: self.authority.cert_der().to_vec(),
            name,
            member_ca_der: Vec::new(),
        }
    }

    pub(super) fn token_key(&self, id: &str) -> String {
        format!("{}tokens/{id}", self.prefix)
    }

    pub(super) fn member_key(&self, name: &str) -> String {
        format!("{}members/{name}", self.prefix)
    }
}

pub(super) fn put<T: Serialize + ?Sized>(
    key: &str,
    value: &T,
    precondition: Precondition,
) -> Result<Op, TrustError> {
    let value = serde_json::to_vec(value)
        .map_err(|e| TrustError::Certificate(format!("encoding {key}: {e}")))?;
    Ok(Op::Put {
        key: key.to_string(),
        value,
        precondition,
    })
}
