//! The four panels under the header, each drawn into the area [`super::draw::plan`] gave it.
//! Pure like the rest of the rendering: they read the [`View`] and nothing else.

use super::draw::{age, fit, inner, level_color};
use super::fetch::{Section, View};
use crate::progress::bytes;
use backupd_common::protocol::{
    JobInfo, JobState, OperationProgress, PerfSample, QueueStatus, Severity, SourceInfo, WatchState,
};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Gauge, Paragraph, Row, Sparkline, Table};
use ratatui::Frame;

const DIM: Style = Style::new().fg(Color::DarkGray);

/// A bordered panel titled `title`; returns its inner area. Under three rows a border would
/// leave no room inside, so the title becomes the first line and the rest is the content.
fn panel(frame: &mut Frame<'_>, area: Rect, title: String) -> Rect {
    if area.height < 3 {
        let first = Rect {
            height: area.height.min(1),
            ..area
        };
        let text = fit(title.trim(), usize::from(area.width));
        let bold = Style::new().add_modifier(Modifier::BOLD);
        frame.render_widget(Paragraph::new(Line::styled(text, bold)), first);
        return Rect {
            y: area.y + first.height,
            height: area.height - first.height,
            ..area
        };
    }
    let width = usize::from(area.width.saturating_sub(4));
    frame.render_widget(Block::bordered().title(fit(&title, width)), area);
    inner(area)
}

/// How many of `total` items to list in `room` rows: all if they fit, else one less to make
/// room for a "+N more" line, unless that line would be all there is.
fn listed(total: usize, room: usize) -> usize {
    match total <= room || room < 2 {
        true => total.min(room),
        false => room - 1,
    }
}

/// A section that has no data to show: why, in one dim or red line.
fn placeholder<T>(section: &Section<T>, waiting: &str) -> Line<'static> {
    match section {
        Section::Failed(message) => Line::styled(message.clone(), Style::new().fg(Color::Red)),
        _ => Line::styled(waiting.to_owned(), DIM),
    }
}

pub fn sources(frame: &mut Frame<'_>, area: Rect, view: &View) {
    let Section::Ready(sources) = &view.sources else {
        let body = panel(frame, area, " sources ".into());
        frame.render_widget(Paragraph::new(placeholder(&view.sources, "…")), body);
        return;
    };
    let body = panel(frame, area, format!(" sources ({}) ", sources.len()));
    if sources.is_empty() {
        let hint = Line::styled("none; `backupctl source add DIR`", DIM);
        frame.render_widget(Paragraph::new(hint), body);
        return;
    }
    // A header row where there is room for it and a row under it; the "last" column where
    // there is width for a name beside it.
    let with_header = body.height >= 3;
    let with_last = body.width >= STATE_WIDTH + LAST_WIDTH + 2 + MIN_NAME;
    let room = usize::from(body.height - u16::from(with_header));
    let shown = listed(sources.len(), room);
    let mut widths = vec![Constraint::Fill(1), Constraint::Length(STATE_WIDTH)];
    let mut used = STATE_WIDTH + 1;
    if with_last {
        widths.push(Constraint::Length(LAST_WIDTH));
        used += LAST_WIDTH + 1;
    }
    let name_width = usize::from(body.width.saturating_sub(used)).max(1);
    let mut rows: Vec<Row<'_>> = sources
        .iter()
        .take(shown)
        .map(|s| source_row(s, view, name_width, with_last))
        .collect();
    if shown < sources.len() {
        rows.push(Row::new([format!("+{} more", sources.len() - shown)]).style(DIM));
    }
    let mut table = Table::new(rows, widths);
    if with_header {
        table = table.header(Row::new(["name", "state", "last"]).style(DIM));
    }
    frame.render_widget(table, body);
}

/// `watching`; `3f9a1c2b 12m`, `3f9a1c2b 300d`.
const STATE_WIDTH: u16 = 8;
const LAST_WIDTH: u16 = 13;
/// Narrower than this, a name gives up the "last" column's room.
const MIN_NAME: u16 = 10;

