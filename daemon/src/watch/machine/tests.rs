//! The source rules under tokio's paused clock: each test sleeps to the machine's deadlines the
//! way the shell does, so the instants the actions happen at are the ones a daemon would see.

use super::*;
use tokio::time::sleep_until;

const SEC: Duration = Duration::from_secs(1);

fn timing() -> Timing {
    Timing {
        debounce: 2 * SEC,
        max_delay: 5 * SEC,
        rescan_every: 3600 * SEC,
        periodic: true,
    }
}

/// A source whose submissions are queued at once, with a log of what it did and when.
struct Sim {
    m: Machine,
    start: Instant,
    next_job: JobId,
    log: Vec<(Duration, Action)>,
}

impl Sim {
    fn new(timing: Timing, watching: bool) -> Self {
        let start = Instant::now();
        let mut sim = Self {
            m: Machine::new(timing, watching, start),
            start,
            next_job: 1,
            log: Vec::new(),
        };
        sim.feed(Event::Tick);
        sim
    }

    fn at(&self) -> Duration {
        Instant::now() - self.start
    }

    fn feed(&mut self, event: Event) {
        let actions = self.m.on(event, Instant::now());
        for a in actions {
            let submit = matches!(a, Action::Submit { .. });
            self.log.push((self.at(), a));
            if submit {
                let job = self.next_job;
                self.next_job += 1;
                self.feed(Event::Queued(Some(job)));
            }
        }
    }

    fn change(&mut self, path: &str) {
        let changes = vec![(PathBuf::from(path), Change::Entry)];
        self.feed(Event::Changed {
            changes,
            wall_ns: 0,
        });
    }

    /// Lets time pass until `until` after the start, waking at every deadline like the shell.
    async fn run_until(&mut self, until: Duration) {
        let end = self.start + until;
        for _ in 0..10_000 {
            let deadline = self.m.deadline();
            if deadline > end {
                sleep_until(end).await;
                return;
            }
            sleep_until(deadline).await;
            self.feed(Event::Tick);
        }
        panic!("the machine keeps asking to be woken without progress");
    }

    fn fail(&mut self, why: &str) {
        self.feed(Event::Ended {
            outcome: Err(why.into()),
            finished_ns: 0,
        });
    }

    fn end_ok(&mut self, snapshot: &str) {
        self.feed(Event::Ended {
            outcome: Ok(snapshot.into()),
            finished_ns: 0,
        });
    }

