//! A parent's certificate authority, ECDSA P-256: the root's is self-signed; a cluster's is
//! an intermediate the root issued at its join. Either signs its children's certificates
//! and its own tier listener's.

use super::{PARENT_SERVER_NAME, TrustError, certs};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::{CertificateDer, CertificateSigningRequestDer, PrivateKeyDer};
use std::time::Duration;
use time::OffsetDateTime;

/// How long a CA is valid: long, since every child pins it.
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Certificates start a little in the past, so a child whose clock lags is not refused.
const BACKDATE: Duration = Duration::from_secs(300);

pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
}

/// A certificate issued for a child.
#[derive(Debug, Clone)]
pub struct Issued {
    pub der: Vec<u8>,
    pub serial: String,
    pub not_after_unix: i64,
}

impl Authority {
    pub fn generate(common_name: &str, now: OffsetDateTime) -> Result<Authority, TrustError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name);
        // One level below: the clusters' intermediate CAs, which sign leaves only.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_LIFETIME;
        params.serial_number = Some(serial());
        let cert = params.self_signed(&key)?;
        Authority::from_pem(&cert.pem(), &key.serialize_pem())
    }

    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Authority, TrustError> {
        let key = KeyPair::from_pem(key_pem)?;
        let cert_der = pem::parse(cert_pem)
            .map_err(|e| TrustError::Certificate(format!("CA certificate: {e}")))?
            .into_contents();
        let cert_der = CertificateDer::from(cert_der);
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)?;
        Ok(Authority {
            issuer,
            cert_der,
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Secret: kept in the parent's store only.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// What children pin: `sha256:<hex>` of the CA's public key.
    pub fn ca_hash(&self) -> Result<String, TrustError> {
        certs::spki_hash(&self.cert_der)
    }

    /// A client certificate for `name` over the key of `csr_der` (whose signature proves the
    /// child holds it). Nothing else of the request is taken: the parent decides the name,
    /// the usage and the lifetime.
    pub fn issue(
        &self,
        csr_der: &[u8],
        name: &str,
        now: OffsetDateTime,
        lifetime: Duration,
    ) -> Result<Issued, TrustError> {
        self.sign(csr_der, name, now, lifetime, false)
    }

    /// An intermediate CA for the cluster `name`, over the key of `csr_der`: it may sign
    /// leaf certificates only (path length 0), so a cluster certifies its own nodes and
    /// nothing above or beside them.
    pub fn issue_ca(
        &self,
        csr_der: &[u8],
        name: &str,
        now: OffsetDateTime,
    ) -> Result<Issued, TrustError> {
        self.sign(csr_der, name, now, CA_LIFETIME, true)
    }

    fn sign(
        &self,
        csr_der: &[u8],
        name: &str,
        now: OffsetDateTime,
        lifetime: Duration,
        ca: bool,
    ) -> Result<Issued, TrustError> {
        let csr = CertificateSigningRequestDer::from(csr_der.to_vec());
        let request = CertificateSigningRequestParams::from_der(&csr)
            .map_err(|e| TrustError::Certificate(format!("certificate request: {e}")))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = self::name(name);
        if ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
        } else {
            params.is_ca = IsCa::ExplicitNoCa;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - BACKDATE;
        params.not_after = now + lifetime;
        params.serial_number = Some(serial());
        let cert = params.signed_by(&request.public_key, &self.issuer)?;
        let der = cert.der().to_vec();
        let peer = certs::peer_of(&der)?;
        Ok(Issued {
            der,
            serial: peer.serial,
            not_after_unix: (now + lifetime).unix_timestamp(),
        })
    }

    /// The tier listener's certificate chain and key: a fresh key at each start, for
    /// [`PARENT_SERVER_NAME`], chained to this CA (which children find in the chain and pin).
    pub fn server_identity(
        &self,
        now: OffsetDateTime,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TrustError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(PARENT_SERVER_NAME);
        params.subject_alt_names =
            vec![SanType::DnsName(PARENT_SERVER_NAME.try_into().map_err(
                |e: rcgen::Error| TrustError::Certificate(e.to_string()),
            )?)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_LIFETIME;
        params.serial_number = Some(serial());
        let cert = params.signed_by(&key, &self.issuer)?;
        let key = PrivateKeyDer::try_from(key.serialize_der())
            .map_err(|e| TrustError::Certificate(e.to_string()))?;
        Ok((vec![cert.der().clone(), self.cert_der.clone()], key))
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

/// Random, positive (high bit clear) and 16 bytes, as RFC 5280 asks.
fn serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::verify::Members;
    use rustls::pki_types::UnixTime;
    use rustls::server::danger::ClientCertVerifier;
    use std::collections::HashSet;
    use std::sync::{Arc, RwLock};

    fn request(key: &KeyPair, name: &str) -> Vec<u8> {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.serialize_request(key).unwrap().der().to_vec()
    }

    /// The intermediate CA the root issues `cluster`, as the cluster loads it.
    fn cluster_ca(root: &Authority, cluster: &str, now: OffsetDateTime) -> Authority {
        let key = KeyPair::generate().unwrap();
        let issued = root
            .issue_ca(&request(&key, cluster), cluster, now)
            .unwrap();
        let pem = pem::encode(&pem::Pem::new("CERTIFICATE", issued.der));
        Authority::from_pem(&pem, &key.serialize_pem()).unwrap()
    }

    fn node_cert(ca: &Authority, name: &str, now: OffsetDateTime) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let issued = ca
            .issue(&request(&key, name), name, now, Duration::from_secs(3600))
            .unwrap();
        CertificateDer::from(issued.der)
    }

    #[test]
    fn a_cluster_certifies_its_own_nodes_and_no_other_cluster_accepts_them() {
        let now = OffsetDateTime::now_utc();
        let root = Authority::generate("root", now).unwrap();
        let c0 = cluster_ca(&root, "c0", now);
        let c1 = cluster_ca(&root, "c1", now);
        assert_ne!(c0.ca_hash().unwrap(), root.ca_hash().unwrap());
        let revoked = Arc::new(RwLock::new(HashSet::new()));
        let at_c0 = Members::new(c0.cert_der().clone(), revoked.clone()).unwrap();
        let at_c1 = Members::new(c1.cert_der().clone(), revoked.clone()).unwrap();
        let n0 = node_cert(&c0, "n0", now);
        assert!(at_c0.verify_client_cert(&n0, &[], UnixTime::now()).is_ok());
        assert!(
            at_c1.verify_client_cert(&n0, &[], UnixTime::now()).is_err(),
            "a node of c0 cannot attach to c1"
        );
        // Revoked: refused at the handshake.
        let serial = certs::peer_of(&n0).unwrap().serial;
        revoked.write().unwrap().insert(serial);
        assert!(
            at_c0.verify_client_cert(&n0, &[], UnixTime::now()).is_err(),
            "revoked"
        );
    }

    #[test]
    fn a_cluster_ca_may_sign_leaves_only() {
        let now = OffsetDateTime::now_utc();
        let root = Authority::generate("root", now).unwrap();
        let key = KeyPair::generate().unwrap();
        let issued = root.issue_ca(&request(&key, "c0"), "c0", now).unwrap();
        use x509_parser::prelude::{FromDer, X509Certificate};
        let (_, cert) = X509Certificate::from_der(&issued.der).unwrap();
        let constraints = cert.basic_constraints().unwrap().unwrap().value;
        assert!(constraints.ca);
        assert_eq!(constraints.path_len_constraint, Some(0));
    }
}
