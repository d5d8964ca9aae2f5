//! Bytes the daemon's jobs moved since it started, for the monitor's throughput and the
//! Prometheus counters. Process-wide like the kernel's own counters: the engine adds to them
//! where the bytes move, whichever job moves them.

use std::sync::atomic::{AtomicU64, Ordering};

static READ: AtomicU64 = AtomicU64::new(0);
static STORED: AtomicU64 = AtomicU64::new(0);
static RESTORED: AtomicU64 = AtomicU64::new(0);
static STORE_REQUESTS: AtomicU64 = AtomicU64::new(0);

/// File contents read from a source by a backup.
pub fn add_read(bytes: u64) {
    READ.fetch_add(bytes, Ordering::Relaxed);
}

/// Bytes written into a repository (packs, indexes, snapshots).
pub fn add_stored(bytes: u64) {
    STORED.fetch_add(bytes, Ordering::Relaxed);
}

/// File contents written into a restore target.
pub fn add_restored(bytes: u64) {
    RESTORED.fetch_add(bytes, Ordering::Relaxed);
}

/// One request sent to an object store (retries by the client not counted).
pub fn add_store_request() {
    STORE_REQUESTS.fetch_add(1, Ordering::Relaxed);
}

/// The counters at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub read: u64,
    pub stored: u64,
    pub restored: u64,
    pub store_requests: u64,
}

pub fn totals() -> Totals {
    Totals {
        read: READ.load(Ordering::Relaxed),
        stored: STORED.load(Ordering::Relaxed),
        restored: RESTORED.load(Ordering::Relaxed),
        store_requests: STORE_REQUESTS.load(Ordering::Relaxed),
    }
}
