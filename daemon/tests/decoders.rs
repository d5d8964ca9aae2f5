//! Every decoder of repository objects (pack file and header, index file, snapshot, tree, key
//! file, config, the seal) fed thousands of seeded mutations of valid encodings: none may panic,
//! and none may allocate more than a small multiple of its input (a length field must be checked
//! before anything is allocated for it). A counting allocator measures the largest single
//! allocation each decode makes on this thread.

// A counting global allocator is the only way to observe allocation sizes; it is test-only.
#![allow(unsafe_code)]

use backupd::repo::backend::LocalBackend;
use backupd::repo::crypto::MasterKeys;
use backupd::repo::index::{IndexFile, IndexedPack};
use backupd::repo::keyfile::{Argon2Params, KeyFile};
use backupd::repo::pack::{self, BlobKind, PackBuilder, PackEntry};
use backupd::repo::snapshot::{Snapshot, SnapshotStats};
use backupd::repo::tree::{Node, NodeKind, Tree};
use backupd::repo::{decode, read_config, METADATA_LIMIT};
use backupd_common::ids::{BlobId, IndexId, PackId, SnapshotId};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    /// Largest single allocation on this thread since the last reset.
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: delegates to the system allocator unchanged; only records sizes in a thread-local
// `Cell` (const-initialised, no destructor, so it never allocates itself).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = PEAK.try_with(|p| p.set(p.get().max(layout.size())));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let _ = PEAK.try_with(|p| p.set(p.get().max(layout.size())));
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = PEAK.try_with(|p| p.set(p.get().max(new_size)));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Mutations per seed object (in-memory decoders take about a millisecond per thousand).
const ROUNDS: usize = 20_000;
/// Mutations of the config, which is decoded from a file.
const FILE_ROUNDS: usize = 500;

/// xorshift64: deterministic, so a failure names a reproducible round.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to four edits of `valid`: bit flips, bytes set to varint markers or extremes,
/// truncation, insertion (a huge varint length among them), duplication of a range.
fn mutate(valid: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = valid.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(b.len());
        match rng.below(7) {
            0 if !b.is_empty() => b[at] ^= 1 << rng.below(8),
            1 if !b.is_empty() => b[at] = [0, 1, 0x7f, 0xfb, 0xfc, 0xfd, 0xff][rng.below(7)],
            2 => b.truncate(at),
            3 => {
                // A varint u64 length of up to 2^63.
                let len = 1u64 << rng.below(64);
                let mut v = vec![253];
                v.extend_from_slice(&len.to_le_bytes());
                b.splice(at..at, v);
            }
            4 => b.insert(at, rng.next() as u8),
            5 if !b.is_empty() => {
                let end = (at + rng.below(64)).min(b.len());
                let copy = b[at..end].to_vec();
                b.splice(at..at, copy);
            }
            _ => {
                let len = b.len();
                if len >= 4 {
                    // The last 4 bytes: a pack trailer.
                    b[len - 4..].copy_from_slice(&(rng.next() as u32).to_le_bytes());
                }
            }
        }
    }
    b
}

/// Runs `decode` on mutations of `valid`; fails on the first oversized allocation (a panic
/// fails the test by itself, naming the round through the message below).
fn fuzz(name: &str, valid: &[u8], seed: u64, decode: impl FnMut(&[u8])) {
    fuzz_rounds(name, valid, seed, ROUNDS, decode);
}

fn fuzz_rounds(name: &str, valid: &[u8], seed: u64, rounds: usize, mut decode: impl FnMut(&[u8])) {
    let mut rng = Rng(seed | 1);
    decode(valid);
    for round in 0..rounds {
        let input = mutate(valid, &mut rng);
        PEAK.with(|p| p.set(0));
        decode(&input);
        let peak = PEAK.with(|p| p.get());
        // Bounded decoding allocates at most ~32 × the input (see repo::decode), plus the
        // decoders' small fixed buffers.
        let bound = 64 * input.len() + (1 << 20);
        assert!(
            peak <= bound,
            "{name}: round {round} allocated {peak} bytes for a {}-byte input",
            input.len()
        );
    }
}

fn blob(n: u8) -> BlobId {
    BlobId([n; 32])
}

fn entries() -> Vec<PackEntry> {
    (0..20u8)
        .map(|i| PackEntry {
            id: blob(i),
            kind: if i % 2 == 0 {
                BlobKind::Data
            } else {
                BlobKind::Tree
            },
            offset: 8 + 100 * u32::from(i),
            length: 100,
            raw_length: 1000 + u32::from(i),
        })
        .collect()
}

