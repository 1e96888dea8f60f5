//! Session streams (logs, exec, port-forward) over the tier links. The parent asks its child
//! with a `Down::OpenStream`; the child answers with a new `Session` call on the same
//! connection, whose first frame claims the stream id, so the parent pairs the call with the
//! request waiting for it. Each end then holds a [`Pipe`]: frames in, frames out, and always
//! a last [`Frame::End`] (a broken call reads as an end with an error, never as a hang).

use crate::pb::{self, stream_frame};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a requested stream waits for its child to claim it before it is dropped.
pub const CLAIM_DEADLINE: Duration = Duration::from_secs(5);
/// Frames buffered per direction; beyond that the sender waits (and HTTP/2 flow control
/// pushes back to the producer).
const PIPE_CAPACITY: usize = 64;

pub const INPUT: u32 = 0;
pub const STDOUT: u32 = 1;
pub const STDERR: u32 = 2;

/// What a session carries, in the tiers' own types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Ready,
    Data { channel: u32, data: Vec<u8> },
    CloseInput,
    Resize { cols: u16, rows: u16 },
    End(End),
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct End {
    pub exit_code: Option<i32>,
    /// Set when it ended badly, with its kind (`not_found`, `not_running`, `unsupported`,
    /// `unavailable`).
    pub error: Option<(String, String)>,
}

impl End {
    pub fn ok() -> End {
        End::default()
    }

    pub fn exited(code: i32) -> End {
        End {
            exit_code: Some(code),
            error: None,
        }
    }

    pub fn error(code: &str, message: impl Into<String>) -> End {
        End {
            exit_code: None,
            error: Some((code.to_string(), message.into())),
        }
    }
}

impl Frame {
    pub fn to_pb(&self) -> pb::StreamFrame {
        let body = match self {
            Frame::Ready => stream_frame::Body::Ready(true),
            Frame::Data { channel, data } => stream_frame::Body::Data(pb::Chunk {
                channel: *channel,
                data: data.clone(),
            }),
            Frame::CloseInput => stream_frame::Body::CloseInput(true),
            Frame::Resize { cols, rows } => stream_frame::Body::Resize(pb::Resize {
                cols: u32::from(*cols),
                rows: u32::from(*rows),
            }),
            Frame::End(end) => {
                let (code, error) = end.error.clone().unwrap_or_default();
                stream_frame::Body::End(pb::StreamEnd {
                    has_exit_code: end.exit_code.is_some(),
                    exit_code: end.exit_code.unwrap_or(0),
                    error,
                    code,
                })
            }
        };
        pb::StreamFrame { body: Some(body) }
    }

    /// `None` for a claim (only the first frame may be one) or an empty frame.
    pub fn from_pb(frame: pb::StreamFrame) -> Option<Frame> {
        Some(match frame.body? {
            stream_frame::Body::Claim(_) => return None,
            stream_frame::Body::Ready(_) => Frame::Ready,
            stream_frame::Body::Data(chunk) => Frame::Data {
                channel: chunk.channel,
                data: chunk.data,
            },
            stream_frame::Body::CloseInput(_) => Frame::CloseInput,
            stream_frame::Body::Resize(r) => Frame::Resize {
                cols: u16::try_from(r.cols).unwrap_or(u16::MAX),
                rows: u16::try_from(r.rows).unwrap_or(u16::MAX),
            },
            stream_frame::Body::End(end) => Frame::End(End {
                exit_code: end.has_exit_code.then_some(end.exit_code),
                error: (!end.error.is_empty() || !end.code.is_empty()).then(|| {
                    let code = if end.code.is_empty() {
                        "unavailable".to_string()
                    } else {
                        end.code
                    };
                    (code, end.error)
                }),
            }),
        })
    }
}

/// One end of a session: what the other end sends arrives on `rx`, what goes to it on `tx`.
#[derive(Debug)]
pub struct Pipe {
    pub tx: mpsc::Sender<Frame>,
    pub rx: mpsc::Receiver<Frame>,
}

impl Pipe {
    /// Two connected ends, in memory.
    pub fn pair() -> (Pipe, Pipe) {
        let (a_tx, a_rx) = mpsc::channel(PIPE_CAPACITY);
        let (b_tx, b_rx) = mpsc::channel(PIPE_CAPACITY);
        (Pipe { tx: a_tx, rx: b_rx }, Pipe { tx: b_tx, rx: a_rx })
    }

    /// Ends the session from this side (the other side may have gone: nothing to do then).
    pub async fn end(&self, end: End) {
        let _ = self.tx.send(Frame::End(end)).await;
    }

    /// The next frame; a vanished other end reads as an end with an error.
    pub async fn recv(&mut self) -> Frame {
        self.rx
            .recv()
            .await
            .unwrap_or_else(|| Frame::End(End::error("unavailable", "the stream broke off")))
    }
}

