//! The day files under `<state_dir>/audit/`: `YYYY-MM-DD.jsonl`, one entry a line, appended and
//! synced as entries are written (log shippers tail them); past days compressed to
//! `.jsonl.zst`; days past retention deleted. `checkpoints.jsonl` holds the signed checkpoints
//! and `anchor.json` the signed link to the entries retention removed.

use super::AuditError;
use backupd_common::protocol::{AuditCheckpoint, AuditEntry};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub const CHECKPOINTS: &str = "checkpoints.jsonl";
pub const ANCHOR: &str = "anchor.json";
/// A line longer than this is not an entry (entries are bounded well below it).
const MAX_LINE: usize = 1 << 20;

/// One day file.
#[derive(Clone, Debug)]
pub struct DayFile {
    pub day: String,
    pub path: PathBuf,
    pub compressed: bool,
}

/// The file the next entry goes to.
pub struct Writer {
    dir: PathBuf,
    current: Option<(String, File)>,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Writer {
    pub fn open(dir: &Path) -> Result<Self, AuditError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err(dir))?;
        Ok(Self {
            dir: dir.to_owned(),
            current: None,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends `line` to the file of `day` (never to an earlier day than the last one written,
    /// so a clock stepped back cannot reopen a compressed day) and syncs it. Returns the day
    /// that was left behind, if this entry started a new one.
    pub fn append(&mut self, day: &str, line: &[u8]) -> Result<Option<String>, AuditError> {
        let mut left = None;
        let stay = matches!(&self.current, Some((d, _)) if d.as_str() >= day);
        if !stay {
            let path = self.dir.join(format!("{day}.jsonl"));
            let file = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(&path)
                .map_err(io_err(&path))?;
            repair_tail(&path)?;
            left = self.current.take().map(|(d, _)| d);
            self.current = Some((day.to_owned(), file));
        }
        let Some((d, file)) = &mut self.current else {
            unreachable!("set above")
        };
        let path = self.dir.join(format!("{d}.jsonl"));
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line);
        buf.push(b'\n');
        file.write_all(&buf).map_err(io_err(&path))?;
        file.sync_data().map_err(io_err(&path))?;
        Ok(left)
    }
}

/// Cuts a last line a crash left half-written, so the next entry starts on a line of its own.
fn repair_tail(path: &Path) -> Result<(), AuditError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    if len == 0 {
        return Ok(());
    }
    let window = len.min(MAX_LINE as u64 + 1);
    file.seek(SeekFrom::Start(len - window))
        .map_err(io_err(path))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).map_err(io_err(path))?;
    if tail.last() == Some(&b'\n') {
        return Ok(());
    }
    let keep = tail
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(len - window, |i| len - window + i as u64 + 1);
    tracing::warn!(path = %path.display(), cut = len - keep, "audit day file ended in a partial line; cut it");
    file.set_len(keep).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

/// The day files, oldest first.
pub fn list(dir: &Path) -> Result<Vec<DayFile>, AuditError> {
    let mut days = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(days),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let (day, compressed) = if let Some(d) = name.strip_suffix(".jsonl.zst") {
            (d, true)
        } else if let Some(d) = name.strip_suffix(".jsonl") {
            (d, false)
        } else {
            continue;
        };
        if is_day(day) {
            days.push(DayFile {
                day: day.to_owned(),
                path: entry.path(),
                compressed,
            });
        }
    }
    // A day compressed and then written again (the clock stepped back over midnight across a
    // restart): the compressed part is the older one.
    days.sort_by(|a, b| a.day.cmp(&b.day).then(b.compressed.cmp(&a.compressed)));
    Ok(days)
}

fn is_day(s: &str) -> bool {
    s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
}

/// Compresses every plain day file before `today` (temp name, sync, rename, sync the directory,
/// then the plain file goes).
pub fn compress_before(dir: &Path, today: &str) -> Result<(), AuditError> {
    for f in list(dir)? {
        if f.compressed || f.day.as_str() >= today {
            continue;
        }
        let out = dir.join(format!("{}.jsonl.zst", f.day));
        let tmp = dir.join(format!(".{}.jsonl.zst.tmp", f.day));
        let input = File::open(&f.path).map_err(io_err(&f.path))?;
        let mut output = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        // The day was compressed before (see `list`): its frames come first, ours follow;
        // zstd reads concatenated frames as one stream.
        if let Ok(mut older) = File::open(&out) {
            std::io::copy(&mut older, &mut output).map_err(io_err(&tmp))?;
        }
        let mut encoder = zstd::Encoder::new(output, 9).map_err(io_err(&tmp))?;
        std::io::copy(&mut BufReader::new(input), &mut encoder).map_err(io_err(&tmp))?;
        let output = encoder.finish().map_err(io_err(&tmp))?;
        output.sync_all().map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &out).map_err(io_err(&out))?;
        sync_dir(dir)?;
        std::fs::remove_file(&f.path).map_err(io_err(&f.path))?;
    }
    Ok(())
}

