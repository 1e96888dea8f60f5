//! Pulls, cache, platforms, root filesystems and gc against a real registry on loopback.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::sync::Mutex;

use canopy_image::{ImageError, PullProgress, RootfsMode};
use support::{Registry, list, sha256_file};

fn quiet(_: PullProgress) {}

#[tokio::test]
async fn pull_busybox_verifies_digests_and_returns_config() {
    let reg = Registry::shared();
    let cache = tempfile::tempdir().unwrap();
    let store = reg.store(cache.path());
    let started = std::time::Instant::now();
    let image = store
        .pull(&reg.reference("busybox"), None, &quiet)
        .await
        .expect("pull");
    eprintln!(
        "cold pull of busybox: {:?} ({} bytes)",
        started.elapsed(),
        image.size
    );

    assert_eq!(image.digest, reg.manifest_digest("busybox", "latest").await);
    assert_eq!(image.index_digest, None);
    assert_eq!(image.layers.len(), 1);
    for layer in &image.layers {
        let hex = layer.strip_prefix("sha256:").unwrap();
        let path = cache.path().join("blobs/sha256").join(hex);
        assert_eq!(
            &sha256_file(&path),
            layer,
            "blob content matches its digest"
        );
    }
    assert_eq!(image.config.cmd, vec!["sh"]);
    assert!(image.config.env.contains(&"PATH=/bin".to_string()));
    assert_eq!(image.config.exposed_ports, vec!["8080/tcp"]);
    assert_eq!(image.config.working_dir.as_deref(), Some("/"));
    assert_eq!(
        image.config.labels.get("canopy.test").map(String::as_str),
        Some("busybox")
    );
    assert!(
        list(&cache.path().join("tmp")).is_empty(),
        "no temp files left"
    );

    // The cache answers without the network.
    let cached = store.cached(&reg.reference("busybox")).await.unwrap();
    assert_eq!(cached.as_ref(), Some(&image));
}

#[tokio::test]
async fn second_pull_is_a_cache_hit() {
    let reg = Registry::shared();
    let cache = tempfile::tempdir().unwrap();
    let store = reg.store(cache.path());
    let reference = reg.reference("cachehit");
    let first = store.pull(&reference, None, &quiet).await.unwrap();
    let fetched = reg.blob_gets("cachehit").await;
    assert_eq!(
        fetched,
        1 + first.layers.len(),
        "config and layers fetched once"
    );

    let events = Mutex::new(Vec::new());
    let record = |p: PullProgress| events.lock().unwrap().push(p);
    let second = store.pull(&reference, None, &record).await.unwrap();
    assert_eq!(second, first);
    assert_eq!(
        reg.blob_gets("cachehit").await,
        fetched,
        "no blob fetched again"
    );
    let events = events.into_inner().unwrap();
    let layers: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            PullProgress::Layer { cached, .. } => Some(*cached),
            _ => None,
        })
        .collect();
    assert_eq!(layers, vec![true; first.layers.len()], "{events:?}");
    assert!(matches!(
        events.last(),
        Some(PullProgress::Done { cached: true, .. })
    ));
}

#[tokio::test]
async fn pull_by_cached_digest_needs_no_request() {
    let reg = Registry::shared();
    let cache = tempfile::tempdir().unwrap();
    let store = reg.store(cache.path());
    let digest = reg.manifest_digest("bydigest", "latest").await;
    let by_digest = format!("{}/bydigest@{digest}", reg.addr());
    let first = store.pull(&by_digest, None, &quiet).await.unwrap();
    assert_eq!(first.digest, digest);
    let manifests = reg.manifest_gets("bydigest").await;
    let blobs = reg.blob_gets("bydigest").await;
    let again = store.pull(&by_digest, None, &quiet).await.unwrap();
    assert_eq!(again.digest, digest);
    assert_eq!(reg.manifest_gets("bydigest").await, manifests);
    assert_eq!(reg.blob_gets("bydigest").await, blobs);
}

