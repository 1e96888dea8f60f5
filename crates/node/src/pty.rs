//! A pseudo-terminal for `canopy exec -t`: the command gets the slave side as its stdio and
//! controlling terminal; the node reads and writes the master side.

use rustix::pty::{OpenptFlags, grantpt, ioctl_tiocgptpeer, openpt, unlockpt};
use rustix::termios::{Winsize, tcsetwinsize};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::process::Stdio;

pub(crate) struct Pty {
    master: OwnedFd,
    slave: OwnedFd,
}

impl Pty {
    pub(crate) fn open(cols: u16, rows: u16) -> io::Result<Pty> {
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
        grantpt(&master)?;
        unlockpt(&master)?;
        let slave = ioctl_tiocgptpeer(&master, OpenptFlags::RDWR | OpenptFlags::NOCTTY)?;
        let pty = Pty { master, slave };
        if cols > 0 && rows > 0 {
            resize(&pty.master, cols, rows)?;
        }
        Ok(pty)
    }

    /// One of the command's stdio handles (each a copy of the slave side).
    pub(crate) fn slave(&self) -> io::Result<Stdio> {
        Ok(Stdio::from(self.slave.try_clone()?))
    }

    /// Drops the node's slave side once the command has its copies, so that reading the
    /// master ends when the command (and whatever it started) is gone.
    pub(crate) fn into_master(self) -> OwnedFd {
        self.master
    }
}

pub(crate) fn resize(master: &OwnedFd, cols: u16, rows: u16) -> io::Result<()> {
    tcsetwinsize(
        master,
        Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )?;
    Ok(())
}

/// A copy of the master side, for reading or writing.
pub(crate) fn master_file(master: &OwnedFd) -> io::Result<tokio::fs::File> {
    Ok(tokio::fs::File::from_std(File::from(master.try_clone()?)))
}

/// In the forked child, before exec: a session of its own with stdin (the slave side) as
/// its controlling terminal, as a login shell has.
pub(crate) fn become_terminal_leader() -> io::Result<()> {
    rustix::process::setsid()?;
    rustix::process::ioctl_tiocsctty(rustix::stdio::stdin())?;
    Ok(())
}
