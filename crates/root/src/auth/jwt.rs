//! Signed tokens: EdDSA (Ed25519) JWTs under a key the root generates once and keeps in its
//! store. Verification is pure: the caller passes the time.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::signature::KeyPair;
use serde::{Deserialize, Serialize};

const ISSUER: &str = "canopy";

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// Short-lived, sent with each request after a login.
    Access,
    /// Long-lived, traded for a new access token (`/login/refresh`); never accepted by
    /// other endpoints.
    Refresh,
    /// For automation: one grant, its own lifetime, revocable by id.
    Api,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The user's name.
    pub sub: String,
    /// The user's id: a user deleted and created again does not inherit old tokens.
    pub uid: String,
    /// The id of the token's record in the store (a login session or an API token): revoking
    /// it (deleting the record) ends every token that names it.
    pub jti: String,
    pub typ: TokenKind,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is malformed or not signed by this root")]
    Invalid,
    #[error("the token has expired")]
    Expired,
    #[error("cannot sign: {0}")]
    Signing(String),
    #[error("the stored signing key is unusable: {0}")]
    Key(String),
}

/// The root's signing key.
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// Debug never shows key material.
impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(Ed25519, redacted)")
    }
}

impl Keys {
    /// A new random key, as PKCS#8 DER (what the store keeps).
    pub fn generate() -> Result<Vec<u8>, TokenError> {
        ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .map(|document| document.as_ref().to_vec())
            .map_err(|e| TokenError::Key(e.to_string()))
    }

    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Keys, TokenError> {
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|e| TokenError::Key(e.to_string()))?;
        Ok(Keys {
            encoding: EncodingKey::from_ed_der(pkcs8),
            decoding: DecodingKey::from_ed_der(pair.public_key().as_ref()),
        })
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, &self.encoding)
            .map_err(|e| TokenError::Signing(e.to_string()))
    }

    /// The claims of `token` if this key signed it and it has not expired at `now` (Unix
    /// seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::EdDSA);
        // Expiry is checked below against the time given, not the library's clock.
        validation.validate_exp = false;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub", "iss", "jti"]);
        validation.set_issuer(&[ISSUER]);
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|_| TokenError::Invalid)?
            .claims;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

impl Claims {
    pub fn new(
        user: &str,
        uid: &str,
        jti: &str,
        typ: TokenKind,
        now: i64,
        lifetime: i64,
    ) -> Claims {
        Claims {
            iss: ISSUER.to_string(),
            sub: user.to_string(),
            uid: uid.to_string(),
            jti: jti.to_string(),
            typ,
            iat: now,
            exp: now.saturating_add(lifetime),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::from_pkcs8(&Keys::generate().unwrap()).unwrap()
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let keys = keys();
        let claims = Claims::new("ada", "u1", "t1", TokenKind::Access, 1_000, 3600);
        let token = keys.sign(&claims).unwrap();
        assert_eq!(keys.verify(&token, 1_000).unwrap(), claims);
        assert_eq!(keys.verify(&token, 4_599).unwrap(), claims);
        assert_eq!(keys.verify(&token, 4_600), Err(TokenError::Expired));
    }

    #[test]
    fn another_keys_token_and_tampered_tokens_are_invalid() {
        let (ours, theirs) = (keys(), keys());
        let claims = Claims::new("ada", "u1", "t1", TokenKind::Access, 1_000, 3600);
        let foreign = theirs.sign(&claims).unwrap();
        assert_eq!(ours.verify(&foreign, 1_000), Err(TokenError::Invalid));
        let token = ours.sign(&claims).unwrap();
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged_claims = Claims::new("eve", "u1", "t1", TokenKind::Access, 1_000, 3600);
        let forged = theirs.sign(&forged_claims).unwrap();
        let forged_payload = forged.split('.').nth(1).unwrap().to_string();
        parts[1] = &forged_payload;
        assert_eq!(
            ours.verify(&parts.join("."), 1_000),
            Err(TokenError::Invalid)
        );
        assert_eq!(ours.verify("not.a.token", 1_000), Err(TokenError::Invalid));
        assert_eq!(ours.verify("", 1_000), Err(TokenError::Invalid));
    }

    #[test]
    fn the_stored_key_reads_back() {
        let pkcs8 = Keys::generate().unwrap();
        let (a, b) = (
            Keys::from_pkcs8(&pkcs8).unwrap(),
            Keys::from_pkcs8(&pkcs8).unwrap(),
        );
        let claims = Claims::new("ada", "u1", "t1", TokenKind::Api, 10, 60);
        assert_eq!(b.verify(&a.sign(&claims).unwrap(), 10).unwrap(), claims);
        assert!(Keys::from_pkcs8(b"garbage").is_err());
        assert!(!format!("{a:?}").contains(&format!("{:?}", &pkcs8[..8])));
    }
}
