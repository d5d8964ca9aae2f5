//! The `--json` interface: one view type per output, converted from the protocol types.
//!
//! The protocol types are the bincode wire and keep their serde derives; what users and scripts
//! read is defined here instead, documented in `docs/JSON.md` and checked against the schemas in
//! `docs/json/`. Conventions: paths are strings written by [`path::escape`], durations are
//! integers named `*_ms`, times are RFC 3339 strings with an `*_ns` integer beside them where
//! precision matters, enums are lowercase strings, and a job's kind is `"kind"` with its
//! arguments as fields beside it.

pub mod analytics;
pub mod browse;
pub mod file_crypt;
pub mod history;
pub mod job;
pub mod path;
pub mod perf;
pub mod recovery;
pub mod recovery_plan;
pub mod replicate;
pub mod repo;
pub mod repo_keys;
pub mod result;
pub mod security_alerts;
pub mod security_roles;
pub mod source;
pub mod sync;
pub mod system;

use std::time::{Duration, UNIX_EPOCH};

/// A daemon timestamp (ns since the epoch) as RFC 3339 in UTC with milliseconds.
pub fn time(ns: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// A duration in whole milliseconds (saturating; no duration here comes near that).
pub fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `v` rounded to `digits` decimals: the models' floats carry noise no reader wants.
pub fn round(v: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (v * scale).round() / scale
}

/// A path from the wire, written by the one rule of [`path`].
pub fn path(bytes: &[u8]) -> String {
    path::escape(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(time(1_700_000_000_123_456_789), "2023-11-14T22:13:20.123Z");
        assert_eq!(ms(Duration::from_micros(2_500_900)), 2500);
    }
}