fn source_row(s: &SourceInfo, view: &View, name_width: usize, with_last: bool) -> Row<'static> {
    let running = |id| {
        view.queue
            .ready()
            .is_some_and(|q| q.running.iter().any(|j| j.id == id))
    };
    let (state, color) = match (s.job, s.state) {
        (Some(id), _) if running(id) => ("backup", Color::Cyan),
        (Some(_), _) => ("queued", Color::Cyan),
        (None, WatchState::Watching) => ("watching", Color::Green),
        (None, WatchState::Starting) => ("starting", Color::Yellow),
        (None, WatchState::Periodic) => ("periodic", Color::Yellow),
        (None, WatchState::NotWatched) => ("scans", Color::Reset),
    };
    let last = match (&s.last_snapshot, s.last_snapshot_ns) {
        (Some(id), Some(ns)) => {
            let secs = view.now_ns.saturating_sub(ns).max(0) / 1_000_000_000;
            format!(
                "{} {}",
                short(id),
                unit_age(u64::try_from(secs).unwrap_or(0))
            )
        }
        (Some(id), None) => short(id).to_owned(),
        _ => "never".to_owned(),
    };
    let mut cells = vec![
        Span::raw(fit(&s.spec.name, name_width)),
        Span::styled(state, Style::new().fg(color)),
    ];
    if with_last {
        cells.push(Span::raw(last));
    }
    Row::new(cells)
}

/// `45s`, `12m`, `3h`, `12d`: one unit, for a narrow column.
fn unit_age(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// How long before `now_ns` `then_ns` was: `3m`.
fn ago(now_ns: i64, then_ns: i64) -> String {
    let secs = now_ns.saturating_sub(then_ns).max(0) / 1_000_000_000;
    age(u64::try_from(secs).unwrap_or(0))
}

pub fn queue(frame: &mut Frame<'_>, area: Rect, view: &View) {
    let Section::Ready(q) = &view.queue else {
        let body = panel(frame, area, " queue ".into());
        frame.render_widget(Paragraph::new(placeholder(&view.queue, "…")), body);
        return;
    };
    let body = panel(frame, area, format!(" queue · {} workers ", q.workers));
    let width = usize::from(body.width);
    let mut y = body.y;
    let bottom = body.y + body.height;
    let line = |frame: &mut Frame<'_>, y: &mut u16, text: Line<'_>| {
        if *y < bottom {
            frame.render_widget(Paragraph::new(text), Rect::new(body.x, *y, body.width, 1));
            *y += 1;
        }
    };
    line(frame, &mut y, counts_line(q));
    // Each running job: what it is, then its gauge. Jobs that do not fit are counted.
    for (i, job) in q.running.iter().enumerate() {
        // Two rows for this job, and one more for the count when others follow.
        let rows = bottom.saturating_sub(y);
        let last = i + 1 == q.running.len();
        if rows < 2 || (!last && rows < 3) {
            let left = q.running.len() - i;
            line(
                frame,
                &mut y,
                Line::styled(format!("+{left} more running"), DIM),
            );
            break;
        }
        let what = format!(
            "#{} {} {}",
            job.id,
            job.kind.name(),
            crate::commands::queue::target(&job.kind)
        );
        line(frame, &mut y, Line::raw(fit(&what, width)));
        frame.render_widget(gauge(job, view.now_ns), Rect::new(body.x, y, body.width, 1));
        y += 1;
    }
    for (i, job) in q.next.iter().enumerate() {
        if y >= bottom {
            break;
        }
        if bottom - y == 1 && i + 1 < q.next.len() {
            line(
                frame,
                &mut y,
                Line::styled(format!("+{} more next", q.next.len() - i), DIM),
            );
            break;
        }
        let text = format!(
            "next #{} {} {} ({})",
            job.id,
            job.kind.name(),
            crate::commands::queue::target(&job.kind),
            job.priority.as_str()
        );
        line(frame, &mut y, Line::styled(fit(&text, width), DIM));
    }
}

/// `1 running · 3 queued · 1 dead-letter`: every state with jobs, dead letters always.
fn counts_line(q: &QueueStatus) -> Line<'static> {
    let count = |state: JobState| {
        q.counts
            .iter()
            .filter(|c| c.state == state)
            .map(|c| c.count)
            .sum::<u64>()
    };
    let mut spans = Vec::new();
    for state in [JobState::Running, JobState::Queued, JobState::RetryWait] {
        let n = count(state);
        if n > 0 {
            spans.push(Span::raw(format!("{n} {} · ", state.as_str())));
        }
    }
    let dead = count(JobState::DeadLetter);
    let style = if dead > 0 {
        Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
    } else {
        DIM
    };
    spans.push(Span::styled(format!("{dead} dead-letter"), style));
    Line::from(spans)
}

