//! Recovery objectives per source (`recovery objectives`): the RPO achieved (age of the newest
//! snapshot, and the worst gap over the last [`GAP_WINDOW`]) against the source's RPO, the RTO
//! estimated for its newest snapshot at the measured restore throughput against its RTO, and
//! its last drill. A snapshot counts when its file is in the repository and reads; a partial
//! one (files skipped) counts too: it restores what it holds. Blocking: opens repositories.

use super::drill::of_source;
use super::drills::Drills;
use super::throughput::Throughput;
use crate::repo::registry::Registry;
use crate::repo::snapshot::SnapshotHeader;
use backupd_common::ids::SnapshotId;
use backupd_common::protocol::{DrillSummary, Objectives, SourceInfo, SourceObjectives};
use std::collections::BTreeMap;
use std::time::Duration;

/// The worst RPO gap is looked for over this long, up to now.
pub const GAP_WINDOW: Duration = Duration::from_secs(30 * 86_400);

/// The oldest the newest snapshot was at any moment of the `window` before `now`: the gap
/// before each snapshot taken in the window (from the one before it, which may be older than
/// the window) and the time since the newest. `None` without any snapshot. `times` in any
/// order; ns since the epoch.
pub fn worst_gap(times: &[i64], now: i64, window: Duration) -> Option<i64> {
    let mut sorted: Vec<i64> = times.iter().copied().filter(|t| *t <= now).collect();
    sorted.sort_unstable();
    let last = *sorted.last()?;
    let start = now.saturating_sub(i64::try_from(window.as_nanos()).unwrap_or(i64::MAX));
    let between = sorted
        .windows(2)
        .filter(|w| w[1] >= start)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or(0);
    Some(between.max(now - last))
}

fn ms(ns: i64) -> u64 {
    (ns.max(0) / 1_000_000) as u64
}

/// One source's objectives from its snapshots' headers (any order).
pub fn assess(
    info: &SourceInfo,
    snapshots: &[(SnapshotId, SnapshotHeader)],
    throughput: &Throughput,
    last_drill: Option<DrillSummary>,
    now: i64,
) -> SourceObjectives {
    let policy = &info.spec.policy;
    let rpo = policy.rpo_for(info.spec.watch);
    let rto = policy.rto_or_default();
    let times: Vec<i64> = snapshots.iter().map(|(_, h)| h.time_ns).collect();
    let newest = snapshots.iter().max_by_key(|(_, h)| h.time_ns);
    let age = newest.map(|(_, h)| now.saturating_sub(h.time_ns));
    let worst = worst_gap(&times, now, GAP_WINDOW);
    let estimate = newest.map(|(_, h)| throughput.estimate(h.stats.bytes_total, h.stats.files));
    SourceObjectives {
        name: info.spec.name.clone(),
        repo: info.spec.repo.clone(),
        last_snapshot: newest.map(|(id, _)| id.to_hex()),
        last_snapshot_ns: newest.map(|(_, h)| h.time_ns),
        rpo_ms: age.map(ms),
        worst_gap_ms: worst.map(ms),
        rpo_target_ms: rpo.as_millis() as u64,
        rpo_met: age.is_some_and(|a| a <= rpo.as_nanos() as i64),
        worst_gap_met: worst.is_some_and(|w| w <= rpo.as_nanos() as i64),
        snapshot_files: newest.map(|(_, h)| h.stats.files),
        snapshot_bytes: newest.map(|(_, h)| h.stats.bytes_total),
        rto_estimate_ms: estimate.map(|e| e.as_millis() as u64),
        rto_target_ms: rto.as_millis() as u64,
        rto_met: estimate.is_some_and(|e| e <= rto),
        last_drill,
        note: None,
    }
}

/// Every source's objectives (blocking).
pub fn objectives(
    sources: &[SourceInfo],
    repos: &Registry,
    drills: &Drills,
    throughput: Throughput,
    now: i64,
) -> Objectives {
    let mut headers: BTreeMap<Option<String>, Result<Vec<_>, String>> = BTreeMap::new();
    let mut out = Vec::new();
    for info in sources {
        let repo = info.spec.repo.clone();
        let listed = headers.entry(repo.clone()).or_insert_with(|| {
            repos
                .open(repo.as_deref())
                .map_err(|e| e.to_string())
                .and_then(|(_, r)| r.snapshot_headers().map_err(|e| e.to_string()))
        });
        let last = drills.last(&info.spec.name);
        let source = match listed {
            Ok(all) => {
                let own: Vec<_> = all
                    .iter()
                    .filter(|(_, h)| of_source(h, &info.spec.path))
                    .cloned()
                    .collect();
                assess(info, &own, &throughput, last, now)
            }
            Err(e) => SourceObjectives {
                note: Some(format!("not measured: the repository did not open ({e})")),
                ..assess(info, &[], &throughput, last, now)
            },
        };
        out.push(source);
    }
    Objectives {
        time_ns: now,
        throughput: throughput.info(),
        sources: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3600 * 1_000_000_000;

    #[test]
    fn the_worst_gap_counts_the_gap_before_each_snapshot_in_the_window_and_up_to_now() {
        let day = Duration::from_secs(86_400);
        let now = 1000 * H;
        // Hourly, with one 5 h hole, newest 2 h ago.
        let times = [
            now - 10 * H,
            now - 9 * H,
            now - 4 * H,
            now - 3 * H,
            now - 2 * H,
        ];
        assert_eq!(worst_gap(&times, now, day), Some(5 * H));
        // Up to now counts: the newest is 7 h old.
        assert_eq!(
            worst_gap(&[now - 8 * H, now - 7 * H], now, day),
            Some(7 * H)
        );
        // The gap before the first snapshot in the window reaches back before it.
        assert_eq!(
            worst_gap(&[now - 40 * H, now - 20 * H, now - H], now, day),
            Some(20 * H)
        );
        // Gaps wholly before the window do not count.
        assert_eq!(
            worst_gap(
                &[now - 90 * H, now - 50 * H, now - 30 * H, now - H],
                now,
                day
            ),
            Some(29 * H)
        );
        // Order does not matter; no snapshot, no gap.
        assert_eq!(
            worst_gap(&[now - 2 * H, now - 9 * H], now, day),
            Some(7 * H)
        );
        assert_eq!(worst_gap(&[], now, day), None);
    }
}
