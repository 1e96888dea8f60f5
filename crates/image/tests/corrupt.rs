//! A registry serving a blob whose content does not match its digest: the pull fails with
//! DigestMismatch and the cache keeps nothing of it.

mod support;

use std::io::{Read, Seek, SeekFrom, Write};

use canopy_image::{ImageError, PullProgress};
use support::{Options, Registry, list};

fn quiet(_: PullProgress) {}

#[tokio::test]
async fn corrupt_blob_is_rejected_and_not_kept() {
    // A registry of its own: its storage is about to be damaged.
    let reg = Registry::start(Options {
        push_as: vec!["busybox"],
        auth: None,
        tls: false,
    });
    // The biggest blob is the busybox layer; flip bytes in its middle, same length.
    let blobs = reg.data().join("blobs/sha256");
    let mut biggest: Option<(u64, std::path::PathBuf)> = None;
    for prefix in std::fs::read_dir(&blobs).unwrap() {
        for blob in std::fs::read_dir(prefix.unwrap().path()).unwrap() {
            let data = blob.unwrap().path().join("data");
            let len = std::fs::metadata(&data).unwrap().len();
            if biggest.as_ref().is_none_or(|(l, _)| len > *l) {
                biggest = Some((len, data));
            }
        }
    }
    let (len, data) = biggest.expect("a blob");
    let digest = format!(
        "sha256:{}",
        data.parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
    );
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&data)
        .unwrap();
    let mut buf = [0u8; 16];
    file.seek(SeekFrom::Start(len / 2)).unwrap();
    file.read_exact(&mut buf).unwrap();
    for b in &mut buf {
        *b ^= 0xff;
    }
    file.seek(SeekFrom::Start(len / 2)).unwrap();
    file.write_all(&buf).unwrap();
    drop(file);

    let cache = tempfile::tempdir().unwrap();
    let store = reg.store(cache.path());
    let err = store
        .pull(&reg.reference("busybox"), None, &quiet)
        .await
        .unwrap_err();
    match &err {
        ImageError::DigestMismatch {
            expected, actual, ..
        } => {
            assert!(expected.contains(&digest), "{err}");
            assert!(
                actual.starts_with("sha256:") && !actual.contains(&digest),
                "{err}"
            );
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
    let kept = list(&cache.path().join("blobs/sha256"));
    let hex = digest.trim_start_matches("sha256:").to_string();
    assert!(
        !kept.contains(&hex),
        "the corrupt blob is not cached: {kept:?}"
    );
    assert!(
        list(&cache.path().join("tmp")).is_empty(),
        "no partial download left"
    );
    assert!(list(&cache.path().join("manifests")).is_empty());
    assert!(list(&cache.path().join("refs")).is_empty());
}
