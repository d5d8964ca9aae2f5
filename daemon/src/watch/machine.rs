//! One source's scheduling rules as a pure state machine: [`Machine::on`] takes an event and the
//! current instant and says what to do; [`Machine::deadline`] says when to call it again. The
//! async shell ([`super::source`]) feeds it file system and queue events and carries out its
//! actions; nothing here sleeps, spawns or touches the queue, so the rules are tested under
//! tokio's paused clock.
//!
//! The rules: changes wait for a quiet period (`debounce`) but never longer than `max_delay`
//! after the first one; at start, after an overflow and every `rescan_every` a full scan is
//! queued instead (it covers every pending change); at most one backup is queued or running at
//! a time; a failed backup makes the next try wait, doubling per failure in a row.

use super::dirty::DirtySet;
use crate::engine::incremental::Change;
use backupd_common::protocol::JobId;
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::Instant;

/// Without inotify (limit reached, unavailable), scans run at least this often.
pub const FALLBACK_SCAN: Duration = Duration::from_secs(600);
/// After a backup of the source failed for good, the next try waits this long, doubling with
/// each further failure up to `MAX_AFTER_FAILURE`.
pub const AFTER_FAILURE: Duration = Duration::from_secs(60);
pub const MAX_AFTER_FAILURE: Duration = Duration::from_secs(3600);

/// A source's timers, from its spec.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub debounce: Duration,
    pub max_delay: Duration,
    pub rescan_every: Duration,
    /// Scan at start and periodically on its own. Off for a source that is backed up on a
    /// schedule and not watched: the scheduler asks for its scans ([`Event::Rescan`]).
    pub periodic: bool,
}

/// "Never" for a source without periodic scans (far enough, small enough for `Instant`).
const NEVER: Duration = Duration::from_secs(100 * 365 * 86_400);

#[derive(Debug)]
pub enum Event {
    /// A deadline passed (or nothing happened; the machine re-evaluates).
    Tick,
    /// Changed paths, and the wall time (ns) they were seen.
    Changed {
        changes: Vec<(PathBuf, Change)>,
        wall_ns: i64,
    },
    /// The watcher lost events (overflow, watch error): only a full scan is safe.
    Rescan,
    /// Watching stopped for good; periodic scans instead.
    WatchLost,
    /// The outcome of the last [`Action::Submit`]: the job queued, or `None` when it could not be.
    Queued(Option<JobId>),
    /// The backup in flight ended (at wall time `finished_ns`): its snapshot if it succeeded,
    /// else why not.
    Ended {
        outcome: Result<String, String>,
        finished_ns: i64,
    },
}

#[derive(Debug, PartialEq)]
pub enum Action {
    /// Queue a backup: a full scan when `changes` is `None`, else of these changes against
    /// `parent`. Answer with [`Event::Queued`].
    Submit {
        changes: Option<Vec<(PathBuf, Change)>>,
        parent: Option<String>,
    },
    /// A backup succeeded.
    Succeeded {
        snapshot: String,
        full: bool,
        /// Wall time (ns) of the first change it covers.
        first_change_ns: Option<i64>,
        finished_ns: i64,
    },
    /// A backup failed or could not be queued; the next one waits `retry_in`.
    Failed { why: String, retry_in: Duration },
}

/// The backup in flight and the batch of changes it covers.
#[derive(Debug)]
struct InFlight {
    /// `None` between the submit action and its [`Event::Queued`].
    job: Option<JobId>,
    full: bool,
    first_change_ns: Option<i64>,
}

#[derive(Debug)]
pub struct Machine {
    timing: Timing,
    watching: bool,
    dirty: DirtySet,
    /// First change of the pending batch: when (monotonic) and wall time (ns).
    first_change: Option<(Instant, i64)>,
    last_change: Option<Instant>,
    rescan: bool,
    next_scan: Instant,
    not_before: Option<Instant>,
    in_flight: Option<InFlight>,
    /// The last snapshot of the source, parent of the next incremental backup.
    parent: Option<String>,
    failures: u32,
}

impl Machine {
    /// A source that starts with a scan (it catches what changed while the daemon was down),
    /// unless it is only backed up on its schedule.
    pub fn new(timing: Timing, watching: bool, now: Instant) -> Self {
        let mut m = Self {
            timing,
            watching,
            dirty: DirtySet::default(),
            first_change: None,
            last_change: None,
            rescan: timing.periodic || watching,
            next_scan: now,
            not_before: None,
            in_flight: None,
            parent: None,
            failures: 0,
        };
        m.next_scan = now + m.scan_every();
        m
    }

