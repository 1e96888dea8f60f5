//! What a certificate says: whose it is, its serial, its validity, its key's hash.

use super::TrustError;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The member a verified client certificate names: inserted into each request of its
/// connection, so handlers read the name from the certificate, never from the hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    /// Hex, as revocations record it.
    pub serial: String,
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, TrustError> {
    X509Certificate::from_der(der)
        .map(|(_, cert)| cert)
        .map_err(|e| TrustError::Certificate(format!("unreadable certificate: {e}")))
}

/// `sha256:<hex>` of the certificate's SubjectPublicKeyInfo (kubeadm's CA-hash format).
pub fn spki_hash(der: &[u8]) -> Result<String, TrustError> {
    let cert = parse(der)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.public_key().raw);
    Ok(format!("sha256:{}", hex(digest.as_ref())))
}

/// The name (common name) and serial of a certificate.
pub fn peer_of(der: &[u8]) -> Result<Peer, TrustError> {
    let cert = parse(der)?;
    let name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|name| !name.is_empty())
        .ok_or_else(|| TrustError::Certificate("certificate without a common name".into()))?;
    Ok(Peer {
        name: name.to_string(),
        serial: hex(cert.raw_serial()),
    })
}

/// Not before and not after, in Unix seconds.
pub(crate) fn validity(der: &[u8]) -> Result<(i64, i64), TrustError> {
    let cert = parse(der)?;
    let validity = cert.validity();
    Ok((
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    ))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
