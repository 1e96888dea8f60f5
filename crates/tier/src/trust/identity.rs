//! A child's identity: its key (generated here, never sent) and the certificate its parent
//! issued, kept 0600 in its data directory. [`enrol`] joins once with a token; later starts
//! reuse the files and need no token.

use super::verify::PinnedCa;
use super::{Authority, Role, TrustError, certs, chain, dial, provider};
use crate::pb;
use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::OffsetDateTime;
use tonic::transport::Endpoint;

const KEY_FILE: &str = "tier-key.pem";
const CERT_FILE: &str = "tier-cert.pem";
const CA_FILE: &str = "tier-ca.pem";
/// A cluster's own intermediate CA, which certifies its nodes.
const MEMBER_CA_FILE: &str = "tier-nodes-ca.pem";
const MEMBER_CA_KEY_FILE: &str = "tier-nodes-ca-key.pem";

#[derive(Clone)]
pub struct Identity {
    pub name: String,
    key_pem: String,
    chain: Vec<CertificateDer<'static>>,
    ca: CertificateDer<'static>,
    not_before_unix: i64,
    not_after_unix: i64,
}

impl std::fmt::Debug for Identity {
    // Never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("name", &self.name)
            .field("not_after_unix", &self.not_after_unix)
            .finish_non_exhaustive()
    }
}

impl Identity {
    fn from_certified(key_pem: String, certified: pb::Certified) -> Result<Identity, TrustError> {
        let leaf = certified
            .chain_der
            .first()
            .ok_or_else(|| TrustError::Certificate("the parent sent no certificate".into()))?;
        let (not_before_unix, not_after_unix) = certs::validity(leaf)?;
        let name = certs::peer_of(leaf)?.name;
        Ok(Identity {
            name,
            key_pem,
            chain: certified
                .chain_der
                .into_iter()
                .map(CertificateDer::from)
                .collect(),
            ca: CertificateDer::from(certified.ca_der),
            not_before_unix,
            not_after_unix,
        })
    }

    /// The identity saved in `dir`, if any.
    pub fn load(dir: &Path) -> Result<Option<Identity>, TrustError> {
        let key_path = dir.join(KEY_FILE);
        if !key_path.exists() {
            return Ok(None);
        }
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read_to_string(&path).map_err(|e| TrustError::io(&path, e))
        };
        let key_pem = read(KEY_FILE)?;
        let ders = |file: &str| -> Result<Vec<Vec<u8>>, TrustError> {
            let text = read(file)?;
            let pems = pem::parse_many(text)
                .map_err(|e| TrustError::Certificate(format!("{file}: {e}")))?;
            Ok(pems.into_iter().map(|p| p.into_contents()).collect())
        };
        let ca = ders(CA_FILE)?
            .into_iter()
            .next()
            .ok_or_else(|| TrustError::Certificate(format!("{CA_FILE} is empty")))?;
        let certified = pb::Certified {
            chain_der: ders(CERT_FILE)?,
            ca_der: ca,
            name: String::new(),
            member_ca_der: Vec::new(),
        };
        Identity::from_certified(key_pem, certified).map(Some)
    }

    /// Writes key and certificates (0600), each replaced whole.
    pub fn save(&self, dir: &Path) -> Result<(), TrustError> {
        std::fs::create_dir_all(dir).map_err(|e| TrustError::io(dir, e))?;
        let certs = |ders: &[CertificateDer<'_>]| {
            ders.iter()
                .map(|der| pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec())))
                .collect::<String>()
        };
        write_private(&dir.join(CA_FILE), &certs(std::slice::from_ref(&self.ca)))?;
        write_private(&dir.join(CERT_FILE), &certs(&self.chain))?;
        write_private(&dir.join(KEY_FILE), &self.key_pem)
    }

    /// TLS to the parent: its certificate must chain to the saved CA; ours is presented.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TrustError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone())?;
        let key = PrivateKeyDer::try_from(
            pem::parse(&self.key_pem)
                .map_err(|e| TrustError::Certificate(format!("{KEY_FILE}: {e}")))?
                .into_contents(),
        )
        .map_err(|e| TrustError::Certificate(e.to_string()))?;
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(self.chain.clone(), key)?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    /// When to renew: at two thirds of the certificate's lifetime.
    pub fn renew_at_unix(&self) -> i64 {
        self.not_before_unix + (self.not_after_unix - self.not_before_unix) * 2 / 3
    }

    /// A new certificate (over a new key) asked over a mutual-TLS call with this one.
    pub async fn renew(&self, parent: &str) -> Result<Identity, TrustError> {
        let key = KeyPair::generate()?;
        let csr_der = request(&key, &self.name)?;
        let channel = dial::connect(&endpoint(parent)?, self.client_config()?)
            .await
            .map_err(|e| unreachable(parent, &e))?;
        let certified = pb::join_client::JoinClient::new(channel)
            .renew(pb::RenewRequest { csr_der })
            .await
            .map_err(|s| TrustError::ParentRefused(s.message().to_string()))?
            .into_inner();
        Identity::from_certified(key.serialize_pem(), certified)
    }

    /// The hash of the CA it was issued under (which it pins).
    pub fn ca_hash(&self) -> Result<String, TrustError> {
        certs::spki_hash(&self.ca)
    }

    pub fn expired(&self, now: OffsetDateTime) -> bool {
        now.unix_timestamp() >= self.not_after_unix
    }
}

