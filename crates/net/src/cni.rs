//! Container networking with the CNI plugins (spec 1.0): a named network namespace per
//! instance, the loopback plugin for `lo`, then the agent's conflist (bridge + host-local
//! IPAM + portmap) for `eth0`. DEL runs the conflist in reverse with the cached result.

use crate::{DEFAULT_PATH, NetError, output};
use canopy_model::{PortSpec, Protocol};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::fs::{self, File};
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

const CNI_VERSION: &str = "1.0.0";
const NETWORK_FILE: &str = "network.json";

/// The node's container network. Several agents on one machine need distinct names,
/// bridges and subnets (the defaults derive the bridge from the name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniConfig {
    /// CNI network name; also names iptables chains and the IPAM directory.
    pub name: String,
    /// Linux bridge (at most 15 bytes); `cnp-<hash of name>` when None.
    pub bridge: Option<String>,
    /// IPv4 subnet the instances get addresses from, e.g. `10.89.0.0/24`.
    pub subnet: String,
    /// Where the plugin binaries are (Debian's containernetworking-plugins: /usr/lib/cni).
    pub plugin_dir: PathBuf,
    /// Deadline of one plugin call.
    pub plugin_timeout: Duration,
}

impl CniConfig {
    pub fn new(name: impl Into<String>, subnet: impl Into<String>) -> Self {
        CniConfig {
            name: name.into(),
            bridge: None,
            subnet: subnet.into(),
            plugin_dir: PathBuf::from("/usr/lib/cni"),
            plugin_timeout: Duration::from_secs(30),
        }
    }

    /// The bridge the instances attach to.
    pub fn bridge_name(&self) -> String {
        self.bridge.clone().unwrap_or_else(|| {
            let hash = self.name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            });
            format!("cnp-{:08x}", hash & 0xffff_ffff)
        })
    }
}

/// A published port as the portmap plugin takes it (`runtimeConfig.portMappings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
}

pub fn port_mappings(ports: &[PortSpec]) -> Vec<PortMapping> {
    ports
        .iter()
        .filter_map(|p| {
            Some(PortMapping {
                host_port: p.host_port?,
                container_port: p.port,
                protocol: match p.protocol {
                    Protocol::Tcp => "tcp",
                    Protocol::Udp => "udp",
                }
                .to_string(),
            })
        })
        .collect()
}

/// What teardown needs, in `<instance dir>/network.json` (written before the first ADD).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkState {
    pub netns: PathBuf,
    pub ports: Vec<PortMapping>,
    /// The conflist's final result; passed as prevResult to DEL.
    #[serde(default)]
    pub result: Option<Value>,
    #[serde(default)]
    pub ip: Option<IpAddr>,
}