/// A running job's progress bar: filled by bytes when the total is known, empty with what was
/// done so far when it is not (a first backup's walk, a job kind without progress).
fn gauge(job: &JobInfo, now_ns: i64) -> Gauge<'static> {
    let running_for = job.started_ns.map(|t| ago(now_ns, t)).unwrap_or_default();
    let (ratio, label) = match &job.progress {
        Some(p) => progress_label(p),
        None => (0.0, format!("running {running_for}")),
    };
    Gauge::default()
        .ratio(ratio)
        .label(label)
        .gauge_style(Style::new().fg(Color::Cyan).bg(Color::Black))
}

fn progress_label(p: &OperationProgress) -> (f64, String) {
    match p.bytes_total {
        Some(total) if total > 0 => {
            let ratio = (p.bytes_done as f64 / total as f64).clamp(0.0, 1.0);
            let label = format!(
                "{:.0}% {} / {}",
                ratio * 100.0,
                bytes(p.bytes_done),
                bytes(total)
            );
            (ratio, label)
        }
        _ => (
            0.0,
            format!(
                "{} files, {} · {}",
                p.files_done,
                bytes(p.bytes_done),
                age(p.elapsed_ms / 1000)
            ),
        ),
    }
}

/// One sparkline row: its label, the newest value and the series, scaled to `max` if given.
struct Series {
    label: &'static str,
    value: String,
    points: Vec<u64>,
    max: Option<u64>,
}

/// Percentages are kept in tenths so that a sparkline can tell 0.4 % from 0.
fn tenths(percent: f64) -> u64 {
    if percent.is_finite() {
        (percent.clamp(0.0, 100.0) * 10.0).round() as u64
    } else {
        0
    }
}

/// A byte count a sparkline can scale without overflowing (it multiplies by rows × 8).
fn capped(n: u64) -> u64 {
    n.min(u64::MAX >> 16)
}

fn series(samples: &[PerfSample]) -> [Series; 5] {
    let newest = samples.last();
    let pct = |f: fn(&PerfSample) -> f64| newest.map_or("-".into(), |s| format!("{:.1}%", f(s)));
    let size = |f: fn(&PerfSample) -> u64, unit: &str| {
        newest.map_or("-".into(), |s| format!("{}{unit}", bytes(f(s))))
    };
    let cpu = |s: &PerfSample| f64::from(s.cpu_percent);
    let mem = |s: &PerfSample| s.memory_percent();
    let rss = |s: &PerfSample| s.daemon_rss_bytes;
    let read = |s: &PerfSample| s.read_bps;
    let stored = |s: &PerfSample| s.stored_bps;
    [
        Series {
            label: "cpu",
            value: pct(cpu),
            points: samples.iter().map(|s| tenths(cpu(s))).collect(),
            max: Some(1000),
        },
        Series {
            label: "memory",
            value: pct(mem),
            points: samples.iter().map(|s| tenths(mem(s))).collect(),
            max: Some(1000),
        },
        Series {
            label: "daemon rss",
            value: size(rss, ""),
            points: samples.iter().map(|s| capped(rss(s))).collect(),
            max: None,
        },
        Series {
            label: "read",
            value: size(read, "/s"),
            points: samples.iter().map(|s| capped(read(s))).collect(),
            max: None,
        },
        Series {
            label: "stored",
            value: size(stored, "/s"),
            points: samples.iter().map(|s| capped(stored(s))).collect(),
            max: None,
        },
    ]
}