    fn scan_every(&self) -> Duration {
        if !self.timing.periodic && !self.watching {
            NEVER
        } else if self.watching {
            self.timing.rescan_every
        } else {
            self.timing.rescan_every.min(FALLBACK_SCAN)
        }
    }

    /// Paths waiting for the next backup.
    pub fn pending(&self) -> usize {
        self.dirty.len()
    }

    /// The queued or running backup of the source.
    pub fn job(&self) -> Option<JobId> {
        self.in_flight.as_ref().and_then(|f| f.job)
    }

    fn due(&self) -> Option<Instant> {
        self.first_change.map(|(first, _)| {
            let quiet = self.last_change.unwrap_or(first) + self.timing.debounce;
            quiet.min(first + self.timing.max_delay)
        })
    }

    /// When to call [`Machine::on`] with [`Event::Tick`] next.
    pub fn deadline(&self) -> Instant {
        let wake = if self.in_flight.is_some() {
            None
        } else {
            match (self.due(), self.not_before) {
                (Some(d), Some(n)) => Some(d.max(n)),
                (Some(d), None) => Some(d),
                (None, n) if self.rescan => n,
                (None, _) => None,
            }
        };
        wake.map_or(self.next_scan, |w| w.min(self.next_scan))
    }

    pub fn on(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        match event {
            Event::Tick => {}
            Event::Changed { changes, wall_ns } => {
                if !changes.is_empty() {
                    self.first_change.get_or_insert((now, wall_ns));
                    self.last_change = Some(now);
                    for (path, change) in changes {
                        self.dirty.add(path, change);
                    }
                }
            }
            Event::Rescan => self.rescan = true,
            Event::WatchLost => {
                self.watching = false;
                self.rescan = true;
            }
            Event::Queued(Some(job)) => {
                if let Some(f) = &mut self.in_flight {
                    f.job = Some(job);
                }
            }
            Event::Queued(None) => {
                // Whatever it was to cover is looked at again by a scan.
                self.in_flight = None;
                self.rescan = true;
                self.not_before = Some(now + AFTER_FAILURE);
                actions.push(Action::Failed {
                    why: "the backup could not be queued".into(),
                    retry_in: AFTER_FAILURE,
                });
            }
            Event::Ended {
                outcome,
                finished_ns,
            } => actions.extend(self.ended(outcome, finished_ns, now)),
        }
        if now >= self.next_scan {
            tracing::info!("periodic rescan");
            self.rescan = true;
            // Re-armed here too: a backup still running must not make this fire again and
            // again until it ends.
            self.next_scan = now + self.scan_every();
        }
        actions.extend(self.submit_if_due(now));
        actions
    }

    fn ended(
        &mut self,
        outcome: Result<String, String>,
        finished_ns: i64,
        now: Instant,
    ) -> Option<Action> {
        let f = self.in_flight.take()?;
        match outcome {
            Ok(snapshot) => {
                self.parent = Some(snapshot.clone());
                self.failures = 0;
                Some(Action::Succeeded {
                    snapshot,
                    full: f.full,
                    first_change_ns: f.first_change_ns,
                    finished_ns,
                })
            }
            Err(why) => {
                // Whatever that backup covered must be looked at again.
                self.rescan = true;
                self.failures += 1;
                let wait = AFTER_FAILURE
                    .saturating_mul(1 << (self.failures - 1).min(6))
                    .min(MAX_AFTER_FAILURE);
                self.not_before = Some(now + wait);
                Some(Action::Failed {
                    why,
                    retry_in: wait,
                })
            }
        }
    }

    fn submit_if_due(&mut self, now: Instant) -> Option<Action> {
        let may_submit = self.in_flight.is_none() && self.not_before.is_none_or(|t| t <= now);
        if !may_submit {
            return None;
        }
        let batch = |m: &mut Self| m.first_change.take().map(|(_, ns)| ns);
        if self.rescan || self.parent.is_none() && !self.dirty.is_empty() {
            // A full scan covers every pending change.
            let first_change_ns = batch(self);
            self.dirty.clear();
            self.last_change = None;
            self.rescan = false;
            self.next_scan = now + self.scan_every();
            self.in_flight = Some(InFlight {
                job: None,
                full: true,
                first_change_ns,
            });
            return Some(Action::Submit {
                changes: None,
                parent: None,
            });
        }
        if self.due().is_some_and(|d| d <= now) {
            let changes = self.dirty.take();
            let first_change_ns = batch(self);
            self.last_change = None;
            self.in_flight = Some(InFlight {
                job: None,
                full: false,
                first_change_ns,
            });
            return Some(Action::Submit {
                changes: Some(changes),
                parent: self.parent.clone(),
            });
        }
        None
    }
}

#[cfg(test)]
mod tests;
