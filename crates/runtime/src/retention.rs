//! Logs of removed instances: `remove` keeps an instance's log files (with
//! `keep_logs_on_remove`) so `canopy logs` can still read a stopped or replaced instance,
//! and the oldest kept logs are dropped once all of them together pass a byte budget.

use crate::state::STATE_FILE;
use crate::supervise::validate_id;
use std::fs;
use std::path::Path;
use std::time::SystemTime;

/// Kept logs of one removed instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Kept {
    pub id: String,
    pub bytes: u64,
    pub modified: SystemTime,
}

/// Which kept logs to drop, oldest first, so that the rest fit in `budget` bytes.
pub(crate) fn to_prune(mut kept: Vec<Kept>, budget: u64) -> Vec<String> {
    let mut total: u64 = kept.iter().map(|k| k.bytes).sum();
    kept.sort_by(|a, b| a.modified.cmp(&b.modified).then(a.id.cmp(&b.id)));
    let mut drop = Vec::new();
    for k in kept {
        if total <= budget {
            break;
        }
        total = total.saturating_sub(k.bytes);
        drop.push(k.id);
    }
    drop
}

/// Instance directories under `state_dir` that hold only kept logs (no state).
fn kept_under(state_dir: &Path) -> Vec<Kept> {
    let Ok(entries) = fs::read_dir(state_dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let id = entry.file_name().to_str()?.to_string();
            let dir = entry.path();
            if validate_id(&id).is_err() || !dir.is_dir() || dir.join(STATE_FILE).exists() {
                return None;
            }
            let files: Vec<fs::Metadata> = fs::read_dir(&dir)
                .ok()?
                .flatten()
                .filter_map(|f| f.metadata().ok())
                .filter(|m| m.is_file())
                .collect();
            Some(Kept {
                id,
                bytes: files.iter().map(|m| m.len()).sum(),
                modified: files
                    .iter()
                    .filter_map(|m| m.modified().ok())
                    .max()
                    .unwrap_or(SystemTime::UNIX_EPOCH),
            })
        })
        .collect()
}

/// Drops the oldest kept logs under `state_dir` past `budget` bytes.
pub(crate) fn prune(state_dir: &Path, budget: u64) {
    for id in to_prune(kept_under(state_dir), budget) {
        let dir = state_dir.join(&id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => tracing::info!(id, "dropped kept logs past the budget"),
            Err(e) => tracing::warn!(id, error = %e, "cannot drop kept logs"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn kept(id: &str, bytes: u64, age_s: u64) -> Kept {
        Kept {
            id: id.to_string(),
            bytes,
            modified: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000 - age_s),
        }
    }

    #[test]
    fn the_oldest_go_first_until_the_rest_fit() {
        let all = vec![
            kept("new", 40, 1),
            kept("old", 50, 100),
            kept("mid", 30, 10),
        ];
        assert_eq!(to_prune(all.clone(), 200), Vec::<String>::new());
        assert_eq!(to_prune(all.clone(), 70), ["old"]);
        assert_eq!(to_prune(all.clone(), 39), ["old", "mid", "new"]);
        assert_eq!(to_prune(all, 40), ["old", "mid"]);
    }

    #[test]
    fn only_directories_without_state_count_as_kept() {
        let dir = tempfile::tempdir().unwrap();
        let removed = dir.path().join("removed-1");
        fs::create_dir(&removed).unwrap();
        fs::write(removed.join("stdout.log"), "12345").unwrap();
        let live = dir.path().join("live-1");
        fs::create_dir(&live).unwrap();
        fs::write(live.join(STATE_FILE), "{}").unwrap();
        fs::create_dir(dir.path().join("@runc")).unwrap();
        let kept = kept_under(dir.path());
        assert_eq!(kept.len(), 1);
        assert_eq!((kept[0].id.as_str(), kept[0].bytes), ("removed-1", 5));
        prune(dir.path(), 4);
        assert!(!removed.exists() && live.exists());
    }
}
