use super::*;
use crate::repo::crypto::MasterKeys;
use backupd_tests::pseudo_random_bytes;

fn ring() -> KeyRing {
    KeyRing::from_v1(&MasterKeys::generate(), 0)
}

fn seal(ring: &KeyRing, plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let totals = encrypt(ring, &mut &plain[..], &mut out, |_| Ok(())).expect("encrypt");
    assert_eq!(totals.bytes_in, plain.len() as u64);
    assert_eq!(totals.bytes_out, out.len() as u64);
    out
}

fn open(ring: &KeyRing, sealed: &[u8]) -> Result<(Vec<u8>, Totals), SealedFileError> {
    let mut out = Vec::new();
    let totals = decrypt(ring, &mut &sealed[..], &mut out, |_| Ok(()))?;
    Ok((out, totals))
}

/// Where chunk `i` of a sealed file starts.
fn chunk_at(i: usize) -> usize {
    HEADER_LEN + i * SEALED_CHUNK
}

#[test]
fn every_size_round_trips_with_one_tag_per_chunk_and_a_short_last_chunk() {
    let ring = ring();
    for len in [
        0,
        1,
        CHUNK_SIZE - 1,
        CHUNK_SIZE,
        CHUNK_SIZE + 1,
        2 * CHUNK_SIZE,
        2 * CHUNK_SIZE + 7,
    ] {
        let plain = pseudo_random_bytes(len, len as u64);
        let sealed = seal(&ring, &plain);
        let chunks = len / CHUNK_SIZE + 1;
        assert_eq!(sealed.len(), HEADER_LEN + len + chunks * TAG_LEN, "{len}");
        assert_eq!(&sealed[..7], MAGIC);
        assert_eq!(sealed[7], FORMAT_VERSION);
        let (back, totals) = open(&ring, &sealed).unwrap_or_else(|e| panic!("{len}: {e}"));
        assert!(back == plain, "{len}: plaintext differs");
        assert_eq!(totals.chunks, chunks as u64, "{len}");
        assert_eq!(totals.key_version, 1);
        assert_eq!(totals.bytes_in, sealed.len() as u64);
    }
}

#[test]
fn nothing_in_the_header_but_magic_and_version_is_constant() {
    let ring = ring();
    let a = seal(&ring, b"same");
    let b = seal(&ring, b"same");
    assert_eq!(a[..8], b[..8]);
    assert_ne!(a[8..HEADER_LEN], b[8..HEADER_LEN], "salt and key tag vary");
    assert_ne!(a[HEADER_LEN..], b[HEADER_LEN..]);
}

#[test]
fn a_flipped_bit_anywhere_is_refused_with_where() {
    let ring = ring();
    let plain = pseudo_random_bytes(CHUNK_SIZE + 1000, 1);
    let sealed = seal(&ring, &plain);
    let positions = [
        0,
        7,
        10,
        KEY_TAG_AT + 3,
        HEADER_LEN,
        chunk_at(1) - 1,
        chunk_at(1),
        sealed.len() - 1,
    ];
    for pos in positions {
        let mut bad = sealed.clone();
        bad[pos] ^= 0x10;
        let err = open(&ring, &bad).expect_err("tampering undetected");
        match (pos, &err) {
            (0, SealedFileError::NotSealed { .. }) => {}
            (7, SealedFileError::UnknownFormat { version: 0x11 }) => {}
            (p, SealedFileError::NoMatchingKey) if p < HEADER_LEN => {}
            (
                p,
                SealedFileError::Authentication {
                    chunk: 0, offset, ..
                },
            ) if p < chunk_at(1) && *offset == HEADER_LEN as u64 => {}
            (
                _,
                SealedFileError::Authentication {
                    chunk: 1,
                    offset,
                    written,
                    ..
                },
            ) => {
                assert_eq!(*offset, chunk_at(1) as u64);
                assert_eq!(*written, CHUNK_SIZE as u64);
            }
            _ => panic!("flip at {pos}: {err}"),
        }
    }
}

