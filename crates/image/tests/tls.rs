//! A registry over HTTPS with a private CA: trusted when the CA is configured, refused
//! otherwise (and never downgraded to plain HTTP).

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use canopy_image::{ImageError, ImageStore, ImageStoreConfig, PullProgress};
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

/// What one connection to the plain-HTTP listener began with.
#[derive(Debug, Clone, PartialEq)]
enum Opening {
    Http(String),
    TlsHello,
    Other(Vec<u8>),
}

const METHODS: [&str; 7] = [
    "GET ", "HEAD ", "POST ", "PUT ", "PATCH ", "DELETE ", "OPTIONS ",
];

/// A registry port that speaks only plain HTTP: records how each connection opens, answers
/// HTTP requests as a registry would (200 to `/v2/`) and anything else with a plain 400.
struct PlainHttp {
    addr: String,
    accepted: Arc<AtomicUsize>,
    openings: Arc<Mutex<Vec<Opening>>>,
}

impl PlainHttp {
    fn start() -> PlainHttp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let openings = Arc::new(Mutex::new(Vec::new()));
        let (count, record) = (accepted.clone(), openings.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let record = record.clone();
                std::thread::spawn(move || {
                    stream
                        .set_read_timeout(Some(Duration::from_secs(5)))
                        .unwrap();
                    let mut buf = [0u8; 512];
                    let n = stream.read(&mut buf).unwrap_or(0);
                    let head = &buf[..n];
                    let text = String::from_utf8_lossy(head);
                    let opening = if METHODS.iter().any(|m| text.starts_with(m)) {
                        Opening::Http(text.lines().next().unwrap_or_default().to_string())
                    } else if head.first() == Some(&0x16) {
                        Opening::TlsHello
                    } else {
                        Opening::Other(head.to_vec())
                    };
                    let http = matches!(opening, Opening::Http(_));
                    record.lock().unwrap().push(opening);
                    let answer: &[u8] = if http {
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                          Docker-Distribution-Api-Version: registry/2.0\r\n\
                          Content-Length: 2\r\nConnection: close\r\n\r\n{}"
                    } else {
                        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    };
                    let _ = stream.write_all(answer);
                });
            }
        });
        PlainHttp {
            addr,
            accepted,
            openings,
        }
    }

    /// The openings of every accepted connection, once each has been read.
    async fn openings(&self) -> Vec<Opening> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let openings = self.openings.lock().unwrap().clone();
            if openings.len() >= self.accepted.load(Ordering::SeqCst) {
                return openings;
            }
            assert!(Instant::now() < deadline, "a connection was never read");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test]
async fn https_is_never_downgraded_to_plain_http() {
    let server = PlainHttp::start();
    let cache = tempfile::tempdir().unwrap();
    // Not listed insecure, no CA needed to get as far as the handshake.
    let mut config = ImageStoreConfig::new(cache.path());
    config.timeout = Duration::from_secs(5);
    let store = ImageStore::open(config).unwrap();
    let err = store
        .pull(&format!("{}/busybox:latest", server.addr), None, &quiet)
        .await
        .unwrap_err();
    eprintln!("https to a plain-HTTP port: {err}");
    assert!(matches!(err, ImageError::Unreachable { .. }), "{err:?}");
    // rustls meeting a plain-HTTP answer: "received corrupt message of type InvalidContentType".
    let reason = format!("{err:?}").to_ascii_lowercase();
    assert!(
        [
            "tls",
            "ssl",
            "handshake",
            "corrupt message",
            "invalidcontenttype"
        ]
        .iter()
        .any(|w| reason.contains(w)),
        "not a TLS error: {err:?}"
    );
    // And it says what to do about it.
    assert!(
        err.to_string()
            .contains(&format!("--insecure-registry {}", server.addr)),
        "no hint: {err}"
    );

    let openings = server.openings().await;
    assert!(
        openings.contains(&Opening::TlsHello),
        "the client never tried TLS: {openings:?}"
    );
    assert!(
        openings.iter().all(|o| *o == Opening::TlsHello),
        "the client fell back to something else than TLS: {openings:?}"
    );
}
