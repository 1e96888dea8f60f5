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

/// Joins spent together in one commit are judged one by one: a forged token, a name asked
/// twice and a bad request are refused with their own reasons, the others admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_spent_together_are_refused_each_for_its_own_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (enrolment, token) = enrolment_with_token(dir.path(), 10).await;
    let (id, _) = tokens::parse(&token).unwrap();
    let forged = format!("{id}.{}", "0".repeat(16));
    let now = OffsetDateTime::now_utc();
    let asks: Vec<(String, String, Vec<u8>)> = (0..12)
        .map(|i| match i {
            3 => (forged.clone(), "forger".to_string(), request("forger")),
            // The same name twice: one of the two joins.
            5 | 6 => (token.clone(), "twin".to_string(), request("twin")),
            8 => (
                token.clone(),
                "garbled".to_string(),
                b"not a request".to_vec(),
            ),
            i => (token.clone(), format!("n{i}"), request(&format!("n{i}"))),
        })
        .collect();
    let joins = asks.into_iter().map(|(token, name, csr)| {
        let enrolment = enrolment.clone();
        tokio::spawn(async move {
            (
                name.clone(),
                enrolment.join(&token, &name, &csr, &[], now).await,
            )
        })
    });
    let results: Vec<_> = join_all(joins)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let outcome = |name: &str| -> Vec<&Result<pb::Certified, TrustError>> {
        results
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, r)| r)
            .collect()
    };
    assert!(
        matches!(
            outcome("forger")[..],
            [Err(TrustError::Refused(tokens::Refusal::Forged(_)))]
        ),
        "{:?}",
        outcome("forger")
    );
    let twins = outcome("twin");
    assert_eq!(twins.iter().filter(|r| r.is_ok()).count(), 1, "{twins:?}");
    assert!(
        twins
            .iter()
            .any(|r| matches!(r, Err(TrustError::Refused(tokens::Refusal::NameTaken(_))))),
        "{twins:?}"
    );
    assert!(
        matches!(outcome("garbled")[..], [Err(TrustError::Certificate(_))]),
        "{:?}",
        outcome("garbled")
    );
    for i in [0, 1, 2, 4, 7, 9, 10, 11] {
        let name = format!("n{i}");
        assert!(
            matches!(outcome(&name)[..], [Ok(c)] if c.name == name),
            "{name}: {:?}",
            outcome(&name)
        );
    }
    // Nine admitted of ten uses: one is left.
    let last = enrolment
        .join(&token, "last", &request("last"), &[], now)
        .await;
    assert_eq!(last.unwrap().name, "last");
    let over = enrolment
        .join(&token, "over", &request("over"), &[], now)
        .await;
    assert!(
        matches!(over, Err(TrustError::Refused(tokens::Refusal::Used(_)))),
        "{over:?}"
    );
}
