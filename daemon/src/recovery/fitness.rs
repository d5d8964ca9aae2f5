//! How fit a snapshot is to recover from: a score 0–100, the weighted sum of four factors, each
//! with the facts it rests on. Pure: the caller gathers the facts ([`Facts`]), so the rules are
//! tested without a daemon. docs/OPERATIONS.md, "Fitness", states the same rules.
//!
//! | factor | weight | 100 when | lowered by |
//! |---|---|---|---|
//! | integrity | 35 | a check of the repository succeeded after the snapshot was taken | no check since (60), the last check failed (0) |
//! | completeness | 25 | nothing skipped, nothing changed while read, the source's path held | 10 per skipped path (max 60), 5 per file changed while read (max 30), the source's path missing (−50) |
//! | recency | 25 | taken within the RPO target (the source's) before the requested time | linear to 0 at 7 days older than that |
//! | accessibility | 15 | repository opens, a replica holds it, restore fits the RTO target | unreachable (−60), no replica (−20), estimated restore longer than the RTO (−20) |

use crate::repo::backend::human_bytes as format_bytes;
use backupd_common::protocol::{FitnessFactor, FitnessReport, HistoryEntry, JobState};
use std::time::Duration;

pub const WEIGHTS: [(&str, u32); 4] = [
    ("integrity", 35),
    ("completeness", 25),
    ("recency", 25),
    ("accessibility", 15),
];

/// Below this a snapshot is not "fit": point-in-time plans pass it over for an older one.
pub const FIT: u32 = 50;

/// What is known about one snapshot and its repository.
pub struct Facts<'a> {
    pub repo: &'a str,
    pub snapshot: String,
    pub time_ns: i64,
    pub source: Option<String>,
    /// The source's directory, when the snapshot belongs to one.
    pub source_path: Option<&'a [u8]>,
    pub paths: &'a [Vec<u8>],
    pub skipped: u64,
    pub changed_during_read: u64,
    pub bytes: u64,
    /// `Err(why)` when the repository cannot be opened now.
    pub reachable: &'a Result<(), String>,
    /// Check jobs of the repository, newest first.
    pub checks: &'a [HistoryEntry],
    /// Replicas holding this snapshot.
    pub replicas: &'a [String],
    /// Bytes per second a restore reaches here, and whether that was measured.
    pub throughput: (u64, bool),
    /// The requested point in time.
    pub at_ns: i64,
    pub rpo: Duration,
    pub rto: Duration,
}

pub fn score(f: &Facts<'_>) -> FitnessReport {
    let factors = vec![integrity(f), completeness(f), recency(f), accessibility(f)];
    let score = factors.iter().map(|x| x.score * x.weight).sum::<u32>() / 100;
    FitnessReport {
        snapshot: f.snapshot.clone(),
        time_ns: f.time_ns,
        repo: f.repo.to_owned(),
        source: f.source.clone(),
        score,
        factors,
    }
}

fn factor(name: &'static str, score: i64, evidence: Vec<String>) -> FitnessFactor {
    let weight = WEIGHTS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(0, |(_, w)| *w);
    FitnessFactor {
        name: name.to_owned(),
        score: score.clamp(0, 100) as u32,
        weight,
        evidence,
    }
}

fn integrity(f: &Facts<'_>) -> FitnessFactor {
    let last = f.checks.first();
    let last_ok = f.checks.iter().find(|c| c.outcome == JobState::Succeeded);
    match (last, last_ok) {
        (Some(c), _) if c.outcome != JobState::Succeeded => factor(
            "integrity",
            0,
            vec![format!(
                "the last check of {} (job {}) failed: {}",
                f.repo,
                c.id,
                c.error.as_deref().unwrap_or("no reason recorded")
            )],
        ),
        (_, Some(c)) if c.finished_ns >= f.time_ns => factor(
            "integrity",
            100,
            vec![format!(
                "checked clean after the snapshot was taken (job {}, {} ago)",
                c.id,
                age(now_ns() - c.finished_ns)
            )],
        ),
        (_, Some(c)) => factor(
            "integrity",
            60,
            vec![format!(
                "the last clean check (job {}) ran before the snapshot; none since",
                c.id
            )],
        ),
        (None, None) | (Some(_), None) => factor(
            "integrity",
            60,
            vec![format!("{} has never been checked by this daemon", f.repo)],
        ),
    }
}

