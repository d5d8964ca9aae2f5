//! Pack files: many sealed blobs followed by their own sealed header, so the index can be rebuilt
//! from packs alone.
//!
//! Layout: `magic "BKDPACK1" | blob... | sealed header | header_len u32 LE`. The header is the
//! bincode of `Vec<PackEntry>`; each blob is `seal(codec u8 || payload)`, codec 0 = stored,
//! 1 = zstd.

use super::crypto::{CryptoError, MasterKeys};
use backupd_common::ids::BlobId;
use serde::{Deserialize, Serialize};

pub const PACK_MAGIC: &[u8; 8] = b"BKDPACK1";
/// Packs are closed once they reach this size.
pub const TARGET_PACK_SIZE: usize = 16 * 1024 * 1024;
/// Largest decoded pack header (about 1.2 million entries).
const HEADER_LIMIT: usize = 64 * 1024 * 1024;
/// Largest sealed header a pack's trailer may announce: read whole before it is opened, so a
/// damaged trailer must not ask for gigabytes.
pub const MAX_SEALED_HEADER: u32 = (HEADER_LIMIT + super::crypto::SEAL_OVERHEAD) as u32;
/// Largest blob plaintext: data chunks are at most 16 MiB, trees are metadata. A damaged
/// `raw_length` must not size a decompression buffer of gigabytes.
pub const MAX_BLOB: u32 = super::METADATA_LIMIT as u32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BlobKind {
    /// File content.
    Data,
    /// A directory listing (a serialized `Tree`).
    Tree,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackEntry {
    pub id: BlobId,
    pub kind: BlobKind,
    /// Offset of the sealed blob within the pack.
    pub offset: u32,
    /// Length of the sealed blob.
    pub length: u32,
    /// Length of the plaintext.
    pub raw_length: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("not a pack file (bad magic or too short)")]
    NotAPack,
    #[error("pack header: {0}")]
    Header(String),
    #[error("blob {id}: {source}")]
    Blob {
        id: BlobId,
        #[source]
        source: Box<BlobError>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("unknown compression codec {0}")]
    Codec(u8),
    #[error("decompression failed: {0}")]
    Decompress(String),
    #[error("content does not match its id (expected {expected}, got {actual})")]
    IdMismatch { expected: BlobId, actual: BlobId },
    #[error("recorded length {0} is more than any blob can be ({MAX_BLOB})")]
    TooLarge(u32),
    #[error("length {actual} differs from the recorded {expected}")]
    Length { expected: u32, actual: usize },
    #[error("decodes to other data than was stored (checksum of the plaintext differs)")]
    Altered,
}

const CODEC_STORED: u8 = 0;
const CODEC_ZSTD: u8 = 1;

thread_local! {
    /// zstd contexts are costly to set up (tables sized for the window); small files would pay
    /// that per blob, so each thread keeps one of each.
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

fn compress(data: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            *slot = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        match slot.as_mut() {
            Some((_, c)) => c.compress(data),
            None => zstd::bulk::compress(data, level),
        }
    })
}

fn decompress(data: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        match slot.as_mut() {
            Some(d) => d.decompress(data, capacity),
            None => zstd::bulk::decompress(data, capacity),
        }
    })
}

/// Compresses (unless it does not pay) and seals one blob.
pub fn encode_blob(keys: &MasterKeys, data: &[u8], zstd_level: i32) -> Vec<u8> {
    // Incompressible data (media, archives, encrypted files) is stored as is: a compressed copy
    // must save more than 1/32 to be worth the decompression on restore.
    match compress(data, zstd_level) {
        Ok(c) if c.len() < data.len() - data.len() / 32 => keys.seal_parts(&[&[CODEC_ZSTD], &c]),
        _ => keys.seal_parts(&[&[CODEC_STORED], data]),
    }
}

