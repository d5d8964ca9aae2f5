//! Renders views into ratatui's `TestBackend` and reads the screen back as text.

use super::draw::draw;
use super::fetch::{Link, Section, View};
use backupd_common::protocol::*;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use std::time::Duration;

const NOW_NS: i64 = 1_700_000_000_000_000_000;
const SEC: i64 = 1_000_000_000;

fn tunables() -> Tunables {
    Tunables {
        workers: 2,
        threads: 4,
        zstd_level: 3,
        pack_bytes: 16 << 20,
        nice: 10,
        io_class: IoClass::BestEffort(7),
    }
}

fn health() -> HealthReport {
    HealthReport {
        status: HealthStatus::Degraded,
        version: "0.1.0".into(),
        protocol_version: PROTOCOL_VERSION,
        uptime_secs: 3 * 3600 + 120,
        pid: 42,
        mode: RunMode::User,
        socket: "/run/backupd.sock".into(),
        state_dir: "/var/lib/backupd".into(),
        config_file: None,
        socket_activated: false,
        connections: 1,
        notes: vec!["repository default was not checked for 9 days".into()],
        sources: vec![],
        repositories: vec![],
        score: HealthScore {
            score: 73,
            level: HealthLevel::Degraded,
            factors: vec![HealthFactor {
                name: "dead_letters".into(),
                penalty: 5,
                detail: "1 job in the dead-letter queue".into(),
            }],
        },
    }
}

fn source(name: &str, job: Option<JobId>) -> SourceInfo {
    SourceInfo {
        spec: SourceSpec {
            name: name.into(),
            path: format!("/srv/{name}").into_bytes(),
            repo: None,
            excludes: vec![],
            watch: true,
            debounce: Duration::from_secs(2),
            max_delay: Duration::from_secs(60),
            rescan_every: Duration::from_secs(86_400),
            policy: SourcePolicy::default(),
        },
        transient: false,
        state: WatchState::Watching,
        dirs_watched: 12,
        pending_paths: 0,
        job,
        last_snapshot: Some("3f9a1c2be4d5f6a7".into()),
        last_snapshot_ns: Some(NOW_NS - 300 * SEC),
        last_latency_ms: Some(2100),
        scans: 1,
        incremental_backups: 4,
        note: None,
        next_run_ns: None,
    }
}

fn job(id: JobId, state: JobState, progress: Option<OperationProgress>) -> JobInfo {
    JobInfo {
        id,
        kind: JobKind::Backup(BackupRequest {
            paths: vec![b"/srv/webroot".to_vec()],
            source: Some("webroot".into()),
            ..BackupRequest::default()
        }),
        priority: Priority::Normal,
        state,
        submitter_uid: 0,
        timeout_ms: 3_600_000,
        retries: 3,
        backoff_ms: 1000,
        submitted_ns: NOW_NS - 60 * SEC,
        started_ns: Some(NOW_NS - 30 * SEC),
        finished_ns: None,
        not_before_ns: None,
        attempts: vec![],
        retry_base: 0,
        coalesced: 0,
        cancel_requested: false,
        progress,
        result: None,
        error: None,
        log: vec![],
        acts_as: None,
    }
}

fn queue() -> QueueStatus {
    let progress = OperationProgress {
        files_done: 120,
        bytes_done: 450 << 20,
        files_total: Some(300),
        bytes_total: Some(1000 << 20),
        errors: 0,
        elapsed_ms: 30_000,
    };
    QueueStatus {
        workers: 2,
        counts: vec![
            StateCount {
                state: JobState::Running,
                priority: Priority::Normal,
                count: 1,
            },
            StateCount {
                state: JobState::DeadLetter,
                priority: Priority::Low,
                count: 1,
            },
        ],
        running: vec![job(12, JobState::Running, Some(progress))],
        next: vec![job(13, JobState::Queued, None)],
    }
}

fn sample(i: u64) -> PerfSample {
    PerfSample {
        time_ns: NOW_NS - (60 - i as i64) * 30 * SEC,
        span_secs: 30,
        cpu_percent: (i % 10) as f32 * 9.5,
        memory_used_bytes: (4 + i % 3) << 30,
        memory_total_bytes: 16 << 30,
        daemon_rss_bytes: (40 + i) << 20,
        read_bps: i << 20,
        stored_bps: i << 18,
        ..PerfSample::default()
    }
}

