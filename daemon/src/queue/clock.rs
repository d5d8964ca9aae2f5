//! The queue's time source. Job records hold wall times (ns since the epoch); tests swap in a
//! clock that moves with tokio's paused clock.

use crate::repo::now_ns;
use std::sync::Arc;

/// Where the queue reads the time (ns since the epoch): the wall clock, or in tests one that
/// moves with tokio's paused clock so retry delays and aging can be tested without waiting.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> i64 + Send + Sync>);

impl Clock {
    pub fn wall() -> Self {
        Self(Arc::new(now_ns))
    }

    /// The wall time now, then advancing with `tokio::time` (paused or not).
    pub fn tokio() -> Self {
        let (wall, at) = (now_ns(), tokio::time::Instant::now());
        Self(Arc::new(move || {
            wall.saturating_add(at.elapsed().as_nanos().min(i64::MAX as u128) as i64)
        }))
    }

    pub fn now(&self) -> i64 {
        (self.0)()
    }
}
