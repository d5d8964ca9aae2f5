//! Counters an operation updates as it goes; the server samples them to stream progress (files,
//! bytes, rate, ETA) to the client. Lock-free: workers only touch atomics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Progress {
    pub files_done: AtomicU64,
    pub bytes_done: AtomicU64,
    /// Totals, known once the scanner finished (or from the start for restores).
    pub files_total: AtomicU64,
    pub bytes_total: AtomicU64,
    pub totals_known: AtomicBool,
    /// Problems so far (unreadable files, damaged blobs).
    pub errors: AtomicU64,
}

/// A consistent-enough reading of the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgressSample {
    pub files_done: u64,
    pub bytes_done: u64,
    pub files_total: Option<u64>,
    pub bytes_total: Option<u64>,
    pub errors: u64,
}

impl Progress {
    pub fn add(&self, files: u64, bytes: u64) {
        self.files_done.fetch_add(files, Ordering::Relaxed);
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn set_totals(&self, files: u64, bytes: u64) {
        self.files_total.store(files, Ordering::Relaxed);
        self.bytes_total.store(bytes, Ordering::Relaxed);
        self.totals_known.store(true, Ordering::Release);
    }

    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn sample(&self) -> ProgressSample {
        let known = self.totals_known.load(Ordering::Acquire);
        ProgressSample {
            files_done: self.files_done.load(Ordering::Relaxed),
            bytes_done: self.bytes_done.load(Ordering::Relaxed),
            files_total: known.then(|| self.files_total.load(Ordering::Relaxed)),
            bytes_total: known.then(|| self.bytes_total.load(Ordering::Relaxed)),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}