pub fn read_state(dir: &Path) -> Option<NetworkState> {
    let bytes = fs::read(dir.join(NETWORK_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn write_state(dir: &Path, st: &NetworkState) -> Result<(), NetError> {
    let path = dir.join(NETWORK_FILE);
    let tmp = dir.join("network.json.tmp");
    let json = serde_json::to_vec_pretty(st)
        .map_err(|e| NetError::io("encode", &path, io::Error::other(e)))?;
    fs::write(&tmp, json).map_err(|e| NetError::io("write", &tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| NetError::io("rename into", &path, e))
}

/// Networking of one runtime: its conflist and its private directories.
#[derive(Debug, Clone)]
pub struct Cni {
    cfg: CniConfig,
    /// host-local's leases (per agent, under its state dir).
    ipam_dir: PathBuf,
    netns_dir: PathBuf,
}

impl Cni {
    pub fn new(cfg: CniConfig, base: &Path) -> Result<Cni, NetError> {
        for plugin in ["bridge", "host-local", "portmap", "loopback"] {
            let p = cfg.plugin_dir.join(plugin);
            if !p.is_file() {
                return Err(NetError::PluginMissing {
                    binary: format!("CNI plugin {plugin}"),
                    hint: format!(
                        "{} is missing: apt-get install containernetworking-plugins",
                        p.display()
                    ),
                });
            }
        }
        let bridge = cfg.bridge_name();
        if bridge.is_empty() || bridge.len() > 15 {
            return Err(NetError::Config(format!(
                "bridge name {bridge:?} must be 1 to 15 bytes"
            )));
        }
        let ipam_dir = base.join("ipam");
        let netns_dir = base.join("netns");
        for d in [&ipam_dir, &netns_dir] {
            fs::create_dir_all(d).map_err(|e| NetError::io("create", d, e))?;
        }
        Ok(Cni {
            cfg,
            ipam_dir,
            netns_dir,
        })
    }

    pub fn config(&self) -> &CniConfig {
        &self.cfg
    }

    /// host-local's lease directory of this network.
    pub fn lease_dir(&self) -> PathBuf {
        self.ipam_dir.join(&self.cfg.name)
    }

    fn conflist(&self) -> Value {
        json!({
            "cniVersion": CNI_VERSION,
            "name": self.cfg.name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.cfg.bridge_name(),
                    "isGateway": true,
                    "ipMasq": true,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": self.cfg.subnet}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": self.ipam_dir,
                    },
                },
                {
                    "type": "portmap",
                    "capabilities": {"portMappings": true},
                    "snat": true,
                },
            ],
        })
    }

    /// Creates the instance's namespace and attaches it; returns its address.
    pub async fn setup(
        &self,
        id: &str,
        dir: &Path,
        ports: Vec<PortMapping>,
    ) -> Result<NetworkState, NetError> {
        let netns = self.netns_dir.join(id);
        let mut st = NetworkState {
            netns: netns.clone(),
            ports,
            result: None,
            ip: None,
        };
        // Recorded first, so that whatever happens next, teardown finds it.
        write_state(dir, &st)?;
        create_netns(&netns).map_err(|e| NetError::io("create network namespace", &netns, e))?;
        let lo = json!({"cniVersion": CNI_VERSION, "name": "lo", "type": "loopback"});
        self.invoke(id, &netns, "lo", "ADD", &lo).await?;
        let list = self.conflist();
        let mut prev: Option<Value> = None;
        for plugin in list["plugins"].as_array().into_iter().flatten() {
            let conf = self.plugin_conf(plugin, prev.as_ref(), &st.ports);
            let out = self.invoke(id, &netns, "eth0", "ADD", &conf).await?;
            prev = Some(out);
        }
        st.ip = prev.as_ref().and_then(first_ip);
        st.result = prev;
        write_state(dir, &st)?;
        Ok(st)
    }

    /// Detaches and deletes the namespace; idempotent (nothing recorded, nothing to do).
    pub async fn teardown(&self, id: &str, dir: &Path) -> Result<(), NetError> {
        let Some(st) = read_state(dir) else {
            return Ok(());
        };
        let mut first_err = None;
        let list = self.conflist();
        let plugins: Vec<&Value> = list["plugins"].as_array().into_iter().flatten().collect();
        for plugin in plugins.into_iter().rev() {
            let conf = self.plugin_conf(plugin, st.result.as_ref(), &st.ports);
            if let Err(e) = self.invoke(id, &st.netns, "eth0", "DEL", &conf).await {
                tracing::warn!(id, error = %e, "CNI DEL failed");
                first_err.get_or_insert(e);
            }
        }
        if let Err(e) = remove_netns(&st.netns) {
            first_err.get_or_insert(NetError::io("remove network namespace", &st.netns, e));
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        let path = dir.join(NETWORK_FILE);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(NetError::io("remove", &path, e)),
            _ => Ok(()),
        }
    }

    /// One plugin's config as the conflist passes it: name, version, prevResult, and the
    /// runtimeConfig of the capabilities it declares.
    fn plugin_conf(&self, plugin: &Value, prev: Option<&Value>, ports: &[PortMapping]) -> Value {
        let mut conf = plugin.clone();
        if let Some(obj) = conf.as_object_mut() {
            obj.insert("name".into(), json!(self.cfg.name));
            obj.insert("cniVersion".into(), json!(CNI_VERSION));
            if let Some(p) = prev {
                obj.insert("prevResult".into(), p.clone());
            }
            if plugin["capabilities"]["portMappings"] == json!(true) {
                obj.insert("runtimeConfig".into(), json!({"portMappings": ports}));
            }
        }
        conf
    }

    async fn invoke(
        &self,
        id: &str,
        netns: &Path,
        ifname: &str,
        command: &'static str,
        conf: &Value,
    ) -> Result<Value, NetError> {
        let plugin = conf["type"].as_str().unwrap_or_default().to_string();
        let fail = |message: String| NetError::Plugin {
            id: id.to_string(),
            plugin: plugin.clone(),
            command,
            message,
        };
        if plugin.is_empty() || plugin.contains('/') {
            return Err(fail("the network config has no valid plugin type".into()));
        }
        let mut cmd = tokio::process::Command::new(self.cfg.plugin_dir.join(&plugin));
        // The plugins call iptables and friends through PATH.
        cmd.env_clear()
            .env("PATH", DEFAULT_PATH)
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", ifname)
            .env("CNI_PATH", &self.cfg.plugin_dir);
        let stdin = serde_json::to_vec(conf).map_err(|e| fail(e.to_string()))?;
        let out = output(
            cmd,
            Some(&stdin),
            self.cfg.plugin_timeout,
            &format!("CNI plugin {plugin} {command}"),
        )
        .await?;
        if !out.status.success() {
            return Err(fail(plugin_error(&out.stdout, &out.stderr)));
        }
        if command != "ADD" {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&out.stdout).map_err(|e| fail(format!("unreadable result: {e}")))
    }
}

/// The `msg` and `details` of a plugin's JSON error, or its raw output.
fn plugin_error(stdout: &[u8], stderr: &[u8]) -> String {
    #[derive(Deserialize)]
    struct CniError {
        #[serde(default)]
        code: u32,
        #[serde(default)]
        msg: String,
        #[serde(default)]
        details: String,
    }
    if let Ok(e) = serde_json::from_slice::<CniError>(stdout)
        && !e.msg.is_empty()
    {
        let mut s = format!("{} (code {})", e.msg, e.code);
        if !e.details.is_empty() {
            s.push_str(": ");
            s.push_str(&e.details);
        }
        return s;
    }
    let text = String::from_utf8_lossy(if stderr.is_empty() { stdout } else { stderr });
    let text = text.trim();
    if text.is_empty() {
        "failed without a message".to_string()
    } else {
        text.to_string()
    }
}

fn first_ip(result: &Value) -> Option<IpAddr> {
    result["ips"]
        .as_array()?
        .iter()
        .filter_map(|ip| ip["address"].as_str())
        .filter_map(|a| a.split('/').next()?.parse().ok())
        .next()
}

/// A new network namespace pinned by a bind mount on `path` (what `ip netns add` does).
/// The unshare happens in a short-lived thread of its own: the namespace is per thread,
/// and no other thread of the agent ever enters it.
fn create_netns(path: &Path) -> io::Result<()> {
    if is_mount_point(path) {
        return Ok(());
    }
    File::create(path)?;
    let target = path.to_path_buf();
    let res = std::thread::spawn(move || -> io::Result<()> {
        // SAFETY: only the network namespace is unshared; the descriptor table (the
        // hazard unshare_unsafe documents, UnshareFlags::FILES) stays shared.
        unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }?;
        rustix::mount::mount_bind("/proc/thread-self/ns/net", &target)?;
        Ok(())
    })
    .join()
    .map_err(|_| io::Error::other("network namespace thread panicked"))?;
    if res.is_err() {
        let _ = fs::remove_file(path);
    }
    res
}

