//! Copies one entry from one side of a pair to the other. A file goes in [`CHUNK`]-sized
//! chunks into a temporary in the target's directory; for a file of more than one chunk the
//! SHA-256 of each chunk written is recorded in the pair's state, so an interrupted transfer
//! (kill -9, a restart, a vanished target) resumes after the last chunk that reads back equal
//! to its recorded hash. The finished temporary is read back chunk by chunk and compared with
//! the hashes of what was read from the source, fsynced (a one-chunk file: with the whole
//! target file system at the end of the run, before the run records it), gets the source's
//! metadata (`engine::fsmeta`, the same code restores use) and is renamed into place. A
//! source that changed while it was copied (size, mtime or ctime) is copied again, never
//! half.
//!
//! Everything goes through held directory descriptors ([`DirFd`]); no name is followed.

use super::plan::{Kind, Stamp};
use super::scan::{stamp_of, TEMP_PREFIX};
use super::store::Store;
use super::SyncError;
use crate::engine::dirfd::DirFd;
use crate::engine::fsmeta;
use crate::state::records::sync::{PartialRecord, StampRecord};
use crate::throttle::{pace, Bucket};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use tokio_util::sync::CancellationToken;

/// The transfer unit (and the unit a resume restarts from).
pub const CHUNK: u64 = 5 << 20;
/// Copies of a file that keeps changing while it is copied, before it is left for the next run.
const ATTEMPTS: u32 = 3;

/// What a transfer needs besides the paths.
pub struct Ctx<'a> {
    pub store: &'a Store,
    pub pair: &'a str,
    pub buckets: &'a [&'a Bucket],
    pub cancel: &'a CancellationToken,
    pub as_root: bool,
    pub names: &'a fsmeta::NameCache,
    /// Per-file progress: bytes of the file in flight.
    pub progress: &'a crate::engine::progress::Progress,
    pub current: &'a super::Current,
    /// Whether both sides are still where they were (checked between chunks).
    pub alive: &'a dyn Fn() -> Result<(), SyncError>,
}

/// What a finished transfer leaves behind.
#[derive(Debug)]
pub struct Copied {
    pub src: Stamp,
    pub dst: Stamp,
    pub hash: [u8; 32],
    pub bytes_copied: u64,
    pub bytes_resumed: u64,
}

fn io_err<'p>(path: &'p [u8], op: &'static str) -> impl FnOnce(io::Error) -> SyncError + 'p {
    move |source| SyncError::Io {
        path: String::from_utf8_lossy(path).into_owned(),
        op,
        source,
    }
}

/// The temporary of `name` (a fixed name, so a resume finds it).
pub fn temp_name(name: &[u8]) -> Vec<u8> {
    let digest = Sha256::digest(name);
    let mut t = TEMP_PREFIX.to_vec();
    t.extend_from_slice(hex::encode(&digest[..12]).as_bytes());
    t.extend_from_slice(b".tmp");
    t
}

fn open_rw(dir: &DirFd, name: &[u8]) -> io::Result<File> {
    let fd = nix::fcntl::openat(
        dir.file(),
        Path::new(std::ffi::OsStr::from_bytes(name)),
        OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)?;
    Ok(File::from(fd))
}

use std::os::unix::ffi::OsStrExt;

fn record(s: &Stamp) -> StampRecord {
    StampRecord {
        size: s.size,
        mtime_ns: s.mtime_ns,
        ctime_ns: s.ctime_ns,
        ino: s.ino,
    }
}

