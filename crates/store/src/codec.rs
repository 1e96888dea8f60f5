//! Compact binary encodings of the redb backend's records.
//!
//! Key-value record: `create_revision u64 LE | mod_revision u64 LE | version u64 LE | value`.
//! Event record (its revision is the log key): `0 | create u64 | version u64 | key_len u32 | key
//! | value` for a put, `1 | key` for a delete.

use crate::{Entry, Revision, StoreError, WatchEvent};

const HEADER: usize = 24;
const TAG_PUT: u8 = 0;
const TAG_DELETE: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub create_revision: Revision,
    pub mod_revision: Revision,
    pub version: u64,
}

pub(crate) fn encode_record(meta: Meta, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + value.len());
    out.extend_from_slice(&meta.create_revision.to_le_bytes());
    out.extend_from_slice(&meta.mod_revision.to_le_bytes());
    out.extend_from_slice(&meta.version.to_le_bytes());
    out.extend_from_slice(value);
    out
}

pub(crate) fn decode_meta(raw: &[u8]) -> Result<Meta, StoreError> {
    Ok(Meta {
        create_revision: read_u64(raw, 0)?,
        mod_revision: read_u64(raw, 8)?,
        version: read_u64(raw, 16)?,
    })
}

pub(crate) fn decode_record(key: &str, raw: &[u8]) -> Result<Entry, StoreError> {
    let meta = decode_meta(raw)?;
    Ok(Entry {
        key: key.to_owned(),
        value: raw[HEADER..].to_vec(),
        create_revision: meta.create_revision,
        mod_revision: meta.mod_revision,
        version: meta.version,
    })
}

pub(crate) fn encode_event(event: &WatchEvent) -> Vec<u8> {
    match event {
        WatchEvent::Put { entry } => {
            let mut out = Vec::with_capacity(1 + 20 + entry.key.len() + entry.value.len());
            out.push(TAG_PUT);
            out.extend_from_slice(&entry.create_revision.to_le_bytes());
            out.extend_from_slice(&entry.version.to_le_bytes());
            // Keys are bounded by redb's 3 GiB limit, which u32 covers.
            out.extend_from_slice(&(entry.key.len() as u32).to_le_bytes());
            out.extend_from_slice(entry.key.as_bytes());
            out.extend_from_slice(&entry.value);
            out
        }
        WatchEvent::Delete { key, .. } => {
            let mut out = Vec::with_capacity(1 + key.len());
            out.push(TAG_DELETE);
            out.extend_from_slice(key.as_bytes());
            out
        }
    }
}

/// The key of an encoded event, without decoding the value (for prefix filtering).
pub(crate) fn event_key(raw: &[u8]) -> Result<&str, StoreError> {
    match raw.first() {
        Some(&TAG_PUT) => {
            let len = read_u32(raw, 17)? as usize;
            let key = raw.get(21..21 + len).ok_or_else(corrupt)?;
            std::str::from_utf8(key).map_err(|_| corrupt())
        }
        Some(&TAG_DELETE) => std::str::from_utf8(&raw[1..]).map_err(|_| corrupt()),
        _ => Err(corrupt()),
    }
}

pub(crate) fn decode_event(revision: Revision, raw: &[u8]) -> Result<WatchEvent, StoreError> {
    let key = event_key(raw)?.to_owned();
    match raw[0] {
        TAG_PUT => {
            let value = raw[21 + key.len()..].to_vec();
            Ok(WatchEvent::Put {
                entry: Entry {
                    create_revision: read_u64(raw, 1)?,
                    version: read_u64(raw, 9)?,
                    mod_revision: revision,
                    key,
                    value,
                },
            })
        }
        _ => Ok(WatchEvent::Delete { key, revision }),
    }
}

fn read_u64(raw: &[u8], at: usize) -> Result<u64, StoreError> {
    let bytes = raw.get(at..at + 8).ok_or_else(corrupt)?;
    let mut buf = [0u8; 8];
    buf.copy_from_slice(bytes);
    Ok(u64::from_le_bytes(buf))
}

fn read_u32(raw: &[u8], at: usize) -> Result<u32, StoreError> {
    let bytes = raw.get(at..at + 4).ok_or_else(corrupt)?;
    let mut buf = [0u8; 4];
    buf.copy_from_slice(bytes);
    Ok(u32::from_le_bytes(buf))
}

fn corrupt() -> StoreError {
    StoreError::Backend("corrupt record in the store file".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_roundtrip() {
        let meta = Meta {
            create_revision: 3,
            mod_revision: 9,
            version: 4,
        };
        let raw = encode_record(meta, b"hello");
        assert_eq!(decode_meta(&raw).unwrap(), meta);
        let entry = decode_record("/k", &raw).unwrap();
        assert_eq!(entry.value, b"hello");
        assert_eq!(entry.version, 4);
        assert!(decode_meta(&raw[..10]).is_err());
    }

    #[test]
    fn event_roundtrip() {
        let put = WatchEvent::Put {
            entry: Entry {
                key: "/apps/ä".into(),
                value: vec![1, 2, 3],
                create_revision: 2,
                mod_revision: 7,
                version: 5,
            },
        };
        let raw = encode_event(&put);
        assert_eq!(event_key(&raw).unwrap(), "/apps/ä");
        assert_eq!(decode_event(7, &raw).unwrap(), put);

        let del = WatchEvent::Delete {
            key: "/x".into(),
            revision: 8,
        };
        let raw = encode_event(&del);
        assert_eq!(event_key(&raw).unwrap(), "/x");
        assert_eq!(decode_event(8, &raw).unwrap(), del);
        assert!(event_key(&[9]).is_err());
        assert!(event_key(&[TAG_PUT, 1]).is_err());
    }
}