#[tokio::test]
async fn concurrent_pulls_fetch_each_blob_once() {
    let reg = Registry::shared();
    let cache = tempfile::tempdir().unwrap();
    let store = reg.store(cache.path());
    let reference = reg.reference("concurrent");
    let counts: Vec<Mutex<usize>> = (0..5).map(|_| Mutex::new(0)).collect();
    let pulls = counts.iter().map(|count| {
        let store = store.clone();
        let reference = reference.clone();
        async move {
            let progress = |_: PullProgress| *count.lock().unwrap() += 1;
            store.pull(&reference, None, &progress).await
        }
    });
    let results = futures::future::join_all(pulls).await;
    let first = results[0].as_ref().unwrap().clone();
    for r in &results {
        assert_eq!(r.as_ref().unwrap(), &first);
    }
    assert_eq!(
        reg.blob_gets("concurrent").await,
        1 + first.layers.len(),
        "one fetch of each blob for five pulls"
    );
    for count in &counts {
        assert!(*count.lock().unwrap() > 0, "every caller hears progress");
    }
}

#[tokio::test]
async fn missing_image_and_tag_are_not_found() {
    let reg = Registry::shared();
    let cache = tempfile::tempdir().unwrap();
    let store = reg.store(cache.path());
    for reference in [
        reg.reference("nosuchimage"),
        format!("{}/busybox:nosuchtag", reg.addr()),
    ] {
        let err = store.pull(&reference, None, &quiet).await.unwrap_err();
        assert!(matches!(err, ImageError::NotFound { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&reference), "{text}");
        assert!(text.contains(&reg.addr()), "{text}");
    }
}

#[tokio::test]
async fn invalid_reference_and_unreachable_registry() {
    let cache = tempfile::tempdir().unwrap();
    let mut config = canopy_image::ImageStoreConfig::new(cache.path());
    config.insecure_registries = vec!["127.0.0.1:1".to_string()];
    config.timeout = std::time::Duration::from_secs(5);
    let store = canopy_image::ImageStore::open(config).unwrap();
    let err = store
        .pull("Not A//Reference", None, &quiet)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ImageError::InvalidReference { .. }),
        "{err:?}"
    );
    let err = store
        .pull("127.0.0.1:1/x:latest", None, &quiet)
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
}

#[tokio::test]
async fn multi_arch_index_resolves_to_this_host() {
    let reg = Registry::shared();
    let cache = tempfile::tempdir().unwrap();
    let store = reg.store(cache.path());
    let image = store
        .pull(&reg.reference("multi"), None, &quiet)
        .await
        .unwrap();
    assert_eq!(image.digest, reg.manifest_digest("busybox", "latest").await);
    assert_eq!(
        image.index_digest.as_deref(),
        Some(reg.manifest_digest("multi", "latest").await.as_str())
    );

    let err = store
        .pull(&reg.reference("foreign"), None, &quiet)
        .await
        .unwrap_err();
    match &err {
        ImageError::UnsupportedPlatform {
            wanted, available, ..
        } => {
            assert_eq!(wanted, &canopy_image::Platform::host().to_string());
            assert_eq!(
                available,
                &vec!["linux/s390x".to_string(), "linux/ppc64le".to_string()]
            );
        }
        other => panic!("expected UnsupportedPlatform, got {other:?}"),
    }
    assert!(err.to_string().contains("linux/s390x"), "{err}");
}

