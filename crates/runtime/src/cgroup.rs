//! Cgroup v1 and v2: one group per instance under `<hierarchy>/<parent>/<id>`, limits, usage,
//! OOM counters. Which version is detected at runtime.

use crate::RuntimeError;
use canopy_model::Resources;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind};
use std::path::{Component, Path, PathBuf};
use tokio::time::Instant;

const V2_ROOT: &str = "/sys/fs/cgroup";
/// CFS period; the quota is `millicores * 100` µs per period.
const CFS_PERIOD_US: u64 = 100_000;
/// The kernel refuses quotas under 1 ms.
const CFS_MIN_QUOTA_US: u64 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    V1,
    V2,
}

/// The parent groups every instance group is created under (the same dir three times on v2).
#[derive(Debug, Clone)]
pub(crate) struct Cgroups {
    version: CgroupVersion,
    cpu: PathBuf,
    cpuacct: PathBuf,
    memory: PathBuf,
}

/// One instance's groups; persisted in state.json so a restarted agent finds them again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct InstanceCgroup {
    pub version: CgroupVersion,
    pub cpu: PathBuf,
    pub cpuacct: PathBuf,
    pub memory: PathBuf,
}

/// Cumulative OOM counters of a memory group, read at start and compared at exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(crate) struct OomCounters {
    pub oom_kill: Option<u64>,
    pub failcnt: Option<u64>,
}

impl OomCounters {
    /// The OOM killer struck since `base`. Without an `oom_kill` counter (v1 before 4.13),
    /// a failed charge followed by SIGKILL is taken as one.
    pub fn oom_since(&self, base: &OomCounters, killed_by_sigkill: bool) -> bool {
        match (self.oom_kill, base.oom_kill) {
            (Some(now), Some(then)) => now > then,
            _ => match (self.failcnt, base.failcnt) {
                (Some(now), Some(then)) => killed_by_sigkill && now > then,
                _ => false,
            },
        }
    }
}

impl Cgroups {
    /// Finds usable cpu and memory controllers and creates the parent groups.
    /// `Err` is the reason limits cannot be enforced on this node.
    pub fn detect(parent: &str) -> Result<Cgroups, String> {
        let parent_rel = Path::new(parent);
        if parent.is_empty()
            || !parent_rel
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(format!(
                "cgroup parent {parent:?} must be a relative path without '..'"
            ));
        }
        let groups = match detect_v2() {
            Some(root) => {
                let parent_dir = root.join(parent_rel);
                fs::create_dir_all(&parent_dir)
                    .map_err(|e| format!("cannot create {}: {e}", parent_dir.display()))?;
                enable_v2_controllers(&root, parent_rel)?;
                Cgroups {
                    version: CgroupVersion::V2,
                    cpu: parent_dir.clone(),
                    cpuacct: parent_dir.clone(),
                    memory: parent_dir,
                }
            }
            None => {
                let mounts =
                    v1_mounts().map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
                let find = |ctl: &str| {
                    mounts
                        .iter()
                        .find(|(_, ctls)| ctls.iter().any(|c| c == ctl))
                        .map(|(p, _)| p.join(parent_rel))
                        .ok_or_else(|| format!("no cgroup v1 hierarchy with the {ctl} controller"))
                };
                let g = Cgroups {
                    version: CgroupVersion::V1,
                    cpu: find("cpu")?,
                    cpuacct: find("cpuacct")?,
                    memory: find("memory")?,
                };
                for dir in [&g.cpu, &g.cpuacct, &g.memory] {
                    fs::create_dir_all(dir)
                        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                }
                g
            }
        };
        Ok(groups)
    }

    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// Memory+swap can be limited (v2, or v1 with swap accounting).
    pub fn swap_accounting(&self) -> bool {
        match self.version {
            CgroupVersion::V1 => self.memory.join("memory.memsw.limit_in_bytes").exists(),
            CgroupVersion::V2 => true,
        }
    }

    /// The instance's groups (not created yet).
    pub fn instance(&self, id: &str) -> InstanceCgroup {
        InstanceCgroup {
            version: self.version,
            cpu: self.cpu.join(id),
            cpuacct: self.cpuacct.join(id),
            memory: self.memory.join(id),
        }
    }
}

/// v2 only when the unified hierarchy is mounted at the root and offers cpu and memory.
fn detect_v2() -> Option<PathBuf> {
    let root = PathBuf::from(V2_ROOT);
    let controllers = fs::read_to_string(root.join("cgroup.controllers")).ok()?;
    let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
    (has("cpu") && has("memory")).then_some(root)
}

