//! Sealed files: the stream format of `backupctl security encrypt|decrypt`, for files that leave
//! the repository (docs/FORMAT.md, "Sealed files"). Pure: it reads and writes through
//! `Read`/`Write` and knows nothing of descriptors, sockets or the registry.
//!
//! ```text
//! header  magic "BKPDENC" [7] | format version u8 = 1 | salt [32] | key tag [8]     (48 bytes)
//! chunk i AES-256-GCM(subkey, nonce_i, aad_i, plaintext_i) || tag [16]
//! ```
//!
//! - Every chunk holds [`CHUNK_SIZE`] bytes of plaintext except the last, which holds fewer
//!   (possibly none: an empty input, or one of a multiple of the chunk size, ends with an empty
//!   last chunk). A reader therefore knows the last chunk by its size, and the sealer can mark it
//!   without knowing the input's length in advance.
//! - `subkey = HMAC-SHA256(data_key[v], "backupd stream v1" || salt)`: its own label, so no
//!   repository object (labels "backupd blob subkey v1/v2") opens as a sealed file and no sealed
//!   file as an object, whatever bytes are fed to either.
//! - `nonce_i = i as u64 BE || 00 00 00 || last`, `aad_i = header || i as u64 BE || last`
//!   (`last` is 1 for the last chunk, else 0): a chunk opens only at its own position, with its
//!   own last-flag, in its own file (the random salt makes every file's subkey different), so
//!   reordering, dropping or repeating chunks, splicing two files, cutting the end off, appending
//!   and flipping any bit all fail authentication.
//! - `key tag = HMAC-SHA256(id_key, "backupd stream key tag v1" || salt || v as u32 LE)[..8]`:
//!   which data-key version sealed the file, readable only with the repository's keys. It is
//!   keyed with the never-rotated `id_key` rather than the data key (format-2 seals' tag) so
//!   that a file sealed by a version since retired is still named: its key is gone but its
//!   number is not.

use super::keyring::KeyRing;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::{self, Read, Write};
use zeroize::Zeroize;

type HmacSha256 = Hmac<Sha256>;

/// The first bytes of every sealed file.
pub const MAGIC: &[u8; 7] = b"BKPDENC";
/// The version of this format; a reader refuses others.
pub const FORMAT_VERSION: u8 = 1;
/// Plaintext bytes per chunk (all but the last).
pub const CHUNK_SIZE: usize = 1 << 20;
const SALT_LEN: usize = 32;
const KEY_TAG_LEN: usize = 8;
/// Bytes before the first chunk.
pub const HEADER_LEN: usize = MAGIC.len() + 1 + SALT_LEN + KEY_TAG_LEN;
/// Bytes each chunk adds to its plaintext.
pub const TAG_LEN: usize = 16;
/// Sealed bytes of a full chunk.
const SEALED_CHUNK: usize = CHUNK_SIZE + TAG_LEN;
const SUBKEY_LABEL: &[u8] = b"backupd stream v1";
const KEY_TAG_LABEL: &[u8] = b"backupd stream key tag v1";
const SALT_AT: usize = MAGIC.len() + 1;
const KEY_TAG_AT: usize = SALT_AT + SALT_LEN;

