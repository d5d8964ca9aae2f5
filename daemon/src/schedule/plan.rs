//! The scheduler's rules, as pure functions of the configuration, the stored records and the
//! time: which timers exist and when each is due. Nothing here sleeps or submits.
//!
//! A timer fires at the first slot of its schedule after its last run, plus its jitter. When
//! the daemon was down (or the machine asleep) over several slots, that first slot is long
//! past: the timer fires once, and its next slot is counted from that run (systemd's
//! `Persistent=true`), never once per missed slot.

use backupd_common::schedule::When;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// What a timer does when it fires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Task {
    /// A full scan of a scheduled source.
    Backup { source: String },
    /// Apply a source's retention.
    Retention { source: String },
    /// Prune (and compact the index of) a repository.
    Prune { repo: String },
    /// Check a repository's structure.
    Check { repo: String },
    /// Read the next subset of a repository's packs.
    ReadData { repo: String },
    /// Copy into a replica what it lacks of its source.
    Replicate { to: String },
    /// A recovery drill of a source's newest snapshot.
    Drill { source: String },
}

impl Task {
    /// The key of its record: stable across restarts, one per task.
    pub fn key(&self) -> String {
        match self {
            Self::Backup { source } => format!("source/{source}/backup"),
            Self::Retention { source } => format!("source/{source}/retention"),
            Self::Prune { repo } => format!("repo/{repo}/prune"),
            Self::Check { repo } => format!("repo/{repo}/check"),
            Self::ReadData { repo } => format!("repo/{repo}/read-data"),
            Self::Replicate { to } => format!("repo/{to}/replicate"),
            Self::Drill { source } => format!("source/{source}/drill"),
        }
    }

    /// A timer that never ran fires at once (a new source's first backup) rather than at its
    /// first slot after it was created (retention: `retention_every` after the source was
    /// added or its policy first set, which leaves time to read `source show`'s plan).
    pub fn runs_at_once(&self) -> bool {
        matches!(self, Self::Backup { .. })
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Backup { source } => format!("scheduled backup of source {source}"),
            Self::Retention { source } => format!("retention of source {source}"),
            Self::Prune { repo } => format!("scheduled prune of repository {repo}"),
            Self::Check { repo } => format!("scheduled check of repository {repo}"),
            Self::ReadData { repo } => format!("scheduled data verification of repository {repo}"),
            Self::Replicate { to } => format!("scheduled replication into {to}"),
            Self::Drill { source } => format!("scheduled recovery drill of source {source}"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Timer {
    pub task: Task,
    pub when: When,
    pub jitter: Duration,
}

/// How much later than `slot_ns` the run starts: fixed by host, timer and slot (so a restart
/// does not move it, and hosts sharing a schedule spread out), below `jitter`.
pub fn jitter_ns(host: &str, key: &str, slot_ns: i64, jitter: Duration) -> i64 {
    let span = u64::try_from(jitter.as_nanos()).unwrap_or(u64::MAX);
    if span == 0 {
        return 0;
    }
    let mut h = Sha256::new();
    h.update(host.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    h.update(slot_ns.to_be_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % span) as i64
}

/// When `timer` is due: its first slot after `last_run_ns` (or after `created_ns` when it
/// never ran and does not run at once), plus jitter. `None`: never again.
pub fn due_ns(timer: &Timer, host: &str, last_run_ns: Option<i64>, created_ns: i64) -> Option<i64> {
    let from = match last_run_ns {
        Some(t) => t,
        None if timer.task.runs_at_once() => return Some(created_ns),
        None => created_ns,
    };
    let slot = timer.when.next_after(from)?;
    Some(slot.saturating_add(jitter_ns(host, &timer.task.key(), slot, timer.jitter)))
}

/// The subset a read-data run reads after `position` runs: 1-based, cycling through `count`.
pub fn subset(position: u64, count: u32) -> (u32, u32) {
    let count = count.max(1);
    ((position % u64::from(count)) as u32 + 1, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn timer(task: Task, when: &str) -> Timer {
        Timer {
            task,
            when: When::parse(when).expect("valid"),
            jitter: Duration::ZERO,
        }
    }

    #[test]
    fn a_missed_slot_fires_once_and_the_next_counts_from_that_run() {
        let t = timer(Task::Check { repo: "r".into() }, "every 1h");
        // Last run 10 h ago: due (long past), once.
        let now = 100 * 3600 * S;
        let last = now - 10 * 3600 * S;
        let due = due_ns(&t, "h", Some(last), 0).expect("due");
        assert!(due <= now);
        // Having run now, the next run is an hour later, not the nine missed slots.
        assert_eq!(due_ns(&t, "h", Some(now), 0), Some(now + 3600 * S));
    }

    #[test]
    fn a_new_source_runs_at_once_a_new_maintenance_timer_waits_for_its_slot() {
        let created = 50 * S;
        let backup = timer(Task::Backup { source: "s".into() }, "every 1h");
        assert_eq!(due_ns(&backup, "h", None, created), Some(created));
        let prune = timer(Task::Prune { repo: "r".into() }, "every 1h");
        assert_eq!(due_ns(&prune, "h", None, created), Some(created + 3600 * S));
    }

    #[test]
    fn jitter_is_below_its_bound_stable_and_differs_by_host() {
        let j = Duration::from_secs(600);
        let a = jitter_ns("host-a", "repo/r/prune", 1_000 * S, j);
        assert_eq!(a, jitter_ns("host-a", "repo/r/prune", 1_000 * S, j));
        assert!((0..600 * S).contains(&a));
        let spread: std::collections::BTreeSet<i64> = (0..20)
            .map(|i| jitter_ns(&format!("host-{i}"), "repo/r/prune", 1_000 * S, j))
            .collect();
        assert!(spread.len() > 15, "hosts spread out: {spread:?}");
        assert_eq!(jitter_ns("h", "k", 0, Duration::ZERO), 0);
    }

    #[test]
    fn subsets_cycle_through_every_part() {
        let seen: Vec<(u32, u32)> = (0..22).map(|p| subset(p, 20)).collect();
        assert_eq!(seen[0], (1, 20));
        assert_eq!(seen[19], (20, 20));
        assert_eq!(seen[20], (1, 20));
    }
}
