//! `security encrypt|decrypt`: seals a file with a repository's current data key, or opens one
//! sealed with any version the repository still holds (format: `repo::sealed_file`). The key
//! never leaves the daemon, and the daemon never opens a path: it works on the two descriptors
//! the client opened and passed (input, output), with exactly the access the client had.
//!
//! Blocking: runs on one blocking thread, one chunk (1 MiB) in memory at a time whatever the
//! file's size. It stops between chunks, and every 250 ms while it waits on a pipe or terminal,
//! once `stop` names a reason (the client left, the daemon is stopping). It spawns nothing.

use crate::repo::registry::{Registry, RegistryError};
use crate::repo::sealed_file::{self, SealedFileError, Totals};
use backupd_common::protocol::{FileCryptResult, OperationProgress, FILE_CRYPT_DESCRIPTORS};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::{FileType, OFlags};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

/// How often a wait on a pipe looks at `stop`.
const STOP_POLL: Timespec = Timespec {
    tv_sec: 0,
    tv_nsec: 250_000_000,
};
/// How often progress is reported.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Which way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Encrypt,
    Decrypt,
}

impl Direction {
    pub fn command(self) -> &'static str {
        match self {
            Self::Encrypt => "security encrypt",
            Self::Decrypt => "security decrypt",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FileCryptError {
    #[error(
        "`{command}` needs the input and the output passed as {FILE_CRYPT_DESCRIPTORS} open file \
         descriptors with the request (SCM_RIGHTS, docs/PROTOCOL.md, \"Passing files\"); got \
         {got}{more}",
        more = if *overflow { " and more that were closed" } else { "" }
    )]
    Descriptors {
        command: &'static str,
        got: usize,
        overflow: bool,
    },
    #[error("`{command}`: the passed {which} ({name}) {problem}")]
    Descriptor {
        command: &'static str,
        which: &'static str,
        name: String,
        problem: String,
    },
    #[error("`{command}`: the input and the output are the same file ({name})")]
    SameFile { command: &'static str, name: String },
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("`{command}` with repository {repo}: {source}")]
    Sealed {
        command: &'static str,
        repo: String,
        #[source]
        source: SealedFileError,
    },
}