/// What went wrong, with the position where it did.
#[derive(Debug, thiserror::Error)]
pub enum SealedFileError {
    #[error("not a file sealed by `backupctl security encrypt`: {reason}")]
    NotSealed { reason: String },
    #[error(
        "the file is in sealed-file format version {version}; this backupd reads version \
         {FORMAT_VERSION}"
    )]
    UnknownFormat { version: u8 },
    #[error(
        "no data-key version of this repository sealed this file: it was encrypted with another \
         repository's key, or its header is damaged"
    )]
    NoMatchingKey,
    #[error(
        "the file was sealed with data-key version {version}, which this repository has retired: \
         its key material was destroyed, so the file can no longer be decrypted"
    )]
    Retired { version: u32 },
    #[error(
        "the file ends after {chunks} verified chunk(s) without its last chunk: it was truncated \
         (at byte {offset}); {written} bytes of verified plaintext were written before that"
    )]
    Truncated {
        chunks: u64,
        offset: u64,
        written: u64,
    },
    #[error(
        "chunk {chunk} (counting from 0, at byte {offset} of the sealed file) failed \
         authentication: the file was modified or damaged, cut inside a chunk or extended past \
         its end, or its chunks were reordered or taken from another sealed file; nothing of \
         this chunk or after it was written, {written} bytes of verified plaintext before it were"
    )]
    Authentication {
        chunk: u64,
        offset: u64,
        written: u64,
    },
    #[error("cannot read the input: {0}")]
    Read(#[source] io::Error),
    #[error("cannot write the output: {0}")]
    Write(#[source] io::Error),
    #[error("stopped after {chunks} chunk(s): {reason}")]
    Stopped { chunks: u64, reason: &'static str },
}

/// What a sealing or opening did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub key_version: u32,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Chunks done (the last one included once it is).
    pub chunks: u64,
}

fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn key_tag(id_key: &[u8; 32], salt: &[u8], version: u32) -> [u8; KEY_TAG_LEN] {
    let full = hmac(id_key, &[KEY_TAG_LABEL, salt, &version.to_le_bytes()]);
    let mut tag = [0u8; KEY_TAG_LEN];
    tag.copy_from_slice(&full[..KEY_TAG_LEN]);
    tag
}

fn cipher(data_key: &[u8; 32], salt: &[u8]) -> Aes256Gcm {
    let mut subkey = hmac(data_key, &[SUBKEY_LABEL, salt]);
    let cipher = Aes256Gcm::new(&subkey.into());
    subkey.zeroize();
    cipher
}

fn nonce(index: u64, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    n
}

fn aad(header: &[u8; HEADER_LEN], index: u64, last: bool) -> [u8; HEADER_LEN + 9] {
    let mut a = [0u8; HEADER_LEN + 9];
    a[..HEADER_LEN].copy_from_slice(header);
    a[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&index.to_be_bytes());
    a[HEADER_LEN + 8] = u8::from(last);
    a
}

/// The chunk cipher of one file and where in the file it is.
struct Chunks {
    cipher: Aes256Gcm,
    header: [u8; HEADER_LEN],
    next: u64,
}

impl Chunks {
    /// Seals `buf[..len]` in place and puts the tag after it; `buf` has room for it.
    fn seal(&mut self, buf: &mut [u8], len: usize, last: bool) {
        let (nonce, aad) = (nonce(self.next, last), aad(&self.header, self.next, last));
        // aes-gcm refuses only plaintexts over 64 GiB; a chunk is 1 MiB.
        let tag = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut buf[..len])
            .unwrap_or_else(|_| unreachable!("a chunk is below the AES-GCM size limit"));
        buf[len..len + TAG_LEN].copy_from_slice(&tag);
        self.next += 1;
    }

    /// Opens the sealed chunk `buf[..len]` in place: `Ok(plaintext length)`, or `Err(())` when
    /// it does not authenticate (nothing of it may be used then).
    fn open(&mut self, buf: &mut [u8], len: usize, last: bool) -> Result<usize, ()> {
        let plain = len.checked_sub(TAG_LEN).ok_or(())?;
        let (nonce, aad) = (nonce(self.next, last), aad(&self.header, self.next, last));
        let tag = Tag::clone_from_slice(&buf[plain..len]);
        self.cipher
            .decrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut buf[..plain], &tag)
            .map_err(drop)?;
        self.next += 1;
        Ok(plain)
    }
}

