//! Joins with tokens against a real store: a token of several uses admits exactly that many
//! joins when they race each other (a fleet booting), and then refuses with a reason.

use canopy_store::{RedbStore, Store};
use canopy_tier::pb;
use canopy_tier::trust::{Enrolment, Role, TrustError, tokens};
use futures::future::join_all;
use rcgen::{CertificateParams, DnType, KeyPair};
use std::sync::Arc;
use time::OffsetDateTime;

fn request(name: &str) -> Vec<u8> {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.serialize_request(&key).unwrap().der().to_vec()
}

/// A cluster's enrolment holding a node token of `uses` joins, and the token.
async fn enrolment_with_token(dir: &std::path::Path, uses: u32) -> (Arc<Enrolment>, String) {
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(dir.join("store.redb")).unwrap());
    let enrolment = Enrolment::open(store, "/trust/nodes/", "c0", Role::Node)
        .await
        .unwrap();
    let fresh = tokens::Fresh::generate();
    let expires = OffsetDateTime::now_utc() + time::Duration::hours(1);
    enrolment
        .keep_token(&pb::NodeToken {
            request: 0,
            id: fresh.id.clone(),
            secret_sha256: tokens::secret_hash(&fresh.secret),
            name: String::new(),
            expires_unix: expires.unix_timestamp(),
            extra_uses: uses - 1,
        })
        .await
        .unwrap();
    (enrolment, fresh.token())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_joins_spend_a_token_of_several_uses_exactly_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let (uses, joiners) = (24, 40);
    let (enrolment, token) = enrolment_with_token(dir.path(), uses).await;
    let now = OffsetDateTime::now_utc();
    let joins = (0..joiners).map(|i| {
        let (enrolment, token) = (enrolment.clone(), token.clone());
        tokio::spawn(async move {
            let name = format!("n{i}");
            let csr = request(&name);
            enrolment.join(&token, &name, &csr, &[], now).await
        })
    });
    let results: Vec<_> = join_all(joins)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let admitted: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(admitted.len(), uses as usize, "each use admits one join");
    let mut names: Vec<_> = admitted.iter().map(|c| c.name.clone()).collect();
    names.sort();
    names.dedup();
    assert_eq!(
        names.len(),
        uses as usize,
        "each admitted join has its own name"
    );
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            matches!(refused, TrustError::Refused(tokens::Refusal::Used(_))),
            "a join past the token's uses is refused as used: {refused}"
        );
    }
}

#[tokio::test]
async fn a_name_joins_once_while_its_certificate_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let (enrolment, token) = enrolment_with_token(dir.path(), 3).await;
    let now = OffsetDateTime::now_utc();
    let first = enrolment.join(&token, "n0", &request("n0"), &[], now).await;
    assert_eq!(first.unwrap().name, "n0");
    let again = enrolment.join(&token, "n0", &request("n0"), &[], now).await;
    assert!(
        matches!(
            again,
            Err(TrustError::Refused(tokens::Refusal::NameTaken(_)))
        ),
        "{again:?}"
    );
}
