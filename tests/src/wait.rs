//! Waiting in tests: one polling loop with a deadline, never sleeping and hoping.

use std::time::{Duration, Instant};

/// The one polling loop of the tests: calls `f` every 20 ms until it gives a value, for at most
/// `deadline` (`f` runs at least once). Tests wait through this or [`wait_until`], never by
/// sleeping and hoping.
pub fn poll_until<T>(deadline: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `f` until it gives a value; panics naming `what` after `deadline`.
pub fn wait_until<T>(what: &str, deadline: Duration, f: impl FnMut() -> Option<T>) -> T {
    wait_until_else(what, deadline, f, String::new)
}

/// As [`wait_until`]; the panic message ends with `context()` (the last state seen, a log).
pub fn wait_until_else<T, F: FnMut() -> Option<T>>(
    what: &str,
    deadline: Duration,
    f: F,
    context: impl FnOnce() -> String,
) -> T {
    match poll_until(deadline, f) {
        Some(v) => v,
        None => panic!("{what}: not there within {deadline:?}\n{}", context()),
    }
}