/// Copies `rel` from the directory `from_dir` (holding it as `name`) into `to_dir`.
pub fn copy_entry(
    ctx: &Ctx<'_>,
    rel: &[u8],
    from_dir: &DirFd,
    to_dir: &DirFd,
    name: &[u8],
) -> Result<Copied, SyncError> {
    let st = from_dir.stat_at(name).map_err(io_err(rel, "stat"))?;
    let stamp = stamp_of(&st).ok_or_else(|| SyncError::Skipped {
        path: String::from_utf8_lossy(rel).into_owned(),
        reason: "not a regular file, directory or symlink".into(),
    })?;
    match stamp.kind {
        Kind::Symlink => copy_link(rel, from_dir, to_dir, name, stamp),
        Kind::Dir => {
            make_dir(rel, to_dir, name, st.st_mode & 0o7777)?;
            let dst =
                stamp_of(&to_dir.stat_at(name).map_err(io_err(rel, "stat"))?).ok_or_else(|| {
                    SyncError::Skipped {
                        path: String::from_utf8_lossy(rel).into_owned(),
                        reason: "the target is not a directory".into(),
                    }
                })?;
            Ok(Copied {
                src: stamp,
                dst,
                hash: [0; 32],
                bytes_copied: 0,
                bytes_resumed: 0,
            })
        }
        Kind::File => {
            for attempt in 1..=ATTEMPTS {
                match copy_file(ctx, rel, from_dir, to_dir, name) {
                    Err(SyncError::ChangedWhileCopied { .. }) if attempt < ATTEMPTS => {
                        tracing::debug!(path = %String::from_utf8_lossy(rel), attempt, "changed while copied; again");
                        continue;
                    }
                    other => return other,
                }
            }
            Err(SyncError::ChangedWhileCopied {
                path: String::from_utf8_lossy(rel).into_owned(),
            })
        }
    }
}

fn make_dir(rel: &[u8], to_dir: &DirFd, name: &[u8], mode: u32) -> Result<(), SyncError> {
    match to_dir.stat_at(name) {
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => Ok(()),
        Ok(_) => Err(SyncError::Skipped {
            path: String::from_utf8_lossy(rel).into_owned(),
            reason: "something else is in the way of the directory".into(),
        }),
        Err(_) => to_dir
            .mkdir(name, mode | 0o700)
            .map_err(io_err(rel, "mkdir")),
    }
}

fn copy_link(
    rel: &[u8],
    from_dir: &DirFd,
    to_dir: &DirFd,
    name: &[u8],
    stamp: Stamp,
) -> Result<Copied, SyncError> {
    // The link itself, never what it points to (it may point out of the tree).
    let target = from_dir.read_link(name).map_err(io_err(rel, "readlink"))?;
    let temp = temp_name(name);
    let _ = to_dir.unlink(&temp);
    to_dir
        .symlink(&target, &temp)
        .map_err(io_err(rel, "symlink"))?;
    let times = [
        nix::sys::time::TimeSpec::new(0, libc::UTIME_OMIT),
        nix::sys::time::TimeSpec::new(
            stamp.mtime_ns.div_euclid(1_000_000_000),
            stamp.mtime_ns.rem_euclid(1_000_000_000),
        ),
    ];
    let _ = nix::sys::stat::utimensat(
        to_dir.file(),
        Path::new(std::ffi::OsStr::from_bytes(&temp)),
        &times[0],
        &times[1],
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    );
    to_dir
        .rename(&temp, to_dir, name)
        .map_err(io_err(rel, "rename"))?;
    let dst = stamp_of(&to_dir.stat_at(name).map_err(io_err(rel, "stat"))?).unwrap_or(stamp);
    Ok(Copied {
        src: stamp,
        dst,
        hash: Sha256::digest(&target).into(),
        bytes_copied: 0,
        bytes_resumed: 0,
    })
}

