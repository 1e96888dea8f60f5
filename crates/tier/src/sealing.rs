//! Secret values at rest: sealed with ChaCha20-Poly1305 (ring's AEAD) under a key of the
//! data dir (`secrets.key`, 32 random bytes, 0600), each sealing with a fresh random nonce
//! and bound to the record it belongs to (the associated data), so a sealed value copied
//! into another record does not open there.

use canopy_model::SecretValues;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The key file's name in a data dir.
pub const KEY_FILE: &str = "secrets.key";
const KEY_LEN: usize = 32;
/// The format of a sealed value, its first byte.
const VERSION: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("secret key {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret key {path} is not {KEY_LEN} bytes long")]
    BadKey { path: PathBuf },
    #[error("no randomness from the system")]
    Random,
    /// Wrong key, tampered bytes, or sealed for another record: which one is not told.
    #[error("sealed secret values do not open (another key, or altered)")]
    Open,
    #[error("{0}")]
    Unreadable(String),
}

/// The data dir's sealing key. `Debug` shows nothing of it.
pub struct SealingKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(..)")
    }
}

impl SealingKey {
    /// The key in `dir`, made (0600) on first use.
    pub fn load_or_create(dir: &Path) -> Result<SealingKey, SealError> {
        let path = dir.join(KEY_FILE);
        let io = |source| SealError::Io {
            path: path.clone(),
            source,
        };
        match std::fs::read(&path) {
            Ok(bytes) => {
                let bytes: [u8; KEY_LEN] = bytes
                    .try_into()
                    .map_err(|_| SealError::BadKey { path: path.clone() })?;
                return Ok(SealingKey::from_bytes(&bytes));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        std::fs::create_dir_all(dir).map_err(io)?;
        let bytes = random_bytes::<KEY_LEN>()?;
        // `create_new`: two processes racing on one data dir never overwrite a used key.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(io)?;
        Ok(SealingKey::from_bytes(&bytes))
    }

    /// A key that lives as long as the process: for tiers opened without a data dir (tests).
    pub fn ephemeral() -> SealingKey {
        let bytes = random_bytes::<KEY_LEN>().unwrap_or([0x5a; KEY_LEN]);
        SealingKey::from_bytes(&bytes)
    }

    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> SealingKey {
        // Any 32 bytes are a ChaCha20-Poly1305 key: this cannot fail.
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, bytes)
            .unwrap_or_else(|_| unreachable!("a 32-byte key"));
        SealingKey {
            key: LessSafeKey::new(unbound),
        }
    }

    /// `plaintext` sealed for `context` (the record's name).
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Sealed, SealError> {
        let nonce = random_bytes::<NONCE_LEN>()?;
        let mut in_out = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut in_out,
            )
            .map_err(|_| SealError::Open)?;
        let mut bytes = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        bytes.push(VERSION);
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&in_out);
        Ok(Sealed(bytes))
    }

    /// The plaintext of `sealed`, if it was sealed by this key for `context` and not altered.
    pub fn open(&self, context: &str, sealed: &Sealed) -> Result<Vec<u8>, SealError> {
        let bytes = &sealed.0;
        if bytes.len() < 1 + NONCE_LEN || bytes[0] != VERSION {
            return Err(SealError::Open);
        }
        let nonce: [u8; NONCE_LEN] = bytes[1..1 + NONCE_LEN]
            .try_into()
            .map_err(|_| SealError::Open)?;
        let mut in_out = bytes[1 + NONCE_LEN..].to_vec();
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut in_out,
            )
            .map_err(|_| SealError::Open)?;
        Ok(plain.to_vec())
    }

    pub fn seal_values(&self, context: &str, values: &SecretValues) -> Result<Sealed, SealError> {
        self.seal(context, &values.to_plaintext())
    }

    pub fn open_values(&self, context: &str, sealed: &Sealed) -> Result<SecretValues, SealError> {
        SecretValues::from_plaintext(&self.open(context, sealed)?).map_err(SealError::Unreadable)
    }
}

/// Sealed bytes; serialised as hex. `Debug` shows the length only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Sealed(Vec<u8>);

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealed({} bytes)", self.0.len())
    }
}

impl Sealed {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Sealed {
        Sealed(bytes)
    }
}

impl Serialize for Sealed {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let hex: String = self.0.iter().map(|b| format!("{b:02x}")).collect();
        serializer.serialize_str(&hex)
    }
}

impl<'de> Deserialize<'de> for Sealed {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let hex = String::deserialize(deserializer)?;
        if hex.len() % 2 != 0 || !hex.is_ascii() {
            return Err(serde::de::Error::custom("sealed bytes: not hex"));
        }
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map(Sealed)
            .map_err(|_| serde::de::Error::custom("sealed bytes: not hex"))
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], SealError> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| SealError::Random)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn values() -> SecretValues {
        let mut values = SecretValues::default();
        values.insert("regcred", "password", b"s3cr3t-pass".to_vec());
        values
    }

    #[test]
    fn round_trip() {
        let key = SealingKey::ephemeral();
        let sealed = key.seal_values("instance/a", &values()).expect("seal");
        assert!(!sealed.is_empty());
        let text = serde_json::to_string(&sealed).expect("json");
        assert!(!text.contains("s3cr3t"), "{text}");
        let back: Sealed = serde_json::from_str(&text).expect("hex");
        assert_eq!(
            key.open_values("instance/a", &back).expect("open"),
            values()
        );
        // A fresh nonce each time: the same values never seal to the same bytes.
        assert_ne!(key.seal_values("instance/a", &values()).ok(), Some(sealed));
    }

    #[test]
    fn wrong_key_fails() {
        let sealed = SealingKey::ephemeral().seal("c", b"v").expect("seal");
        assert!(matches!(
            SealingKey::ephemeral().open("c", &sealed),
            Err(SealError::Open)
        ));
    }

    #[test]
    fn tampering_fails() {
        let key = SealingKey::ephemeral();
        let sealed = key.seal("c", b"value").expect("seal");
        for i in 0..sealed.as_bytes().len() {
            let mut bytes = sealed.as_bytes().to_vec();
            bytes[i] ^= 0x01;
            assert!(
                key.open("c", &Sealed::from_bytes(bytes)).is_err(),
                "byte {i} flipped still opens"
            );
        }
        let mut short = sealed.as_bytes().to_vec();
        short.truncate(10);
        assert!(key.open("c", &Sealed::from_bytes(short)).is_err());
        // Moved to another record: does not open.
        assert!(key.open("other", &sealed).is_err());
    }

    #[test]
    fn the_key_file_is_private_and_stable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = SealingKey::load_or_create(dir.path()).expect("create");
        let sealed = first.seal("c", b"v").expect("seal");
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = SealingKey::load_or_create(dir.path()).expect("load");
        assert_eq!(again.open("c", &sealed).expect("open"), b"v");
        std::fs::write(dir.path().join(KEY_FILE), b"short").expect("write");
        assert!(matches!(
            SealingKey::load_or_create(dir.path()),
            Err(SealError::BadKey { .. })
        ));
    }
}