    /// Submissions as (when, full scan, changed paths).
    fn submits(&self) -> Vec<(Duration, bool, usize)> {
        self.log
            .iter()
            .filter_map(|(t, a)| match a {
                Action::Submit { changes, .. } => {
                    Some((*t, changes.is_none(), changes.as_ref().map_or(0, Vec::len)))
                }
                _ => None,
            })
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn a_source_starts_with_a_full_scan() {
    let sim = Sim::new(timing(), true);
    assert_eq!(sim.submits(), vec![(Duration::ZERO, true, 0)]);
    assert_eq!(sim.m.job(), Some(1));
}

#[tokio::test(start_paused = true)]
async fn changes_wait_for_a_quiet_period_then_go_as_one_incremental_backup() {
    let mut sim = Sim::new(timing(), true);
    sim.end_ok("s1");
    sim.run_until(10 * SEC).await;
    sim.change("/src/a");
    sim.run_until(11 * SEC).await;
    sim.change("/src/b");
    // Quiet from 11 s: due at 13 s, not at 12 s (2 s after the first change).
    sim.run_until(12 * SEC + Duration::from_millis(999)).await;
    assert_eq!(sim.submits().len(), 1, "{:?}", sim.log);
    sim.run_until(20 * SEC).await;
    assert_eq!(sim.submits()[1], (13 * SEC, false, 2));
    let Some((_, Action::Submit { parent, .. })) = sim.log.last() else {
        panic!("{:?}", sim.log);
    };
    assert_eq!(parent.as_deref(), Some("s1"));
    assert_eq!(sim.m.pending(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_steady_stream_of_changes_is_backed_up_at_max_delay() {
    let mut sim = Sim::new(timing(), true);
    sim.end_ok("s1");
    // A change every second never leaves 2 s of quiet.
    for s in 1..=8 {
        sim.run_until(s * SEC).await;
        sim.change(&format!("/src/f{s}"));
    }
    // First change at 1 s: the backup goes at 6 s with what came until then.
    assert_eq!(sim.submits()[1], (6 * SEC, false, 5));
    // Changes meanwhile wait for the backup in flight, however long it runs.
    sim.run_until(60 * SEC).await;
    assert_eq!(sim.submits().len(), 2);
    assert_eq!(sim.m.pending(), 3);
    sim.end_ok("s2");
    // The batch's max delay has long passed: it goes at once.
    assert_eq!(sim.submits()[2], (60 * SEC, false, 3));
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_doubling_and_are_followed_by_full_scans() {
    let mut sim = Sim::new(timing(), true);
    sim.end_ok("s1");
    sim.change("/src/a");
    sim.run_until(2 * SEC).await;
    assert_eq!(sim.submits()[1], (2 * SEC, false, 1));
    sim.fail("disk full");
    assert!(sim.log.iter().any(|(_, a)| matches!(
        a,
        Action::Failed { why, retry_in } if why == "disk full" && *retry_in == AFTER_FAILURE
    )));
    sim.run_until(63 * SEC).await;
    // The failed batch is covered by a full scan, 60 s later.
    assert_eq!(sim.submits()[2], (62 * SEC, true, 0));
    sim.fail("disk still full");
    sim.run_until(1000 * SEC).await;
    assert_eq!(
        sim.submits()[3],
        (183 * SEC, true, 0),
        "120 s after the second failure"
    );
    // A success resets the count.
    sim.end_ok("s2");
    sim.change("/src/b");
    sim.run_until(1100 * SEC).await;
    sim.fail("again");
    sim.run_until(2000 * SEC).await;
    let last = *sim.submits().last().expect("submits");
    assert!(last.1, "a scan follows a failure");
    assert_eq!(last.0, 1100 * SEC + AFTER_FAILURE);
}

#[tokio::test(start_paused = true)]
async fn the_back_off_is_capped_at_an_hour() {
    let mut sim = Sim::new(timing(), true);
    let mut delays = Vec::new();
    for _ in 0..10 {
        let failed_at = sim.at();
        sim.fail("unreachable");
        let Some((_, Action::Failed { retry_in, .. })) = sim.log.last() else {
            panic!("{:?}", sim.log.last());
        };
        let retry_in = *retry_in;
        delays.push(retry_in);
        sim.run_until(failed_at + MAX_AFTER_FAILURE + SEC).await;
        let (at, full, _) = *sim.submits().last().expect("submits");
        assert_eq!((at, full), (failed_at + retry_in, true));
    }
    assert_eq!(delays[0], AFTER_FAILURE);
    assert_eq!(delays[5], AFTER_FAILURE * 32);
    assert_eq!(delays[6], MAX_AFTER_FAILURE);
    assert_eq!(delays[9], MAX_AFTER_FAILURE);
}

#[tokio::test(start_paused = true)]
async fn a_job_that_cannot_be_queued_is_retried_by_a_scan_after_a_minute() {
    let start = Instant::now();
    let mut m = Machine::new(timing(), true, start);
    assert!(matches!(
        m.on(Event::Tick, start).as_slice(),
        [Action::Submit { changes: None, .. }]
    ));
    let failed = m.on(Event::Queued(None), start);
    assert!(
        matches!(failed.as_slice(), [Action::Failed { .. }]),
        "{failed:?}"
    );
    assert_eq!(m.deadline(), start + AFTER_FAILURE);
    assert!(m.on(Event::Tick, start + AFTER_FAILURE - SEC).is_empty());
    assert!(matches!(
        m.on(Event::Tick, start + AFTER_FAILURE).as_slice(),
        [Action::Submit { changes: None, .. }]
    ));
}

#[tokio::test(start_paused = true)]
async fn periodic_rescans_come_every_rescan_every_and_more_often_once_inotify_is_lost() {
    let mut sim = Sim::new(timing(), true);
    sim.end_ok("s1");
    sim.run_until(3599 * SEC).await;
    assert_eq!(sim.submits().len(), 1);
    sim.run_until(3600 * SEC).await;
    assert_eq!(sim.submits()[1], (3600 * SEC, true, 0));
    sim.end_ok("s2");
    // Losing the watcher: a scan now, then the fallback interval.
    sim.feed(Event::WatchLost);
    assert_eq!(sim.submits()[2], (3600 * SEC, true, 0));
    sim.end_ok("s3");
    sim.run_until(3600 * SEC + FALLBACK_SCAN).await;
    assert_eq!(sim.submits()[3], (3600 * SEC + FALLBACK_SCAN, true, 0));
}

#[tokio::test(start_paused = true)]
async fn an_overflow_turns_pending_changes_into_a_full_scan() {
    let mut sim = Sim::new(timing(), true);
    sim.end_ok("s1");
    sim.change("/src/a");
    sim.feed(Event::Rescan);
    assert_eq!(sim.submits()[1], (Duration::ZERO, true, 0));
    assert_eq!(sim.m.pending(), 0);
    // A periodic rescan while a backup runs waits for it, once.
    sim.run_until(3700 * SEC).await;
    assert_eq!(sim.submits().len(), 2);
    sim.end_ok("s2");
    assert_eq!(sim.submits()[2], (3700 * SEC, true, 0));
    sim.end_ok("s3");
    sim.run_until(3701 * SEC).await;
    assert_eq!(sim.submits().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn without_inotify_scans_come_at_least_every_ten_minutes() {
    let mut sim = Sim::new(timing(), false);
    sim.end_ok("s1");
    sim.run_until(1300 * SEC).await;
    let times: Vec<_> = sim.submits().iter().map(|s| s.0).collect();
    assert_eq!(times, vec![Duration::ZERO, FALLBACK_SCAN]);
    // A scan still running when the next is due: the next waits for it, no pile-up.
    sim.end_ok("s2");
    assert_eq!(sim.submits()[2], (1300 * SEC, true, 0));
}

#[test]
fn a_scheduled_source_that_is_not_watched_scans_only_when_asked() {
    let t0 = Instant::now();
    let timing = Timing {
        periodic: false,
        ..timing()
    };
    let mut m = Machine::new(timing, false, t0);
    assert!(m.on(Event::Tick, t0).is_empty(), "no scan at start");
    let much_later = t0 + 30 * 86_400 * SEC;
    assert!(m.deadline() > much_later, "no periodic scan");
    assert!(m.on(Event::Tick, much_later).is_empty());
    let actions = m.on(Event::Rescan, much_later);
    assert_eq!(
        actions,
        vec![Action::Submit {
            changes: None,
            parent: None
        }]
    );
}
