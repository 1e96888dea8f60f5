//! Reading an instance's logs as they grow (`canopy logs -f`), and keeping the run before
//! the current one (`--previous`).
//!
//! Each start moves the last run's `stdout.log`/`stderr.log` (and their `.1`) to
//! `stdout.previous.log`/`stderr.previous.log`, so a restarted instance's last words stay
//! readable and the current run starts empty. A follower tracks each file by inode and
//! offset: when the file is truncated by rotation (copy-then-truncate) it finishes the old
//! bytes from the `.1` copy, and when a restart moves it away it finishes them from the
//! `.previous` file, so nothing written before is skipped or repeated.

use crate::log_times;
use crate::logs::{rotated, tail_until};
use crate::supervise::LogPaths;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A partial line longer than this is passed on without waiting for its newline.
const MAX_PARTIAL: usize = 64 * 1024;

/// Which of an instance's two outputs a piece of log came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Stdout,
    Stderr,
}

/// Pieces of log, each with the output it came from.
pub type LogChunks = Vec<(Output, Vec<u8>)>;

/// The files of the run before the current one.
pub fn previous_paths(paths: &LogPaths) -> LogPaths {
    LogPaths {
        stdout: previous_of(&paths.stdout),
        stderr: previous_of(&paths.stderr),
    }
}

fn previous_of(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().replace(".log", ".previous.log"))
        .unwrap_or_default();
    path.with_file_name(name)
}

/// Before a start: the last run's logs become the previous run's (replacing older ones).
pub(crate) fn keep_previous_run(paths: &LogPaths) {
    for current in [&paths.stdout, &paths.stderr] {
        let previous = previous_of(current);
        for (from, to) in [
            (current.clone(), previous.clone()),
            (rotated(current), rotated(&previous)),
        ] {
            let moved = match fs::rename(&from, &to) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => fs::remove_file(&to),
                other => other,
            }
            .and(log_times::follow_rename(&from, &to));
            if let Err(e) = moved
                && e.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(path = %from.display(), error = %e, "cannot keep the previous run's log");
            }
        }
    }
}

/// Follows both log files of one run.
#[derive(Debug)]
pub struct LogFollower {
    files: [Cursor; 2],
}

impl LogFollower {
    /// Starts after the last `tail` lines of each file (all of them when `None`) written
    /// at or after `since` (unix ms; to the second, see [`crate::log_times`]), which it
    /// returns first.
    pub fn open(
        paths: &LogPaths,
        tail: Option<usize>,
        since_ms: Option<i64>,
    ) -> io::Result<(LogFollower, LogChunks)> {
        let mut first = Vec::new();
        let mut files = Vec::new();
        for (output, path) in [
            (Output::Stdout, &paths.stdout),
            (Output::Stderr, &paths.stderr),
        ] {
            let (cursor, text) = Cursor::open(path, tail, since_ms)?;
            if !text.is_empty() {
                first.push((output, text));
            }
            files.push(cursor);
        }
        let [stdout, stderr]: [Cursor; 2] = files
            .try_into()
            .map_err(|_| io::Error::other("two log files"))?;
        Ok((
            LogFollower {
                files: [stdout, stderr],
            },
            first,
        ))
    }

    /// Complete lines appended since the last call.
    pub fn poll(&mut self) -> io::Result<LogChunks> {
        let mut out = Vec::new();
        for (output, cursor) in [Output::Stdout, Output::Stderr]
            .into_iter()
            .zip(self.files.iter_mut())
        {
            let lines = cursor.poll()?;
            if !lines.is_empty() {
                out.push((output, lines));
            }
        }
        Ok(out)
    }
}

#[derive(Debug)]
struct Cursor {
    path: PathBuf,
    inode: Option<u64>,
    /// What `.1` looked like: when it changes, the file was rotated (its length alone
    /// does not say so once the workload wrote past the old offset again).
    rotated: Option<Signature>,
    offset: u64,
    partial: Vec<u8>,
}

type Signature = (u64, u64, i64, i64);

