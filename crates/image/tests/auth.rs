//! Registries with htpasswd auth: wrong or missing credentials are refused with a clear error
//! that never carries the password; the right ones pull.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use canopy_image::{Credentials, ImageError, PullProgress};
use support::{Options, Registry};

const USER: &str = "canopy";
const PASSWORD: &str = "s3cret-Pa55word";
const WRONG: &str = "wrong-password-123";

fn quiet(_: PullProgress) {}

/// Everything every subscriber writer wrote, across threads (pulls unpack on blocking threads).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Base64 of `user:password`, as in an `Authorization: Basic` header: a logged header leaks
/// the password too.
fn basic(user: &str, password: &str) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ABC[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    while !out.len().is_multiple_of(4) {
        out.push('=');
    }
    out
}

#[test]
fn basic_matches_rfc_4648() {
    assert_eq!(
        basic("Aladdin", "open sesame"),
        "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    );
}

#[tokio::test]
async fn auth_failures_are_clear_and_do_not_leak_the_password() {
    // Everything at trace level, Canopy's and its libraries' (log records too), for the
    // whole process: this binary's only registry test.
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init()
        .expect("install the capturing subscriber");

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

    let wrong = Credentials::new(USER, WRONG);
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
    let mut shown = format!("{err} {err:?} {wrong:?}");

    // The same store, right after a failure: the good credentials are used, not the old ones.
    let right = Credentials::new(USER, PASSWORD);
    let image = store
        .pull(&reference, Some(&right), &quiet)
        .await
        .expect("pull with credentials");
    assert_eq!(image.layers.len(), 1);
    shown.push_str(&format!("{image:?} {right:?}"));
    // And once more with the right password on a repository that does not exist: an error
    // after a successful login.
    let missing = store
        .pull(&reg.reference("nothing-here"), Some(&right), &quiet)
        .await
        .unwrap_err();
    shown.push_str(&format!("{missing} {missing:?}"));

    let logs = logs.text();
    assert!(
        logs.contains("canopy_image") || logs.contains("oci_client"),
        "the subscriber captured nothing from the pull:\n{logs}"
    );
    eprintln!("captured {} bytes of logs", logs.len());
    for secret in [
        PASSWORD.to_string(),
        WRONG.to_string(),
        basic(USER, PASSWORD),
        basic(USER, WRONG),
    ] {
        assert!(!logs.contains(&secret), "logs leak {secret:?}");
        assert!(
            !shown.contains(&secret),
            "errors or Debug leak {secret:?}: {shown}"
        );
    }
}
