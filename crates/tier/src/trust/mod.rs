//! Who may link. Each parent (the root over its clusters, a cluster over its nodes) is a
//! small certificate authority: an admin creates a one-time join token, the child presents
//! it once over TLS (pinning the parent's CA by the hash the token came with), receives a
//! certificate for its name, and from then on links with mutual TLS. The name a parent sees
//! is the certificate's, never the hello's.
//!
//! - [`Authority`]: the CA (issue a certificate for a CSR).
//! - [`tokens`]: the pure rules of join tokens.
//! - [`Enrolment`]: tokens, members and revocations kept in the parent's store; the `Join`
//!   service ([`JoinService`]).
//! - [`Identity`]: a child's key and certificate on disk; [`enrol`] joins once, then reuses it.
//! - [`listener`]: the parent's tier listener, where only a valid client certificate reaches
//!   the tier protocol.

mod authority;
mod certs;
mod delegation;
mod dial;
mod enrolment;
mod identity;
mod join_group;
pub mod listener;
mod service;
pub mod tokens;
mod verify;

pub use authority::{Authority, Issued};
pub use certs::{Peer, spki_hash};
pub use dial::connect;
pub use enrolment::{CreatedToken, Enrolment};
pub use identity::{Identity, enrol, join, joining_config, member_authority};
pub use service::JoinService;
pub use tokens::{Refusal, Role};

use std::sync::Arc;

/// The name every parent's tier certificate carries and every child checks, whatever
/// address it dialled: the pinned CA, not the host name, says who the parent is (children
/// dial parents behind NAT, by IP, through tunnels).
pub const PARENT_SERVER_NAME: &str = "canopy-parent";

/// The one crypto provider of the workspace (BLUEPRINT §11), passed explicitly so that
/// libraries and tests do not depend on a process-wide default.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("store: {0}")]
    Store(#[from] canopy_store::StoreError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("join refused: {0}")]
    Refused(#[from] Refusal),
    #[error("the parent refused: {0}")]
    ParentRefused(String),
    #[error("cannot reach the parent at {address}: {reason}")]
    Connect { address: String, reason: String },
    #[error("{0} is not a member (it holds no certificate)")]
    NotMember(String),
    #[error(
        "{0} has no certificate yet: give it a join token and the CA hash (`canopy token create`)"
    )]
    NotJoined(String),
    /// Nothing was refused, but the call could not complete now (may be tried again).
    #[error("busy: {0}")]
    Busy(String),
}

impl From<rcgen::Error> for TrustError {
    fn from(e: rcgen::Error) -> Self {
        TrustError::Certificate(e.to_string())
    }
}

impl TrustError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> TrustError {
        TrustError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// [`chain`] for errors the child's session reports.
pub(crate) fn chain_text(error: &tonic::transport::Error) -> String {
    chain(error)
}

/// An error with its sources, for messages that must say why (a TLS alert inside a
/// transport error inside a status).
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let next = e.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = e.source();
    }
    text
}