fn completeness(f: &Facts<'_>) -> FitnessFactor {
    let mut score = 100i64;
    let mut evidence = Vec::new();
    if f.skipped > 0 {
        score -= (10 * f.skipped as i64).min(60);
        evidence.push(format!(
            "{} path(s) could not be read and are missing",
            f.skipped
        ));
    }
    if f.changed_during_read > 0 {
        score -= (5 * f.changed_during_read as i64).min(30);
        evidence.push(format!(
            "{} file(s) changed while read (their content may mix old and new)",
            f.changed_during_read
        ));
    }
    if let Some(src) = f.source_path {
        let held = f
            .paths
            .iter()
            .any(|p| src.starts_with(p) || p.starts_with(src));
        if !held {
            score -= 50;
            evidence.push("the source's directory is not in the snapshot".into());
        }
    }
    if evidence.is_empty() {
        evidence.push("complete: nothing skipped, nothing changed while read".into());
    }
    factor("completeness", score, evidence)
}

fn recency(f: &Facts<'_>) -> FitnessFactor {
    let behind = Duration::from_nanos(f.at_ns.saturating_sub(f.time_ns).max(0) as u64);
    let week = Duration::from_secs(7 * 24 * 3600);
    let score = if behind <= f.rpo {
        100
    } else {
        let over = (behind - f.rpo).as_secs_f64() / week.as_secs_f64();
        (100.0 * (1.0 - over)).round() as i64
    };
    factor(
        "recency",
        score,
        vec![format!(
            "taken {} before the requested time (RPO target {})",
            age(behind.as_nanos() as i64),
            age(f.rpo.as_nanos() as i64)
        )],
    )
}

fn accessibility(f: &Facts<'_>) -> FitnessFactor {
    let mut score = 100i64;
    let mut evidence = Vec::new();
    match f.reachable {
        Ok(()) => evidence.push(format!("{} opens and its key is present", f.repo)),
        Err(why) => {
            score -= 60;
            evidence.push(format!("{} cannot be read now: {why}", f.repo));
        }
    }
    if f.replicas.is_empty() {
        score -= 20;
        evidence.push("no replica holds it".into());
    } else {
        evidence.push(format!("also held by replica {}", f.replicas.join(", ")));
    }
    let (rate, measured) = f.throughput;
    let estimate = Duration::from_secs(f.bytes / rate.max(1));
    if estimate > f.rto {
        score -= 20;
    }
    evidence.push(format!(
        "restoring {} takes about {} at {}/s ({}; RTO target {})",
        format_bytes(f.bytes),
        age(estimate.as_nanos() as i64),
        format_bytes(rate),
        if measured {
            "measured here"
        } else {
            "assumed, nothing measured yet"
        },
        age(f.rto.as_nanos() as i64)
    ));
    factor("accessibility", score, evidence)
}

/// A duration to the second (or minute, past an hour), as people read it.
fn age(ns: i64) -> String {
    let secs = (ns.max(0) as u64) / 1_000_000_000;
    let rounded = if secs >= 3600 { secs / 60 * 60 } else { secs };
    humantime::format_duration(Duration::from_secs(rounded)).to_string()
}

fn now_ns() -> i64 {
    crate::repo::now_ns()
}

/// Why `a` (chosen) beat `b`, factor by factor.
pub fn why_better(a: &FitnessReport, b: &FitnessReport) -> String {
    let mut lost: Vec<String> = a
        .factors
        .iter()
        .zip(&b.factors)
        .filter(|(x, y)| x.score > y.score)
        .map(|(x, y)| {
            format!(
                "{} {} vs {} ({})",
                x.name,
                x.score,
                y.score,
                y.evidence.first().cloned().unwrap_or_default()
            )
        })
        .collect();
    if lost.is_empty() {
        lost.push("equal factors; the newer snapshot wins a tie".into());
    }
    format!(
        "{} scores {} and {} scores {}: the runner-up is behind on {}",
        short(&a.snapshot),
        a.score,
        short(&b.snapshot),
        b.score,
        lost.join("; ")
    )
}