fn perf() -> PerfCurrent {
    PerfCurrent {
        sample: Some(sample(59)),
        baseline: None,
        open_bottlenecks: vec![Bottleneck {
            id: 1,
            kind: BottleneckKind::Io,
            subject: "io".into(),
            severity: Severity::Warning,
            started_ns: NOW_NS - 90 * SEC,
            ended_ns: None,
            reason: "iowait 31.0 % > 20 %".into(),
            peak: 31.0,
            actions: vec![],
        }],
        auto: true,
        tunables: tunables(),
        configured: tunables(),
        sample_interval_ms: 30_000,
        optimize_interval_ms: 300_000,
    }
}

fn full_view() -> View {
    View {
        now_ns: NOW_NS,
        interval: Duration::from_secs(2),
        link: Link::Up,
        health: Section::Ready(health()),
        sources: Section::Ready(vec![
            source("webroot", Some(12)),
            source("a-source-with-a-name-far-too-long-for-its-column", None),
        ]),
        queue: Section::Ready(queue()),
        perf: Section::Ready(perf()),
        samples: Section::Ready((0..60).map(sample).collect()),
    }
}

/// The screen as lines of text.
fn render(view: &View, width: u16, height: u16) -> Vec<String> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal.draw(|f| draw(f, view)).expect("draw");
    let buffer = terminal.backend().buffer();
    (0..buffer.area.height)
        .map(|y| {
            (0..buffer.area.width)
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
        })
        .collect()
}

fn screen(lines: &[String]) -> String {
    lines.join("\n")
}

#[test]
fn an_80x24_screen_shows_score_sources_a_gauge_sparklines_and_alerts() {
    let lines = render(&full_view(), 80, 24);
    let text = screen(&lines);
    assert!(lines[0].contains("score 73/100 degraded"), "{text}");
    assert!(
        lines[0].contains("0.1.0") && lines[0].contains("up 3h 2m"),
        "{text}"
    );
    assert!(text.contains("webroot"), "{text}");
    assert!(lines[0].ends_with("q quits "), "{text}");
    let webroot = lines
        .iter()
        .find(|l| l.contains("webroot "))
        .unwrap_or_else(|| panic!("no webroot row: {text}"));
    assert!(
        webroot.contains(" backup "),
        "source with a running job: {webroot}"
    );
    assert!(
        text.contains("3f9a1c2b 5m"),
        "last snapshot and its age: {text}"
    );
    // The long name is cut with an ellipsis inside its column, not wrapped or spilled.
    assert!(text.contains("a-source-with"), "{text}");
    assert!(text.contains('…'), "{text}");
    assert!(!text.contains("far-too-long-for-its-column"), "{text}");
    // The running job and its gauge: filled blocks on the row with the percentage.
    assert!(text.contains("#12 backup"), "{text}");
    let gauge = lines
        .iter()
        .find(|l| l.contains("45%"))
        .unwrap_or_else(|| panic!("no gauge row with 45%: {text}"));
    assert!(gauge.contains('█'), "gauge not filled: {gauge}");
    assert!(text.contains("next #13"), "{text}");
    assert!(text.contains("1 dead-letter"), "{text}");
    // Sparklines: the labels with the newest values, and bar glyphs.
    assert!(text.contains("cpu") && text.contains("85.5%"), "{text}");
    assert!(text.contains("daemon rss"), "{text}");
    assert!(
        text.chars().any(|c| ('▁'..='▇').contains(&c)),
        "no sparkline bars: {text}"
    );
    // Alerts: the open bottleneck, the score's factor, the note.
    assert!(text.contains("[warning] io: iowait 31.0 %"), "{text}");
    assert!(text.contains("-5 dead_letters"), "{text}");
    assert!(text.contains("note: repository default"), "{text}");
    assert_eq!(lines.len(), 24);
    assert!(lines.iter().all(|l| l.chars().count() == 80));
}