/// The content hash the pair's state records: SHA-256 over the SHA-256 of each [`CHUNK`] of
/// the file in order (one pass of hashing serves the per-chunk checks and the file's hash).
pub fn content_hash(digests: &[[u8; 32]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for d in digests {
        h.update(d);
    }
    h.finalize().into()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    hex::decode(text).ok()?.try_into().ok()
}

/// The chunks of the temporary `partial` names that still hold what it recorded (read back
/// and hashed), with their digests; `None` when the transfer cannot be resumed.
fn resumable(
    dir: &DirFd,
    partial: &PartialRecord,
    source: &Stamp,
) -> Option<(File, Vec<[u8; 32]>)> {
    if partial.source != record(source) || partial.chunk_size != CHUNK {
        return None;
    }
    let file = open_rw(dir, &partial.temp).ok()?;
    let mut buf = vec![0u8; CHUNK as usize];
    let mut good = Vec::new();
    for (i, want) in partial.chunks.iter().enumerate() {
        let off = i as u64 * CHUNK;
        let len = (source.size.saturating_sub(off)).min(CHUNK) as usize;
        let Some(want) = unhex(want) else { break };
        if len == 0 || file.read_exact_at(&mut buf[..len], off).is_err() {
            break;
        }
        if <[u8; 32]>::from(Sha256::digest(&buf[..len])) != want {
            break;
        }
        good.push(want);
    }
    Some((file, good))
}

fn copy_file(
    ctx: &Ctx<'_>,
    rel: &[u8],
    from_dir: &DirFd,
    to_dir: &DirFd,
    name: &[u8],
) -> Result<Copied, SyncError> {
    let src = from_dir.open_read(name).map_err(io_err(rel, "open"))?;
    let st = nix::sys::stat::fstat(&src).map_err(|e| io_err(rel, "fstat")(e.into()))?;
    let stamp = stamp_of(&st)
        .filter(|s| s.kind == Kind::File)
        .ok_or_else(|| SyncError::Skipped {
            path: String::from_utf8_lossy(rel).into_owned(),
            reason: "replaced by something that is not a file".into(),
        })?;
    // A file of one chunk restarts from 0 anyway: no partial record, no fsync of its own
    // (the run syncs the target file system once before it records the file as synced).
    let multi = stamp.size > CHUNK;
    let temp = temp_name(name);
    let resumed = if multi {
        ctx.store
            .partial(ctx.pair, rel)
            .filter(|p| p.temp == temp)
            .and_then(|p| resumable(to_dir, &p, &stamp))
    } else {
        None
    };
    let (out, mut digests) = match resumed {
        Some((file, good)) if !good.is_empty() => {
            tracing::info!(path = %String::from_utf8_lossy(rel), chunks = good.len(), "resuming an interrupted transfer");
            (file, good)
        }
        _ => {
            let _ = to_dir.unlink(&temp);
            let file = to_dir
                .create_new(&temp, 0o600)
                .map_err(io_err(rel, "create"))?;
            (file, Vec::new())
        }
    };
    let start = (digests.len() as u64 * CHUNK).min(stamp.size);
    let resumed_bytes = start;
    ctx.current.set(rel, resumed_bytes, stamp.size);
    let copied = copy_chunks(ctx, rel, &src, &out, &stamp, start, &temp, &mut digests)?;
    out.set_len(stamp.size).map_err(io_err(rel, "truncate"))?;
    // Changed while it was read: the copy is not of one version of the file.
    let after = nix::sys::stat::fstat(&src).map_err(|e| io_err(rel, "fstat")(e.into()))?;
    let discard = |e: SyncError| {
        let _ = to_dir.unlink(&temp);
        let _ = ctx.store.remove_partial(ctx.pair, rel);
        e
    };
    if stamp_of(&after) != Some(stamp) {
        drop(out);
        return Err(discard(SyncError::ChangedWhileCopied {
            path: String::from_utf8_lossy(rel).into_owned(),
        }));
    }
    if multi {
        out.sync_all().map_err(io_err(rel, "fsync"))?;
    }
    // Read back what was written, chunk by chunk against what was read.
    let mut buf = vec![0u8; CHUNK.min(stamp.size.max(1)) as usize];
    let mut pos = 0u64;
    for want in &digests {
        let len = (stamp.size - pos).min(CHUNK) as usize;
        out.read_exact_at(&mut buf[..len], pos)
            .map_err(io_err(rel, "read back"))?;
        if <[u8; 32]>::from(Sha256::digest(&buf[..len])) != *want {
            drop(out);
            return Err(discard(SyncError::VerifyFailed {
                path: String::from_utf8_lossy(rel).into_owned(),
            }));
        }
        pos += len as u64;
    }
    let hash = content_hash(&digests);
    let mut node = fsmeta::capture(&st, name.to_vec(), ctx.names);
    node.xattrs = fsmeta::xattrs_fd(&src).unwrap_or_default();
    for w in fsmeta::apply_fd(&out, &node, ctx.as_root, false) {
        tracing::debug!(path = %String::from_utf8_lossy(rel), warning = %w, "metadata not applied");
    }
    to_dir
        .rename(&temp, to_dir, name)
        .map_err(io_err(rel, "rename"))?;
    if multi {
        ctx.store.remove_partial(ctx.pair, rel)?;
    }
    let dst = stamp_of(&nix::sys::stat::fstat(&out).map_err(|e| io_err(rel, "fstat")(e.into()))?)
        .unwrap_or(stamp);
    Ok(Copied {
        src: stamp,
        dst,
        hash,
        bytes_copied: copied,
        bytes_resumed: resumed_bytes,
    })
}

/// Copies `src` from `start` to its end into `out`, appending each chunk's SHA-256 to
/// `digests` (and, for a file of several chunks, recording them for a resume). A reader
/// thread reads and hashes the next chunk while this one is written, so reading, hashing and
/// writing overlap on two cores. Returns the bytes written.
#[allow(clippy::too_many_arguments)]
fn copy_chunks(
    ctx: &Ctx<'_>,
    rel: &[u8],
    src: &File,
    out: &File,
    stamp: &Stamp,
    start: u64,
    temp: &[u8],
    digests: &mut Vec<[u8; 32]>,
) -> Result<u64, SyncError> {
    type Chunk = io::Result<(u64, Vec<u8>, [u8; 32])>;
    let size = stamp.size;
    let multi = size > CHUNK;
    // Two chunks in flight at most: 10 MiB of buffers besides the one being written.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(2);
    let (give_back, take_back) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut off = start;
            while off < size {
                let len = (size - off).min(CHUNK) as usize;
                let mut buf = take_back.try_recv().unwrap_or_default();
                buf.resize(len, 0);
                let chunk = match src.read_exact_at(&mut buf, off) {
                    Ok(()) => {
                        let digest = Sha256::digest(&buf).into();
                        Ok((off, buf, digest))
                    }
                    Err(e) => Err(e),
                };
                let failed = chunk.is_err();
                // The writer stopped (error, cancel): nothing more to read.
                if tx.send(chunk).is_err() || failed {
                    return;
                }
                off += len as u64;
            }
        });
        let mut copied = 0u64;
        for chunk in rx {
            if ctx.cancel.is_cancelled() {
                return Err(SyncError::Cancelled);
            }
            (ctx.alive)()?;
            let (off, buf, digest) = chunk.map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    SyncError::ChangedWhileCopied {
                        path: String::from_utf8_lossy(rel).into_owned(),
                    }
                } else {
                    io_err(rel, "read")(e)
                }
            })?;
            let len = buf.len() as u64;
            if !pace(ctx.buckets, len, ctx.cancel) {
                return Err(SyncError::Cancelled);
            }
            out.write_all_at(&buf, off).map_err(io_err(rel, "write"))?;
            digests.push(digest);
            if multi {
                ctx.store.put_partial(
                    ctx.pair,
                    rel,
                    PartialRecord {
                        v: 1,
                        temp: temp.to_vec(),
                        source: record(stamp),
                        chunks: digests.iter().map(hex::encode).collect(),
                        chunk_size: CHUNK,
                    },
                )?;
            }
            let _ = give_back.send(buf);
            copied += len;
            ctx.progress.bytes_done.fetch_add(len, Ordering::Relaxed);
            ctx.current.set(rel, off + len, size);
        }
        Ok(copied)
    })
}

/// An entry's content hash as the state records it ([`content_hash`]; a symlink: SHA-256 of
/// its target), read through `dir`.
pub fn hash_entry(dir: &DirFd, name: &[u8], kind: Kind) -> io::Result<[u8; 32]> {
    match kind {
        Kind::Dir => Ok([0; 32]),
        Kind::Symlink => Ok(Sha256::digest(dir.read_link(name)?).into()),
        Kind::File => {
            let f = dir.open_read(name)?;
            let size = f.metadata()?.len();
            let mut buf = vec![0u8; CHUNK.min(size.max(1)) as usize];
            let mut digests = Vec::new();
            let mut pos = 0u64;
            while pos < size {
                let len = (size - pos).min(CHUNK) as usize;
                f.read_exact_at(&mut buf[..len], pos)?;
                digests.push(Sha256::digest(&buf[..len]).into());
                pos += len as u64;
            }
            Ok(content_hash(&digests))
        }
    }
}
