//! Just enough of /proc: process state, group, start time and usage.

use std::fs;

/// The fields of /proc/<pid>/stat we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
    pub utime: u64,
    pub stime: u64,
    /// Field 22: clock ticks after boot; with the pid, identifies a process across pid reuse.
    pub start_time: u64,
    /// Field 52 (Linux 3.5+): a zombie's status as waitpid(2) would report it; 0 while it
    /// runs, and 0 when the caller may not ptrace-read the process.
    pub exit_code: Option<i32>,
}

impl ProcStat {
    /// Zombies and dead tasks hold a pid but run nothing.
    pub fn is_live(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }
}

pub(crate) fn stat(pid: i32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<ProcStat> {
    // comm (field 2) may contain spaces and parentheses: the fields resume after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3.
    let field = |n: usize| f.get(n - 3).copied();
    Some(ProcStat {
        state: field(3)?.chars().next()?,
        ppid: field(4)?.parse().ok()?,
        pgrp: field(5)?.parse().ok()?,
        session: field(6)?.parse().ok()?,
        utime: field(14)?.parse().ok()?,
        stime: field(15)?.parse().ok()?,
        start_time: field(22)?.parse().ok()?,
        exit_code: field(52).and_then(|v| v.parse().ok()),
    })
}

/// How zombie `pid` started at `start_time` ended, as waitpid(2) would tell its parent
/// (`exit code << 8`, or the signal): readable until the parent reaps it.
pub(crate) fn zombie_status(pid: i32, start_time: u64) -> Option<i32> {
    let s = stat(pid).filter(|s| s.state == 'Z' && s.start_time == start_time)?;
    s.exit_code
}

/// Live process `pid` started at `start_time` (guards against pid reuse).
pub(crate) fn alive_with_start(pid: i32, start_time: u64) -> bool {
    stat(pid).is_some_and(|s| s.is_live() && s.start_time == start_time)
}

pub(crate) fn boot_id() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

/// Live processes of the session and group `pgid` started no earlier than the leader
/// (our leader called setsid, so its descendants carry pgid = sid = leader pid).
pub(crate) fn group_members(pgid: i32, leader_start: u64) -> Vec<(i32, ProcStat)> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| Some((pid, stat(pid)?)))
        .filter(|(_, s)| {
            s.is_live() && s.pgrp == pgid && s.session == pgid && s.start_time >= leader_start
        })
        .collect()
}

/// Resident memory of `pid`, from statm.
pub(crate) fn rss_bytes(pid: i32) -> u64 {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/statm")) else {
        return 0;
    };
    let pages: u64 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages.saturating_mul(rustix::param::page_size() as u64)
}

pub(crate) fn ticks_to_ns(ticks: u64) -> u64 {
    let hz = rustix::param::clock_ticks_per_second().max(1);
    u64::try_from(u128::from(ticks) * 1_000_000_000 / u128::from(hz)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comm_with_parens_and_spaces() {
        let line = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 12345 1000 50 18446744073709551615";
        let s = parse_stat(line).expect("parses");
        assert_eq!(s.state, 'S');
        assert_eq!(s.ppid, 1);
        assert_eq!(s.pgrp, 42);
        assert_eq!(s.session, 42);
        assert_eq!(s.utime, 7);
        assert_eq!(s.stime, 3);
        assert_eq!(s.start_time, 12345);
        // An older kernel's shorter line has no exit code.
        assert_eq!(s.exit_code, None);
        let zombie = format!("{line}{} 1792", " 0".repeat(26));
        assert_eq!(parse_stat(&zombie).expect("parses").exit_code, Some(1792));
    }

    #[test]
    fn own_process_is_alive_with_its_start_time() {
        let me = std::process::id() as i32;
        let s = stat(me).expect("own stat");
        assert!(alive_with_start(me, s.start_time));
        assert!(!alive_with_start(me, s.start_time + 1));
    }
}