/// Delegates cpu and memory from the root down to the parent so instance groups get them.
fn enable_v2_controllers(root: &Path, parent: &Path) -> Result<(), String> {
    let mut dir = root.to_path_buf();
    let mut dirs = vec![dir.clone()];
    for c in parent.components() {
        dir.push(c);
        dirs.push(dir.clone());
    }
    for d in dirs {
        let file = d.join("cgroup.subtree_control");
        let enabled = fs::read_to_string(&file).unwrap_or_default();
        for ctl in ["cpu", "memory"] {
            if enabled.split_whitespace().any(|x| x == ctl) {
                continue;
            }
            fs::write(&file, format!("+{ctl}"))
                .map_err(|e| format!("cannot enable {ctl} in {}: {e}", file.display()))?;
        }
    }
    Ok(())
}

/// cgroup v1 mount points and their controllers, from mountinfo.
fn v1_mounts() -> io::Result<Vec<(PathBuf, Vec<String>)>> {
    let text = fs::read_to_string("/proc/self/mountinfo")?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut right = right.split_whitespace();
            if right.next()? != "cgroup" {
                return None;
            }
            let super_opts = right.nth(1)?;
            let mount_point = unescape_mountinfo(left.split_whitespace().nth(4)?);
            let ctls = super_opts.split(',').map(str::to_string).collect();
            Some((PathBuf::from(mount_point), ctls))
        })
        .collect())
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        if bytes[i] == b'\\'
            && let Some(d) = octal
        {
            let v = d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            out.push(u8::try_from(v).unwrap_or(b'?'));
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    fs::write(path, value)
}

fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A `key value` line of a flat-keyed file (memory.stat, memory.events, cpu.stat, oom_control).
fn read_keyed(path: &Path, key: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

impl InstanceCgroup {
    /// The memory group exists (created by us or by an OCI runtime).
    pub fn exists(&self) -> bool {
        self.memory.is_dir()
    }

    /// Distinct directories (v1 may mount cpu and cpuacct together).
    pub fn dirs(&self) -> Vec<&Path> {
        let mut dirs: Vec<&Path> = Vec::with_capacity(3);
        for d in [&self.cpu, &self.cpuacct, &self.memory] {
            if !dirs.contains(&d.as_path()) {
                dirs.push(d);
            }
        }
        dirs
    }

    /// Creates the groups (or reuses them after a restart) and sets the limits.
    pub fn create(&self, resources: &Resources) -> Result<(), RuntimeError> {
        for d in self.dirs() {
            fs::create_dir_all(d).map_err(|e| RuntimeError::Cgroup {
                what: "directory",
                path: d.to_path_buf(),
                source: e,
            })?;
        }
        self.set_cpu_quota(resources)?;
        self.set_memory_limit(resources)
    }

    /// Sets the CPU quota of `resources` (none: unlimited) on the existing group.
    pub fn set_cpu_quota(&self, resources: &Resources) -> Result<(), RuntimeError> {
        let millis = resources.cpu.0;
        let quota = (millis > 0).then(|| (millis.saturating_mul(100)).max(CFS_MIN_QUOTA_US));
        let cpu_err = |path: PathBuf| {
            move |e| RuntimeError::Cgroup {
                what: "cpu quota",
                path,
                source: e,
            }
        };
        match self.version {
            CgroupVersion::V1 => {
                // Each write makes the kernel re-check the bandwidth of every group on the
                // machine (tg_set_bandwidth): skip the period when it already has our value.
                let period = self.cpu.join("cpu.cfs_period_us");
                if read_u64(&period) != Some(CFS_PERIOD_US) {
                    write(&period, &CFS_PERIOD_US.to_string()).map_err(cpu_err(period))?;
                }
                let q = self.cpu.join("cpu.cfs_quota_us");
                let v = quota.map_or_else(|| "-1".to_string(), |q| q.to_string());
                write(&q, &v).map_err(cpu_err(q))
            }
            CgroupVersion::V2 => {
                let f = self.cpu.join("cpu.max");
                let v = quota.map_or_else(
                    || format!("max {CFS_PERIOD_US}"),
                    |q| format!("{q} {CFS_PERIOD_US}"),
                );
                write(&f, &v).map_err(cpu_err(f))
            }
        }
    }

    fn set_memory_limit(&self, resources: &Resources) -> Result<(), RuntimeError> {
        let mem = (resources.memory.0 > 0).then(|| resources.memory.0.saturating_mul(1 << 20));
        let mem_err = |path: PathBuf| {
            move |e| RuntimeError::Cgroup {
                what: "memory limit",
                path,
                source: e,
            }
        };
        match self.version {
            CgroupVersion::V1 => {
                let limit = self.memory.join("memory.limit_in_bytes");
                let memsw = self.memory.join("memory.memsw.limit_in_bytes");
                let v = mem.map_or_else(|| "-1".to_string(), |m| m.to_string());
                let has_memsw = memsw.exists();
                // memsw must stay >= the limit: lift it first, then set both.
                if has_memsw {
                    let _ = write(&memsw, "-1");
                }
                write(&limit, &v).map_err(mem_err(limit))?;
                if has_memsw && let Err(e) = write(&memsw, &v) {
                    tracing::warn!(path = %memsw.display(), error = %e, "memory+swap limit not set; swap may exceed the limit");
                }
            }
            CgroupVersion::V2 => {
                let f = self.memory.join("memory.max");
                let v = mem.map_or_else(|| "max".to_string(), |m| m.to_string());
                write(&f, &v).map_err(mem_err(f))?;
                let swap = self.memory.join("memory.swap.max");
                if swap.exists()
                    && let Err(e) = write(&swap, if mem.is_some() { "0" } else { "max" })
                {
                    tracing::warn!(path = %swap.display(), error = %e, "swap limit not set");
                }
            }
        }
        Ok(())
    }

    /// The files a child writes "0" to (before exec) to join every group.
    pub fn open_procs(&self) -> Result<Vec<File>, RuntimeError> {
        self.dirs()
            .into_iter()
            .map(|d| {
                let path = d.join("cgroup.procs");
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| RuntimeError::Cgroup {
                        what: "membership",
                        path,
                        source: e,
                    })
            })
            .collect()
    }

    /// Pids of every process in any of the groups.
    pub fn members(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .dirs()
            .into_iter()
            .filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|t| {
                t.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    pub fn oom_counters(&self) -> OomCounters {
        match self.version {
            CgroupVersion::V1 => OomCounters {
                oom_kill: read_keyed(&self.memory.join("memory.oom_control"), "oom_kill"),
                failcnt: read_u64(&self.memory.join("memory.failcnt")),
            },
            CgroupVersion::V2 => OomCounters {
                oom_kill: read_keyed(&self.memory.join("memory.events"), "oom_kill"),
                failcnt: None,
            },
        }
    }

    /// (cumulative CPU ns, memory bytes without inactive page cache).
    pub fn usage(&self) -> Option<(u64, u64)> {
        let (cpu, current, inactive) = match self.version {
            CgroupVersion::V1 => (
                read_u64(&self.cpuacct.join("cpuacct.usage"))?,
                read_u64(&self.memory.join("memory.usage_in_bytes"))?,
                read_keyed(&self.memory.join("memory.stat"), "total_inactive_file"),
            ),
            CgroupVersion::V2 => (
                read_keyed(&self.cpu.join("cpu.stat"), "usage_usec")?.saturating_mul(1000),
                read_u64(&self.memory.join("memory.current"))?,
                read_keyed(&self.memory.join("memory.stat"), "inactive_file"),
            ),
        };
        Some((cpu, current.saturating_sub(inactive.unwrap_or(0))))
    }

    /// Removes the groups once empty; the kernel frees a group asynchronously after its
    /// last process is reaped, so EBUSY is retried until `deadline`.
    pub async fn remove(&self, deadline: Instant) -> Result<(), RuntimeError> {
        for d in self.dirs() {
            loop {
                match fs::remove_dir(d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == ErrorKind::NotFound => break,
                    Err(e) if e.kind() == ErrorKind::ResourceBusy && Instant::now() < deadline => {
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                    Err(e) => return Err(RuntimeError::io("remove cgroup", d, e)),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mount_points() {
        assert_eq!(unescape_mountinfo(r"/a\040b"), "/a b");
        assert_eq!(
            unescape_mountinfo("/sys/fs/cgroup/cpu,cpuacct"),
            "/sys/fs/cgroup/cpu,cpuacct"
        );
        assert_eq!(unescape_mountinfo(r"/x\"), r"/x\");
    }

    #[test]
    fn oom_from_counters() {
        let base = OomCounters {
            oom_kill: Some(1),
            failcnt: Some(0),
        };
        let now = OomCounters {
            oom_kill: Some(2),
            failcnt: Some(5),
        };
        assert!(now.oom_since(&base, false));
        assert!(!base.oom_since(&base, true));
        let base = OomCounters {
            oom_kill: None,
            failcnt: Some(0),
        };
        let now = OomCounters {
            oom_kill: None,
            failcnt: Some(3),
        };
        assert!(now.oom_since(&base, true));
        assert!(!now.oom_since(&base, false));
    }

    #[test]
    fn rejects_parent_escaping_the_hierarchy() {
        assert!(Cgroups::detect("../x").is_err());
        assert!(Cgroups::detect("/abs").is_err());
        assert!(Cgroups::detect("").is_err());
    }
}