fn tree() -> Tree {
    let mut file = Node::new(b"file".to_vec(), NodeKind::File);
    file.user = Some("root".into());
    file.xattrs = vec![(b"user.a".to_vec(), b"value".to_vec())];
    file.content = vec![blob(1), blob(2)];
    let mut dir = Node::new(b"dir".to_vec(), NodeKind::Dir);
    dir.subtree = Some(blob(3));
    let mut link = Node::new(b"link".to_vec(), NodeKind::Symlink);
    link.target = b"../somewhere".to_vec();
    link.mtime_ns = -5;
    Tree {
        version: 1,
        nodes: vec![dir, file, link],
    }
}

fn snapshot() -> Snapshot {
    Snapshot {
        version: 1,
        time_ns: 1_700_000_000_000_000_000,
        host: "host".into(),
        username: "user".into(),
        paths: vec![b"/home".to_vec(), b"/etc".to_vec()],
        tags: vec!["daily".into()],
        parent: Some(SnapshotId([9; 32])),
        tree: blob(4),
        stats: SnapshotStats {
            files: 10,
            bytes_total: u64::MAX,
            ..Default::default()
        },
        skipped: vec![(b"/home/x".to_vec(), "permission denied".into())],
        owner_uid: None,
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).expect("encode")
}

#[test]
fn every_repository_decoder_survives_mutated_input_without_panic_or_huge_allocation() {
    let keys = MasterKeys::generate();

    // Plaintext decoders: exactly what the repository runs after opening a seal.
    fuzz("tree", &encode(&tree()), 1, |b| {
        let _ = decode::bounded::<Tree>(b, METADATA_LIMIT);
    });
    fuzz("snapshot", &encode(&snapshot()), 2, |b| {
        let _ = decode::bounded::<Snapshot>(b, METADATA_LIMIT);
    });
    let index = IndexFile {
        packs: vec![IndexedPack {
            id: PackId([7; 32]),
            blobs: entries(),
        }],
        supersedes: vec![IndexId([8; 32])],
    };
    fuzz("index file", &encode(&index), 3, |b| {
        let _ = decode::bounded::<IndexFile>(b, METADATA_LIMIT);
    });
    fuzz("pack header entries", &encode(&entries()), 4, |b| {
        let _ = pack::decode_entries(b, 2008);
    });

    // Whole files: the seal, the pack layout and trailer.
    fuzz("sealed object", &keys.seal(&encode(&snapshot())), 5, |b| {
        let _ = keys.open(b);
    });
    let mut builder = PackBuilder::new();
    for i in 0..5u8 {
        let data = vec![i; 300];
        builder.add(
            keys.blob_id(&data),
            BlobKind::Data,
            &pack::encode_blob(&keys, &data, 1),
            data.len(),
        );
    }
    let (pack_bytes, _) = builder.finish(&keys);
    fuzz("pack file", &pack_bytes, 6, |b| {
        if let Ok(entries) = pack::read_header(&keys, b) {
            let _ = pack::verify(&keys, b, &entries);
        }
        if b.len() >= 4 {
            let _ = pack::header_start(b.len() as u64, pack::trailer_len(&b[b.len() - 4..]));
        }
    });

    // JSON files: key file (parameters validated, no key derived) and config.
    let key_file = KeyFile::wrap(
        &keys,
        b"pw",
        Argon2Params {
            m_cost_kib: 64,
            t_cost: 1,
            p_cost: 1,
            salt: hex::encode([1u8; 16]),
        },
    )
    .expect("wrap")
    .to_json();
    fuzz("key file", &key_file, 7, |b| {
        let _ = KeyFile::parse(b);
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = LocalBackend::new(dir.path());
    let config = br#"{
  "format": "backupd-repository",
  "version": 1,
  "id": "9f0c2e6b1a7d4c3e8b5a6f7d0e1c2b3a",
  "created": "2024-05-01T12:00:00Z",
  "chunk_min": 524288,
  "chunk_avg": 1048576,
  "chunk_max": 8388608
}"#;
    fuzz_rounds("config", config, 8, FILE_ROUNDS, |b| {
        std::fs::write(dir.path().join("config"), b).expect("write config");
        let _ = read_config(&backend);
    });
}