fn check_layered_rootfs(rootfs: &std::path::Path) {
    assert!(
        !rootfs.join("data/gone.txt").exists(),
        "whiteout deleted gone.txt"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("data/keep.txt")).unwrap(),
        "keep\n"
    );
    assert_eq!(
        list(&rootfs.join("opaque")),
        vec!["new"],
        "opaque dir hides lower content"
    );
    assert_eq!(
        std::fs::read_link(rootfs.join("bin/sh")).unwrap().to_str(),
        Some("busybox")
    );
    let mode = std::fs::metadata(rootfs.join("bin/busybox"))
        .unwrap()
        .permissions()
        .mode();
    assert_ne!(mode & 0o111, 0, "busybox is executable");
    // The root filesystem really runs: busybox from it answers.
    let out = std::process::Command::new(rootfs.join("bin/busybox"))
        .args(["echo", "hello"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
}

#[tokio::test]
async fn copy_rootfs_applies_whiteouts_and_opaque_dirs() {
    let reg = Registry::shared();
    let cache = tempfile::tempdir().unwrap();
    let store = reg.store_with_mode(cache.path(), RootfsMode::Copy);
    let image = store
        .pull(&reg.reference("layered"), None, &quiet)
        .await
        .unwrap();
    assert_eq!(image.layers.len(), 3);
    let dest = cache.path().join("instances/a");
    let started = std::time::Instant::now();
    let rootfs = store.create_rootfs(&image, &dest).await.unwrap();
    eprintln!("copy rootfs of 3 layers: {:?}", started.elapsed());
    assert!(!rootfs.overlay);
    check_layered_rootfs(&rootfs.path);
    assert!(
        list(&cache.path().join("layers")).is_empty(),
        "copies need no unpacked layers"
    );
    store.remove_rootfs(&dest).await.unwrap();
    assert!(!dest.exists());
    store.remove_rootfs(&dest).await.unwrap();
}

/// Unmounts on drop, so a failing test leaves no mount behind.
struct Unmount(canopy_image::ImageStore, std::path::PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let (store, dest) = (self.0.clone(), self.1.clone());
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(store.remove_rootfs(&dest))
        })
        .join();
    }
}

#[tokio::test]
async fn overlay_rootfs_applies_whiteouts_and_shares_layers() {
    let reg = Registry::shared();
    let cache = tempfile::tempdir().unwrap();
    let store = reg.store_with_mode(cache.path(), RootfsMode::Auto);
    // Overlay is optional in production (Auto falls back to copies), but wherever the kernel
    // has it and we are root it must work: a broken probe or mount would otherwise hide
    // behind the fallback.
    assert!(
        rustix::process::geteuid().is_root(),
        "needs root to mount overlays (CI runs as root)"
    );
    let kernel_has_overlay = std::fs::read_to_string("/proc/filesystems")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"));
    assert!(kernel_has_overlay, "no overlay in /proc/filesystems");
    assert!(
        store.overlay_supported().await,
        "root and a kernel with overlayfs, yet the store's overlay probe fails in {} \
         (its reason is logged at info)",
        cache.path().display()
    );
    let image = store
        .pull(&reg.reference("layered"), None, &quiet)
        .await
        .unwrap();
    let (a, b) = (
        cache.path().join("instances/a"),
        cache.path().join("instances/b"),
    );
    let _ga = Unmount(store.clone(), a.clone());
    let _gb = Unmount(store.clone(), b.clone());
    let started = std::time::Instant::now();
    let ra = store.create_rootfs(&image, &a).await.unwrap();
    eprintln!(
        "first overlay rootfs (unpacks 3 layers): {:?}",
        started.elapsed()
    );
    let started = std::time::Instant::now();
    let rb = store.create_rootfs(&image, &b).await.unwrap();
    eprintln!("second overlay rootfs: {:?}", started.elapsed());
    assert!(ra.overlay && rb.overlay);
    check_layered_rootfs(&ra.path);
    check_layered_rootfs(&rb.path);
    assert_eq!(
        list(&cache.path().join("layers")).len(),
        3,
        "one unpack per layer"
    );

    // Writes stay in the instance.
    std::fs::write(ra.path.join("data/keep.txt"), "changed").unwrap();
    std::fs::remove_file(ra.path.join("bin/ls")).unwrap();
    assert_eq!(
        std::fs::read_to_string(rb.path.join("data/keep.txt")).unwrap(),
        "keep\n"
    );
    assert!(rb.path.join("bin/ls").exists());

    let err = store.create_rootfs(&image, &a).await.unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");

    store.remove_rootfs(&a).await.unwrap();
    store.remove_rootfs(&a).await.unwrap();
    assert!(!a.exists());
    check_layered_rootfs(&rb.path);

    // The caller's own files beside the rootfs (an OCI bundle's config.json) are kept.
    std::fs::write(b.join("config.json"), "{}").unwrap();
    store.remove_rootfs(&b).await.unwrap();
    assert_eq!(list(&b), vec!["config.json"]);
}

