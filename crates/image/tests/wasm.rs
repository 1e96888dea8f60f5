//! WebAssembly modules from a real registry: wasm OCI artifacts (both generations of media
//! types) and plain images holding a `.wasm` file, pushed here with oci-client, pulled and
//! found through the store, with their layer digests verified.

mod support;

use canopy_image::{ImageError, ImageStore, PullProgress, WasmModule};
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::path::Path;
use support::{Registry, sha256_file};

/// An empty but valid module: the store never looks inside, the runtime does.
const MODULE: &[u8] = b"\0asm\x01\0\0\0";

fn quiet(_: PullProgress) {}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

async fn push(reference: &str, layers: Vec<ImageLayer>, config: Config) {
    // oci-client's HTTP client wants a rustls provider even for plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let reference: Reference = reference.parse().expect("reference");
    client
        .push(&reference, &layers, config, &RegistryAuth::Anonymous, None)
        .await
        .expect("push");
}

/// A wasm artifact with the given config and layer media types.
async fn push_artifact(reg: &Registry, repo: &str, config: &str, layer: &str, module: &[u8]) {
    let config = Config::new(
        br#"{"architecture":"wasm","os":"wasip1","layerDigests":[]}"#.to_vec(),
        config.to_string(),
        None,
    );
    let layer = ImageLayer::new(module.to_vec(), layer.to_string(), None);
    push(&reg.reference(repo), vec![layer], config).await;
}

/// A tar layer of regular files (`path`, content); directories are implied.
fn tar_layer(files: &[(&str, &[u8])]) -> ImageLayer {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_path(path).expect("path");
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        builder.append(&header, *data).expect("append");
    }
    ImageLayer::oci_v1(builder.into_inner().expect("tar"), None)
}

async fn push_image(reg: &Registry, repo: &str, entrypoint: &[&str], layers: Vec<ImageLayer>) {
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": entrypoint, "WorkingDir": "/app"},
        "rootfs": {"type": "layers", "diff_ids": []},
    });
    let config = Config::oci_v1(serde_json::to_vec(&config).expect("config"), None);
    push(&reg.reference(repo), layers, config).await;
}

async fn module_of(store: &ImageStore, reg: &Registry, repo: &str, dest: &Path) -> WasmModule {
    let image = store
        .pull(&reg.reference(repo), None, &quiet)
        .await
        .expect("pull");
    store.wasm_module(&image, dest).await.expect("module")
}

#[tokio::test]
async fn an_artifact_s_layer_is_its_module_for_both_media_type_generations() {
    let reg = Registry::shared();
    push_artifact(
        reg,
        "wasm-artifact",
        "application/vnd.wasm.config.v0+json",
        "application/wasm",
        MODULE,
    )
    .await;
    let legacy = b"\0asm\x01\0\0\0\0\x01\x04\x01\x60\0\0";
    push_artifact(
        reg,
        "wasm-legacy",
        "application/vnd.wasm.config.v1+json",
        "application/vnd.wasm.content.layer.v1+wasm",
        legacy,
    )
    .await;
    let cache = tempfile::tempdir().unwrap();
    let store = reg.store(cache.path());
    let dest = cache.path().join("unused.wasm");
    for (repo, bytes) in [("wasm-artifact", MODULE), ("wasm-legacy", &legacy[..])] {
        let module = module_of(&store, reg, repo, &dest).await;
        assert_eq!(
            module.layer,
            sha256(bytes),
            "{repo}: the layer is the module"
        );
        assert_eq!(module.file, None);
        assert_eq!(std::fs::read(&module.path).unwrap(), bytes, "{repo}");
        assert_eq!(sha256_file(&module.path), module.layer);
        assert!(
            !dest.exists(),
            "an artifact's module is used from the cache"
        );
    }

    // It is no container image.
    let image = store
        .pull(&reg.reference("wasm-artifact"), None, &quiet)
        .await
        .unwrap();
    let e = store
        .create_rootfs(&image, &cache.path().join("ctr"))
        .await
        .expect_err("no rootfs from an artifact");
    assert!(e.to_string().contains("run it with runtime wasm"), "{e}");

    // A blob changed in the cache (same size) is caught by its digest.
    let blob = cache
        .path()
        .join("blobs/sha256")
        .join(&sha256(MODULE)["sha256:".len()..]);
    std::fs::write(&blob, b"\0asm\x01\0\0\x09").unwrap();
    let e = store
        .wasm_module(&image, &dest)
        .await
        .expect_err("tampered");
    assert!(matches!(e, ImageError::DigestMismatch { .. }), "{e}");
}