/// Opens, decompresses and verifies one sealed blob.
pub fn decode_blob(
    keys: &MasterKeys,
    sealed: &[u8],
    id: BlobId,
    raw_length: u32,
) -> Result<Vec<u8>, BlobError> {
    let data = open_blob(keys, sealed, raw_length)?;
    let actual = keys.blob_id(&data);
    if actual != id {
        return Err(BlobError::IdMismatch {
            expected: id,
            actual,
        });
    }
    Ok(data)
}

/// Opens and decompresses one sealed blob, checking its length but not its id.
fn open_blob(keys: &MasterKeys, sealed: &[u8], raw_length: u32) -> Result<Vec<u8>, BlobError> {
    if raw_length > MAX_BLOB {
        return Err(BlobError::TooLarge(raw_length));
    }
    let mut plain = keys.open(sealed)?;
    let codec = *plain.first().ok_or(BlobError::Codec(255))?;
    let data = match codec {
        CODEC_STORED => {
            plain.remove(0);
            plain
        }
        CODEC_ZSTD => decompress(&plain[1..], raw_length as usize)
            .map_err(|e| BlobError::Decompress(e.to_string()))?,
        other => return Err(BlobError::Codec(other)),
    };
    if data.len() != raw_length as usize {
        return Err(BlobError::Length {
            expected: raw_length,
            actual: data.len(),
        });
    }
    Ok(data)
}

/// The in-memory checksum a pack's blob is verified against before the pack is stored, when
/// the plaintext was at hand as it was added ([`PackBuilder::add_plain`]). It guards against
/// the encoder, not an adversary: the keyed SHA-256 id computed from the same bytes names the
/// blob, and this only has to tell whether decoding gives those bytes back.
fn plain_check(data: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(data)
}

/// A pack being filled in memory.
#[derive(Debug)]
pub struct PackBuilder {
    /// Size the pack is closed at.
    target: usize,
    buf: Vec<u8>,
    entries: Vec<PackEntry>,
    /// Per entry, the plaintext's [`plain_check`] when it was added with its plaintext.
    checks: Vec<Option<u128>>,
}

impl Default for PackBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl PackBuilder {
    pub fn new() -> Self {
        Self::with_target(TARGET_PACK_SIZE)
    }

    /// A builder that closes its pack at `target` bytes (the tuner lowers it under memory
    /// pressure; at least 1 MiB).
    pub fn with_target(target: usize) -> Self {
        Self::with_buffer(target, Vec::new())
    }

    /// [`Self::with_target`], filling `buf` (emptied; a written pack's, reused).
    pub fn with_buffer(target: usize, mut buf: Vec<u8>) -> Self {
        let target = target.clamp(1 << 20, TARGET_PACK_SIZE);
        buf.clear();
        // Room for the blobs plus the sealed header, so finishing never reallocates.
        buf.reserve(target + 1024 * 1024);
        buf.extend_from_slice(PACK_MAGIC);
        Self {
            target,
            buf,
            entries: Vec::new(),
            checks: Vec::new(),
        }
    }

    /// Adds a sealed blob whose plaintext `data` is at hand: verifying the pack then compares
    /// checksums of the plaintext instead of re-computing the keyed SHA-256 id.
    pub fn add_plain(&mut self, id: BlobId, kind: BlobKind, sealed: &[u8], data: &[u8]) {
        self.add(id, kind, sealed, data.len());
        if let Some(last) = self.checks.last_mut() {
            *last = Some(plain_check(data));
        }
    }