#[tokio::test]
async fn gc_keeps_used_images_and_live_rootfs_layers() {
    let reg = Registry::shared();
    let cache = tempfile::tempdir().unwrap();
    let store = reg.store_with_mode(cache.path(), RootfsMode::Auto);
    let busybox = store
        .pull(&reg.reference("gcbusy"), None, &quiet)
        .await
        .unwrap();
    let layered = store
        .pull(&reg.reference("layered"), None, &quiet)
        .await
        .unwrap();
    let blobs = cache.path().join("blobs/sha256");
    assert_eq!(
        list(&blobs).len(),
        2 + 3,
        "two configs, the shared busybox layer, two more"
    );

    let overlay = store.overlay_supported().await;
    let dest = cache.path().join("instances/x");
    let _guard = Unmount(store.clone(), dest.clone());
    if overlay {
        // A live overlay rootfs of `layered` pins it even when nobody lists it.
        store.create_rootfs(&layered, &dest).await.unwrap();
        let report = store.gc(&[reg.reference("gcbusy")]).await.unwrap();
        assert_eq!(report.images_removed, 0, "{report:?}");
        assert_eq!(list(&blobs).len(), 5);
        assert_eq!(list(&cache.path().join("layers")).len(), 3);
        check_layered_rootfs(&dest.join("rootfs"));
        store.remove_rootfs(&dest).await.unwrap();
    } else {
        // overlay_rootfs_applies_whiteouts_and_shares_layers fails where this should not be.
        eprintln!("gc: the live-overlay part is skipped: overlayfs is not usable here");
    }

    let report = store.gc(&[reg.reference("gcbusy")]).await.unwrap();
    assert_eq!(report.images_removed, 1, "{report:?}");
    assert_eq!(report.blobs_removed, 3, "{report:?}");
    assert!(report.bytes_freed > 0);
    let mut kept = list(&blobs);
    let mut want: Vec<String> = busybox
        .layers
        .iter()
        .map(|d| d.trim_start_matches("sha256:").to_string())
        .collect();
    let config_count = kept.len() - want.len();
    assert_eq!(config_count, 1, "busybox's config stays");
    kept.retain(|k| want.contains(k));
    want.sort();
    assert_eq!(kept, want);
    // Unpacked layers of the kept image may stay (the shared busybox layer); layered's go.
    for unpacked in list(&cache.path().join("layers")) {
        assert!(
            want.contains(&unpacked),
            "{unpacked} should have been collected"
        );
    }
    assert_eq!(store.cached(&reg.reference("layered")).await.unwrap(), None);
    assert!(
        store
            .cached(&reg.reference("gcbusy"))
            .await
            .unwrap()
            .is_some()
    );

    // Keeping by digest works too; keeping nothing empties the cache.
    let report = store
        .gc(std::slice::from_ref(&busybox.digest))
        .await
        .unwrap();
    assert_eq!(report.images_removed, 0);
    let report = store.gc(&[]).await.unwrap();
    assert_eq!(report.images_removed, 1);
    assert!(list(&blobs).is_empty());
    assert!(list(&cache.path().join("layers")).is_empty());
}

