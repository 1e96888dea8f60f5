//! A real registry for the tests: `tests/registry/start.sh` starts Debian's docker-registry on
//! a free loopback port and pushes the fixture images (built once per run under
//! `CARGO_TARGET_TMPDIR`). [`Registry`] kills it on drop; the script also stops it when the
//! test binary is gone, for the shared instance (statics are never dropped) and for crashes.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use canopy_image::{ImageStore, ImageStoreConfig, RootfsMode};

pub struct Registry {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pid: i32,
    tls: bool,
}

#[derive(Default)]
pub struct Options {
    /// Repositories the busybox image is pushed as.
    pub push_as: Vec<&'static str>,
    /// (user, password): turns on htpasswd auth.
    pub auth: Option<(&'static str, &'static str)>,
    /// Serve HTTPS with a certificate from a fresh CA (see [`Registry::ca`]).
    pub tls: bool,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where the OCI layouts are built: keyed by the script's content, so editing it rebuilds.
fn images_dir(script: &Path) -> PathBuf {
    let content = std::fs::read(script).expect("read start.sh");
    let mut h: u64 = 0xcbf29ce484222325;
    for b in content {
        h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("registry-images-{h:016x}"))
}

impl Registry {
    pub fn start(options: Options) -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = repo_root().join("tests/registry/start.sh");
        let mut cmd = Command::new("bash");
        cmd.arg(&script)
            .arg(dir.path())
            .env("REGISTRY_IMAGES", images_dir(&script))
            .env("REGISTRY_OWNER", std::process::id().to_string());
        if !options.push_as.is_empty() {
            cmd.env("REGISTRY_PUSH", options.push_as.join(" "));
        }
        if let Some((user, password)) = options.auth {
            let hash = bcrypt::hash(password, 4).expect("bcrypt");
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{user}:{hash}\n")).expect("write htpasswd");
            cmd.env("REGISTRY_HTPASSWD", &htpasswd)
                .env("REGISTRY_CREDS", format!("{user}:{password}"));
        }
        if options.tls {
            cmd.env("REGISTRY_TLS", "1");
        }
        let out = cmd.output().expect("run tests/registry/start.sh");
        assert!(
            out.status.success(),
            "start.sh failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mut words = stdout.split_whitespace();
        let port = words.next().and_then(|p| p.parse().ok()).expect("port");
        let pid = words.next().and_then(|p| p.parse().ok()).expect("pid");
        let tls = options.tls;
        Registry {
            dir,
            port,
            pid,
            tls,
        }
    }

    /// The CA that signed the registry's certificate (PEM), when it serves HTTPS.
    pub fn ca(&self) -> Option<Vec<u8>> {
        self.tls
            .then(|| std::fs::read(self.dir.path().join("tls/ca.pem")).expect("read ca.pem"))
    }

    /// The shared registry of this test binary (plain, every fixture repository).
    pub fn shared() -> &'static Registry {
        static SHARED: OnceLock<Registry> = OnceLock::new();
        SHARED.get_or_init(|| {
            Registry::start(Options {
                push_as: vec![
                    "busybox",
                    "cachehit",
                    "concurrent",
                    "bydigest",
                    "rootfs",
                    "gcbusy",
                ],
                auth: None,
                tls: false,
            })
        })
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn reference(&self, repo: &str) -> String {
        format!("{}/{repo}:latest", self.addr())
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data/docker/registry/v2")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// GET requests for blobs of `repo` in the access log, once a marker request made now has
    /// been logged (so everything before it is in the log too).
    pub async fn blob_gets(&self, repo: &str) -> usize {
        self.settle().await;
        let needle = format!("\"GET /v2/{repo}/blobs/");
        self.log().lines().filter(|l| l.contains(&needle)).count()
    }

    /// Manifest GETs of `repo`, like [`blob_gets`](Self::blob_gets).
    pub async fn manifest_gets(&self, repo: &str) -> usize {
        self.settle().await;
        let needle = format!("\"GET /v2/{repo}/manifests/");
        self.log().lines().filter(|l| l.contains(&needle)).count()
    }

    async fn settle(&self) {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let marker = format!(
            "/v2/marker-{}-{}/tags/list",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let url = format!("http://{}{marker}", self.addr());
        let _ = reqwest::get(&url).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.log().contains(&marker) {
            assert!(Instant::now() < deadline, "registry never logged {marker}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `Docker-Content-Digest` of a manifest, as the registry says.
    pub async fn manifest_digest(&self, repo: &str, tag: &str) -> String {
        let url = format!("http://{}/v2/{repo}/manifests/{tag}", self.addr());
        let resp = reqwest::Client::new()
            .head(&url)
            .header(
                "Accept",
                "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
            )
            .send()
            .await
            .expect("HEAD manifest");
        resp.headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .expect("Docker-Content-Digest")
            .to_string()
    }

    /// [`manifest_digest`](Self::manifest_digest) over HTTPS, trusting [`ca`](Self::ca).
    pub async fn manifest_digest_tls(&self, repo: &str, tag: &str) -> String {
        let out = Command::new("curl")
            .args(["-sI", "--cacert"])
            .arg(self.dir.path().join("tls/ca.pem"))
            .args([
                "-H",
                "Accept: application/vnd.oci.image.manifest.v1+json",
                &format!("https://{}/v2/{repo}/manifests/{tag}", self.addr()),
            ])
            .output()
            .expect("curl");
        let headers = String::from_utf8_lossy(&out.stdout).into_owned();
        headers
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .starts_with("docker-content-digest:")
                    .then(|| l.split_once(':').map(|(_, v)| v.trim().to_string()))
                    .flatten()
            })
            .expect("Docker-Content-Digest")
    }

    pub fn store_config(&self, root: &Path) -> ImageStoreConfig {
        let mut config = ImageStoreConfig::new(root);
        if let Some(ca) = self.ca() {
            config.ca_certificates = vec![ca];
        } else {
            config.insecure_registries = vec![self.addr()];
        }
        config.timeout = Duration::from_secs(20);
        config
    }

    pub fn store(&self, root: &Path) -> ImageStore {
        ImageStore::open(self.store_config(root)).expect("open store")
    }

    pub fn store_with_mode(&self, root: &Path, mode: RootfsMode) -> ImageStore {
        let mut config = self.store_config(root);
        config.rootfs_mode = mode;
        ImageStore::open(config).expect("open store")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

/// Files directly under a directory (names), sorted.
pub fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    let bytes = std::fs::read(path).expect("read blob");
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes)))
}
