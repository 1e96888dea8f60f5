//! When each part of a log was written, so `canopy logs --since 5m` knows where to start.
//!
//! Workloads write their log files themselves (no relay stamps their lines), so the watcher
//! of a running instance records marks instead: about once a second, when a log grew, one
//! line `<unix ms> <length>` in `<log>.times`. Everything past a mark's length was written
//! after its time. A log starts, for `--since T`, at the last mark at or before `T`: lines
//! from up to one mark interval before `T` may be included, none after it is missed. The
//! marks follow their log through rotation (`.1`) and restarts (`.previous`); when a file
//! holds too many, every other one goes, coarsening the old ones rather than growing
//! without bound.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Size of a log's marks (about 3,000 of them) past which every other one is dropped.
const MAX_TIMES_BYTES: u64 = 64 * 1024;

/// The marks of log `log`.
pub(crate) fn times_of(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_os_string();
    name.push(".times");
    PathBuf::from(name)
}

/// Moves `from`'s marks to go with the file `from` became (`to`), replacing `to`'s.
pub(crate) fn follow_rename(from: &Path, to: &Path) -> io::Result<()> {
    match fs::rename(times_of(from), times_of(to)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::remove_file(times_of(to)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        },
        other => other,
    }
}

/// Records that `log` was `len` bytes long at `at_ms`.
pub(crate) fn record(log: &Path, at_ms: i64, len: u64) -> io::Result<()> {
    let path = times_of(log);
    let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
    writeln!(file, "{at_ms} {len}")?;
    if file.metadata()?.len() > MAX_TIMES_BYTES {
        rewrite(&path, &thinned(&read(log)?))?;
    }
    Ok(())
}

/// Where in `log` the lines written at or after `since_ms` start (0 when no mark is that
/// old, so all of it).
pub(crate) fn start_offset(log: &Path, since_ms: i64) -> io::Result<u64> {
    Ok(offset_since(&read(log)?, since_ms))
}

/// Whether some mark of `log` is at or before `since_ms`: then nothing older than `log`
/// (its rotated copy) was written after `since_ms`.
pub(crate) fn covers(log: &Path, since_ms: i64) -> io::Result<bool> {
    Ok(read(log)?.first().is_some_and(|&(at, _)| at <= since_ms))
}

/// The marks of `log`, oldest first; lines that do not parse are skipped.
fn read(log: &Path) -> io::Result<Vec<(i64, u64)>> {
    let text = match fs::read_to_string(times_of(log)) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .filter_map(|line| {
            let (at, len) = line.split_once(' ')?;
            Some((at.parse().ok()?, len.parse().ok()?))
        })
        .collect())
}

fn rewrite(path: &Path, marks: &[(i64, u64)]) -> io::Result<()> {
    let text: String = marks
        .iter()
        .map(|(at, len)| format!("{at} {len}\n"))
        .collect();
    let tmp = path.with_extension("times.tmp");
    fs::write(&tmp, text)?;
    fs::rename(tmp, path)
}

fn offset_since(marks: &[(i64, u64)], since_ms: i64) -> u64 {
    marks
        .iter()
        .take_while(|&&(at, _)| at <= since_ms)
        .last()
        .map_or(0, |&(_, len)| len)
}

/// Every other mark, keeping the newest.
fn thinned(marks: &[(i64, u64)]) -> Vec<(i64, u64)> {
    let keep_parity = (marks.len() - 1) % 2;
    marks
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 2 == keep_parity)
        .map(|(_, m)| *m)
        .collect()
}

/// Bytes `text` past the first line break at or after `offset - 1`: the whole lines of a
/// log that begin at or after `offset` (a mark may fall inside a line being written).
pub(crate) fn whole_lines_from(text: &[u8], offset_in_text: usize) -> &[u8] {
    if offset_in_text == 0 {
        return text;
    }
    match text[offset_in_text - 1..].iter().position(|&b| b == b'\n') {
        Some(at) => &text[offset_in_text + at..],
        None => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_is_the_last_mark_at_or_before_since() {
        let marks = [(1_000, 10), (2_000, 25), (3_000, 40)];
        assert_eq!(offset_since(&marks, 500), 0);
        assert_eq!(offset_since(&marks, 1_000), 10);
        assert_eq!(offset_since(&marks, 2_500), 25);
        assert_eq!(offset_since(&marks, 9_000), 40);
        assert_eq!(offset_since(&[], 9_000), 0);
    }

    #[test]
    fn thinning_halves_and_keeps_the_newest() {
        let marks: Vec<(i64, u64)> = (0..5).map(|i| (i, i as u64)).collect();
        assert_eq!(thinned(&marks), vec![(0, 0), (2, 2), (4, 4)]);
        let marks: Vec<(i64, u64)> = (0..4).map(|i| (i, i as u64)).collect();
        assert_eq!(thinned(&marks), vec![(1, 1), (3, 3)]);
    }

    #[test]
    fn a_start_inside_a_line_skips_to_the_next_whole_one() {
        let text = b"one\ntwo\nthree\n";
        assert_eq!(whole_lines_from(text, 0), b"one\ntwo\nthree\n");
        assert_eq!(whole_lines_from(text, 4), b"two\nthree\n");
        assert_eq!(whole_lines_from(text, 5), b"three\n");
        assert_eq!(whole_lines_from(text, 14), b"");
    }

    #[test]
    fn marks_are_recorded_read_thinned_and_follow_their_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("stdout.log");
        // A day of marks, one a second, as unix milliseconds.
        let base = 1_764_600_000_000_i64;
        let at = |i: i64| base + i * 1_000;
        for i in 0..86_400 {
            record(&log, at(i), i as u64 * 7).expect("record");
        }
        let bytes = fs::metadata(times_of(&log)).expect("times").len();
        assert!(bytes <= MAX_TIMES_BYTES + 64, "{bytes} bytes of marks");
        let marks = read(&log).expect("read");
        assert!(marks.len() > 1_000, "only {} marks kept", marks.len());
        assert_eq!(marks.last(), Some(&(at(86_399), 86_399 * 7)));
        assert!(marks.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(!covers(&log, base - 1).expect("covers"));
        assert_eq!(start_offset(&log, at(86_399)).expect("offset"), 86_399 * 7);

        let rotated = dir.path().join("stdout.log.1");
        follow_rename(&log, &rotated).expect("rename");
        assert_eq!(start_offset(&log, i64::MAX).expect("offset"), 0);
        assert_eq!(
            start_offset(&rotated, i64::MAX).expect("offset"),
            86_399 * 7
        );
        // A file without marks takes the marks of what it replaces away too.
        follow_rename(&log, &rotated).expect("rename");
        assert!(!times_of(&rotated).exists());
    }
}