#[tokio::test]
async fn silent_registry_times_out() {
    // Accepts every connection and never answers: connecting succeeds, so only the timeout
    // can end the pull.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let holder = held.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            holder.lock().unwrap().push(stream);
        }
    });
    let cache = tempfile::tempdir().unwrap();
    let mut config = canopy_image::ImageStoreConfig::new(cache.path());
    config.insecure_registries = vec![addr.clone()];
    config.timeout = std::time::Duration::from_secs(1);
    let store = canopy_image::ImageStore::open(config).unwrap();
    let started = std::time::Instant::now();
    let err = store
        .pull(&format!("{addr}/x:latest"), None, &quiet)
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(err, ImageError::Timeout { seconds, .. } if seconds == 1.0),
        "{err:?}"
    );
    assert!(took >= std::time::Duration::from_secs(1), "{took:?}");
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    assert!(
        !held.lock().unwrap().is_empty(),
        "the pull never connected, so this tested nothing"
    );
    eprintln!("silent registry: {err} after {took:?}");
}

/// Answers `/v2/` and a manifest whose config blob claims 100 MiB; the blob's answer sends
/// its headers and a few bytes, then nothing, holding the connection open.
fn stalling_registry() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                loop {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match stream.read(&mut byte) {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                    let big = 100u64 << 20;
                    let digest = format!("sha256:{}", "ab".repeat(32));
                    let (content_type, body) = if path.contains("/manifests/") {
                        let manifest = serde_json::json!({
                            "schemaVersion": 2,
                            "mediaType": "application/vnd.oci.image.manifest.v1+json",
                            "config": {
                                "mediaType": "application/vnd.oci.image.config.v1+json",
                                "digest": digest,
                                "size": big,
                            },
                            "layers": [],
                        });
                        (
                            "application/vnd.oci.image.manifest.v1+json",
                            manifest.to_string(),
                        )
                    } else if path.contains("/blobs/") {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                             Content-Length: {big}\r\n\r\n0123456789abcdef"
                        );
                        let _ = stream.flush();
                        // Stall: keep the connection, send nothing more.
                        std::thread::sleep(std::time::Duration::from_secs(60));
                        return;
                    } else {
                        ("application/json", "{}".to_string())
                    };
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n\
                         Docker-Distribution-Api-Version: registry/2.0\r\n\
                         Content-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn stalled_blob_download_times_out() {
    // The blob's own deadline is long (it claims 100 MiB); the read timeout must end the
    // stall, and it is a timeout, not an unreachable registry: it was reached.
    let addr = stalling_registry();
    let cache = tempfile::tempdir().unwrap();
    let mut config = canopy_image::ImageStoreConfig::new(cache.path());
    config.insecure_registries = vec![addr.clone()];
    config.timeout = std::time::Duration::from_secs(1);
    let store = canopy_image::ImageStore::open(config).unwrap();
    let started = std::time::Instant::now();
    let err = store
        .pull(&format!("{addr}/x:latest"), None, &quiet)
        .await
        .unwrap_err();
    let took = started.elapsed();
    eprintln!("stalled blob: {err} after {took:?}");
    assert!(
        matches!(err, ImageError::Timeout { seconds, .. } if seconds == 1.0),
        "{err:?}"
    );
    assert!(took < std::time::Duration::from_secs(20), "{took:?}");
}

#[tokio::test]
async fn registries_not_listed_insecure_get_https() {
    // The registry speaks plain HTTP; without being listed insecure it is spoken to over TLS,
    // which fails cleanly (this also exercises the TLS client set-up).
    let reg = Registry::shared();
    let cache = tempfile::tempdir().unwrap();
    let mut config = reg.store_config(cache.path());
    config.insecure_registries.clear();
    let store = canopy_image::ImageStore::open(config).unwrap();
    let err = store
        .pull(&reg.reference("busybox"), None, &quiet)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::Unreachable { .. } | ImageError::Registry { .. }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains(&reg.addr()), "{err}");
    eprintln!("https to a plain-HTTP registry: {err}");
}
