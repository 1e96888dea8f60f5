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