#[test]
fn an_unreachable_daemon_is_said_and_the_last_data_stays() {
    let mut view = full_view();
    view.link = Link::Down {
        reason: "no daemon answers on /run/backupd/backupd.sock: Connection refused (os error 111)"
            .into(),
        stale_secs: Some(14),
    };
    let lines = render(&view, 120, 24);
    assert!(
        lines[1].contains("daemon unreachable: no daemon answers on /run/backupd/backupd.sock"),
        "{lines:#?}"
    );
    // At 80 columns the reason is cut, not the promise to retry.
    let lines = render(&view, 80, 24);
    assert!(
        lines[1].starts_with(" daemon unreachable: no daemon"),
        "{lines:#?}"
    );
    assert!(
        lines[1].contains("…, retrying (showing data from 14s ago)"),
        "{lines:#?}"
    );
    assert!(screen(&lines).contains("webroot"), "{lines:#?}");
}

#[test]
fn refused_sections_say_why_and_the_rest_is_shown() {
    let mut view = full_view();
    view.perf = Section::Failed("permission denied: perf current needs system.read".into());
    view.samples = Section::Failed("permission denied".into());
    let text = screen(&render(&view, 80, 24));
    assert!(text.contains("perf: permission denied"), "{text}");
    assert!(text.contains("score 73/100"), "{text}");
}

#[test]
fn an_empty_daemon_and_the_first_connect_render() {
    let mut view = full_view();
    view.sources = Section::Ready(vec![]);
    view.queue = Section::Ready(QueueStatus {
        workers: 1,
        counts: vec![],
        running: vec![],
        next: vec![],
    });
    view.samples = Section::Ready(vec![]);
    let text = screen(&render(&view, 80, 24));
    assert!(text.contains("source add"), "{text}");
    assert!(text.contains("0 dead-letter"), "{text}");
    assert!(
        text.contains("no samples yet; the daemon samples every 30s"),
        "{text}"
    );

    let text = screen(&render(&View::connecting(Duration::from_secs(2)), 80, 24));
    assert!(text.contains("connecting to the daemon"), "{text}");
}

#[test]
fn many_sources_and_jobs_are_counted_not_spilled() {
    let mut view = full_view();
    view.sources = Section::Ready(
        (0..30)
            .map(|i| source(&format!("src{i:02}"), None))
            .collect(),
    );
    if let Section::Ready(q) = &mut view.queue {
        let running = q.running[0].clone();
        q.running = (0..6)
            .map(|i| JobInfo {
                id: 100 + i,
                ..running.clone()
            })
            .collect();
    }
    let text = screen(&render(&view, 80, 24));
    assert!(text.contains("more running"), "{text}");
    assert!(text.contains("src00"), "{text}");
    assert!(!text.contains("src29"), "{text}");
    assert!(text.contains("more"), "{text}");
}

#[test]
fn tiny_and_odd_sizes_do_not_panic() {
    let mut down = full_view();
    down.link = Link::Down {
        reason: "x".repeat(300),
        stale_secs: None,
    };
    let mut hostile = full_view();
    // Numbers from a daemon that misbehaves: nothing may overflow or leave a ratio's range.
    if let Section::Ready(q) = &mut hostile.queue {
        q.running[0].progress = Some(OperationProgress {
            files_done: u64::MAX,
            bytes_done: u64::MAX,
            files_total: Some(1),
            bytes_total: Some(1),
            errors: 0,
            elapsed_ms: 0,
        });
        q.running[0].started_ns = Some(i64::MIN);
    }
    hostile.samples = Section::Ready(vec![PerfSample {
        cpu_percent: f32::NAN,
        daemon_rss_bytes: u64::MAX,
        read_bps: u64::MAX,
        memory_used_bytes: u64::MAX,
        memory_total_bytes: 1,
        ..PerfSample::default()
    }]);
    let views = [
        full_view(),
        down,
        hostile,
        View::connecting(Duration::from_secs(2)),
    ];
    let lines = render(&views[0], 20, 5);
    assert!(lines[0].contains("score 73/100"), "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains("webroot")), "{lines:#?}");
    for view in &views {
        for (w, h) in [(20, 5), (0, 0), (1, 1), (80, 1), (1, 24), (200, 60)] {
            render(view, w, h);
        }
        for w in (2..=100).step_by(7) {
            for h in 2..=30 {
                render(view, w, h);
            }
        }
    }
}