pub fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000_000_000;

    fn check(id: u64, ok: bool, finished_ns: i64) -> HistoryEntry {
        HistoryEntry {
            id,
            kind: "check".into(),
            repo: Some("main".into()),
            source: None,
            outcome: if ok {
                JobState::Succeeded
            } else {
                JobState::DeadLetter
            },
            error_class: None,
            error: (!ok).then(|| "pack 1234 damaged".into()),
            attempts: 1,
            submitted_ns: finished_ns,
            finished_ns,
            duration_ms: 1,
            files: 0,
            bytes_read: 0,
            bytes_added: 0,
            bytes_stored: 0,
            compression_ratio: None,
            snapshot: None,
        }
    }

    fn facts<'a>(
        checks: &'a [HistoryEntry],
        reachable: &'a Result<(), String>,
        replicas: &'a [String],
        paths: &'a [Vec<u8>],
    ) -> Facts<'a> {
        Facts {
            repo: "main",
            snapshot: "ab".repeat(32),
            time_ns: 100 * HOUR,
            source: Some("www".into()),
            source_path: Some(b"/srv/www"),
            paths,
            skipped: 0,
            changed_during_read: 0,
            bytes: 1 << 30,
            reachable,
            checks,
            replicas,
            throughput: (100 << 20, true),
            at_ns: 100 * HOUR,
            rpo: Duration::from_secs(3600),
            rto: Duration::from_secs(4 * 3600),
        }
    }

    #[test]
    fn a_checked_complete_recent_replicated_snapshot_scores_100() {
        let checks = [check(9, true, 101 * HOUR)];
        let ok = Ok(());
        let replicas = ["offsite".to_owned()];
        let paths = [b"/srv/www".to_vec()];
        let r = score(&facts(&checks, &ok, &replicas, &paths));
        assert_eq!(r.score, 100, "{r:?}");
        assert_eq!(r.factors.iter().map(|f| f.weight).sum::<u32>(), 100);
    }

    #[test]
    fn each_factor_lowers_the_score_by_its_rule() {
        let paths = [b"/srv/www".to_vec()];
        let ok = Ok(());
        let replicas = ["offsite".to_owned()];
        // A failed last check zeroes integrity: 100 - 35.
        let failed = [check(10, false, 102 * HOUR), check(9, true, 101 * HOUR)];
        let r = score(&facts(&failed, &ok, &replicas, &paths));
        assert_eq!(r.score, 65);
        assert!(r.factors[0].evidence[0].contains("pack 1234 damaged"));
        // Never checked: integrity 60.
        let r = score(&facts(&[], &ok, &replicas, &paths));
        assert_eq!(r.factors[0].score, 60);
        // Two skipped paths and one changed file: completeness 100 - 20 - 5.
        let mut f = facts(&[], &ok, &replicas, &paths);
        f.skipped = 2;
        f.changed_during_read = 1;
        assert_eq!(score(&f).factors[1].score, 75);
        // Source path missing.
        let other = [b"/etc".to_vec()];
        assert_eq!(
            score(&facts(&[], &ok, &replicas, &other)).factors[1].score,
            50
        );
        // 1 h + 3.5 days behind: recency 50.
        let mut f = facts(&[], &ok, &replicas, &paths);
        f.at_ns = f.time_ns + HOUR + 84 * HOUR;
        assert_eq!(score(&f).factors[2].score, 50);
        // Unreachable, no replica, too slow: accessibility 0.
        let down = Err("gone".to_owned());
        let mut f = facts(&[], &down, &[], &paths);
        f.throughput = (1000, false);
        let a = &score(&f).factors[3];
        assert_eq!(a.score, 0, "{a:?}");
        assert!(a.evidence.iter().any(|e| e.contains("assumed")));
    }

    #[test]
    fn the_reason_names_the_factors_the_runner_up_lost_on() {
        let paths = [b"/srv/www".to_vec()];
        let ok = Ok(());
        let checks = [check(9, true, 101 * HOUR)];
        let a = score(&facts(&checks, &ok, &[], &paths));
        let mut f = facts(&checks, &ok, &[], &paths);
        f.skipped = 3;
        let b = score(&f);
        let why = why_better(&a, &b);
        assert!(why.contains("completeness 100 vs 70"), "{why}");
        assert!(!why.contains("recency"), "{why}");
    }
}
