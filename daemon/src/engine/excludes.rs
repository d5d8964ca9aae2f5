//! Which paths a backup leaves out: glob patterns (from the command line and exclude files),
//! directories tagged with CACHEDIR.TAG, other file systems, and the repository itself.
//! A pattern without `/` matches a file name anywhere; with `/` it matches the absolute path.

use globset::{Glob, GlobSet, GlobSetBuilder};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ExcludeError {
    #[error("exclude pattern {pattern:?} is invalid: {reason}")]
    Pattern { pattern: String, reason: String },
    #[error("cannot read exclude file {path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Default)]
pub struct Excludes {
    names: Option<GlobSet>,
    paths: Option<GlobSet>,
    pub exclude_caches: bool,
    pub one_file_system: bool,
    /// Never backed up (the repository, the daemon's state dir).
    pub always: Vec<PathBuf>,
    /// Never backed up, by (device, inode): the daemon's own log files ([`own_output_files`]).
    pub always_inodes: Vec<(u64, u64)>,
}

/// A regular file the daemon's stdout or stderr writes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnOutput {
    /// `stdout` or `stderr`.
    pub stream: &'static str,
    pub dev: u64,
    pub ino: u64,
    /// Where it was when asked (from /proc/self/fd); it may be renamed since.
    pub path: Option<PathBuf>,
}

/// The regular files this process's stdout and stderr write to. `nohup backupd --watch ~` logs
/// into `~/nohup.out`: backing that file up logs a line, which changes it, which is a change to
/// back up, for ever. Found by device and inode of the open descriptors, so neither a rename of
/// the file nor a path spelt differently hides it.
pub fn own_output_files() -> Vec<OwnOutput> {
    use std::os::fd::AsFd;
    let streams = [
        (
            "stdout",
            1,
            nix::sys::stat::fstat(std::io::stdout().as_fd()),
        ),
        (
            "stderr",
            2,
            nix::sys::stat::fstat(std::io::stderr().as_fd()),
        ),
    ];
    let mut out: Vec<OwnOutput> = Vec::new();
    for (stream, fd, st) in streams {
        let Ok(st) = st else { continue };
        let (dev, ino) = (st.st_dev, st.st_ino);
        if st.st_mode & libc::S_IFMT != libc::S_IFREG
            || out.iter().any(|o| (o.dev, o.ino) == (dev, ino))
        {
            continue;
        }
        let path = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok();
        out.push(OwnOutput {
            stream,
            dev,
            ino,
            path,
        });
    }
    out
}

/// The tag that marks cache directories (https://bford.info/cachedir/).
const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

impl Excludes {
    pub fn new(patterns: &[String], files: &[PathBuf]) -> Result<Self, ExcludeError> {
        let mut all: Vec<String> = patterns.to_vec();
        for file in files {
            let text = std::fs::read_to_string(file).map_err(|source| ExcludeError::File {
                path: file.clone(),
                source,
            })?;
            all.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_owned),
            );
        }
        let mut names = GlobSetBuilder::new();
        let mut paths = GlobSetBuilder::new();
        let (mut any_name, mut any_path) = (false, false);
        for pattern in &all {
            let trimmed = pattern.trim_end_matches('/');
            let glob = Glob::new(trimmed).map_err(|e| ExcludeError::Pattern {
                pattern: pattern.clone(),
                reason: e.to_string(),
            })?;
            if trimmed.contains('/') {
                paths.add(glob);
                any_path = true;
            } else {
                names.add(glob);
                any_name = true;
            }
        }
        let build = |b: GlobSetBuilder, any: bool| -> Result<Option<GlobSet>, ExcludeError> {
            if !any {
                return Ok(None);
            }
            b.build().map(Some).map_err(|e| ExcludeError::Pattern {
                pattern: all.join(", "),
                reason: e.to_string(),
            })
        };
        Ok(Self {
            names: build(names, any_name)?,
            paths: build(paths, any_path)?,
            ..Default::default()
        })
    }

    /// Whether no pattern and no rule excludes anything by path or name (a walk may then skip
    /// building each entry's path for [`Excludes::excludes`]).
    pub fn is_empty(&self) -> bool {
        self.names.is_none() && self.paths.is_none() && self.always.is_empty()
    }

    /// Whether `path` (absolute) with file name `name` is excluded by pattern or rule.
    pub fn excludes(&self, path: &Path, name: &[u8]) -> bool {
        if self.always.iter().any(|p| p == path) {
            return true;
        }
        if let Some(set) = &self.names {
            if set.is_match(Path::new(OsStr::from_bytes(name))) {
                return true;
            }
        }
        if let Some(set) = &self.paths {
            if set.is_match(path) {
                return true;
            }
        }
        false
    }

    /// Whether the object with this device and inode is one the daemon never backs up.
    pub fn excludes_inode(&self, dev: u64, ino: u64) -> bool {
        self.always_inodes.contains(&(dev, ino))
    }

    /// Leaves the daemon's own log files out ([`own_output_files`]).
    pub fn without_own_output(mut self) -> Self {
        self.always_inodes = own_output_files().iter().map(|o| (o.dev, o.ino)).collect();
        self
    }

    /// Whether the directory at `path` is a tagged cache directory to skip.
    pub fn is_tagged_cache(&self, dir: &super::dirfd::DirFd) -> bool {
        if !self.exclude_caches {
            return false;
        }
        let mut buf = [0u8; 43];
        dir.open_read(b"CACHEDIR.TAG")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
            .is_ok_and(|()| buf == CACHEDIR_SIGNATURE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_and_path_patterns() {
        let ex = Excludes::new(
            &["*.tmp".into(), "/data/skip/**".into(), "/data/exact".into()],
            &[],
        )
        .expect("patterns");
        assert!(ex.excludes(Path::new("/a/b/x.tmp"), b"x.tmp"));
        assert!(!ex.excludes(Path::new("/a/b/x.txt"), b"x.txt"));
        assert!(ex.excludes(Path::new("/data/skip/deep/f"), b"f"));
        assert!(ex.excludes(Path::new("/data/exact"), b"exact"));
        assert!(!ex.excludes(Path::new("/data/other"), b"other"));
        assert!(Excludes::new(&["[".into()], &[]).is_err());
    }
}
