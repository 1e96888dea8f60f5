//! [`Frame`]s on a byte stream: how `canopy exec` and the root's API speak over an upgraded
//! HTTP connection. Each frame is `kind (u8) | length (u32, big-endian) | payload`.

use crate::streams::{End, Frame, Pipe};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const READY: u8 = 1;
const DATA: u8 = 2;
const CLOSE_INPUT: u8 = 3;
const RESIZE: u8 = 4;
const END: u8 = 5;
const HEADER: usize = 5;
/// Larger frames are refused: nothing we send comes near it.
pub const MAX_PAYLOAD: usize = 4 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("unknown frame kind {0}")]
    Kind(u8),
    #[error("frame of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("malformed {0} frame")]
    Malformed(&'static str),
}

pub fn encode(frame: &Frame) -> Vec<u8> {
    let (kind, payload) = match frame {
        Frame::Ready => (READY, Vec::new()),
        Frame::Data { channel, data } => {
            let mut p = Vec::with_capacity(data.len() + 1);
            p.push(u8::try_from(*channel).unwrap_or(u8::MAX));
            p.extend_from_slice(data);
            (DATA, p)
        }
        Frame::CloseInput => (CLOSE_INPUT, Vec::new()),
        Frame::Resize { cols, rows } => {
            let mut p = cols.to_be_bytes().to_vec();
            p.extend_from_slice(&rows.to_be_bytes());
            (RESIZE, p)
        }
        Frame::End(end) => {
            let mut p = vec![u8::from(end.exit_code.is_some())];
            p.extend_from_slice(&end.exit_code.unwrap_or(0).to_be_bytes());
            let (code, message) = end.error.clone().unwrap_or_default();
            let code = &code.as_bytes()[..code.len().min(255)];
            p.push(code.len() as u8);
            p.extend_from_slice(code);
            p.extend_from_slice(message.as_bytes());
            (END, p)
        }
    };
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend(payload);
    out
}

/// Takes the first whole frame off `buf`; `None` until one has arrived.
pub fn decode(buf: &mut Vec<u8>) -> Result<Option<Frame>, WireError> {
    if buf.len() < HEADER {
        return Ok(None);
    }
    let kind = buf[0];
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(WireError::TooLarge(len));
    }
    if buf.len() < HEADER + len {
        return Ok(None);
    }
    let payload: Vec<u8> = buf.drain(..HEADER + len).skip(HEADER).collect();
    let frame = match kind {
        READY => Frame::Ready,
        DATA => {
            let (&channel, data) = payload.split_first().ok_or(WireError::Malformed("data"))?;
            Frame::Data {
                channel: u32::from(channel),
                data: data.to_vec(),
            }
        }
        CLOSE_INPUT => Frame::CloseInput,
        RESIZE => match payload[..] {
            [c0, c1, r0, r1] => Frame::Resize {
                cols: u16::from_be_bytes([c0, c1]),
                rows: u16::from_be_bytes([r0, r1]),
            },
            _ => return Err(WireError::Malformed("resize")),
        },
        END => {
            if payload.len() < 6 {
                return Err(WireError::Malformed("end"));
            }
            let has_exit = payload[0] == 1;
            let exit = i32::from_be_bytes([payload[1], payload[2], payload[3], payload[4]]);
            let code_len = usize::from(payload[5]);
            let rest = payload.get(6..).unwrap_or_default();
            if rest.len() < code_len {
                return Err(WireError::Malformed("end"));
            }
            let code = String::from_utf8_lossy(&rest[..code_len]).into_owned();
            let message = String::from_utf8_lossy(&rest[code_len..]).into_owned();
            Frame::End(End {
                exit_code: has_exit.then_some(exit),
                error: (!code.is_empty()).then_some((code, message)),
            })
        }
        other => return Err(WireError::Kind(other)),
    };
    Ok(Some(frame))
}

/// Relays a byte connection (a client's upgraded HTTP connection) and a session into each
/// other until the session ends (its end is written out) or the client goes (the session is
/// ended for it).
pub async fn bridge<IO: AsyncRead + AsyncWrite + Send + 'static>(io: IO, pipe: Pipe) {
    let (mut reader, mut writer) = tokio::io::split(io);
    let Pipe { tx, mut rx } = pipe;
    let inbound = async move {
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            loop {
                match decode(&mut buf) {
                    Ok(Some(frame)) => {
                        if tx.send(frame).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx
                            .send(Frame::End(End::error("bad_request", e.to_string())))
                            .await;
                        return;
                    }
                }
            }
        }
        let _ = tx
            .send(Frame::End(End::error(
                "unavailable",
                "the client went away",
            )))
            .await;
    };
    let outbound = async move {
        loop {
            let frame = rx
                .recv()
                .await
                .unwrap_or_else(|| Frame::End(End::error("unavailable", "the stream broke off")));
            let last = matches!(frame, Frame::End(_));
            if writer.write_all(&encode(&frame)).await.is_err() || writer.flush().await.is_err() {
                return;
            }
            if last {
                let _ = writer.shutdown().await;
                return;
            }
        }
    };
    tokio::select! {
        _ = inbound => {}
        _ = outbound => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_even_when_split_across_reads() {
        let frames = [
            Frame::Ready,
            Frame::Data {
                channel: 2,
                data: b"err\n".to_vec(),
            },
            Frame::Data {
                channel: 0,
                data: Vec::new(),
            },
            Frame::CloseInput,
            Frame::Resize {
                cols: 120,
                rows: 40,
            },
            Frame::End(End::exited(-3)),
            Frame::End(End::error("not_running", "instance x is not running")),
        ];
        let bytes: Vec<u8> = frames.iter().flat_map(encode).collect();
        let mut buf = Vec::new();
        let mut decoded = Vec::new();
        for byte in bytes {
            buf.push(byte);
            while let Some(frame) = decode(&mut buf).unwrap() {
                decoded.push(frame);
            }
        }
        assert_eq!(decoded, frames);
        assert!(buf.is_empty());
    }

    #[test]
    fn bad_frames_are_refused() {
        let mut unknown = vec![9, 0, 0, 0, 0];
        assert_eq!(decode(&mut unknown), Err(WireError::Kind(9)));
        let mut huge = vec![DATA, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(decode(&mut huge), Err(WireError::TooLarge(_))));
        let mut short_resize = vec![RESIZE, 0, 0, 0, 1, 7];
        assert_eq!(
            decode(&mut short_resize),
            Err(WireError::Malformed("resize"))
        );
    }
}