/// Width of the label and value column left of each sparkline.
const LABEL: u16 = 22;

pub fn resources(frame: &mut Frame<'_>, area: Rect, view: &View) {
    if area.height == 0 {
        return;
    }
    let mut title = " resources, last hour ".to_owned();
    if let Some(perf) = view.perf.ready() {
        let t = &perf.tunables;
        title.push_str(&format!(
            "· auto-tune {} · workers {} · zstd {} ",
            if perf.auto { "on" } else { "off" },
            t.workers,
            t.zstd_level
        ));
    }
    let body = panel(frame, area, title);
    let samples = match &view.samples {
        Section::Ready(samples) if !samples.is_empty() => samples,
        Section::Ready(_) => {
            let every = view
                .perf
                .ready()
                .map(|p| {
                    humantime::format_duration(std::time::Duration::from_millis(
                        p.sample_interval_ms,
                    ))
                    .to_string()
                })
                .unwrap_or_else(|| "sampling interval".into());
            let text = format!("no samples yet; the daemon samples every {every}");
            frame.render_widget(Paragraph::new(Line::styled(text, DIM)), body);
            return;
        }
        other => {
            frame.render_widget(Paragraph::new(placeholder(other, "…")), body);
            return;
        }
    };
    let rows = Layout::vertical([Constraint::Length(1); 5]).split(body);
    for (row, s) in rows.iter().zip(series(samples)) {
        let [label, spark] =
            Layout::horizontal([Constraint::Length(LABEL), Constraint::Fill(1)]).areas(*row);
        let text = format!("{:<10} {:>10}", s.label, s.value);
        frame.render_widget(Paragraph::new(fit(&text, usize::from(LABEL - 1))), label);
        // The newest points, as many as there are columns.
        let skip = s.points.len().saturating_sub(usize::from(spark.width));
        let mut line = Sparkline::default()
            .data(&s.points[skip..])
            .style(Style::new().fg(Color::Cyan));
        if let Some(max) = s.max {
            line = line.max(max);
        }
        frame.render_widget(line, spark);
    }
}

pub fn alerts(frame: &mut Frame<'_>, area: Rect, view: &View) {
    if area.height == 0 {
        return;
    }
    let body = panel(frame, area, " alerts ".into());
    let width = usize::from(body.width);
    let mut lines: Vec<Line<'static>> = Vec::new();
    if let Some(perf) = view.perf.ready() {
        for b in &perf.open_bottlenecks {
            let color = match b.severity {
                Severity::Critical => Color::Red,
                Severity::Warning => Color::Yellow,
                _ => Color::Reset,
            };
            lines.push(Line::from(vec![
                Span::styled(
                    format!("[{}] ", b.severity.as_str()),
                    Style::new().fg(color),
                ),
                Span::raw(fit(&format!("{}: {}", b.subject, b.reason), width)),
            ]));
        }
    }
    if let Some(h) = view.health.ready() {
        let color = level_color(h.score.level);
        for f in &h.score.factors {
            let text = format!("-{} {}: {}", f.penalty, f.name, f.detail);
            lines.push(Line::styled(fit(&text, width), Style::new().fg(color)));
        }
        for note in &h.notes {
            lines.push(Line::raw(fit(&format!("note: {note}"), width)));
        }
    }
    if let Section::Failed(message) = &view.perf {
        lines.push(Line::styled(
            fit(&format!("perf: {message}"), width),
            Style::new().fg(Color::Red),
        ));
    }
    if lines.is_empty() {
        let quiet = match view.health {
            Section::Ready(_) => Line::styled("nothing to report", Style::new().fg(Color::Green)),
            _ => Line::styled("…", DIM),
        };
        lines.push(quiet);
    }
    let shown = listed(lines.len(), usize::from(body.height));
    if shown < lines.len() {
        let left = lines.len() - shown;
        lines.truncate(shown);
        lines.push(Line::styled(format!("+{left} more"), DIM));
    }
    frame.render_widget(Paragraph::new(lines), body);
}
