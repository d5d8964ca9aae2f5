//! Per-uid submission rate: a token bucket per caller. A submission over the rate is refused
//! with the time until a token is back; nothing is queued for it, so nothing is lost.

use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: HashMap<u32, Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// Takes a token for `uid`, or says how long until one is available. `rate` per second,
    /// `burst` tokens at most.
    pub fn take(&mut self, uid: u32, now: Instant, rate: f64, burst: u32) -> Result<(), Duration> {
        let burst = f64::from(burst.max(1));
        let b = self.buckets.entry(uid).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate_then_refill() {
        let mut l = RateLimiter::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.take(1000, t0, 2.0, 3).is_ok());
        }
        let wait = l.take(1000, t0, 2.0, 3).expect_err("over the burst");
        assert_eq!(wait, Duration::from_millis(500));
        // Another uid has its own bucket.
        assert!(l.take(1001, t0, 2.0, 3).is_ok());
        // Half a second later one token is back, and only one.
        let t1 = t0 + Duration::from_millis(500);
        assert!(l.take(1000, t1, 2.0, 3).is_ok());
        assert!(l.take(1000, t1, 2.0, 3).is_err());
    }
}