fn write_private(path: &Path, text: &str) -> Result<(), TrustError> {
    let temporary = PathBuf::from(format!("{}.new", path.display()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(|e| TrustError::io(&temporary, e))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| TrustError::io(&temporary, e))?;
    std::fs::rename(&temporary, path).map_err(|e| TrustError::io(path, e))
}

fn request(key: &KeyPair, name: &str) -> Result<Vec<u8>, TrustError> {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    Ok(params.serialize_request(key)?.der().to_vec())
}

fn endpoint(parent: &str) -> Result<Endpoint, TrustError> {
    if !parent.starts_with("https://") {
        return Err(TrustError::Connect {
            address: parent.to_string(),
            reason: "joining needs the parent's https:// tier address".into(),
        });
    }
    Endpoint::from_shared(parent.to_string())
        .map(|e| e.connect_timeout(std::time::Duration::from_secs(5)))
        .map_err(|e| TrustError::Connect {
            address: parent.to_string(),
            reason: e.to_string(),
        })
}

fn unreachable(parent: &str, error: &dyn std::error::Error) -> TrustError {
    TrustError::Connect {
        address: parent.to_string(),
        reason: chain(error),
    }
}

/// TLS for a child without a certificate yet: the parent is trusted if its chain holds the
/// CA whose key hashes to `ca_hash`.
pub fn joining_config(ca_hash: &str) -> Result<Arc<ClientConfig>, TrustError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCa {
            pin: ca_hash.trim().to_string(),
            provider: provider(),
        }))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A cluster's intermediate CA saved in `dir` (issued by the root at its join), if any.
pub fn member_authority(dir: &Path) -> Result<Option<Authority>, TrustError> {
    let cert_path = dir.join(MEMBER_CA_FILE);
    if !cert_path.exists() {
        return Ok(None);
    }
    let read = |path: &Path| std::fs::read_to_string(path).map_err(|e| TrustError::io(path, e));
    let cert_pem = read(&cert_path)?;
    let key_pem = read(&dir.join(MEMBER_CA_KEY_FILE))?;
    Authority::from_pem(&cert_pem, &key_pem).map(Some)
}