fn signature(path: &Path) -> io::Result<Option<Signature>> {
    match fs::metadata(path) {
        Ok(m) => Ok(Some((m.ino(), m.len(), m.mtime(), m.mtime_nsec()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn stat(path: &Path) -> io::Result<Option<(u64, u64)>> {
    match fs::metadata(path) {
        Ok(m) => Ok(Some((m.ino(), m.len()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Bytes `from..to` of `path` (to its end when `to` is `None`); nothing when it is missing.
fn read_range(path: &Path, from: u64, to: Option<u64>) -> io::Result<Vec<u8>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let end = to.unwrap_or(file.metadata()?.len());
    if end <= from {
        return Ok(Vec::new());
    }
    file.seek(SeekFrom::Start(from))?;
    let mut buf = Vec::new();
    file.take(end - from).read_to_end(&mut buf)?;
    Ok(buf)
}

impl Cursor {
    fn open(
        path: &Path,
        tail: Option<usize>,
        since_ms: Option<i64>,
    ) -> io::Result<(Cursor, Vec<u8>)> {
        let (inode, len) = match stat(path)? {
            Some((inode, len)) => (Some(inode), len),
            None => (None, 0),
        };
        let text = match (tail, since_ms) {
            (Some(n), None) => tail_until(path, n, len)?.into_bytes(),
            (None, None) => {
                let mut all = read_range(&rotated(path), 0, None)?;
                all.extend(read_range(path, 0, Some(len))?);
                all
            }
            (tail, Some(since_ms)) => {
                let since = written_since(path, len, since_ms)?;
                match tail {
                    Some(n) => last_lines(&since, n).to_vec(),
                    None => since,
                }
            }
        };
        let cursor = Cursor {
            path: path.to_path_buf(),
            rotated: signature(&rotated(path))?,
            inode,
            offset: len,
            partial: Vec::new(),
        };
        Ok((cursor, text))
    }

    fn poll(&mut self) -> io::Result<Vec<u8>> {
        let mut fresh = Vec::new();
        let now = stat(&self.path)?;
        let inode = now.map(|(inode, _)| inode);
        let rotated_now = signature(&rotated(&self.path))?;
        if self.inode.is_some() && inode != self.inode {
            // A restart moved the file away: finish it where it went, if it is still there.
            let previous = previous_of(&self.path);
            if stat(&previous)?.map(|(i, _)| i) == self.inode {
                fresh.extend(read_range(&previous, self.offset, None)?);
            }
            self.offset = 0;
        } else if (rotated_now.is_some() && rotated_now != self.rotated)
            || now.is_some_and(|(_, len)| len < self.offset)
        {
            // Rotated: the bytes after our offset were copied to `.1` before the truncation.
            fresh.extend(read_range(&rotated(&self.path), self.offset, None)?);
            self.offset = 0;
        }
        self.inode = inode;
        self.rotated = rotated_now;
        if let Some((_, len)) = now {
            fresh.extend(read_range(&self.path, self.offset, Some(len))?);
            self.offset = len.max(self.offset);
        }
        self.partial.extend(fresh);
        Ok(complete_lines(&mut self.partial))
    }
}

/// The whole lines of `path` (its first `len` bytes, after those of its rotated copy) that
/// were written at or after `since_ms`.
fn written_since(path: &Path, len: u64, since_ms: i64) -> io::Result<Vec<u8>> {
    let mut text = Vec::new();
    if !log_times::covers(path, since_ms)? {
        let older = rotated(path);
        let from = log_times::start_offset(&older, since_ms)?;
        let read = read_range(&older, from.saturating_sub(1), None)?;
        text.extend_from_slice(log_times::whole_lines_from(&read, usize::from(from > 0)));
    }
    let from = log_times::start_offset(path, since_ms)?.min(len);
    let read = read_range(path, from.saturating_sub(1), Some(len))?;
    text.extend_from_slice(log_times::whole_lines_from(&read, usize::from(from > 0)));
    Ok(text)
}

/// The last `n` lines of `text` (a trailing partial line counts as one).
fn last_lines(text: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &[];
    }
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let start = body
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'\n')
        .nth(n - 1)
        .map_or(0, |(at, _)| at + 1);
    &text[start..]
}

/// Takes the complete lines off the front of `buf` (all of it when it grew too long).
fn complete_lines(buf: &mut Vec<u8>) -> Vec<u8> {
    if buf.len() > MAX_PARTIAL {
        return std::mem::take(buf);
    }
    match buf.iter().rposition(|&b| b == b'\n') {
        Some(last) => {
            let rest = buf.split_off(last + 1);
            std::mem::replace(buf, rest)
        }
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::{open_append, rotate_if_needed};
    use crate::supervise::log_paths;
    use std::io::Write;

    fn text(chunks: LogChunks) -> Vec<(Output, String)> {
        chunks
            .into_iter()
            .map(|(o, b)| (o, String::from_utf8(b).unwrap()))
            .collect()
    }

    #[test]
    fn follows_appends_in_whole_lines_from_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let paths = log_paths(dir.path());
        let mut out = open_append(&paths.stdout).unwrap();
        write!(out, "a\nb\nc\n").unwrap();
        let (mut follower, first) = LogFollower::open(&paths, Some(2), None).unwrap();
        assert_eq!(text(first), [(Output::Stdout, "b\nc\n".to_string())]);
        assert!(follower.poll().unwrap().is_empty());
        write!(out, "d\npart").unwrap();
        let mut err = open_append(&paths.stderr).unwrap();
        writeln!(err, "oops").unwrap();
        assert_eq!(
            text(follower.poll().unwrap()),
            [
                (Output::Stdout, "d\n".to_string()),
                (Output::Stderr, "oops\n".to_string())
            ]
        );
        writeln!(out, "ial").unwrap();
        assert_eq!(
            text(follower.poll().unwrap()),
            [(Output::Stdout, "partial\n".to_string())]
        );
    }

    #[test]
    fn nothing_is_lost_across_a_rotation_or_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let paths = log_paths(dir.path());
        let mut out = open_append(&paths.stdout).unwrap();
        writeln!(out, "one").unwrap();
        let (mut follower, first) = LogFollower::open(&paths, None, None).unwrap();
        assert_eq!(text(first), [(Output::Stdout, "one\n".to_string())]);
        writeln!(out, "two").unwrap();
        assert!(rotate_if_needed(&paths.stdout, 1).unwrap());
        writeln!(out, "three").unwrap();
        assert_eq!(
            text(follower.poll().unwrap()),
            [(Output::Stdout, "two\nthree\n".to_string())]
        );
        writeln!(out, "last words").unwrap();
        drop(out);
        keep_previous_run(&paths);
        let mut next = open_append(&paths.stdout).unwrap();
        writeln!(next, "reborn").unwrap();
        assert_eq!(
            text(follower.poll().unwrap()),
            [(Output::Stdout, "last words\nreborn\n".to_string())]
        );
        let previous = previous_paths(&paths);
        let (_, first) = LogFollower::open(&previous, None, None).unwrap();
        assert_eq!(
            text(first),
            [(Output::Stdout, "one\ntwo\nthree\nlast words\n".to_string())]
        );
    }

    #[test]
    fn since_starts_at_the_lines_written_after_the_mark_across_rotation_and_restart() {
        let dir = tempfile::tempdir().unwrap();
        let paths = log_paths(dir.path());
        let mut out = open_append(&paths.stdout).unwrap();
        let mark = |at_ms: i64| {
            let len = fs::metadata(&paths.stdout).unwrap().len();
            log_times::record(&paths.stdout, at_ms, len).unwrap();
        };
        writeln!(out, "at one").unwrap();
        mark(1_000);
        write!(out, "at two, half").unwrap();
        mark(2_000);
        writeln!(out, " done").unwrap();
        writeln!(out, "at three").unwrap();
        mark(3_000);
        let since = |ms: i64, tail: Option<usize>| {
            text(LogFollower::open(&paths, tail, Some(ms)).unwrap().1)
        };
        assert_eq!(
            since(500, None),
            [(
                Output::Stdout,
                "at one\nat two, half done\nat three\n".to_string()
            )]
        );
        // The mark at 2 s fell inside a line: it starts at the next whole one.
        assert_eq!(
            since(2_500, None),
            [(Output::Stdout, "at three\n".to_string())]
        );
        assert_eq!(
            since(1_500, Some(1)),
            [(Output::Stdout, "at three\n".to_string())]
        );
        assert!(since(9_000, None).is_empty());

        // Rotated: the older lines are read from `.1` with the marks that went with it.
        assert!(rotate_if_needed(&paths.stdout, 1).unwrap());
        writeln!(out, "at four").unwrap();
        mark(4_000);
        assert_eq!(
            since(2_500, None),
            [(Output::Stdout, "at three\nat four\n".to_string())]
        );
        // Written before the mark at 4 s: not "since" it.
        assert!(since(4_000, None).is_empty());
        assert_eq!(
            since(3_500, None),
            [(Output::Stdout, "at four\n".to_string())]
        );

        // Restarted: the previous run keeps its marks.
        drop(out);
        keep_previous_run(&paths);
        let previous = previous_paths(&paths);
        assert_eq!(
            text(LogFollower::open(&previous, None, Some(3_500)).unwrap().1),
            [(Output::Stdout, "at four\n".to_string())]
        );
        assert!(since(0, None).is_empty());
    }
}
