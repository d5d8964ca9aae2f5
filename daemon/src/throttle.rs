//! Bandwidth limits for transfers (sync pairs, replication): token buckets that let a transfer
//! run into debt and make it sleep the debt off, so a 5 MiB chunk at 1 MiB/s waits 5 s after
//! it is sent and the long-run rate is the limit. One [`Bucket`] is shared by everything under
//! `[sync] bwlimit` (its rate follows a reload); a pair or replication adds its own, and
//! [`pace`] makes the caller wait for the slower of them.

use backupd_common::rate::Rate;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The longest single sleep; cancellation is seen at least this often.
const SLICE: Duration = Duration::from_millis(100);

/// A token bucket; clones share it. Rate 0 is no limit.
#[derive(Clone, Debug, Default)]
pub struct Bucket {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    rate: AtomicU64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Bytes that may still pass without waiting; negative is debt.
    tokens: f64,
    at: Option<Instant>,
}

impl Bucket {
    pub fn new(limit: Option<Rate>) -> Bucket {
        let b = Bucket::default();
        b.set(limit);
        b
    }

    /// Changes the rate (a reload); what was already charged stays charged.
    pub fn set(&self, limit: Option<Rate>) {
        self.inner
            .rate
            .store(limit.map_or(0, Rate::bytes_per_sec), Ordering::Relaxed);
    }

    pub fn limit(&self) -> Option<Rate> {
        Rate::from_bytes_per_sec(self.inner.rate.load(Ordering::Relaxed))
    }

    /// Charges `bytes` at `now` and says how long the caller must wait to stay within the rate.
    fn charge(&self, bytes: u64, now: Instant) -> Duration {
        let rate = self.inner.rate.load(Ordering::Relaxed);
        if rate == 0 {
            return Duration::ZERO;
        }
        let rate = rate as f64;
        // A quarter of a second's worth may pass at once: smooth enough to hold the rate
        // within a few percent over seconds, large enough not to sleep for every small write.
        let burst = (rate / 4.0).max(64.0 * 1024.0);
        let mut s = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed =
            s.at.map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        s.tokens = (s.tokens + elapsed.as_secs_f64() * rate).min(burst);
        if s.at.is_none() {
            s.tokens = burst;
        }
        s.at = Some(now);
        s.tokens -= bytes as f64;
        if s.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-s.tokens / rate)
        }
    }
}

/// Charges `bytes` to every bucket and sleeps (blocking) until the slowest allows them.
/// Returns false if `cancel` fired while it waited.
pub fn pace(buckets: &[&Bucket], bytes: u64, cancel: &CancellationToken) -> bool {
    let now = Instant::now();
    let wait = buckets
        .iter()
        .map(|b| b.charge(bytes, now))
        .max()
        .unwrap_or_default();
    let until = now + wait;
    loop {
        if cancel.is_cancelled() {
            return false;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(SLICE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(n: u64) -> Option<Rate> {
        Rate::from_bytes_per_sec(n)
    }

    #[test]
    fn no_limit_never_waits() {
        let b = Bucket::new(None);
        assert_eq!(b.charge(u64::MAX / 2, Instant::now()), Duration::ZERO);
    }

    #[test]
    fn debt_is_paid_at_the_rate() {
        let b = Bucket::new(rate(1 << 20));
        let t0 = Instant::now();
        // The first quarter second passes at once, the rest is debt.
        assert_eq!(b.charge(1 << 18, t0), Duration::ZERO);
        let wait = b.charge(5 << 20, t0);
        assert!((wait.as_secs_f64() - 5.0).abs() < 0.01, "{wait:?}");
        // Paid off after the wait: the next charge waits only for itself.
        let later = t0 + wait;
        let next = b.charge(1 << 20, later);
        assert!((next.as_secs_f64() - 1.0).abs() < 0.01, "{next:?}");
    }

    #[test]
    fn the_slower_bucket_sets_the_pace_and_a_reload_changes_it() {
        let global = Bucket::new(rate(4 << 20));
        let own = Bucket::new(rate(1 << 20));
        let t0 = Instant::now();
        let waits: Vec<_> = [&global, &own]
            .iter()
            .map(|b| b.charge(8 << 20, t0))
            .collect();
        assert!(waits[1] > waits[0] * 3, "{waits:?}");
        global.set(None);
        assert_eq!(global.charge(1 << 30, t0), Duration::ZERO);
        assert_eq!(global.limit(), None);
    }

    #[test]
    fn a_cancelled_wait_returns_at_once() {
        let b = Bucket::new(rate(1024));
        let cancel = CancellationToken::new();
        cancel.cancel();
        let t0 = Instant::now();
        assert!(!pace(&[&b], 1 << 20, &cancel));
        assert!(t0.elapsed() < Duration::from_millis(50));
    }

    #[test]
    fn pace_holds_the_rate_over_many_small_writes() {
        let b = Bucket::new(rate(4 << 20));
        let cancel = CancellationToken::new();
        let t0 = Instant::now();
        // 2 MiB beyond the burst at 4 MiB/s: about half a second.
        for _ in 0..((2 << 20) + (1 << 20)) / 65536 {
            assert!(pace(&[&b], 65536, &cancel));
        }
        // At least the debt's time; a loaded machine may only make it longer.
        let took = t0.elapsed().as_secs_f64();
        assert!(took >= 0.45, "{took}");
    }
}
