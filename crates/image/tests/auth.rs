//! Registries with htpasswd auth: wrong or missing credentials are refused with a clear error
//! that never carries the password; the right ones pull.

mod support;

use canopy_image::{Credentials, ImageError, PullProgress};
use support::{Options, Registry};

const USER: &str = "canopy";
const PASSWORD: &str = "s3cret-Pa55word";

fn quiet(_: PullProgress) {}

#[tokio::test]
async fn auth_failures_are_clear_and_do_not_leak_the_password() {
    let reg = Registry::start(Options {
        push_as: vec!["private"],
        auth: Some((USER, PASSWORD)),
        tls: false,
    });
    let cache = tempfile::tempdir().unwrap();
    let store = reg.store(cache.path());
    let reference = reg.reference("private");

    let err = store.pull(&reference, None, &quiet).await.unwrap_err();
    assert!(
        matches!(err, ImageError::AuthFailed { .. }),
        "anonymous: {err:?}"
    );

    let wrong = Credentials::new(USER, "wrong-password-123");
    let err = store
        .pull(&reference, Some(&wrong), &quiet)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ImageError::AuthFailed { .. }),
        "wrong password: {err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("authentication to {} failed", reg.addr())
    );
    assert!(!format!("{err} {err:?}").contains("wrong-password-123"));
    assert!(!format!("{wrong:?}").contains("wrong-password-123"));

    // The same store, right after a failure: the good credentials are used, not the old ones.
    let right = Credentials::new(USER, PASSWORD);
    let image = store
        .pull(&reference, Some(&right), &quiet)
        .await
        .expect("pull with credentials");
    assert_eq!(image.layers.len(), 1);
    assert!(!reg.log().contains(PASSWORD));
}