#[tokio::test]
async fn a_plain_image_s_visible_wasm_file_is_copied_out() {
    let reg = Registry::shared();
    // The lower layer has two modules; the upper deletes one (a whiteout): one is left.
    let lower = tar_layer(&[
        ("app/filter.wasm", MODULE),
        ("app/old.wasm", b"old"),
        ("app/README", b"x"),
    ]);
    let upper = tar_layer(&[("app/.wh.old.wasm", b"")]);
    let lower_digest = sha256(&lower.data);
    push_image(reg, "wasm-image", &[], vec![lower, upper]).await;
    let cache = tempfile::tempdir().unwrap();
    let store = reg.store(cache.path());
    let dest = cache.path().join("module.wasm");
    let module = module_of(&store, reg, "wasm-image", &dest).await;
    assert_eq!(module.file.as_deref(), Some("/app/filter.wasm"));
    assert_eq!(module.layer, lower_digest);
    assert_eq!(module.path, dest);
    assert_eq!(std::fs::read(&dest).unwrap(), MODULE);

    // A layer changed in the cache (same size) is caught while it is read.
    let blob = cache
        .path()
        .join("blobs/sha256")
        .join(&lower_digest["sha256:".len()..]);
    let mut bytes = std::fs::read(&blob).unwrap();
    // A byte of the first file's content (after its 512-byte header).
    bytes[512 + 7] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    let image = store
        .pull(&reg.reference("wasm-image"), None, &quiet)
        .await
        .unwrap();
    let e = store
        .wasm_module(&image, &dest)
        .await
        .expect_err("tampered");
    assert!(matches!(e, ImageError::DigestMismatch { .. }), "{e}");
}

#[tokio::test]
async fn the_entrypoint_names_the_module_among_several() {
    let reg = Registry::shared();
    let files: &[(&str, &[u8])] = &[("app/a.wasm", b"a"), ("app/b.wasm", MODULE)];
    push_image(reg, "wasm-named", &["b.wasm"], vec![tar_layer(files)]).await;
    push_image(reg, "wasm-several", &["/bin/sh"], vec![tar_layer(files)]).await;
    let cache = tempfile::tempdir().unwrap();
    let store = reg.store(cache.path());
    let dest = cache.path().join("module.wasm");
    let module = module_of(&store, reg, "wasm-named", &dest).await;
    assert_eq!(module.file.as_deref(), Some("/app/b.wasm"));
    assert_eq!(std::fs::read(&dest).unwrap(), MODULE);

    let image = store
        .pull(&reg.reference("wasm-several"), None, &quiet)
        .await
        .unwrap();
    let e = store
        .wasm_module(&image, &dest)
        .await
        .expect_err("ambiguous");
    let text = e.to_string();
    assert!(
        text.contains("/app/a.wasm, /app/b.wasm") && text.contains("entrypoint"),
        "{text}"
    );
    // busybox has no module at all.
    let busybox = store
        .pull(&reg.reference("busybox"), None, &quiet)
        .await
        .unwrap();
    let e = store.wasm_module(&busybox, &dest).await.expect_err("none");
    assert!(e.to_string().contains("neither a wasm artifact"), "{e}");
}