fn remove_netns(path: &Path) -> io::Result<()> {
    if is_mount_point(path) {
        rustix::mount::unmount(path, rustix::mount::UnmountFlags::DETACH)?;
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// `path` is a mount point in our mount namespace (from /proc/self/mountinfo).
fn is_mount_point(path: &Path) -> bool {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.display().to_string();
    info.lines().any(|l| {
        l.split_whitespace()
            .nth(4)
            .is_some_and(|m| m.replace("\\040", " ") == want)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_names_fit_and_differ() {
        let a = CniConfig::new("canopy-node-a", "10.89.0.0/24").bridge_name();
        let b = CniConfig::new("canopy-node-b", "10.89.1.0/24").bridge_name();
        assert!(a.len() <= 15 && a.starts_with("cnp-"), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn only_published_ports_are_mapped() {
        let ports: Vec<PortSpec> = serde_json::from_value(json!([
            {"port": 80, "hostPort": 8080},
            {"port": 53, "protocol": "udp", "hostPort": 5353},
            {"port": 9000},
        ]))
        .expect("ports");
        let m = port_mappings(&ports);
        assert_eq!(m.len(), 2);
        assert_eq!(
            serde_json::to_value(&m[1]).expect("json"),
            json!({"hostPort": 5353, "containerPort": 53, "protocol": "udp"})
        );
    }

    #[test]
    fn plugin_errors_carry_msg_and_details() {
        let e = plugin_error(
            br#"{"code":11,"msg":"failed to allocate","details":"no IP addresses available"}"#,
            b"",
        );
        assert_eq!(e, "failed to allocate (code 11): no IP addresses available");
        assert_eq!(plugin_error(b"", b" boom \n"), "boom");
    }

    #[test]
    fn first_ip_of_a_result() {
        let r = json!({"ips": [{"address": "10.89.0.5/24", "gateway": "10.89.0.1"}]});
        assert_eq!(first_ip(&r), "10.89.0.5".parse().ok());
    }
}
