//! Real images for the container tests: a busybox image built with umoci (every applet,
//! `/etc/passwd`, and variants with a web root in a layer of their own), pushed with skopeo
//! to Debian's docker-registry on a free loopback port, and pulled by an image prestart hook
//! through canopy-image's real [`ImageStore`], which makes each container's root filesystem
//! an overlay mount of the image's layers (what the node's `RegistryImages` hook does).
//!
//! Each [`Registry`] is one test's: dropping it kills the registry; a watcher kills it too
//! when the test process dies without dropping it.

use async_trait::async_trait;
use canopy_image::{ImageStore, ImageStoreConfig, RootfsMode};
use canopy_runtime::{
    Capabilities, ImageConfig, InstanceSpec, Prepared, PreparedImage, Prestart, Progress,
    RuntimeError,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BUSYBOX: &str = "/bin/busybox";

/// The images pushed to every test registry: (repository:tag, a file in a layer of its own).
pub const IMAGES: &[(&str, Option<(&str, &str)>)] = &[
    ("busybox:test", None),
    (
        "web:canopy",
        Some(("/www/index.html", "hello from canopy\n")),
    ),
    ("web:hook", Some(("/www/index.html", "hello from a hook\n"))),
];

/// The tools building, serving and pushing the images need.
pub fn missing_tool() -> Option<String> {
    if !Path::new(BUSYBOX).is_file() {
        return Some(format!("{BUSYBOX} missing: apt-get install busybox-static"));
    }
    for (tool, package) in [
        ("docker-registry", "docker-registry"),
        ("umoci", "umoci"),
        ("skopeo", "skopeo"),
    ] {
        if !on_path(tool) {
            return Some(format!("{tool} missing: apt-get install {package}"));
        }
    }
    None
}

fn on_path(binary: &str) -> bool {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"])
        .any(|d| Path::new(d).join(binary).is_file())
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The OCI layout with every image of [`IMAGES`], built once per content (busybox binary and
/// the list) under `CARGO_TARGET_TMPDIR`, so the test processes share one build.
fn layout() -> PathBuf {
    let busybox = std::fs::read(BUSYBOX).expect("read busybox");
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in busybox
        .iter()
        .copied()
        .chain(format!("v2 {IMAGES:?}").bytes())
    {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    let layout = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("runtime-images-{h:016x}"));
    if layout.join("index.json").is_file() {
        return layout;
    }
    std::fs::create_dir_all(env!("CARGO_TARGET_TMPDIR")).expect("target tmpdir");
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let oci = work.path().join("layout");
    let at = |tag: &str| format!("{}:{tag}", oci.display());
    run(Command::new("umoci").args(["init", "--layout"]).arg(&oci));
    run(Command::new("umoci").args(["new", "--image", &at("busybox")]));
    let bundle = work.path().join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image", &at("busybox")])
        .arg(&bundle));
    let rootfs = bundle.join("rootfs");
    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir bin");
    std::fs::copy(BUSYBOX, bin.join("busybox")).expect("copy busybox");
    let list = Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.is_empty() {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("applet link");
        }
    }
    for d in ["etc", "tmp", "proc", "sys", "dev"] {
        std::fs::create_dir_all(rootfs.join(d)).expect("mkdir");
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .expect("passwd");
    run(Command::new("umoci")
        .args(["repack", "--image", &at("busybox")])
        .arg(&bundle));
    run(Command::new("umoci").args([
        "config",
        "--image",
        &at("busybox"),
        "--config.cmd",
        "sh",
        "--config.env",
        "PATH=/bin",
    ]));
    for (name, file) in IMAGES {
        let tag = name.replace(':', "-");
        if tag != "busybox-test" {
            run(Command::new("umoci").args(["tag", "--image", &at("busybox"), &tag]));
        }
        // A layer of its own, made with tar: umoci 0.4's `insert` writes a truncated one.
        if let Some((path, content)) = file {
            let tree = work.path().join(format!("{tag}.layer"));
            let rel = path.trim_start_matches('/');
            let file = tree.join(rel);
            std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir layer");
            std::fs::write(&file, content).expect("write file");
            let tar = work.path().join(format!("{tag}.tar"));
            let top = rel.split('/').next().expect("top");
            run(Command::new("tar")
                .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
                .arg(&tree)
                .arg("-cf")
                .arg(&tar)
                .arg(top));
            run(Command::new("umoci")
                .args(["raw", "add-layer", "--image", &at(&tag)])
                .arg(&tar));
        }
    }
    run(Command::new("umoci").args(["tag", "--image", &at("busybox"), "busybox-test"]));
    // Another process may have won the race: keep the first one.
    if std::fs::rename(&oci, &layout).is_err() {
        assert!(
            layout.join("index.json").is_file(),
            "cannot place {layout:?}"
        );
    }
    layout
}

/// Debian's docker-registry on 127.0.0.1 with [`IMAGES`] pushed.
pub struct Registry {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        let layout = layout();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut last = String::new();
        for _ in 0..10 {
            let port = free_loopback_port();
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    \
                     rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                    dir.path().join("data").display()
                ),
            )
            .expect("registry config");
            let log = std::fs::File::create(dir.path().join("registry.log")).expect("log");
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("spawn docker-registry");
            // Killed with the test process, even one that never drops this.
            let _ = Command::new("sh")
                .args([
                    "-c",
                    "while kill -0 $0 2>/dev/null && kill -0 $1 2>/dev/null; do sleep 0.5; done; \
                     kill $1 2>/dev/null",
                    &std::process::id().to_string(),
                    &child.id().to_string(),
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut up = false;
            while Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    up = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if !up {
                let _ = child.kill();
                let _ = child.wait();
                last = std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default();
                continue;
            }
            let registry = Registry {
                child,
                port,
                _dir: dir,
            };
            for (name, _) in IMAGES {
                let tag = name.replace(':', "-");
                run(Command::new("skopeo").args([
                    "copy",
                    "--quiet",
                    "--dest-tls-verify=false",
                    &format!("oci:{}:{tag}", layout.display()),
                    &format!("docker://{}/{name}", registry.addr()),
                ]));
            }
            return registry;
        }
        panic!("docker-registry did not start: {last}");
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_loopback_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The image prestart hook over the real image store, as the node's `RegistryImages` does
/// it: pull, then the store's overlay root filesystem in `<dir>/<id>`. Images named without
/// a registry (`busybox:test`) come from the test's registry.
pub struct RegistryImages {
    store: ImageStore,
    registry: String,
    dir: PathBuf,
    _root: tempfile::TempDir,
}

impl RegistryImages {
    pub fn new(registry: &Registry) -> RegistryImages {
        let root = tempfile::tempdir().expect("tempdir");
        let mut config = ImageStoreConfig::new(root.path().join("images"));
        config.insecure_registries = vec![registry.addr()];
        config.timeout = Duration::from_secs(20);
        // An overlay or an error: never a silent copy.
        config.rootfs_mode = RootfsMode::Overlay;
        RegistryImages {
            store: ImageStore::open(config).expect("open image store"),
            registry: registry.addr(),
            dir: root.path().join("rootfs"),
            _root: root,
        }
    }

    /// Where instance `id`'s root filesystem is made (`<dir>/rootfs` is the mount).
    pub fn instance_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Everything under which this hook mounts.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn reference(&self, image: &str) -> String {
        let first = image.split('/').next().unwrap_or_default();
        if image.contains('/') && (first.contains(':') || first.contains('.')) {
            image.to_string()
        } else {
            format!("{}/{image}", self.registry)
        }
    }
}

fn failed(image: &str, error: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Image {
        image: image.to_string(),
        reason: error.to_string(),
    }
}

#[async_trait]
impl Prestart for RegistryImages {
    fn name(&self) -> &str {
        "image"
    }

    fn wanted_by(&self, caps: &Capabilities) -> bool {
        caps.image_rootfs
    }

    async fn prepare(
        &self,
        spec: &InstanceSpec,
        prepared: &mut Prepared,
        progress: Progress<'_>,
    ) -> Result<(), RuntimeError> {
        let image = spec.service.image.as_deref().unwrap_or_default();
        let reference = self.reference(image);
        progress(&format!("pulling {reference}"));
        self.release(&spec.id).await?;
        let pulled = self
            .store
            .pull(&reference, None, &|_| {})
            .await
            .map_err(|e| failed(image, e))?;
        let made = self
            .store
            .create_rootfs(&pulled, &self.instance_dir(&spec.id))
            .await
            .map_err(|e| failed(image, e))?;
        if !made.overlay {
            return Err(failed(image, "the store made a copy, not an overlay"));
        }
        let config = pulled.config;
        prepared.image = Some(PreparedImage {
            rootfs: made.path,
            config: ImageConfig {
                entrypoint: config.entrypoint,
                cmd: config.cmd,
                env: config.env,
                working_dir: config.working_dir,
                user: config.user,
            },
            digest: pulled.digest,
        });
        Ok(())
    }

    async fn release(&self, id: &str) -> Result<(), RuntimeError> {
        let dest = self.instance_dir(id);
        self.store
            .remove_rootfs(&dest)
            .await
            .map_err(|e| failed(&dest.display().to_string(), e))
    }
}

/// The filesystem type and super options (an overlay's `lowerdir=…,upperdir=…`) of the mount
/// at `mount_point` in a mountinfo (`/proc/PID/mountinfo`).
pub fn mount_at(mountinfo: &str, mount_point: &str) -> Option<(String, String)> {
    // The last mount on a point is the one seen there.
    mountinfo
        .lines()
        .filter(|l| l.split_whitespace().nth(4) == Some(mount_point))
        .filter_map(|l| {
            let (_, rest) = l.split_once(" - ")?;
            let mut fields = rest.split_whitespace();
            let fstype = fields.next()?.to_string();
            let options = fields.nth(1).unwrap_or_default().to_string();
            Some((fstype, options))
        })
        .next_back()
}
