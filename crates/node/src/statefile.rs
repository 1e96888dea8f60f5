//! The agent's small state file: what its cluster assigned, so that a restarted agent knows
//! which running processes are its own and what to restart. Each instance's secret values
//! are kept sealed under the node's key (bound to the instance and generation), never in
//! the clear.

use canopy_model::SecretValues;
use canopy_tier::Workload;
use canopy_tier::sealing::{Sealed, SealingKey};
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
    /// In memory only; on disk as [`OnDisk::sealed_secrets`].
    #[serde(skip)]
    pub secrets: SecretValues,
}

/// A record as the file holds it: the record, and its secret values sealed.
#[derive(Serialize)]
struct OnDisk<'a> {
    #[serde(flatten)]
    record: &'a Record,
    #[serde(rename = "sealedSecrets", skip_serializing_if = "Option::is_none")]
    sealed_secrets: Option<Sealed>,
}

#[derive(Deserialize)]
struct FromDisk {
    #[serde(flatten)]
    record: Record,
    #[serde(rename = "sealedSecrets", default)]
    sealed_secrets: Option<Sealed>,
}

fn context(id: &str, generation: u64) -> String {
    format!("node/instances/{id}@{generation}")
}

pub struct StateFile {
    path: PathBuf,
    sealing: SealingKey,
    /// How often it was written (tests check one write per batch).
    #[cfg(test)]
    pub writes: std::sync::atomic::AtomicUsize,
}

impl StateFile {
    pub fn new(dir: &Path, sealing: SealingKey) -> StateFile {
        StateFile {
            path: dir.join("assignments.json"),
            sealing,
            #[cfg(test)]
            writes: Default::default(),
        }
    }

    pub fn load(&self) -> std::io::Result<BTreeMap<String, Record>> {
        let stored: BTreeMap<String, FromDisk> = match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(e),
        };
        let mut records = BTreeMap::new();
        for (
            id,
            FromDisk {
                mut record,
                sealed_secrets,
            },
        ) in stored
        {
            if let Some(sealed) = sealed_secrets {
                match self
                    .sealing
                    .open_values(&context(&id, record.generation), &sealed)
                {
                    Ok(values) => record.secrets = values,
                    // Started again without them: its reason will say what is missing.
                    Err(e) => {
                        tracing::warn!(instance = %id, error = %e, "the instance's secrets are lost")
                    }
                }
            }
            records.insert(id, record);
        }
        Ok(records)
    }

    /// Written whole to a temporary file, synced, then renamed over: never half a file.
    /// Borrows the records (no copy of a thousand workloads to write them).
    pub fn save<'a>(
        &self,
        records: impl Iterator<Item = (&'a String, &'a Record)>,
    ) -> std::io::Result<()> {
        let mut on_disk = BTreeMap::new();
        for (id, record) in records {
            let sealed_secrets = match record.secrets.is_empty() {
                true => None,
                false => Some(
                    self.sealing
                        .seal_values(&context(id, record.generation), &record.secrets)
                        .map_err(std::io::Error::other)?,
                ),
            };
            on_disk.insert(
                id,
                OnDisk {
                    record,
                    sealed_secrets,
                },
            );
        }
        let bytes = serde_json::to_vec(&on_disk)
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
