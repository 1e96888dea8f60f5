//! A registry over HTTPS with a private CA: trusted when the CA is configured, refused
//! otherwise (and never downgraded to plain HTTP).

mod support;

use canopy_image::{ImageError, ImageStore, PullProgress};
use support::{Options, Registry};

fn quiet(_: PullProgress) {}

#[tokio::test]
async fn https_registry_with_private_ca() {
    let reg = Registry::start(Options {
        push_as: vec!["busybox"],
        auth: None,
        tls: true,
    });
    let reference = reg.reference("busybox");

    let cache = tempfile::tempdir().unwrap();
    let mut untrusted = reg.store_config(cache.path());
    untrusted.ca_certificates.clear();
    let err = ImageStore::open(untrusted)
        .unwrap()
        .pull(&reference, None, &quiet)
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::Unreachable { .. }), "{err:?}");
    eprintln!("untrusted certificate: {err}");

    let image = reg
        .store(cache.path())
        .pull(&reference, None, &quiet)
        .await
        .expect("pull over https");
    assert_eq!(
        image.digest,
        reg.manifest_digest_tls("busybox", "latest").await
    );
}
