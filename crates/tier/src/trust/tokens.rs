//! Join tokens, kubeadm's shape: `<id>.<secret>`, six and sixteen characters of `[a-z0-9]`.
//! The parent keeps the id, a hash of the secret, the role and name the token admits, its
//! expiry and whether it was used; the decision whether a join is admitted is made here,
//! with the time passed in.

use rand::Rng;
use serde::{Deserialize, Serialize};

const ID_LEN: usize = 6;
const SECRET_LEN: usize = 16;
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// What a token admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Cluster,
    Node,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Cluster => "cluster",
            Role::Node => "node",
        })
    }
}

/// A token as the parent stores it (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub role: Role,
    /// The one name it admits; any free name when none.
    pub name: Option<String>,
    pub secret_sha256: String,
    pub expires_unix: i64,
    pub used: bool,
    /// Joins it admits beyond the first (a fleet of hollow nodes); 0 for a one-time token.
    #[serde(default)]
    pub extra_uses: u32,
}

/// Why a join is refused: said to the joining side as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("malformed join token (expected <id>.<secret>, 6 and 16 characters of [a-z0-9])")]
    Malformed,
    #[error("unknown join token {0:?}")]
    Unknown(String),
    #[error("join token {0:?} does not match its secret (forged or mistyped)")]
    Forged(String),
    #[error("join token {0:?} has expired")]
    Expired(String),
    #[error("join token {0:?} was already used")]
    Used(String),
    #[error("join token {id:?} admits a {admits}, not a {asked}")]
    WrongRole {
        id: String,
        admits: Role,
        asked: Role,
    },
    #[error("join token {id:?} is for the name {token:?}, not {asked:?}")]
    WrongName {
        id: String,
        token: String,
        asked: String,
    },
    #[error("the name {0:?} is taken by a member with a valid certificate (delete it first)")]
    NameTaken(String),
    #[error("a token for several joins cannot name one member")]
    NamedReuse,
    #[error("a member name must be 1 to 63 characters of [a-z0-9._-], got {0:?}")]
    BadName(String),
}

/// A new token: `id` is its key at the parent, `secret` is shown once.
#[derive(Debug, Clone)]
pub struct Fresh {
    pub id: String,
    pub secret: String,
}

impl Fresh {
    pub fn generate() -> Fresh {
        Fresh {
            id: random(ID_LEN),
            secret: random(SECRET_LEN),
        }
    }

    pub fn token(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }
}

fn random(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The id and secret of `token`.
pub fn parse(token: &str) -> Result<(&str, &str), Refusal> {
    let (id, secret) = token.trim().split_once('.').ok_or(Refusal::Malformed)?;
    let valid =
        |part: &str, len: usize| part.len() == len && part.bytes().all(|b| ALPHABET.contains(&b));
    if valid(id, ID_LEN) && valid(secret, SECRET_LEN) {
        Ok((id, secret))
    } else {
        Err(Refusal::Malformed)
    }
}

pub fn secret_hash(secret: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    super::certs::hex(digest.as_ref())
}

/// Member names go into certificates and store keys: DNS-label shaped.
pub fn check_name(name: &str) -> Result<(), Refusal> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.' || b == b'_'
        });
    if ok {
        Ok(())
    } else {
        Err(Refusal::BadName(name.to_string()))
    }
}

/// The join `(id, secret)` asks for, as `role` named `asked`, against the stored `record`:
/// the name granted, or why not. `taken`: a member of that name holds a valid certificate.
pub fn admit(
    id: &str,
    secret: &str,
    record: Option<&TokenRecord>,
    role: Role,
    asked: &str,
    taken: bool,
    now_unix: i64,
) -> Result<String, Refusal> {
    let record = record.ok_or_else(|| Refusal::Unknown(id.to_string()))?;
    if record.secret_sha256 != secret_hash(secret) {
        return Err(Refusal::Forged(id.to_string()));
    }
    if record.used {
        return Err(Refusal::Used(id.to_string()));
    }
    if now_unix >= record.expires_unix {
        return Err(Refusal::Expired(id.to_string()));
    }
    if record.role != role {
        return Err(Refusal::WrongRole {
            id: id.to_string(),
            admits: record.role,
            asked: role,
        });
    }
    let name = match &record.name {
        Some(name) if name != asked => {
            return Err(Refusal::WrongName {
                id: id.to_string(),
                token: name.clone(),
                asked: asked.to_string(),
            });
        }
        _ => asked.to_string(),
    };
    check_name(&name)?;
    if taken {
        return Err(Refusal::NameTaken(name));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: Option<&str>, expires_unix: i64, used: bool) -> TokenRecord {
        TokenRecord {
            role: Role::Cluster,
            name: name.map(str::to_string),
            secret_sha256: secret_hash("0123456789abcdef"),
            expires_unix,
            used,
            extra_uses: 0,
        }
    }

    const SECRET: &str = "0123456789abcdef";

    #[test]
    fn generated_tokens_parse_and_others_do_not() {
        let fresh = Fresh::generate();
        assert_eq!(
            parse(&fresh.token()),
            Ok((fresh.id.as_str(), fresh.secret.as_str()))
        );
        for bad in [
            "",
            "abc",
            "abcdef.short",
            "ABCDEF.0123456789abcdef",
            "abcdef0123456789abcdef",
        ] {
            assert_eq!(parse(bad), Err(Refusal::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn a_valid_token_admits_its_name_once_before_expiry() {
        let ok = record(Some("c0"), 100, false);
        assert_eq!(
            admit("abcdef", SECRET, Some(&ok), Role::Cluster, "c0", false, 99),
            Ok("c0".into())
        );
        let any = record(None, 100, false);
        assert_eq!(
            admit("abcdef", SECRET, Some(&any), Role::Cluster, "c7", false, 0),
            Ok("c7".into())
        );
    }

    #[test]
    fn unknown_forged_used_expired_misdirected_and_squatting_joins_are_refused() {
        let ok = record(Some("c0"), 100, false);
        let admit = |record: Option<&TokenRecord>, secret: &str, role, name: &str, taken, now| {
            admit("abcdef", secret, record, role, name, taken, now)
        };
        assert!(matches!(
            admit(None, SECRET, Role::Cluster, "c0", false, 0),
            Err(Refusal::Unknown(_))
        ));
        assert!(matches!(
            admit(Some(&ok), "ffffffffffffffff", Role::Cluster, "c0", false, 0),
            Err(Refusal::Forged(_))
        ));
        let used = record(Some("c0"), 100, true);
        assert!(matches!(
            admit(Some(&used), SECRET, Role::Cluster, "c0", false, 0),
            Err(Refusal::Used(_))
        ));
        assert!(matches!(
            admit(Some(&ok), SECRET, Role::Cluster, "c0", false, 100),
            Err(Refusal::Expired(_))
        ));
        assert!(matches!(
            admit(Some(&ok), SECRET, Role::Node, "c0", false, 0),
            Err(Refusal::WrongRole { .. })
        ));
        assert!(matches!(
            admit(Some(&ok), SECRET, Role::Cluster, "c1", false, 0),
            Err(Refusal::WrongName { .. })
        ));
        assert!(matches!(
            admit(Some(&ok), SECRET, Role::Cluster, "c0", true, 0),
            Err(Refusal::NameTaken(_))
        ));
        let any = record(None, 100, false);
        assert!(matches!(
            admit(Some(&any), SECRET, Role::Cluster, "Bad Name", false, 0),
            Err(Refusal::BadName(_))
        ));
    }
}