/// Presents `token` to `parent` (whose CA must hash to `ca_hash`) and asks a certificate
/// for `name`; a cluster also asks for its intermediate CA, saved in `dir` (0600).
pub async fn join(
    parent: &str,
    token: &str,
    ca_hash: &str,
    name: &str,
    role: Role,
    dir: &Path,
) -> Result<Identity, TrustError> {
    let key = KeyPair::generate()?;
    let csr_der = request(&key, name)?;
    // Only a cluster certifies members of its own.
    let ca_key = match role {
        Role::Cluster => Some(KeyPair::generate()?),
        Role::Node => None,
    };
    let ca_csr_der = match &ca_key {
        Some(ca_key) => request(ca_key, name)?,
        None => Vec::new(),
    };
    let channel = dial::connect(&endpoint(parent)?, joining_config(ca_hash)?)
        .await
        .map_err(|e| unreachable(parent, &e))?;
    let certified = pb::join_client::JoinClient::new(channel)
        .join(pb::JoinRequest {
            token: token.trim().to_string(),
            name: name.to_string(),
            csr_der,
            ca_csr_der,
        })
        .await
        .map_err(|s| TrustError::ParentRefused(s.message().to_string()))?
        .into_inner();
    if certs::spki_hash(&certified.ca_der)? != ca_hash.trim() {
        return Err(TrustError::Certificate(
            "the parent answered with a CA other than the pinned one".into(),
        ));
    }
    if let Some(ca_key) = ca_key {
        if certified.member_ca_der.is_empty() {
            return Err(TrustError::Certificate(
                "the root issued no CA for this cluster's nodes".into(),
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| TrustError::io(dir, e))?;
        let pem = pem::encode(&pem::Pem::new(
            "CERTIFICATE",
            certified.member_ca_der.clone(),
        ));
        write_private(&dir.join(MEMBER_CA_KEY_FILE), &ca_key.serialize_pem())?;
        write_private(&dir.join(MEMBER_CA_FILE), &pem)?;
    }
    Identity::from_certified(key.serialize_pem(), certified)
}

/// The identity saved in `dir`, or a new one from joining with `token` (then saved). A
/// saved identity for another name is refused rather than silently used.
pub async fn enrol(
    parent: &str,
    dir: &Path,
    name: &str,
    role: Role,
    token: Option<&str>,
    ca_hash: Option<&str>,
) -> Result<Identity, TrustError> {
    if let Some(identity) = Identity::load(dir)? {
        if identity.name != name {
            return Err(TrustError::Certificate(format!(
                "the certificate in {} is for {:?}, not {name:?}",
                dir.display(),
                identity.name
            )));
        }
        if role == Role::Cluster && !dir.join(MEMBER_CA_FILE).exists() {
            return Err(TrustError::Certificate(format!(
                "{} holds a certificate but no CA for the cluster's nodes (joined with an \
                 older canopy): delete the cluster at the root and join it again",
                dir.display()
            )));
        }
        return Ok(identity);
    }
    let (Some(token), Some(ca_hash)) = (token.filter(|t| !t.is_empty()), ca_hash) else {
        return Err(TrustError::NotJoined(name.to_string()));
    };
    let identity = join(parent, token, ca_hash, name, role, dir).await?;
    identity.save(dir)?;
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::enrolment::CERT_LIFETIME;

    #[test]
    fn a_certificate_renews_at_two_thirds_of_its_life_well_before_it_expires() {
        let now = OffsetDateTime::now_utc();
        let root = Authority::generate("root", now).unwrap();
        let key = KeyPair::generate().unwrap();
        let issued = root
            .issue(&request(&key, "n0").unwrap(), "n0", now, CERT_LIFETIME)
            .unwrap();
        let certified = pb::Certified {
            chain_der: vec![issued.der],
            ca_der: root.cert_der().to_vec(),
            name: "n0".into(),
            member_ca_der: Vec::new(),
        };
        let identity = Identity::from_certified(key.serialize_pem(), certified).unwrap();
        let life = CERT_LIFETIME.as_secs() as i64;
        let renew_at = identity.renew_at_unix() - now.unix_timestamp();
        // Two thirds of 30 days is 20 days (less the few minutes it is backdated by).
        assert!(
            (life * 2 / 3 - 600..=life * 2 / 3).contains(&renew_at),
            "{renew_at}"
        );
        let at = |seconds: i64| now + time::Duration::seconds(seconds);
        assert!(!identity.expired(at(renew_at)), "renewed while still valid");
        assert!(!identity.expired(at(life - 1)));
        assert!(identity.expired(at(life)));
    }
}
