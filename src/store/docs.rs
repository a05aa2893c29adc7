//! How a message's merged document is kept in `docs.doc`: a zstd frame (BLOB) of its JSON,
//! compressed against a fixed raw-content dictionary of typical docs (`doc_dictionary.txt`).
//! Most of a doc (keys, the bot's author block, CDN URLs, `MJ::JOB::` button ids) is then a
//! back-reference: a doc takes about a fifth of its JSON (~300 bytes instead of ~1,400).
//! A TEXT value is a doc stored as plain JSON by an mjlink before this; both are read.
//!
//! **The dictionary must never change**: stored docs need it to be read back (a test pins
//! its SHA-256). A new dictionary would need a new frame marker and both kept.

use rusqlite::types::ValueRef;

use mjlink_core::merge::Doc;
use mjlink_core::snowflake::Snowflake;

use super::{Result, StoreError};

const DOC_DICTIONARY: &[u8] = include_bytes!("doc_dictionary.txt");
const DOC_LEVEL: i32 = 1;
/// Larger than any doc a message can make (Discord caps a message well below this).
const MAX_DOC_BYTES: usize = 64 << 20;

/// A doc as `docs.doc` stores it: the zstd frame of its JSON. Made on any thread (each
/// thread keeps its own compression context), so that the common case, a message stored for
/// the first time, can be encoded before it reaches the writer ([`PreparedDoc`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedDoc(Vec<u8>);

impl EncodedDoc {
    pub fn of(doc: &Doc) -> EncodedDoc {
        let json = serde_json::to_string(doc).unwrap_or_default();
        // Compressing into memory fails only on a bug; the JSON is kept then (readable too).
        let frame = COMPRESSOR.with(|compressor| {
            compressor
                .borrow_mut()
                .as_mut()
                .and_then(|compressor| compressor.compress(json.as_bytes()).ok())
        });
        EncodedDoc(frame.unwrap_or_else(|| json.into_bytes()))
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Encodes `docs`, in order. Many (a batch's edits) are shared with a second thread: the
/// caller, the writer, is the pipeline's bottleneck, while the reader's core has room. Few,
/// or no thread to be had, are encoded on the caller's.
pub fn encode_all(docs: &[&Doc]) -> Vec<EncodedDoc> {
    /// Below this many, a thread (and its compression context) costs more than it saves.
    const WORTH_A_THREAD: usize = 32;
    let encode = |docs: &[&Doc]| docs.iter().map(|doc| EncodedDoc::of(doc)).collect::<Vec<_>>();
    if docs.len() < WORTH_A_THREAD {
        return encode(docs);
    }
    let (first, second) = docs.split_at(docs.len() / 2);
    std::thread::scope(|scope| {
        let other = std::thread::Builder::new()
            .name("mjlink-encode".to_string())
            .spawn_scoped(scope, || encode(second));
        let mut out = encode(first);
        match other
            .map_err(|_| ())
            .and_then(|other| other.join().map_err(|_| ()))
        {
            Ok(rest) => out.extend(rest),
            Err(()) => out.extend(encode(second)),
        }
        out
    })
}

/// A doc with its encoding, made off the writer's thread. The store uses the encoding only
/// for a doc equal to this one, so a prepared doc never changes what is stored.
#[derive(Debug, Clone)]
pub struct PreparedDoc {
    pub(super) doc: Doc,
    pub(super) encoded: EncodedDoc,
}

impl PreparedDoc {
    pub fn new(doc: Doc) -> PreparedDoc {
        let encoded = EncodedDoc::of(&doc);
        PreparedDoc { doc, encoded }
    }
}

thread_local! {
    /// `None` only if zstd could not make a context (out of memory): docs are then kept as
    /// plain JSON, which is still read.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        std::cell::RefCell::new(zstd::bulk::Compressor::with_dictionary(DOC_LEVEL, DOC_DICTIONARY).ok());
}

/// The decompression context, made once per store (the dictionary is loaded once).
pub(super) struct DocCodec {
    decompressor: zstd::bulk::Decompressor<'static>,
}

impl DocCodec {
    pub(super) fn new() -> std::io::Result<DocCodec> {
        Ok(DocCodec {
            decompressor: zstd::bulk::Decompressor::with_dictionary(DOC_DICTIONARY)?,
        })
    }

    pub(super) fn decode(&mut self, id: Snowflake, stored: ValueRef<'_>) -> Result<Doc> {
        let corrupt = |source| StoreError::CorruptDoc { id, source };
        match stored {
            ValueRef::Blob(frame) => {
                let size = zstd::zstd_safe::get_frame_content_size(frame)
                    .ok()
                    .flatten()
                    .unwrap_or(0);
                let json = self
                    .decompressor
                    .decompress(frame, (size as usize).min(MAX_DOC_BYTES))
                    .map_err(|error| corrupt(serde_json::Error::io(error)))?;
                serde_json::from_slice(&json).map_err(corrupt)
            }
            other => serde_json::from_slice(
                other
                    .as_bytes()
                    .map_err(|error| corrupt(serde_json::Error::io(std::io::Error::other(error))))?,
            )
            .map_err(corrupt),
        }
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    #[test]
    fn the_dictionary_never_changes() {
        let hash = format!("{:x}", Sha256::digest(DOC_DICTIONARY));
        assert_eq!(DOC_DICTIONARY.len(), 20_422);
        assert_eq!(
            hash, PINNED_DICTIONARY_SHA256,
            "stored docs cannot be read without the same dictionary"
        );
    }

    const PINNED_DICTIONARY_SHA256: &str = "0d183b7131dd1c45838c42a7bc9f00da3292a8a636181b61e5941613a3146131";

    #[test]
    fn docs_round_trip_and_old_json_docs_are_still_read() {
        let mut codec = DocCodec::new().unwrap();
        let json = r#"{"m":{"id":"5","channel_id":"7","content":"**a cat** - <@1> (fast)"},"r":1}"#;
        let doc: Doc = serde_json::from_str(json).unwrap();
        let frame = EncodedDoc::of(&doc);
        assert!(frame.as_bytes().len() < json.len());
        assert_eq!(
            codec
                .decode(Snowflake(5), ValueRef::Blob(frame.as_bytes()))
                .unwrap(),
            doc
        );
        // The same on another thread (each has its own context).
        let copy = doc.clone();
        let elsewhere = std::thread::spawn(move || EncodedDoc::of(&copy)).join().unwrap();
        assert_eq!(elsewhere, frame);
        assert_eq!(
            codec
                .decode(Snowflake(5), ValueRef::Text(json.as_bytes()))
                .unwrap(),
            doc
        );
        assert!(matches!(
            codec.decode(Snowflake(5), ValueRef::Blob(b"not a frame")),
            Err(StoreError::CorruptDoc { .. })
        ));
    }
}
