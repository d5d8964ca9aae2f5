//! The swap: the staged copy takes the target's place and what it replaces goes into the
//! rollback copy, so that the recovery can be undone until it is committed.
//!
//! Both copies live in a work directory inside the target (`.backupd-recovery-ID/staging` and
//! `/rollback`): inside, because a rename only works within one file system and the target may
//! be a mount point. The swap is a list of **units** worked out once, before the first rename,
//! and stored (the journal): in a full recovery each top-level entry of the target or of the
//! staging copy, in a selective one each staged entry that has no directory at the target to
//! merge into. A unit is one or two renames (`target/X` → `rollback/X`, `staging/X` →
//! `target/X`), each atomic, so a unit is replaced atomically per top-level entry (full) or per
//! entry (selective).
//!
//! Nothing about progress is stored: where a unit stands is read from the file system (which of
//! the three places holds its entry), so a crash between any two renames leaves a state that
//! [`apply`] finishes and [`undo`] reverses exactly. Renames never replace anything
//! (`RENAME_NOREPLACE`): an entry that appeared in the target since the swap began fails the
//! unit instead of being overwritten.
//!
//! Every lookup goes through directory descriptors without following symlinks.

use crate::engine::dirfd::DirFd;
use crate::state::records::recovery::SwapUnit;
use std::collections::BTreeSet;
use std::io;

/// The work directory's name prefix; such entries of the target are never swapped.
pub const WORK_PREFIX: &str = ".backupd-recovery-";
const STAGING: &[u8] = b"staging";
const ROLLBACK: &[u8] = b"rollback";

pub fn work_name(plan: &str) -> Vec<u8> {
    format!("{WORK_PREFIX}{plan}").into_bytes()
}

/// The target and the work directory in it, opened.
pub struct Layout {
    target: DirFd,
    work: DirFd,
}

impl Layout {
    /// Opens the work directory `work` in `target`, creating it (and its staging and rollback
    /// directories, private) when `create`.
    pub fn open(target: DirFd, work: &[u8], create: bool) -> io::Result<Self> {
        if create {
            mkdir_if_missing(&target, work)?;
        }
        let w = target.open_dir(work)?;
        if create {
            mkdir_if_missing(&w, STAGING)?;
            mkdir_if_missing(&w, ROLLBACK)?;
        }
        Ok(Self { target, work: w })
    }

    fn staging(&self) -> io::Result<DirFd> {
        self.work.open_dir(STAGING)
    }

    /// The staging directory, opened (for the restore step's own housekeeping).
    pub fn staging_dir(&self) -> io::Result<DirFd> {
        self.staging()
    }

    fn rollback(&self) -> io::Result<DirFd> {
        self.work.open_dir(ROLLBACK)
    }

    /// Whether the rollback copy holds anything.
    pub fn rollback_is_empty(&self) -> io::Result<bool> {
        Ok(self.rollback()?.list()?.is_empty())
    }
}