#[test]
fn cutting_the_end_off_is_refused() {
    let ring = ring();
    let plain = pseudo_random_bytes(2 * CHUNK_SIZE + 5, 2);
    let sealed = seal(&ring, &plain);
    // The whole last chunk dropped: the rest authenticates, but the last-flag is missing.
    let err = open(&ring, &sealed[..chunk_at(2)]).expect_err("truncation undetected");
    assert!(
        matches!(err, SealedFileError::Truncated { chunks: 2, written, .. } if written == 2 * CHUNK_SIZE as u64),
        "{err}"
    );
    assert!(err.to_string().contains("truncated"), "{err}");
    // Two chunks dropped.
    assert!(matches!(
        open(&ring, &sealed[..chunk_at(1)]),
        Err(SealedFileError::Truncated { chunks: 1, .. })
    ));
    // Cut inside a chunk: that chunk is taken as the last one and fails.
    assert!(matches!(
        open(&ring, &sealed[..chunk_at(1) + 100]),
        Err(SealedFileError::Authentication { chunk: 1, .. })
    ));
    // Only the header.
    assert!(matches!(
        open(&ring, &sealed[..HEADER_LEN]),
        Err(SealedFileError::Truncated { chunks: 0, .. })
    ));
    assert!(matches!(
        open(&ring, &sealed[..HEADER_LEN - 1]),
        Err(SealedFileError::NotSealed { .. })
    ));
    // An input that was a multiple of the chunk size ends with an empty last chunk, which
    // cannot be dropped either.
    let even = seal(&ring, &pseudo_random_bytes(CHUNK_SIZE, 3));
    assert_eq!(even.len(), chunk_at(1) + TAG_LEN);
    assert!(matches!(
        open(&ring, &even[..chunk_at(1)]),
        Err(SealedFileError::Truncated { chunks: 1, .. })
    ));
}

#[test]
fn reordered_spliced_and_extended_files_are_refused() {
    let ring = ring();
    let a = seal(&ring, &pseudo_random_bytes(2 * CHUNK_SIZE + 9, 4));
    let b = seal(&ring, &pseudo_random_bytes(2 * CHUNK_SIZE + 9, 5));
    // Chunks 0 and 1 swapped.
    let mut swapped = a.clone();
    swapped[chunk_at(0)..chunk_at(1)].copy_from_slice(&a[chunk_at(1)..chunk_at(2)]);
    swapped[chunk_at(1)..chunk_at(2)].copy_from_slice(&a[chunk_at(0)..chunk_at(1)]);
    assert!(matches!(
        open(&ring, &swapped),
        Err(SealedFileError::Authentication { chunk: 0, .. })
    ));
    // Chunk 1 of another file sealed with the same key.
    let mut spliced = a.clone();
    spliced[chunk_at(1)..chunk_at(2)].copy_from_slice(&b[chunk_at(1)..chunk_at(2)]);
    assert!(matches!(
        open(&ring, &spliced),
        Err(SealedFileError::Authentication { chunk: 1, .. })
    ));
    // One file's header on another's chunks.
    let mut rehead = b.clone();
    rehead[..HEADER_LEN].copy_from_slice(&a[..HEADER_LEN]);
    assert!(matches!(
        open(&ring, &rehead),
        Err(SealedFileError::Authentication { chunk: 0, .. })
    ));
    // A chunk repeated in place of the next.
    let mut repeated = a.clone();
    repeated[chunk_at(1)..chunk_at(2)].copy_from_slice(&a[chunk_at(0)..chunk_at(1)]);
    assert!(open(&ring, &repeated).is_err());
    // Bytes appended after the last chunk, or a whole chunk of the other file.
    let mut appended = a.clone();
    appended.extend_from_slice(b"more");
    assert!(matches!(
        open(&ring, &appended),
        Err(SealedFileError::Authentication { chunk: 2, .. })
    ));
    let mut extended = a.clone();
    extended.extend_from_slice(&b[chunk_at(2)..]);
    assert!(open(&ring, &extended).is_err());
    // The empty last chunk of an input of one full chunk, extended by a full chunk: the
    // formerly last chunk no longer reads as last.
    let even = seal(&ring, &pseudo_random_bytes(CHUNK_SIZE, 6));
    let mut grown = even[..chunk_at(1)].to_vec();
    grown.extend_from_slice(&a[chunk_at(1)..chunk_at(2)]);
    grown.extend_from_slice(&even[chunk_at(1)..]);
    assert!(open(&ring, &grown).is_err());
}

