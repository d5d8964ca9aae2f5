//! A backend wrapper that fails on request, for tests: the Nth put of a kind fails, every get
//! of one object fails, the next N operations fail transiently, every operation is delayed, or
//! a put "succeeds" but is lost as if the machine crashed before the directory fsync (and the
//! process is dead from then on).
//!
//! Compiled always, not behind a feature: the integration tests in `daemon/tests/` link the
//! library as built for them, and a cfg(test) item is not visible there. It holds no state
//! unless a test arms it, and nothing in the daemon constructs it.

use super::{Backend, BackendError, Cause, ErrorKind, FileKind, Key, ObjectInfo, Presence, Result};
use crate::repo::location::Location;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What to break; set through [`FaultyBackend`]'s methods.
#[derive(Debug, Default)]
struct Faults {
    /// (kind, which put of that kind, 1-based, counted from when it was armed; the error).
    fail_put: Option<(FileKind, u64, ErrorKind)>,
    puts_seen: u64,
    /// Gets (whole or range) and stats of these objects fail.
    fail_gets: Vec<(FileKind, String, ErrorKind)>,
    /// The next this many operations of any kind fail with `next_kind`.
    fail_next: u64,
    next_kind: Option<ErrorKind>,
    delay: Duration,
    /// The Nth put of this kind is lost after it returns `Ok`, and every later mutation fails.
    lose_put: Option<(FileKind, u64)>,
    crashed: bool,
}

/// Wraps a backend and injects faults into it.
#[derive(Debug)]
pub struct FaultyBackend {
    inner: Arc<dyn Backend>,
    faults: Mutex<Faults>,
}

fn injected(
    kind: ErrorKind,
    action: &'static str,
    target: String,
    what: &'static str,
) -> BackendError {
    BackendError::new(kind, action, target, Cause::Injected(what))
}

impl FaultyBackend {
    pub fn new(inner: Arc<dyn Backend>) -> Self {
        Self {
            inner,
            faults: Mutex::new(Faults::default()),
        }
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `nth` put (1 = the next one) of objects of `kind` fails with `error`; nothing of it
    /// is stored.
    pub fn fail_put(&self, kind: FileKind, nth: u64, error: ErrorKind) {
        let mut f = self.faults();
        f.fail_put = Some((kind, nth, error));
        f.puts_seen = 0;
    }

    /// Every read (get, get range, stat) of this object fails with `error`.
    pub fn fail_gets(&self, key: Key<'_>, error: ErrorKind) {
        self.faults()
            .fail_gets
            .push((key.kind, key.name.to_owned(), error));
    }

    /// The next `n` operations, whatever they are, fail with `error` (e.g. `Transient`: a flaky
    /// mount; `Unreachable`: the storage went away for a while).
    pub fn fail_next(&self, n: u64, error: ErrorKind) {
        let mut f = self.faults();
        f.fail_next = n;
        f.next_kind = Some(error);
    }

    /// Every operation sleeps this long first.
    pub fn delay(&self, d: Duration) {
        self.faults().delay = d;
    }

    /// The `nth` put of `kind` returns `Ok` but is lost, as a rename is when the machine dies
    /// before the directory is fsynced; from then on every mutation fails (the process is
    /// dead). A reopened repository on the inner backend sees what a restarted daemon would.
    pub fn crash_after_put(&self, kind: FileKind, nth: u64) {
        let mut f = self.faults();
        f.lose_put = Some((kind, nth));
        f.puts_seen = 0;
    }

    /// Whether the simulated crash has happened.
    pub fn crashed(&self) -> bool {
        self.faults().crashed
    }

    /// Removes every fault (the crash stays: a dead process does not come back).
    pub fn heal(&self) {
        let mut f = self.faults();
        let crashed = f.crashed;
        *f = Faults {
            crashed,
            ..Faults::default()
        };
    }

    /// Runs the faults common to every operation: the delay, `fail_next`, and for mutations the
    /// dead process.
    fn before(
        &self,
        action: &'static str,
        target: impl FnOnce() -> String,
        mutation: bool,
    ) -> Result<()> {
        let (delay, fail) = {
            let mut f = self.faults();
            let fail = if mutation && f.crashed {
                Some((ErrorKind::Transient, "the process crashed"))
            } else if f.fail_next > 0 {
                f.fail_next -= 1;
                f.next_kind.map(|k| (k, "fail next"))
            } else {
                None
            };
            (f.delay, fail)
        };
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        match fail {
            Some((kind, what)) => Err(injected(kind, action, target(), what)),
            None => Ok(()),
        }
    }

    fn before_read(&self, key: Key<'_>, action: &'static str) -> Result<()> {
        self.before(action, || self.inner.describe(key), false)?;
        let fail = self
            .faults()
            .fail_gets
            .iter()
            .find(|(k, n, _)| *k == key.kind && n == key.name)
            .map(|(_, _, e)| *e);
        match fail {
            Some(kind) => Err(injected(
                kind,
                action,
                self.inner.describe(key),
                "fail gets",
            )),
            None => Ok(()),
        }
    }

    /// Counts a put of `kind`; says whether it must fail or be lost.
    fn count_put(&self, kind: FileKind) -> (Option<ErrorKind>, bool) {
        let mut f = self.faults();
        let watched =
            f.fail_put.map(|(k, ..)| k) == Some(kind) || f.lose_put.map(|(k, _)| k) == Some(kind);
        if watched {
            f.puts_seen += 1;
        }
        let n = f.puts_seen;
        let fail = f
            .fail_put
            .filter(|&(k, nth, _)| k == kind && nth == n)
            .map(|(.., e)| e);
        let lose = f.lose_put.is_some_and(|(k, nth)| k == kind && nth == n);
        (fail, lose)
    }

    fn put_with(&self, key: Key<'_>, put: impl FnOnce() -> Result<bool>) -> Result<bool> {
        self.before("write", || self.inner.describe(key), true)?;
        let (fail, lose) = self.count_put(key.kind);
        if let Some(kind) = fail {
            return Err(injected(
                kind,
                "write",
                self.inner.describe(key),
                "fail put",
            ));
        }
        let written = put()?;
        if lose {
            // The rename never reached the disk: the object is not there after the crash.
            self.inner.delete(key)?;
            self.faults().crashed = true;
        }
        Ok(written)
    }
}

impl Backend for FaultyBackend {
    fn location(&self) -> &Location {
        self.inner.location()
    }