impl FileCryptError {
    /// The sealed-file error behind this one, if any.
    pub fn sealed(&self) -> Option<&SealedFileError> {
        match self {
            Self::Sealed { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// One passed file, read or written with waits that give up when `stop` says so.
struct Endpoint<'a> {
    file: File,
    /// Not a regular file: reads and writes may block, so they wait in `poll` first.
    waits: bool,
    stop: &'a dyn Fn() -> Option<&'static str>,
}

impl Endpoint<'_> {
    fn wait(&self, flags: PollFlags) -> io::Result<()> {
        loop {
            if let Some(reason) = (self.stop)() {
                return Err(io::Error::other(reason));
            }
            let mut fds = [PollFd::new(&self.file, flags)];
            match rustix::event::poll(&mut fds, Some(&STOP_POLL)) {
                Ok(0) => continue,
                // Ready, or hung up / in error: the read or write says which.
                Ok(_) => return Ok(()),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Read for Endpoint<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.waits {
                self.wait(PollFlags::IN)?;
            }
            match self.file.read(buf) {
                // A non-blocking open file description (the client's choice): wait for data.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.waits = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }
}

impl Write for Endpoint<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            if self.waits {
                self.wait(PollFlags::OUT)?;
            }
            match self.file.write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.waits = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What a passed descriptor is, checked for its role.
struct Checked {
    file: File,
    regular: bool,
    /// Device and inode of a regular file.
    id: Option<(u64, u64)>,
    /// Bytes left to read from a regular input.
    remaining: Option<u64>,
}

fn check(
    command: &'static str,
    which: &'static str,
    name: &[u8],
    fd: OwnedFd,
    write: bool,
) -> Result<Checked, FileCryptError> {
    let fail = |problem: String| FileCryptError::Descriptor {
        command,
        which,
        name: String::from_utf8_lossy(name).into_owned(),
        problem,
    };
    let flags = rustix::fs::fcntl_getfl(&fd).map_err(|e| fail(format!("is unusable: {e}")))?;
    if flags.contains(OFlags::PATH) {
        return Err(fail(
            "was opened with O_PATH, for no reading or writing".into(),
        ));
    }
    let mode = flags & OFlags::RWMODE;
    let allowed = if write {
        mode == OFlags::WRONLY || mode == OFlags::RDWR
    } else {
        mode == OFlags::RDONLY || mode == OFlags::RDWR
    };
    if !allowed {
        let access = if write { "writing" } else { "reading" };
        return Err(fail(format!("was not opened for {access}")));
    }
    let stat = rustix::fs::fstat(&fd).map_err(|e| fail(format!("cannot be examined: {e}")))?;
    let kind = FileType::from_raw_mode(stat.st_mode);
    if kind == FileType::Directory {
        return Err(fail("is a directory".into()));
    }
    let regular = kind == FileType::RegularFile;
    let remaining = (regular && !write).then(|| {
        let at = rustix::fs::seek(&fd, rustix::fs::SeekFrom::Current(0)).unwrap_or(0);
        (stat.st_size as u64).saturating_sub(at)
    });
    Ok(Checked {
        file: File::from(fd),
        regular,
        id: regular.then_some((stat.st_dev, stat.st_ino)),
        remaining,
    })
}

/// What a run needs besides the registry.
pub struct Crypt<'a> {
    pub direction: Direction,
    pub repo: Option<&'a str>,
    /// The kernel's names of the passed files, for messages.
    pub input_name: &'a [u8],
    pub output_name: &'a [u8],
    pub fds: Vec<OwnedFd>,
    /// The client sent more descriptors than fit: they were closed.
    pub overflow: bool,
}

/// Seals or opens the passed input into the passed output. `progress` is called about once a
/// second; `stop` is asked between chunks and while waiting on a pipe.
pub fn run(
    registry: &Registry,
    request: Crypt<'_>,
    stop: &dyn Fn() -> Option<&'static str>,
    progress: &mut dyn FnMut(OperationProgress),
) -> Result<FileCryptResult, FileCryptError> {
    let command = request.direction.command();
    if request.fds.len() != FILE_CRYPT_DESCRIPTORS || request.overflow {
        return Err(FileCryptError::Descriptors {
            command,
            got: request.fds.len(),
            overflow: request.overflow,
        });
    }
    let mut fds = request.fds.into_iter();
    let (Some(input), Some(output)) = (fds.next(), fds.next()) else {
        unreachable!("two descriptors were counted above");
    };
    let input = check(command, "input", request.input_name, input, false)?;
    let output = check(command, "output", request.output_name, output, true)?;
    if input.id.is_some() && input.id == output.id {
        return Err(FileCryptError::SameFile {
            command,
            name: String::from_utf8_lossy(request.input_name).into_owned(),
        });
    }
    let (entry, repo) = registry.open(request.repo)?;
    let ring = repo.key_ring().map_err(RegistryError::from)?.ring;
    let started = Instant::now();
    let mut reported = started;
    let bytes_total = input.remaining;
    let mut each = |t: &Totals| {
        if let Some(reason) = stop() {
            return Err(SealedFileError::Stopped {
                chunks: t.chunks,
                reason,
            });
        }
        if reported.elapsed() >= PROGRESS_EVERY {
            reported = Instant::now();
            progress(OperationProgress {
                files_done: 0,
                bytes_done: t.bytes_in,
                files_total: None,
                bytes_total,
                errors: 0,
                elapsed_ms: started.elapsed().as_millis() as u64,
            });
        }
        Ok(())
    };
    let mut reader = Endpoint {
        file: input.file,
        waits: !input.regular,
        stop,
    };
    let mut writer = Endpoint {
        file: output.file,
        waits: !output.regular,
        stop,
    };
    let done = match request.direction {
        Direction::Encrypt => sealed_file::encrypt(&ring, &mut reader, &mut writer, &mut each),
        Direction::Decrypt => sealed_file::decrypt(&ring, &mut reader, &mut writer, &mut each),
    };
    let totals = done.map_err(|source| {
        // A wait cut short by `stop` surfaces as an I/O error; say what it was.
        let source = match (stop(), source) {
            (Some(reason), SealedFileError::Read(_) | SealedFileError::Write(_)) => {
                SealedFileError::Stopped { chunks: 0, reason }
            }
            (_, other) => other,
        };
        FileCryptError::Sealed {
            command,
            repo: entry.name.clone(),
            source,
        }
    })?;
    tracing::info!(
        command,
        repo = %entry.name,
        key_version = totals.key_version,
        bytes_in = totals.bytes_in,
        bytes_out = totals.bytes_out,
        "file sealed or opened"
    );
    Ok(FileCryptResult {
        repo: entry.name,
        key_version: totals.key_version,
        bytes_in: totals.bytes_in,
        bytes_out: totals.bytes_out,
        chunks: totals.chunks,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}