/// Feeds what arrives on a gRPC stream into `tx` until its end, turning a failed or
/// unterminated stream into an end with an error.
pub(crate) fn forward_inbound(
    mut inbound: tonic::Streaming<pb::StreamFrame>,
    tx: mpsc::Sender<Frame>,
) {
    tokio::spawn(async move {
        loop {
            let frame = match inbound.message().await {
                Ok(Some(frame)) => match Frame::from_pb(frame) {
                    Some(frame) => frame,
                    None => continue,
                },
                Ok(None) => Frame::End(End::error("unavailable", "the stream closed early")),
                Err(status) => Frame::End(End::error(
                    "unavailable",
                    format!("the stream broke off: {}", status.message()),
                )),
            };
            let last = matches!(frame, Frame::End(_));
            if tx.send(frame).await.is_err() || last {
                return;
            }
        }
    });
}

/// A stream was asked for and not (or no longer) to be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("the link to {0} is down")]
    LinkDown(String),
    #[error("{0} did not open the stream within {1:?}")]
    NotClaimed(String, Duration),
}

/// Streams requested from children and not claimed yet, by id.
pub(crate) type Pending = crate::waiters::Waiters<Pipe>;

/// Relays two sessions into each other (a cluster between the root and a node) until
/// either ends; the end is passed on.
pub async fn splice(a: Pipe, b: Pipe) {
    let Pipe { tx: a_tx, rx: a_rx } = a;
    let Pipe { tx: b_tx, rx: b_rx } = b;
    let one_way = |mut from: mpsc::Receiver<Frame>, to: mpsc::Sender<Frame>| async move {
        loop {
            let frame = from
                .recv()
                .await
                .unwrap_or_else(|| Frame::End(End::error("unavailable", "the stream broke off")));
            let last = matches!(frame, Frame::End(_));
            if to.send(frame).await.is_err() || last {
                return;
            }
        }
    };
    // Either direction ending ends the session: the other side has sent or received its end.
    tokio::select! {
        _ = one_way(a_rx, b_tx) => {}
        _ = one_way(b_rx, a_tx) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn frames_survive_the_wire() {
        let frames = [
            Frame::Ready,
            Frame::Data {
                channel: STDERR,
                data: b"oops\n".to_vec(),
            },
            Frame::CloseInput,
            Frame::Resize { cols: 80, rows: 24 },
            Frame::End(End::exited(3)),
            Frame::End(End::error("not_running", "instance x is not running")),
            Frame::End(End::ok()),
        ];
        for frame in frames {
            assert_eq!(Frame::from_pb(frame.to_pb()), Some(frame));
        }
        let claim = pb::StreamFrame {
            body: Some(stream_frame::Body::Claim(7)),
        };
        assert_eq!(Frame::from_pb(claim), None);
    }

    #[tokio::test]
    async fn a_claim_reaches_its_waiter_once_and_an_abandoned_wait_is_forgotten() {
        let pending = Arc::new(Pending::default());
        let waiting = pending.register();
        let id = waiting.id;
        let (mine, _theirs) = Pipe::pair();
        assert!(pending.deliver(id, mine).is_ok());
        let mut waiting = waiting;
        assert!((&mut waiting.rx).await.is_ok(), "the waiter has the pipe");
        let (again, _) = Pipe::pair();
        assert!(pending.deliver(id, again).is_err(), "claimed only once");

        let abandoned = pending.register();
        let id = abandoned.id;
        drop(abandoned);
        let (late, _) = Pipe::pair();
        assert!(pending.deliver(id, late).is_err(), "nobody waits any more");
    }

    #[tokio::test]
    async fn a_splice_relays_both_ways_and_passes_the_end_on() {
        let (root, cluster_up) = Pipe::pair();
        let (cluster_down, mut node) = Pipe::pair();
        let relay = tokio::spawn(splice(cluster_up, cluster_down));
        let mut root = root;
        root.tx.send(Frame::CloseInput).await.unwrap();
        assert_eq!(node.recv().await, Frame::CloseInput);
        node.tx.send(Frame::Ready).await.unwrap();
        node.end(End::exited(0)).await;
        assert_eq!(root.recv().await, Frame::Ready);
        assert_eq!(root.recv().await, Frame::End(End::exited(0)));
        relay.await.unwrap();
    }

    #[tokio::test]
    async fn a_vanished_end_reads_as_an_error_not_a_hang() {
        let (mut mine, theirs) = Pipe::pair();
        drop(theirs);
        match mine.recv().await {
            Frame::End(end) => assert_eq!(end.error.unwrap().0, "unavailable"),
            other => panic!("expected an end, got {other:?}"),
        }
    }
}
