//! The root's event stream (`GET /api/v1/events`, Server-Sent Events) as a sequence of changes.

use crate::client::Client;
use anyhow::Context;
use canopy_root::api::ChangeEvent;
use std::collections::VecDeque;

/// Splits SSE bytes into the `data` of each event; `event:` and `id:` repeat what the data
/// says, comments (`:` keep-alives) carry nothing.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of a line not yet ended (a chunk may end mid-line, even mid-character).
    partial: Vec<u8>,
    data: Option<String>,
}

impl SseParser {
    /// The data of every event completed by `chunk`.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<String> {
        self.partial.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let raw: Vec<u8> = self.partial.drain(..=end).collect();
            let text = String::from_utf8_lossy(&raw[..end]);
            let line = text.strip_suffix('\r').unwrap_or(&text);
            if line.is_empty() {
                events.extend(self.data.take());
            } else if let Some(value) = line.strip_prefix("data:") {
                let value = value.strip_prefix(' ').unwrap_or(value);
                match &mut self.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => self.data = Some(value.to_string()),
                }
            }
        }
        events
    }
}

/// The changes of the state from the moment [`Changes::open`] returns: the root starts its
/// watch before it answers, so nothing that happens afterwards is missed.
pub struct Changes {
    response: reqwest::Response,
    parser: SseParser,
    ready: VecDeque<ChangeEvent>,
}

impl Changes {
    pub async fn open(client: &Client) -> anyhow::Result<Changes> {
        let response = client
            .open_stream("/api/v1/events")
            .await
            .context("opening the event stream")?;
        Ok(Changes {
            response,
            parser: SseParser::default(),
            ready: VecDeque::new(),
        })
    }

    /// The next change; `None` when the root ended the stream.
    pub async fn next(&mut self) -> anyhow::Result<Option<ChangeEvent>> {
        loop {
            if let Some(change) = self.ready.pop_front() {
                return Ok(Some(change));
            }
            let Some(chunk) = self
                .response
                .chunk()
                .await
                .context("reading the event stream")?
            else {
                return Ok(None);
            };
            for data in self.parser.feed(&chunk) {
                let change = serde_json::from_str(&data)
                    .with_context(|| format!("unexpected event from the root: {data}"))?;
                self.ready.push_back(change);
            }
        }
    }

    /// A change already received, without waiting: to handle a burst as one.
    pub fn next_ready(&mut self) -> Option<ChangeEvent> {
        self.ready.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_end_at_a_blank_line_and_comments_are_skipped() {
        let mut parser = SseParser::default();
        let text = ":keep-alive\n\nevent: instance.put\nid: 7\ndata: {\"a\":1}\n\ndata: x\r\n\r\n";
        assert_eq!(parser.feed(text.as_bytes()), vec!["{\"a\":1}", "x"]);
    }

    #[test]
    fn chunks_may_split_lines_and_characters() {
        let mut parser = SseParser::default();
        let text = "data: héllo\n\n".as_bytes();
        let mut events = Vec::new();
        for byte in text {
            events.extend(parser.feed(std::slice::from_ref(byte)));
        }
        assert_eq!(events, vec!["héllo"]);
    }

    #[test]
    fn multi_line_data_is_joined() {
        let mut parser = SseParser::default();
        assert_eq!(parser.feed(b"data: a\ndata: b\n\n"), vec!["a\nb"]);
        assert!(parser.feed(b"data: unfinished\n").is_empty());
        assert_eq!(parser.feed(b"\n"), vec!["unfinished"]);
    }
}
