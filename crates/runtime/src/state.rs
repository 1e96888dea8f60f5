//! `state_dir/<id>/state.json`: what a restarted agent needs to re-adopt an instance.

use crate::cgroup::{InstanceCgroup, OomCounters};
use crate::{Exit, RuntimeError};
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

pub(crate) const STATE_FILE: &str = "state.json";
const STATE_TMP: &str = "state.json.tmp";
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PersistedState {
    pub format: u32,
    pub id: String,
    pub generation: u64,
    pub pid: u32,
    /// /proc/<pid>/stat field 22; a live pid with another start time is someone else.
    pub start_time: u64,
    /// Start times count from boot: after a reboot nothing in here is alive.
    pub boot_id: Option<String>,
    pub command: Vec<String>,
    pub cgroup: Option<InstanceCgroup>,
    /// OOM counters when this generation started.
    #[serde(default)]
    pub oom_base: OomCounters,
    /// Set once the agent saw the instance end.
    #[serde(default)]
    pub exit: Option<Exit>,
    /// For containers: the container's init. `pid` above is the same process when a holder
    /// supervises it, else the shim running the OCI runtime in the foreground (runsc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerInfo>,
}

/// The init process of a container, as the host sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ContainerInfo {
    pub pid: u32,
    pub start_time: u64,
    /// Its address, kept here since a namespace prepared by the agent's network hook
    /// leaves no `network.json` in the instance directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<std::net::IpAddr>,
    /// The holder whose child the init is once `create` returned (see `oci::holder`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<ProcessRef>,
}

/// A process by pid and start time (field 22 of its stat), so pid reuse cannot fool us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProcessRef {
    pub pid: u32,
    pub start_time: u64,
}

impl PersistedState {
    pub fn new(
        id: &str,
        generation: u64,
        pid: u32,
        start_time: u64,
        command: Vec<String>,
        cgroup: Option<InstanceCgroup>,
        oom_base: OomCounters,
    ) -> Self {
        PersistedState {
            format: FORMAT_VERSION,
            id: id.to_string(),
            generation,
            pid,
            start_time,
            boot_id: crate::proc_fs::boot_id(),
            command,
            cgroup,
            oom_base,
            exit: None,
            container: None,
        }
    }
}

/// Write to a temporary file, fsync, rename over state.json, fsync the directory:
/// a crash leaves either the old or the new state, never a torn one.
pub(crate) fn write_atomic(dir: &Path, state: &PersistedState) -> Result<(), RuntimeError> {
    let tmp = dir.join(STATE_TMP);
    let dst = dir.join(STATE_FILE);
    let json = serde_json::to_vec_pretty(state)
        .map_err(|e| RuntimeError::io("encode state", &dst, std::io::Error::other(e)))?;
    let mut f = File::create(&tmp).map_err(|e| RuntimeError::io("create", &tmp, e))?;
    f.write_all(&json)
        .and_then(|()| f.sync_all())
        .map_err(|e| RuntimeError::io("write", &tmp, e))?;
    drop(f);
    fs::rename(&tmp, &dst).map_err(|e| RuntimeError::io("rename into", &dst, e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| RuntimeError::io("sync directory", dir, e))
}

pub(crate) fn read(dir: &Path) -> Result<PersistedState, RuntimeError> {
    let path = dir.join(STATE_FILE);
    let bytes = fs::read(&path).map_err(|e| RuntimeError::io("read", &path, e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| RuntimeError::io("parse", &path, std::io::Error::other(e)))
}

/// Drops state.json (and a leftover temporary) but keeps the logs.
pub(crate) fn remove(dir: &Path) -> Result<(), RuntimeError> {
    for name in [STATE_FILE, STATE_TMP] {
        let p = dir.join(name);
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(RuntimeError::io("remove", &p, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = PersistedState::new(
            "a",
            3,
            42,
            99,
            vec!["/bin/true".into()],
            None,
            OomCounters::default(),
        );
        write_atomic(dir.path(), &s).expect("write");
        assert_eq!(read(dir.path()).expect("read"), s);
        s.exit = Some(Exit {
            code: Some(1),
            signal: None,
            oom_killed: false,
            reason: "exited with code 1".into(),
        });
        write_atomic(dir.path(), &s).expect("rewrite");
        assert_eq!(read(dir.path()).expect("read"), s);
        assert!(!dir.path().join(STATE_TMP).exists());
    }
}
