//! What a scrape reads from the services at the moment it is made: plain data, so that the
//! encoder ([`super::encode`]) is a pure function of it and the events observed so far.

use super::process::{self, ProcessStats};
use super::Handles;
use crate::perf::counters::{self, Totals};
use backupd_common::protocol::{Bottleneck, HealthScore};
use std::collections::BTreeMap;

/// One source's figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceFigures {
    pub name: String,
    /// When its newest snapshot was made (ns since the epoch); `None` before the first.
    pub last_snapshot_ns: Option<i64>,
    /// The recovery point objective its policy sets, as `system health` reports it.
    pub rpo_ms: Option<u64>,
}

/// Everything a scrape reports that is read rather than counted from events.
#[derive(Clone, Debug)]
pub struct Scrape {
    pub now_ns: i64,
    pub totals: Totals,
    /// Jobs queued or waiting to retry, and jobs running.
    pub waiting: u32,
    pub running: u32,
    pub dead_letters: u64,
    pub sources: Vec<SourceFigures>,
    /// Bottlenecks open now.
    pub bottlenecks: Vec<Bottleneck>,
    pub health: HealthScore,
    /// `None` where `/proc` cannot be read.
    pub process: Option<ProcessStats>,
}

/// Reads the services. Blocking (the `/proc` reads); the rest is memory.
pub fn gather(h: &Handles) -> Scrape {
    let settings = h.settings.get();
    let assessment = crate::perf::health::assess(&h.perf, &h.timers, &h.queue, &settings.config);
    let rpo: BTreeMap<&str, u64> = assessment
        .schedule
        .sources
        .iter()
        .map(|s| (s.name.as_str(), s.rpo_ms))
        .collect();
    let sources = h
        .sources
        .list()
        .into_iter()
        .map(|s| SourceFigures {
            rpo_ms: rpo.get(s.spec.name.as_str()).copied(),
            name: s.spec.name,
            last_snapshot_ns: s.last_snapshot_ns,
        })
        .collect();
    let (waiting, running) = h.queue.depth();
    Scrape {
        now_ns: chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX),
        totals: counters::totals(),
        waiting,
        running,
        dead_letters: assessment.dead_letters,
        sources,
        bottlenecks: assessment.bottlenecks,
        health: assessment.score,
        process: process::read(),
    }
}