    fn presence(&self) -> Result<Presence> {
        self.before("list", || self.inner.location().to_string(), false)?;
        self.inner.presence()
    }

    fn create(&self) -> Result<()> {
        self.before("create", || self.inner.location().to_string(), true)?;
        self.inner.create()
    }

    fn put(&self, key: Key<'_>, data: &[u8]) -> Result<()> {
        self.put_with(key, || self.inner.put(key, data).map(|()| true))
            .map(|_| ())
    }

    fn put_new(&self, key: Key<'_>, data: &[u8]) -> Result<bool> {
        self.put_with(key, || self.inner.put_new(key, data))
    }

    fn get(&self, key: Key<'_>) -> Result<Vec<u8>> {
        self.before_read(key, "read")?;
        self.inner.get(key)
    }

    fn get_range(&self, key: Key<'_>, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.before_read(key, "read")?;
        self.inner.get_range(key, offset, len)
    }

    fn list(&self, kind: FileKind) -> Result<Vec<String>> {
        self.before(
            "list",
            || format!("{} {}", self.inner.location(), kind.dir()),
            false,
        )?;
        self.inner.list(kind)
    }

    fn stat(&self, key: Key<'_>) -> Result<ObjectInfo> {
        self.before_read(key, "stat")?;
        self.inner.stat(key)
    }

    fn delete(&self, key: Key<'_>) -> Result<()> {
        self.before("remove", || self.inner.describe(key), true)?;
        self.inner.delete(key)
    }

    fn list_incomplete(&self) -> Result<Vec<String>> {
        self.before("list", || self.inner.location().to_string(), false)?;
        self.inner.list_incomplete()
    }

    fn delete_incomplete(&self, name: &str) -> Result<()> {
        self.before("remove", || name.to_owned(), true)?;
        self.inner.delete_incomplete(name)
    }

    fn describe(&self, key: Key<'_>) -> String {
        self.inner.describe(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::backend::LocalBackend;

    fn faulty() -> (tempfile::TempDir, FaultyBackend) {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = LocalBackend::new(dir.path().join("repo"));
        local.create().expect("layout");
        (dir, FaultyBackend::new(Arc::new(local)))
    }

    #[test]
    fn the_nth_put_of_a_kind_fails_and_stores_nothing() {
        let (_dir, b) = faulty();
        b.fail_put(FileKind::Pack, 2, ErrorKind::NoSpace);
        b.put(Key::snapshot("s1"), b"x").expect("other kinds pass");
        b.put(Key::pack("aa01"), b"1").expect("first pack");
        let e = b.put(Key::pack("aa02"), b"2").expect_err("second pack");
        assert_eq!(e.kind, ErrorKind::NoSpace);
        assert!(!b.exists(Key::pack("aa02")).expect("stat"));
        b.put(Key::pack("aa03"), b"3").expect("third pack");
    }

    #[test]
    fn gets_of_one_object_fail_and_transient_faults_pass() {
        let (_dir, b) = faulty();
        b.put(Key::pack("aa01"), b"data").expect("put");
        b.fail_gets(Key::pack("aa01"), ErrorKind::Transient);
        assert_eq!(
            b.get_range(Key::pack("aa01"), 0, 1)
                .expect_err("range")
                .kind,
            ErrorKind::Transient
        );
        b.heal();
        assert_eq!(b.get(Key::pack("aa01")).expect("healed"), b"data");
        b.fail_next(2, ErrorKind::Unreachable);
        assert!(b.list(FileKind::Pack).is_err());
        assert!(b.get(Key::pack("aa01")).is_err());
        assert_eq!(b.list(FileKind::Pack).expect("third"), vec!["aa01"]);
    }

    #[test]
    fn a_put_lost_in_a_crash_is_gone_and_the_process_writes_nothing_more() {
        let (_dir, b) = faulty();
        b.crash_after_put(FileKind::Index, 1);
        b.put(Key::index("i1"), b"x").expect("reported written");
        assert!(b.crashed());
        assert!(
            !b.exists(Key::index("i1")).expect("stat"),
            "lost with the crash"
        );
        assert!(b.put(Key::snapshot("s"), b"y").is_err(), "dead process");
        assert!(b.delete(Key::snapshot("s")).is_err());
    }
}
