//! The agent's small state file: what its cluster assigned, so that a restarted agent knows
//! which running processes are its own and what to restart.

use canopy_tier::Workload;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One assigned instance as kept on disk (the format is stable across agent versions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub generation: u64,
    pub workload: Workload,
    pub restarts: u32,
    /// The image manifest digest the instance's current run was started from (containers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
}

pub struct StateFile {
    path: PathBuf,
    /// How often it was written (tests check one write per batch).
    #[cfg(test)]
    pub writes: std::sync::atomic::AtomicUsize,
}

impl StateFile {
    pub fn new(dir: &Path) -> StateFile {
        StateFile {
            path: dir.join("assignments.json"),
            #[cfg(test)]
            writes: Default::default(),
        }
    }

    pub fn load(&self) -> std::io::Result<BTreeMap<String, Record>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(e),
        }
    }

    /// Written whole to a temporary file, synced, then renamed over: never half a file.
    /// Borrows the records (no copy of a thousand workloads to write them).
    pub fn save<'a>(
        &self,
        records: impl Iterator<Item = (&'a String, &'a Record)>,
    ) -> std::io::Result<()> {
        let records: BTreeMap<&String, &Record> = records.collect();
        let bytes = serde_json::to_vec(&records)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let tmp = self.path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        #[cfg(test)]
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}