#[test]
fn plaintext_is_written_only_for_chunks_that_authenticated() {
    let ring = ring();
    let plain = pseudo_random_bytes(3 * CHUNK_SIZE, 7);
    let mut sealed = seal(&ring, &plain);
    sealed[chunk_at(2) + 5] ^= 1;
    let mut out = Vec::new();
    let err = decrypt(&ring, &mut &sealed[..], &mut out, |_| Ok(())).expect_err("damaged");
    assert!(matches!(
        err,
        SealedFileError::Authentication { chunk: 2, .. }
    ));
    assert!(
        out == plain[..2 * CHUNK_SIZE],
        "exactly the verified chunks"
    );
}

#[test]
fn old_versions_open_new_files_use_the_current_and_retired_ones_are_named() {
    let v1 = ring();
    let old = seal(&v1, b"sealed by version 1");
    let v2 = v1.rotated(10);
    let new = seal(&v2, b"sealed by version 2");
    let (back, totals) = open(&v2, &old).expect("version 1 still opens");
    assert_eq!(
        (back.as_slice(), totals.key_version),
        (&b"sealed by version 1"[..], 1)
    );
    assert_eq!(open(&v2, &new).expect("new").1.key_version, 2);
    // The old ring does not hold version 2.
    assert!(matches!(
        open(&v1, &new),
        Err(SealedFileError::NoMatchingKey)
    ));
    let mut retired = v2.clone();
    retired.versions[0].key = None;
    let err = open(&retired, &old).expect_err("retired");
    assert!(
        matches!(err, SealedFileError::Retired { version: 1 }),
        "{err}"
    );
    assert!(err.to_string().contains("version 1"), "{err}");
    assert!(open(&retired, &new).is_ok());
}

#[test]
fn another_repository_cannot_open_it() {
    let sealed = seal(&ring(), b"x");
    assert!(matches!(
        open(&ring(), &sealed),
        Err(SealedFileError::NoMatchingKey)
    ));
}

#[test]
fn repository_objects_and_sealed_files_never_open_as_each_other() {
    let ring = ring();
    let mut keys = ring.master_keys();
    keys.seal_format = crate::repo::crypto::SealFormat::V2;
    let object = keys.seal(&pseudo_random_bytes(1000, 8));
    // An object fed to decrypt as it is.
    assert!(matches!(
        open(&ring, &object),
        Err(SealedFileError::NotSealed { .. })
    ));
    // An object's salt, ciphertext and tag dressed as a sealed file with a valid key tag: the
    // subkey label differs, so decrypt is no oracle for repository objects.
    let mut salt = [0u8; SALT_LEN];
    salt[..16].copy_from_slice(&object[..16]);
    let mut dressed = MAGIC.to_vec();
    dressed.push(FORMAT_VERSION);
    dressed.extend_from_slice(&salt);
    dressed.extend_from_slice(&key_tag(&ring.id_key, &salt, 1));
    dressed.extend_from_slice(&object[33..]);
    assert!(matches!(
        open(&ring, &dressed),
        Err(SealedFileError::Authentication { chunk: 0, .. })
    ));
    // And a sealed file (or any part of it) never opens as an object.
    let sealed = seal(&ring, &pseudo_random_bytes(1000, 9));
    assert!(keys.open(&sealed).is_err());
    assert!(keys.open(&sealed[HEADER_LEN..]).is_err());
}

#[test]
fn the_callback_stops_the_work_between_chunks() {
    let ring = ring();
    let plain = pseudo_random_bytes(3 * CHUNK_SIZE, 10);
    let mut out = Vec::new();
    let err = encrypt(&ring, &mut &plain[..], &mut out, |t| {
        if t.chunks == 2 {
            Err(SealedFileError::Stopped {
                chunks: t.chunks,
                reason: "test",
            })
        } else {
            Ok(())
        }
    })
    .expect_err("stopped");
    assert!(matches!(err, SealedFileError::Stopped { chunks: 2, .. }));
    assert_eq!(out.len(), chunk_at(2));
}