    pub fn add(&mut self, id: BlobId, kind: BlobKind, sealed: &[u8], raw_length: usize) {
        self.checks.push(None);
        self.entries.push(PackEntry {
            id,
            kind,
            offset: self.buf.len() as u32,
            length: sealed.len() as u32,
            raw_length: raw_length as u32,
        });
        self.buf.extend_from_slice(sealed);
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether adding `len` more bytes would take a non-empty pack past the target size (the
    /// pack is then closed first, so packs never reallocate and stay near 16 MiB).
    pub fn would_overflow(&self, len: usize) -> bool {
        !self.entries.is_empty() && self.buf.len() + len > self.target
    }

    /// [`finish`](Self::finish), with the plaintext checksums to verify it with
    /// ([`verify_with`]).
    pub fn finish_checked(
        mut self,
        keys: &MasterKeys,
    ) -> (Vec<u8>, Vec<PackEntry>, Vec<Option<u128>>) {
        let checks = std::mem::take(&mut self.checks);
        let (bytes, entries) = self.finish(keys);
        (bytes, entries, checks)
    }

    /// Appends the sealed header and returns the pack's bytes and entries.
    pub fn finish(mut self, keys: &MasterKeys) -> (Vec<u8>, Vec<PackEntry>) {
        let header = bincode::serde::encode_to_vec(&self.entries, bincode::config::standard())
            .unwrap_or_else(|_| unreachable!("pack entries always encode"));
        let sealed = keys.seal(&header);
        self.buf.extend_from_slice(&sealed);
        self.buf
            .extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        (self.buf, self.entries)
    }
}

/// Reads the header of a complete pack.
pub fn read_header(keys: &MasterKeys, pack: &[u8]) -> Result<Vec<PackEntry>, PackError> {
    if pack.len() < PACK_MAGIC.len() + 4 || &pack[..8] != PACK_MAGIC {
        return Err(PackError::NotAPack);
    }
    let n = pack.len();
    let header_len = trailer_len(&pack[n - 4..]);
    let start = header_start(n as u64, header_len)?;
    decode_header(keys, &pack[start as usize..n - 4], start)
}

/// The header length stored in a pack's last 4 bytes.
pub fn trailer_len(last4: &[u8]) -> u32 {
    u32::from_le_bytes([last4[0], last4[1], last4[2], last4[3]])
}

/// Where the sealed header of a pack of `pack_len` bytes starts.
pub fn header_start(pack_len: u64, header_len: u32) -> Result<u64, PackError> {
    if header_len > MAX_SEALED_HEADER {
        return Err(PackError::Header(format!(
            "header length {header_len} is more than a header can be ({MAX_SEALED_HEADER})"
        )));
    }
    pack_len
        .checked_sub(4 + u64::from(header_len))
        .filter(|s| *s >= PACK_MAGIC.len() as u64)
        .ok_or_else(|| PackError::Header(format!("header length {header_len} out of range")))
}

/// Opens a sealed header that starts at `start` and checks every entry lies before it.
pub fn decode_header(
    keys: &MasterKeys,
    sealed: &[u8],
    start: u64,
) -> Result<Vec<PackEntry>, PackError> {
    let plain = keys
        .open(sealed)
        .map_err(|e| PackError::Header(e.to_string()))?;
    decode_entries(&plain, start)
}

/// Decodes a header's plaintext and checks every entry lies between the magic and `start`.
pub fn decode_entries(plain: &[u8], start: u64) -> Result<Vec<PackEntry>, PackError> {
    let entries: Vec<PackEntry> =
        super::decode::bounded(plain, HEADER_LIMIT).map_err(PackError::Header)?;
    for e in &entries {
        if (e.offset as usize) < PACK_MAGIC.len()
            || u64::from(e.offset) + u64::from(e.length) > start
        {
            return Err(PackError::Header(format!(
                "blob {} lies outside the pack",
                e.id
            )));
        }
    }
    Ok(entries)
}

/// The size of the pack holding exactly `entries` (in blob order): magic, blobs end to end,
/// sealed header, trailer. The header's length follows from the entries, since it is their
/// bincode under a seal of fixed overhead.
pub fn expected_size(entries: &[PackEntry]) -> u64 {
    let blobs_end = entries
        .iter()
        .map(|e| u64::from(e.offset) + u64::from(e.length))
        .max()
        .unwrap_or(PACK_MAGIC.len() as u64);
    let header = bincode::serde::encode_to_vec(entries, bincode::config::standard())
        .map(|h| h.len())
        .unwrap_or_else(|_| unreachable!("pack entries always encode"));
    blobs_end + (header + super::crypto::SEAL_OVERHEAD) as u64 + 4
}

/// Decrypts, decompresses and re-hashes every blob of a pack held in memory.
pub fn verify(keys: &MasterKeys, pack: &[u8], entries: &[PackEntry]) -> Result<(), PackError> {
    verify_with(keys, pack, entries, &[])
}

/// [`verify`], comparing a blob with its plaintext's checksum where `checks` has one for it
/// (by entry) and with its id otherwise.
pub fn verify_with(
    keys: &MasterKeys,
    pack: &[u8],
    entries: &[PackEntry],
    checks: &[Option<u128>],
) -> Result<(), PackError> {
    for (i, e) in entries.iter().enumerate() {
        let sealed = pack
            .get(e.offset as usize..e.offset as usize + e.length as usize)
            .ok_or(PackError::NotAPack)?;
        let decoded = match checks.get(i).copied().flatten() {
            Some(check) => open_blob(keys, sealed, e.raw_length).and_then(|data| {
                if plain_check(&data) == check {
                    Ok(())
                } else {
                    Err(BlobError::Altered)
                }
            }),
            None => decode_blob(keys, sealed, e.id, e.raw_length).map(|_| ()),
        };
        decoded.map_err(|source| PackError::Blob {
            id: e.id,
            source: Box::new(source),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_round_trip_and_header_rebuild() {
        let keys = MasterKeys::generate();
        let mut b = PackBuilder::new();
        let blobs: Vec<Vec<u8>> = vec![b"hello".repeat(1000), (0..=255u8).collect(), vec![]];
        for data in &blobs {
            let sealed = encode_blob(&keys, data, 1);
            b.add(keys.blob_id(data), BlobKind::Data, &sealed, data.len());
        }
        let (bytes, entries) = b.finish(&keys);
        assert_eq!(read_header(&keys, &bytes).expect("header"), entries);
        verify(&keys, &bytes, &entries).expect("verify");
        assert_eq!(expected_size(&entries), bytes.len() as u64);
        // Compressible data was compressed.
        assert!(entries[0].length < 5000);
        let mut damaged = bytes.clone();
        damaged[entries[1].offset as usize + 40] ^= 1;
        assert!(matches!(
            verify(&keys, &damaged, &entries),
            Err(PackError::Blob { .. })
        ));
    }

    #[test]
    fn plain_checks_catch_a_blob_that_decodes_to_other_data() {
        let keys = MasterKeys::generate();
        let (a, b) = (
            b"the data that was read".repeat(50),
            b"other data".repeat(50),
        );
        let mut good = PackBuilder::new();
        good.add_plain(
            keys.blob_id(&a),
            BlobKind::Data,
            &encode_blob(&keys, &a, 1),
            &a,
        );
        good.add(
            keys.blob_id(&b),
            BlobKind::Data,
            &encode_blob(&keys, &b, 1),
            b.len(),
        );
        let (bytes, entries, checks) = good.finish_checked(&keys);
        assert_eq!(checks.len(), 2);
        assert!(checks[0].is_some() && checks[1].is_none());
        verify_with(&keys, &bytes, &entries, &checks).expect("a faithful pack verifies");
        let mut damaged = bytes.clone();
        damaged[entries[0].offset as usize + 40] ^= 1;
        assert!(verify_with(&keys, &damaged, &entries, &checks).is_err());

        // An encoder that sealed other bytes than it was given (same length): the id is not
        // re-computed, the checksum of the plaintext tells.
        let c = b"THE DATA THAT WAS READ".repeat(50);
        let mut bad = PackBuilder::new();
        bad.add_plain(
            keys.blob_id(&a),
            BlobKind::Data,
            &encode_blob(&keys, &c, 1),
            &a,
        );
        let (bytes, entries, checks) = bad.finish_checked(&keys);
        match verify_with(&keys, &bytes, &entries, &checks) {
            Err(PackError::Blob { source, .. }) => assert!(matches!(*source, BlobError::Altered)),
            other => panic!("expected an altered blob, got {other:?}"),
        }
    }
}
