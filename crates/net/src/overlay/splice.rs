//! One direction of a proxied TCP connection. Bytes move socket → pipe → socket with
//! `splice(2)`, so they never enter user space: the copying path reached 0.46 of direct
//! throughput (`bench/proxy`). Where the kernel will not splice (EINVAL, or the call is not
//! allowed), the direction goes on with a copy through a buffer, first emptying the pipe.

use rustix::io::Errno;
use rustix::pipe::{PipeFlags, SpliceFlags};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};

/// What a pipe is asked to hold: more per call means fewer calls on a bulk transfer. The
/// kernel may grant less (`pipe-max-size`, a user's pipe quota), which only costs calls.
const PIPE_CAPACITY: usize = 1024 * 1024;

/// Bytes read at once by the fallback copy, allocated only when it runs.
const COPY_BUFFER: usize = 64 * 1024;

/// Moves bytes from `from` to `to` until `from` reaches EOF, adding to `count` every byte
/// the destination socket took, also when an error ends the direction.
pub(super) async fn pump(
    from: &mut ReadHalf<'_>,
    to: &mut WriteHalf<'_>,
    count: &mut u64,
) -> io::Result<()> {
    let mut pipe = match Pipe::open() {
        Ok(pipe) => pipe,
        // No pipe (out of descriptors): copying needs none.
        Err(_) => return copy(None, from, to, count).await,
    };
    match pipe.pump(from.as_ref(), to.as_ref(), count).await? {
        Ended::Eof => Ok(()),
        Ended::Unsupported => copy(Some(pipe), from, to, count).await,
    }
}

/// How a spliced direction ended without an error.
enum Ended {
    Eof,
    /// The kernel will not splice these descriptors; what the pipe holds is still to send.
    Unsupported,
}

struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    /// Bytes in the pipe not yet passed on.
    held: usize,
}

impl Pipe {
    fn open() -> io::Result<Self> {
        let (read, write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        let _ = rustix::pipe::fcntl_setpipe_size(&write, PIPE_CAPACITY);
        Ok(Self {
            read,
            write,
            held: 0,
        })
    }

    async fn pump(
        &mut self,
        from: &TcpStream,
        to: &TcpStream,
        count: &mut u64,
    ) -> io::Result<Ended> {
        loop {
            // The pipe is empty here, so a splice that would block waits for the socket and
            // one that moves nothing means EOF.
            from.readable().await?;
            let filled = match from.try_io(Interest::READABLE, || {
                splice(from, &self.write, PIPE_CAPACITY)
            }) {
                Ok(0) => return Ok(Ended::Eof),
                Ok(filled) => filled,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if unsupported(&e) => return Ok(Ended::Unsupported),
                Err(e) => return Err(e),
            };
            self.held = filled;
            while self.held > 0 {
                to.writable().await?;
                match to.try_io(Interest::WRITABLE, || splice(&self.read, to, self.held)) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(sent) => {
                        self.held -= sent;
                        *count += sent as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if unsupported(&e) => return Ok(Ended::Unsupported),
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

fn splice(from: impl AsFd, to: impl AsFd, len: usize) -> io::Result<usize> {
    rustix::pipe::splice(
        from,
        None,
        to,
        None,
        len,
        SpliceFlags::MOVE | SpliceFlags::NONBLOCK,
    )
    .map_err(io::Error::from)
}

/// The errors that say splicing is not possible here, as opposed to the connection failing.
fn unsupported(error: &io::Error) -> bool {
    [Errno::INVAL, Errno::NOSYS, Errno::OPNOTSUPP, Errno::PERM]
        .iter()
        .any(|errno| error.raw_os_error() == Some(errno.raw_os_error()))
}

/// The copy through user space: the pipe's leftover first, then read and write until EOF.
async fn copy(
    leftover: Option<Pipe>,
    from: &mut ReadHalf<'_>,
    to: &mut WriteHalf<'_>,
    count: &mut u64,
) -> io::Result<()> {
    let mut buffer = vec![0u8; COPY_BUFFER];
    if let Some(mut pipe) = leftover {
        while pipe.held > 0 {
            let take = pipe.held.min(buffer.len());
            let read = rustix::io::read(&pipe.read, &mut buffer[..take])?;
            if read == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            to.write_all(&buffer[..read]).await?;
            pipe.held -= read;
            *count += read as u64;
        }
    }
    loop {
        let read = from.read(&mut buffer).await?;
        if read == 0 {
            return Ok(());
        }
        to.write_all(&buffer[..read]).await?;
        *count += read as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// Two connected loopback sockets.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (connected, accepted) = tokio::join!(TcpStream::connect(address), listener.accept());
        (connected.unwrap(), accepted.unwrap().0)
    }

    /// The fallback copy sends what a pipe still held before what the socket brings next,
    /// and counts both.
    #[tokio::test]
    async fn the_fallback_copy_first_empties_the_pipe() {
        let (mut writer, mut source) = pair().await;
        let (mut sink, mut reader) = pair().await;
        let mut pipe = Pipe::open().unwrap();
        pipe.held = rustix::io::write(&pipe.write, b"held ").unwrap();
        writer.write_all(b"then read").await.unwrap();
        writer.shutdown().await.unwrap();
        let mut count = 0;
        {
            let (mut from, _) = source.split();
            let (_, mut to) = sink.split();
            copy(Some(pipe), &mut from, &mut to, &mut count)
                .await
                .unwrap();
            to.shutdown().await.unwrap();
        }
        let mut arrived = Vec::new();
        reader.read_to_end(&mut arrived).await.unwrap();
        assert_eq!(arrived, b"held then read");
        assert_eq!(count, 14);
    }
}
