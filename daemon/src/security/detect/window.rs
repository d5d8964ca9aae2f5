//! Sliding windows per uid, as pure data: what was seen, and whether a pattern's threshold is
//! reached. Memory is bounded twice: a window keeps at most its threshold's worth of
//! timestamps, and at most `max_tracked_uids` uids are followed (the one seen least recently is
//! forgotten first).

use backupd_common::config::detect::DetectConfig;
use backupd_common::protocol::Pattern;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// Something a uid did that a pattern counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// A denied or failed request, or a failed handshake.
    Failure,
    /// A restore that wrote more than `mass_export_files` files.
    LargeRestore,
    KeyExport,
    /// Any request from a uid that is not an admin.
    Request,
}

/// A threshold reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detection {
    pub uid: u32,
    pub pattern: Pattern,
    pub count: u64,
    pub threshold: u64,
    pub window: Duration,
    /// The latest things counted, oldest first (request names), for the alert's evidence.
    pub recent: Vec<String>,
}

/// How many of a uid's latest counted actions the evidence names.
const RECENT: usize = 5;

#[derive(Default)]
struct Uid {
    last_seen: u64,
    failures: VecDeque<i64>,
    restores: VecDeque<i64>,
    key_exports: VecDeque<i64>,
    requests: VecDeque<i64>,
    recent: VecDeque<String>,
}

#[derive(Default)]
pub struct Windows {
    uids: HashMap<u32, Uid>,
    /// Increases per observation: "seen least recently" without reading a clock.
    tick: u64,
}

impl Windows {
    pub fn tracked(&self) -> usize {
        self.uids.len()
    }

    /// Records `signal` from `uid` at `now_ns` (`what`: the request's name) and returns the
    /// detection when it brings a pattern to its threshold. The pattern's window is emptied
    /// then, so the next alert needs a fresh run of the same size.
    pub fn observe(
        &mut self,
        cfg: &DetectConfig,
        uid: u32,
        signal: Signal,
        now_ns: i64,
        what: &str,
    ) -> Option<Detection> {
        self.tick += 1;
        if !self.uids.contains_key(&uid) && self.uids.len() >= cfg.max_tracked_uids.max(1) {
            self.forget_least_recent();
        }
        let state = self.uids.entry(uid).or_default();
        state.last_seen = self.tick;
        if signal != Signal::Request {
            state.recent.push_back(what.to_owned());
            if state.recent.len() > RECENT {
                state.recent.pop_front();
            }
        }
        let (pattern, window, needed, reported, events) = match signal {
            Signal::Failure => (
                Pattern::BruteForce,
                cfg.brute_force_window,
                cfg.brute_force_failures,
                cfg.brute_force_failures,
                &mut state.failures,
            ),
            Signal::LargeRestore => (
                Pattern::MassExport,
                cfg.mass_export_window,
                cfg.mass_export_restores,
                cfg.mass_export_restores,
                &mut state.restores,
            ),
            Signal::KeyExport => (
                Pattern::MassExport,
                cfg.mass_export_window,
                cfg.mass_export_key_exports,
                cfg.mass_export_key_exports,
                &mut state.key_exports,
            ),
            // "More than N": the alert comes with request N + 1.
            Signal::Request => (
                Pattern::UnusualAccess,
                cfg.unusual_window,
                cfg.unusual_requests.saturating_add(1),
                cfg.unusual_requests,
                &mut state.requests,
            ),
        };
        let horizon = now_ns.saturating_sub(window.as_nanos().min(i64::MAX as u128) as i64);
        events.push_back(now_ns);
        while events.front().is_some_and(|t| *t <= horizon) {
            events.pop_front();
        }
        let needed = needed.max(1) as usize;
        while events.len() > needed {
            events.pop_front();
        }
        if events.len() < needed {
            return None;
        }
        let count = events.len() as u64;
        events.clear();
        Some(Detection {
            uid,
            pattern,
            count,
            threshold: u64::from(reported),
            window,
            recent: state.recent.iter().cloned().collect(),
        })
    }

    fn forget_least_recent(&mut self) {
        if let Some(uid) = self
            .uids
            .iter()
            .min_by_key(|(_, s)| s.last_seen)
            .map(|(uid, _)| *uid)
        {
            self.uids.remove(&uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000_000;

    #[test]
    fn brute_force_fires_at_the_fifth_failure_within_ten_minutes() {
        let cfg = DetectConfig::default();
        let mut w = Windows::default();
        for i in 0..4 {
            assert!(w
                .observe(&cfg, 7, Signal::Failure, i * MIN, "repo init")
                .is_none());
        }
        let d = w.observe(&cfg, 7, Signal::Failure, 4 * MIN, "repo init");
        let d = d.expect("fifth failure");
        assert_eq!(
            (d.pattern, d.count, d.threshold),
            (Pattern::BruteForce, 5, 5)
        );
        assert_eq!(d.recent.len(), 5);
        // The window was emptied: the next failure starts a new count.
        assert!(w.observe(&cfg, 7, Signal::Failure, 5 * MIN, "x").is_none());
    }

    #[test]
    fn failures_spread_wider_than_the_window_never_fire() {
        let cfg = DetectConfig::default();
        let mut w = Windows::default();
        for i in 0..50 {
            assert!(w
                .observe(&cfg, 7, Signal::Failure, i * 3 * MIN, "x")
                .is_none());
        }
    }

    #[test]
    fn unusual_access_is_more_than_the_threshold() {
        let cfg = DetectConfig::default();
        let mut w = Windows::default();
        for i in 0..100 {
            assert!(w.observe(&cfg, 9, Signal::Request, i, "x").is_none());
        }
        let d = w
            .observe(&cfg, 9, Signal::Request, 100, "x")
            .expect("101st");
        assert_eq!(
            (d.pattern, d.count, d.threshold),
            (Pattern::UnusualAccess, 101, 100)
        );
    }

    #[test]
    fn one_key_export_is_a_mass_export_and_three_large_restores_are() {
        let cfg = DetectConfig::default();
        let mut w = Windows::default();
        let d = w.observe(&cfg, 3, Signal::KeyExport, 0, "repo key export");
        assert_eq!(d.map(|d| d.pattern), Some(Pattern::MassExport));
        assert!(w
            .observe(&cfg, 3, Signal::LargeRestore, 0, "restore")
            .is_none());
        assert!(w
            .observe(&cfg, 3, Signal::LargeRestore, MIN, "restore")
            .is_none());
        let d = w.observe(&cfg, 3, Signal::LargeRestore, 59 * MIN, "restore");
        assert_eq!(d.map(|d| d.count), Some(3));
    }

    #[test]
    fn a_flood_of_uids_stays_within_the_cap_and_keeps_the_active_one() {
        let cfg = DetectConfig {
            max_tracked_uids: 100,
            ..DetectConfig::default()
        };
        let mut w = Windows::default();
        for uid in 0..10_000u32 {
            w.observe(&cfg, 1_000_000, Signal::Failure, 0, "x");
            w.observe(&cfg, uid, Signal::Request, 0, "x");
            assert!(w.tracked() <= 100);
        }
        assert!(w.uids.contains_key(&1_000_000));
    }
}