/// Deletes the day files before `cutoff` (a day).
pub fn remove_before(dir: &Path, cutoff: &str) -> Result<usize, AuditError> {
    let mut removed = 0;
    for f in list(dir)? {
        if f.day.as_str() < cutoff {
            std::fs::remove_file(&f.path).map_err(io_err(&f.path))?;
            removed += 1;
        }
    }
    if removed > 0 {
        sync_dir(dir)?;
    }
    Ok(removed)
}

fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Lines of one day file, decompressing a past day.
fn reader(f: &DayFile) -> Result<Box<dyn BufRead>, AuditError> {
    let file = File::open(&f.path).map_err(io_err(&f.path))?;
    Ok(if f.compressed {
        Box::new(BufReader::new(
            zstd::Decoder::new(file).map_err(io_err(&f.path))?,
        ))
    } else {
        Box::new(BufReader::new(file))
    })
}

/// Every entry of every day file in file order: `(where, entry or why it is unreadable)`.
pub struct Entries {
    files: std::vec::IntoIter<DayFile>,
    current: Option<(DayFile, Box<dyn BufRead>, u64)>,
}

impl Entries {
    pub fn new(dir: &Path) -> Result<Self, AuditError> {
        Ok(Self::from_files(list(dir)?))
    }

    pub fn from_files(files: Vec<DayFile>) -> Self {
        Self {
            files: files.into_iter(),
            current: None,
        }
    }
}

impl Iterator for Entries {
    type Item = (String, Result<AuditEntry, String>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.current.is_none() {
                let f = self.files.next()?;
                let name = f.path.file_name()?.to_string_lossy().into_owned();
                match reader(&f) {
                    Ok(r) => self.current = Some((f, r, 0)),
                    Err(e) => return Some((format!("audit/{name}"), Err(e.to_string()))),
                }
            }
            let (f, r, line_no) = self.current.as_mut()?;
            let mut line = Vec::new();
            match r
                .by_ref()
                .take(MAX_LINE as u64)
                .read_until(b'\n', &mut line)
            {
                Ok(0) => {
                    self.current = None;
                    continue;
                }
                Ok(_) => {
                    *line_no += 1;
                    let name = f.path.file_name()?.to_string_lossy().into_owned();
                    let at = format!("audit/{name} line {line_no}");
                    let parsed = serde_json::from_slice::<AuditEntry>(line.trim_ascii_end())
                        .map_err(|e| format!("not an audit entry: {e}"));
                    return Some((at, parsed));
                }
                Err(e) => {
                    let at = f.path.display().to_string();
                    self.current = None;
                    return Some((at, Err(e.to_string())));
                }
            }
        }
    }
}

/// Appends a checkpoint to `checkpoints.jsonl` and syncs it.
pub fn append_checkpoint(dir: &Path, cp: &AuditCheckpoint) -> Result<(), AuditError> {
    let path = dir.join(CHECKPOINTS);
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_err(&path))?;
    let mut line = serde_json::to_vec(cp).unwrap_or_default();
    line.push(b'\n');
    file.write_all(&line).map_err(io_err(&path))?;
    file.sync_data().map_err(io_err(&path))
}

/// The checkpoints in `checkpoints.jsonl`; unreadable lines are reported as `Err(line number)`.
pub fn read_checkpoints(dir: &Path) -> Result<Vec<Result<AuditCheckpoint, usize>>, AuditError> {
    let path = dir.join(CHECKPOINTS);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(&path)(e)),
    };
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io_err(&path))?;
        out.push(serde_json::from_str(&line).map_err(|_| i + 1));
    }
    Ok(out)
}

/// Rewrites `checkpoints.jsonl` with only `keep` (after retention cut older entries).
pub fn rewrite_checkpoints(dir: &Path, keep: &[AuditCheckpoint]) -> Result<(), AuditError> {
    let mut text = Vec::new();
    for cp in keep {
        text.extend(serde_json::to_vec(cp).unwrap_or_default());
        text.push(b'\n');
    }
    write_atomic(dir, CHECKPOINTS, &text)
}

pub fn write_anchor(dir: &Path, anchor: &AuditCheckpoint) -> Result<(), AuditError> {
    write_atomic(dir, ANCHOR, &serde_json::to_vec(anchor).unwrap_or_default())
}

pub fn read_anchor(dir: &Path) -> Result<Option<AuditCheckpoint>, AuditError> {
    let path = dir.join(ANCHOR);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| AuditError::Corrupt {
                location: path.display().to_string(),
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&path)(e)),
    }
}

fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), AuditError> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    file.write_all(bytes).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(dir)
}
