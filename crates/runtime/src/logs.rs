//! Log files: `stdout.log` and `stderr.log`, opened O_APPEND by the workload itself.
//!
//! Rotation is copy-then-truncate: when a file exceeds the size limit it is copied to
//! `<name>.1` (replacing the previous one) and truncated to zero. The workload keeps its
//! descriptor; with O_APPEND its next write lands at the new end, so nothing is sparse and
//! the agent never has to reopen the workload's files. Lines written between the copy and
//! the truncation are lost (the logrotate `copytruncate` trade-off). At most
//! `2 × limit` bytes per stream stay on disk.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

pub(crate) fn rotated(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".1");
    PathBuf::from(s)
}

/// Rotates `path` when it is larger than `max_bytes`; true when it did.
pub(crate) fn rotate_if_needed(path: &Path, max_bytes: u64) -> io::Result<bool> {
    let len = match fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if len <= max_bytes {
        return Ok(false);
    }
    fs::copy(path, rotated(path))?;
    OpenOptions::new().write(true).open(path)?.set_len(0)?;
    crate::log_times::follow_rename(path, &rotated(path))?;
    Ok(true)
}

/// Opens a log for appending (created if missing).
pub(crate) fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// The last `n` lines of `path`, continuing into `path.1` when the current file is short.
pub(crate) fn tail(path: &Path, n: usize) -> io::Result<String> {
    tail_until(path, n, u64::MAX)
}

/// [`tail`] of the current file's first `end` bytes (and of `path.1` before them), so a
/// follower that goes on from `end` neither repeats nor misses a line.
pub(crate) fn tail_until(path: &Path, n: usize, end: u64) -> io::Result<String> {
    if n == 0 {
        return Ok(String::new());
    }
    let mut lines = tail_file(path, n, end)?;
    if lines.len() < n {
        let mut older = tail_file(&rotated(path), n - lines.len(), u64::MAX)?;
        older.append(&mut lines);
        lines = older;
    }
    let mut out = lines.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    Ok(out)
}

/// Reads backwards in chunks until `n` complete lines are in hand, so a tail of a
/// large file costs about the size of the tail.
fn tail_file(path: &Path, n: usize, end: u64) -> io::Result<Vec<String>> {
    const CHUNK: u64 = 16 * 1024;
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len().min(end);
    let mut pos = len;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // A trailing newline ends the last line; it does not start another one.
        let body = buf.strip_suffix(b"\n").unwrap_or(&buf);
        if pos == 0 || body.iter().filter(|&&b| b == b'\n').count() >= n {
            break;
        }
        let step = CHUNK.min(pos);
        pos -= step;
        f.seek(SeekFrom::Start(pos))?;
        let mut chunk = vec![0u8; usize::try_from(step).unwrap_or(0)];
        f.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&buf);
        buf = chunk;
    }
    let text = String::from_utf8_lossy(&buf);
    let text = text.strip_suffix('\n').unwrap_or(&text);
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let all: Vec<&str> = text.split('\n').collect();
    let skip = all.len().saturating_sub(n);
    Ok(all[skip..].iter().map(|s| s.to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn tails_across_chunks_and_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("stdout.log");
        let mut f = open_append(&p).expect("open");
        for i in 0..5000 {
            writeln!(f, "line {i}").expect("write");
        }
        assert_eq!(tail(&p, 2).expect("tail"), "line 4998\nline 4999\n");
        assert!(rotate_if_needed(&p, 1000).expect("rotate"));
        assert_eq!(fs::metadata(&p).expect("meta").len(), 0);
        writeln!(f, "after").expect("write");
        assert_eq!(fs::read_to_string(&p).expect("read"), "after\n");
        assert_eq!(tail(&p, 3).expect("tail"), "line 4998\nline 4999\nafter\n");
        assert_eq!(tail(&p, 0).expect("tail"), "");
    }

    #[test]
    fn last_line_without_newline_counts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.log");
        fs::write(&p, "a\nb\nc").expect("write");
        assert_eq!(tail(&p, 2).expect("tail"), "b\nc\n");
        assert_eq!(tail(&dir.path().join("missing"), 2).expect("tail"), "");
    }
}