/// Reads until `buf` is full or the input ends; the bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Seals everything `input` holds into `output` with the ring's current data key. `each` is
/// called after every chunk with the totals so far; an error it returns stops the work.
pub fn encrypt(
    ring: &KeyRing,
    input: &mut impl Read,
    output: &mut impl Write,
    mut each: impl FnMut(&Totals) -> Result<(), SealedFileError>,
) -> Result<Totals, SealedFileError> {
    let version = ring.current;
    let data_key = ring
        .current_key()
        .and_then(|k| k.key.as_ref())
        .ok_or(SealedFileError::Retired { version })?;
    let salt: [u8; SALT_LEN] = rand::random();
    let mut header = [0u8; HEADER_LEN];
    header[..MAGIC.len()].copy_from_slice(MAGIC);
    header[MAGIC.len()] = FORMAT_VERSION;
    header[SALT_AT..KEY_TAG_AT].copy_from_slice(&salt);
    header[KEY_TAG_AT..].copy_from_slice(&key_tag(&ring.id_key, &salt, version));
    let mut chunks = Chunks {
        cipher: cipher(data_key, &salt),
        header,
        next: 0,
    };
    output.write_all(&header).map_err(SealedFileError::Write)?;
    let mut totals = Totals {
        key_version: version,
        bytes_out: HEADER_LEN as u64,
        ..Totals::default()
    };
    let mut buf = vec![0u8; SEALED_CHUNK];
    loop {
        let len = read_full(input, &mut buf[..CHUNK_SIZE]).map_err(SealedFileError::Read)?;
        let last = len < CHUNK_SIZE;
        chunks.seal(&mut buf, len, last);
        output
            .write_all(&buf[..len + TAG_LEN])
            .map_err(SealedFileError::Write)?;
        totals.bytes_in += len as u64;
        totals.bytes_out += (len + TAG_LEN) as u64;
        totals.chunks += 1;
        each(&totals)?;
        if last {
            break;
        }
    }
    output.flush().map_err(SealedFileError::Write)?;
    Ok(totals)
}

/// Reads the header and finds the data key that sealed the file among the ring's versions.
fn open_header(ring: &KeyRing, input: &mut impl Read) -> Result<(Chunks, u32), SealedFileError> {
    let mut header = [0u8; HEADER_LEN];
    let got = read_full(input, &mut header).map_err(SealedFileError::Read)?;
    if got < HEADER_LEN {
        return Err(SealedFileError::NotSealed {
            reason: format!("{got} bytes, fewer than the {HEADER_LEN}-byte header"),
        });
    }
    if &header[..MAGIC.len()] != MAGIC {
        return Err(SealedFileError::NotSealed {
            reason: "it does not begin with the magic bytes BKPDENC".into(),
        });
    }
    if header[MAGIC.len()] != FORMAT_VERSION {
        return Err(SealedFileError::UnknownFormat {
            version: header[MAGIC.len()],
        });
    }
    let salt = &header[SALT_AT..KEY_TAG_AT];
    let tag = &header[KEY_TAG_AT..];
    let found = ring
        .versions
        .iter()
        .rev()
        .find(|v| key_tag(&ring.id_key, salt, v.version) == tag)
        .ok_or(SealedFileError::NoMatchingKey)?;
    let key = found.key.as_ref().ok_or(SealedFileError::Retired {
        version: found.version,
    })?;
    let chunks = Chunks {
        cipher: cipher(key, salt),
        header,
        next: 0,
    };
    Ok((chunks, found.version))
}

/// Opens a sealed file from `input` into `output`, chunk by chunk: a chunk's plaintext is
/// written only once it authenticated. `each` as for [`encrypt`].
pub fn decrypt(
    ring: &KeyRing,
    input: &mut impl Read,
    output: &mut impl Write,
    mut each: impl FnMut(&Totals) -> Result<(), SealedFileError>,
) -> Result<Totals, SealedFileError> {
    let (mut chunks, version) = open_header(ring, input)?;
    let mut totals = Totals {
        key_version: version,
        bytes_in: HEADER_LEN as u64,
        ..Totals::default()
    };
    let mut buf = vec![0u8; SEALED_CHUNK];
    loop {
        let len = read_full(input, &mut buf).map_err(SealedFileError::Read)?;
        if len == 0 {
            return Err(SealedFileError::Truncated {
                chunks: totals.chunks,
                offset: totals.bytes_in,
                written: totals.bytes_out,
            });
        }
        // Only the last chunk is shorter than a full one.
        let last = len < SEALED_CHUNK;
        let plain =
            chunks
                .open(&mut buf, len, last)
                .map_err(|()| SealedFileError::Authentication {
                    chunk: totals.chunks,
                    offset: totals.bytes_in,
                    written: totals.bytes_out,
                })?;
        output
            .write_all(&buf[..plain])
            .map_err(SealedFileError::Write)?;
        totals.bytes_in += len as u64;
        totals.bytes_out += plain as u64;
        totals.chunks += 1;
        each(&totals)?;
        if last {
            break;
        }
    }
    output.flush().map_err(SealedFileError::Write)?;
    Ok(totals)
}

#[cfg(test)]
mod tests;