fn mkdir_if_missing(dir: &DirFd, name: &[u8]) -> io::Result<()> {
    match dir.mkdir(name, 0o700) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

fn join(rel: &[u8], name: &[u8]) -> Vec<u8> {
    if rel.is_empty() {
        return name.to_vec();
    }
    [rel, b"/", name].concat()
}

/// The directory holding `rel` under `root` (created, private, when `create`), and the last
/// component of `rel`.
fn parent_of(root: &DirFd, rel: &[u8], create: bool) -> io::Result<(DirFd, Vec<u8>)> {
    let mut parts: Vec<&[u8]> = rel.split(|b| *b == b'/').collect();
    let name = parts.pop().unwrap_or_default().to_vec();
    let mut dir = root.try_clone()?;
    for p in parts {
        if create {
            mkdir_if_missing(&dir, p)?;
        }
        dir = dir.open_dir(p)?;
    }
    Ok((dir, name))
}

fn exists(dir: &DirFd, name: &[u8]) -> bool {
    dir.stat_at(name).is_ok()
}

fn is_real_dir(dir: &DirFd, name: &[u8]) -> bool {
    dir.stat_at(name)
        .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

/// Moves `from` (in `from_dir`) to `to` (in `to_dir`), never replacing anything there.
fn move_entry(from_dir: &DirFd, from: &[u8], to_dir: &DirFd, to: &[u8]) -> io::Result<()> {
    from_dir.rename_noreplace(from, to_dir, to)
}

/// The units of a swap, from the staging copy and the target as they are now.
pub fn units(layout: &Layout, full: bool, work: &[u8]) -> io::Result<Vec<SwapUnit>> {
    let staging = layout.staging()?;
    if full {
        let staged: BTreeSet<Vec<u8>> = staging.list()?.into_iter().collect();
        let present: BTreeSet<Vec<u8>> = layout
            .target
            .list()?
            .into_iter()
            .filter(|n| n.as_slice() != work && !n.starts_with(WORK_PREFIX.as_bytes()))
            .collect();
        return Ok(staged
            .union(&present)
            .map(|n| SwapUnit {
                rel: n.clone(),
                had_original: present.contains(n),
                remove_only: !staged.contains(n),
            })
            .collect());
    }
    let mut out = Vec::new();
    let mut stack = vec![Vec::new()];
    while let Some(rel) = stack.pop() {
        let s = open_rel(&staging, &rel)?;
        let t = open_rel(&layout.target, &rel)?;
        let mut names = s.list()?;
        names.sort();
        for name in names.into_iter().rev() {
            let child = join(&rel, &name);
            if is_real_dir(&s, &name) && is_real_dir(&t, &name) {
                stack.push(child);
            } else {
                out.push(SwapUnit {
                    had_original: exists(&t, &name),
                    rel: child,
                    remove_only: false,
                });
            }
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

/// The directory `rel` under `root` (`root` itself for an empty `rel`).
fn open_rel(root: &DirFd, rel: &[u8]) -> io::Result<DirFd> {
    if rel.is_empty() {
        return root.try_clone();
    }
    let (dir, name) = parent_of(root, rel, false)?;
    dir.open_dir(&name)
}

/// Carries out the units not done yet, from wherever a previous attempt stopped. `limit` stops
/// after that many renames (a crash, for tests); returns the renames done.
pub fn apply(layout: &Layout, units: &[SwapUnit], limit: usize) -> io::Result<usize> {
    let staging = layout.staging()?;
    let rollback = layout.rollback()?;
    let mut done = 0usize;
    for u in units {
        let (t, name) = parent_of(&layout.target, &u.rel, false)
            .map_err(|e| context(e, "open the target's directory", &u.rel))?;
        let staged = if u.remove_only {
            None
        } else {
            Some(
                parent_of(&staging, &u.rel, false)
                    .map_err(|e| context(e, "open the staging directory", &u.rel))?
                    .0,
            )
        };
        let is_staged = staged.as_ref().is_some_and(|s| exists(s, &name));
        if u.had_original && (u.remove_only || is_staged) && exists(&t, &name) {
            let (r, _) = parent_of(&rollback, &u.rel, true)
                .map_err(|e| context(e, "prepare the rollback copy", &u.rel))?;
            if !exists(&r, &name) {
                if done == limit {
                    return Ok(done);
                }
                move_entry(&t, &name, &r, &name).map_err(|e| context(e, "move aside", &u.rel))?;
                done += 1;
            }
        }
        if let (Some(s), true) = (&staged, is_staged) {
            if done == limit {
                return Ok(done);
            }
            move_entry(s, &name, &t, &name).map_err(|e| context(e, "put in place", &u.rel))?;
            done += 1;
        }
    }
    Ok(done)
}

/// Reverses every unit, last first, from wherever [`apply`] stopped: the target is left as it
/// was before the swap began.
pub fn undo(layout: &Layout, units: &[SwapUnit]) -> io::Result<()> {
    let staging = layout.staging()?;
    let rollback = layout.rollback()?;
    for u in units.iter().rev() {
        let (t, name) = parent_of(&layout.target, &u.rel, false)
            .map_err(|e| context(e, "open the target's directory", &u.rel))?;
        if !u.remove_only {
            let (s, _) = parent_of(&staging, &u.rel, true)
                .map_err(|e| context(e, "open the staging directory", &u.rel))?;
            if !exists(&s, &name) && exists(&t, &name) {
                move_entry(&t, &name, &s, &name).map_err(|e| context(e, "take back", &u.rel))?;
            }
        }
        if u.had_original {
            if let Ok((r, _)) = parent_of(&rollback, &u.rel, false) {
                if exists(&r, &name) {
                    move_entry(&r, &name, &t, &name).map_err(|e| context(e, "put back", &u.rel))?;
                }
            }
        }
    }
    Ok(())
}

fn context(e: io::Error, what: &str, rel: &[u8]) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("{what} {}: {e}", crate::engine::dirfd::display_bytes(rel)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    /// The tree under `root` (skipping the work directory): path -> content or `dir`/`->target`.
    fn snapshot_of(root: &Path) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).expect("test setup") {
                let e = e.expect("test setup");
                let name = e.file_name();
                if name.as_bytes().starts_with(WORK_PREFIX.as_bytes()) {
                    continue;
                }
                let p = e.path();
                let rel = p
                    .strip_prefix(root)
                    .expect("test setup")
                    .display()
                    .to_string();
                let ft = e.file_type().expect("test setup");
                if ft.is_symlink() {
                    out.insert(
                        rel,
                        format!(
                            "->{}",
                            std::fs::read_link(&p).expect("test setup").display()
                        ),
                    );
                } else if ft.is_dir() {
                    out.insert(rel, "dir".into());
                    stack.push(p);
                } else {
                    out.insert(rel, std::fs::read_to_string(&p).expect("test setup"));
                }
            }
        }
        out
    }

    fn write(root: &Path, rel: &str, content: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("test setup")).expect("test setup");
        std::fs::write(p, content).expect("test setup");
    }

    /// A target and a staged copy: some entries in both, some only in one.
    fn setup(full: bool) -> (tempfile::TempDir, Vec<u8>) {
        let dir = tempfile::tempdir().expect("test setup");
        let t = dir.path();
        write(t, "keep.txt", "old keep");
        write(t, "gone.txt", "only in target");
        write(t, "sub/a.txt", "old a");
        write(t, "sub/deep/b.txt", "old b");
        std::os::unix::fs::symlink("keep.txt", t.join("link")).expect("test setup");
        let work = work_name("7");
        let layout = Layout::open(DirFd::open_path(t).expect("test setup"), &work, true)
            .expect("test setup");
        drop(layout);
        let s = t.join(std::ffi::OsStr::from_bytes(&work)).join("staging");
        write(&s, "keep.txt", "new keep");
        write(&s, "sub/a.txt", "new a");
        write(&s, "sub/new/c.txt", "new c");
        write(&s, "fresh.txt", "fresh");
        if full {
            write(&s, "sub/deep/b.txt", "old b");
            std::os::unix::fs::symlink("fresh.txt", s.join("link")).expect("test setup");
        }
        (dir, work)
    }

    fn expected(full: bool) -> BTreeMap<String, String> {
        let mut m: BTreeMap<String, String> = [
            ("keep.txt", "new keep"),
            ("sub", "dir"),
            ("sub/a.txt", "new a"),
            ("sub/deep", "dir"),
            ("sub/deep/b.txt", "old b"),
            ("sub/new", "dir"),
            ("sub/new/c.txt", "new c"),
            ("fresh.txt", "fresh"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
        if full {
            m.insert("link".into(), "->fresh.txt".into());
        } else {
            m.insert("link".into(), "->keep.txt".into());
            m.insert("gone.txt".into(), "only in target".into());
        }
        m
    }

    #[test]
    fn a_swap_stopped_after_any_rename_finishes_or_undoes_exactly() {
        for full in [true, false] {
            let (dir, work) = setup(full);
            let units = {
                let l = Layout::open(
                    DirFd::open_path(dir.path()).expect("test setup"),
                    &work,
                    false,
                )
                .expect("test setup");
                units(&l, full, &work).expect("test setup")
            };
            let open = |d: &Path| {
                Layout::open(DirFd::open_path(d).expect("test setup"), &work, false)
                    .expect("test setup")
            };
            let renames = {
                let (d, _) = setup(full);
                apply(&open(d.path()), &units, usize::MAX).expect("test setup")
            };
            assert!(renames >= units.len(), "full={full}: {renames} renames");
            for stop in 0..=renames {
                // Finish after a crash.
                let (d, _) = setup(full);
                let before = snapshot_of(d.path());
                assert_eq!(
                    apply(&open(d.path()), &units, stop).expect("test setup"),
                    stop
                );
                apply(&open(d.path()), &units, usize::MAX).expect("test setup");
                assert_eq!(
                    snapshot_of(d.path()),
                    expected(full),
                    "full={full} stop={stop}"
                );
                // Undo after a crash.
                let (d, _) = setup(full);
                apply(&open(d.path()), &units, stop).expect("test setup");
                undo(&open(d.path()), &units).expect("test setup");
                assert_eq!(
                    snapshot_of(d.path()),
                    before,
                    "undo full={full} stop={stop}"
                );
            }
            // Undo after a complete swap, twice (idempotent).
            let (d, _) = setup(full);
            let before = snapshot_of(d.path());
            apply(&open(d.path()), &units, usize::MAX).expect("test setup");
            undo(&open(d.path()), &units).expect("test setup");
            undo(&open(d.path()), &units).expect("test setup");
            assert_eq!(snapshot_of(d.path()), before);
        }
    }

    #[test]
    fn an_entry_that_appears_in_the_target_during_the_swap_is_never_overwritten() {
        let (dir, work) = setup(false);
        let l = Layout::open(
            DirFd::open_path(dir.path()).expect("test setup"),
            &work,
            false,
        )
        .expect("test setup");
        let units = units(&l, false, &work).expect("test setup");
        write(dir.path(), "fresh.txt", "a user's new file");
        let err = apply(&l, &units, usize::MAX).expect_err("fails");
        assert!(err.to_string().contains("fresh.txt"), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("fresh.txt")).expect("test setup"),
            "a user's new file"
        );
    }
}
