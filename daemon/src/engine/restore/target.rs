//! The restore target and the directories under it, held open. The target path is resolved
//! once, one component at a time from `/`: a missing component is created, a symlink is only
//! followed when root or the daemon's own user owns it (a symlink another user planted must not
//! steer a root restore), and the result is held as a descriptor. Every directory below it is
//! opened relative to its parent's descriptor without following symlinks, so a user who can
//! write inside the target can make the restore fail but never send it elsewhere.

use super::super::dirfd::{display_bytes, DirFd};
use super::plan::{PlanDir, TARGET};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};
use std::sync::{Arc, Mutex};

/// Symlinks followed while resolving the target, as the kernel's own limit.
const MAX_SYMLINKS: u32 = 40;

/// Why the target could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// It is (or would be created) on a read-only file system: the caller names the setting
    /// that usually causes that (the systemd unit's `ProtectSystem=strict`).
    ReadOnly,
    Other(String),
}

impl From<String> for OpenError {
    fn from(reason: String) -> Self {
        Self::Other(reason)
    }
}

impl From<&str> for OpenError {
    fn from(reason: &str) -> Self {
        Self::Other(reason.to_owned())
    }
}

/// Opens (creating what is missing) the restore target, refusing one on a read-only file
/// system before anything is attempted in it.
pub fn open_target(target: &Path) -> Result<DirFd, OpenError> {
    let dir = resolve(target)?;
    let read_only = nix::sys::statvfs::fstatvfs(dir.file())
        .is_ok_and(|v| v.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
    if read_only {
        return Err(OpenError::ReadOnly);
    }
    Ok(dir)
}

fn resolve(target: &Path) -> Result<DirFd, OpenError> {
    if !target.is_absolute() {
        return Err("must be an absolute path".into());
    }
    // A restore acting for a user may also follow that user's own symlinks: it can only reach
    // what the user could reach anyway.
    let acting = crate::security::fsid::acting().map(|a| a.uid);
    let trusted =
        |uid: u32| uid == 0 || uid == nix::unistd::geteuid().as_raw() || acting == Some(uid);
    let mut pending: VecDeque<Vec<u8>> = components(target);
    let mut dir = DirFd::open_path(Path::new("/")).map_err(|e| format!("open /: {e}"))?;
    let mut walked: Vec<Vec<u8>> = Vec::new();
    let mut hops = 0;
    let shown = |walked: &[Vec<u8>], name: &[u8]| {
        let mut p = walked.join(&b'/');
        p.push(b'/');
        p.extend_from_slice(name);
        let mut s = display_bytes(&p);
        if !s.starts_with('/') {
            s.insert(0, '/');
        }
        s
    };
    while let Some(name) = pending.pop_front() {
        if name == b".." {
            dir = dir.open_dir(b"..").map_err(|e| format!("open ..: {e}"))?;
            walked.pop();
            continue;
        }
        match dir.stat_at(&name) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => match dir.mkdir(&name, 0o755) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) if e.raw_os_error() == Some(libc::EROFS) => return Err(OpenError::ReadOnly),
                Err(e) => {
                    return Err(format!("cannot create {}: {e}", shown(&walked, &name)).into())
                }
            },
            Err(e) => return Err(format!("{}: {e}", shown(&walked, &name)).into()),
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => {
                if !trusted(st.st_uid) {
                    return Err(format!(
                        "{} is a symlink owned by uid {}; a restore target is never reached \
                         through a symlink another user controls (give the resolved path)",
                        shown(&walked, &name),
                        st.st_uid
                    )
                    .into());
                }
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return Err("too many levels of symbolic links".into());
                }
                let link = dir
                    .read_link(&name)
                    .map_err(|e| format!("{}: {e}", shown(&walked, &name)))?;
                let link_path = Path::new(std::ffi::OsStr::from_bytes(&link));
                if link_path.is_absolute() {
                    dir = DirFd::open_path(Path::new("/")).map_err(|e| format!("open /: {e}"))?;
                    walked.clear();
                }
                for c in components(link_path).into_iter().rev() {
                    pending.push_front(c);
                }
                continue;
            }
            Ok(_) => {}
        }
        dir = dir.open_dir(&name).map_err(|e| {
            let why = match e.raw_os_error() {
                Some(libc::ENOTDIR) => "exists and is not a directory".to_owned(),
                Some(libc::ELOOP) => "was replaced by a symlink while it was opened".to_owned(),
                _ => e.to_string(),
            };
            format!("{}: {why}", shown(&walked, &name))
        })?;
        walked.push(name);
    }
    Ok(dir)
}

fn components(path: &Path) -> VecDeque<Vec<u8>> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.as_bytes().to_vec()),
            Component::ParentDir => Some(b"..".to_vec()),
            _ => None,
        })
        .collect()
}

/// Most directory descriptors kept open at once; files are restored in plan order, so a
/// small cache serves nearly every lookup.
const CACHE_LIMIT: usize = 256;

/// Open descriptors of the plan's directories, each opened from its parent's.
pub struct Dirs<'a> {
    plan: &'a [PlanDir],
    root: Arc<DirFd>,
    cache: Mutex<HashMap<usize, Arc<DirFd>>>,
}

impl<'a> Dirs<'a> {
    pub fn new(plan: &'a [PlanDir], root: DirFd) -> Self {
        Self {
            plan,
            root: Arc::new(root),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Directory `i`, opened (without following symlinks) from the nearest open ancestor.
    pub fn get(&self, i: usize) -> io::Result<Arc<DirFd>> {
        if i == TARGET {
            return Ok(self.root.clone());
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = cache.get(&i) {
            return Ok(d.clone());
        }
        let mut chain = vec![i];
        let mut p = self.plan[i].parent;
        let mut base = loop {
            if p == TARGET {
                break self.root.clone();
            }
            if let Some(d) = cache.get(&p) {
                break d.clone();
            }
            chain.push(p);
            p = self.plan[p].parent;
        };
        for &j in chain.iter().rev() {
            let d = Arc::new(base.open_dir(&self.plan[j].name)?);
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(j, d.clone());
            base = d;
        }
        Ok(base)
    }

    /// Forgets directory `i`'s descriptor (it was replaced).
    pub fn forget(&self, i: usize) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&i);
    }
}
