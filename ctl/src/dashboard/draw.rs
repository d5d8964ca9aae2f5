//! Rendering: a pure function of a [`View`] into a ratatui frame, so that a `TestBackend` can
//! check what an operator sees at any size.
//!
//! The screen, top to bottom: a header line (version, uptime, status, health score) with a
//! banner under it while the daemon is unreachable; sources beside the queue; resource
//! sparklines; alerts. [`plan`] decides the rows: on a short terminal the sparklines go first,
//! then the alerts, and the header, sources and queue stay. Text is cut with `…` to its
//! column, never wrapped, so nothing moves when a name is long; no size panics (ratatui clips
//! to the area, and every ratio handed to a widget is clamped first).

use super::fetch::{Link, Section, View};
use super::panels;
use backupd_common::protocol::{HealthLevel, HealthReport, HealthStatus};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

/// Height of each part of the screen, top to bottom; they add up to at most the terminal's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub header: u16,
    pub main: u16,
    pub perf: u16,
    pub alerts: u16,
}

/// Rows of the resource panel: five sparklines and the border.
const PERF_ROWS: u16 = 7;
/// Below this many rows under the header the sparklines are left out ...
const PERF_FROM: u16 = 17;
/// ... and below this many the alerts too: sources and queue keep what is left.
const ALERTS_FROM: u16 = 9;

/// Splits `height` rows; `banner`: a second header line says the daemon is unreachable.
pub fn plan(height: u16, banner: bool) -> Plan {
    let header = height.min(1 + u16::from(banner));
    let rest = height - header;
    let perf = if rest >= PERF_FROM { PERF_ROWS } else { 0 };
    let after = rest - perf;
    let alerts = if after >= ALERTS_FROM {
        (after / 3).clamp(3, 8)
    } else {
        0
    };
    Plan {
        header,
        main: after - alerts,
        perf,
        alerts,
    }
}

/// Draws the whole screen.
pub fn draw(frame: &mut Frame<'_>, view: &View) {
    let area = frame.area();
    let banner = !matches!(view.link, Link::Up);
    let p = plan(area.height, banner);
    let [header, main, perf, alerts] = Layout::vertical([
        Constraint::Length(p.header),
        Constraint::Length(p.main),
        Constraint::Length(p.perf),
        Constraint::Length(p.alerts),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(header_lines(view, header.width)), header);
    // Side by side where both get room for a name and a gauge; stacked on narrow terminals.
    let [sources, queue] = if main.width >= 64 {
        Layout::horizontal([Constraint::Percentage(50); 2]).areas(main)
    } else {
        Layout::vertical([Constraint::Percentage(50); 2]).areas(main)
    };
    panels::sources(frame, sources, view);
    panels::queue(frame, queue, view);
    panels::resources(frame, perf, view);
    panels::alerts(frame, alerts, view);
}

/// The status line, and the banner while the daemon cannot be reached.
fn header_lines(view: &View, width: u16) -> Vec<Line<'static>> {
    // Narrower than this the name and version give their room to the score.
    let narrow = width < 48;
    let mut first = Vec::new();
    if !narrow {
        first.push(Span::styled(
            " backupd",
            Style::new().add_modifier(Modifier::BOLD),
        ));
    }
    match &view.health {
        Section::Ready(h) => first.extend(health_spans(h, narrow)),
        Section::Failed(message) => first.push(Span::styled(
            format!(" · health: {message}"),
            Style::new().fg(Color::Red),
        )),
        Section::Waiting => first.push(Span::raw(" · waiting for the daemon")),
    }
    // The keys (and the refresh interval) at the right edge, as much as there is room for.
    let used: usize = first.iter().map(Span::width).sum();
    let hints = [
        format!(
            "q quits · every {} ",
            humantime::format_duration(view.interval)
        ),
        "q quits ".to_owned(),
    ];
    let room = usize::from(width).saturating_sub(used + 2);
    if let Some(hint) = hints.into_iter().find(|h| h.chars().count() <= room) {
        let gap = usize::from(width) - used - hint.chars().count();
        first.push(Span::raw(" ".repeat(gap)));
        first.push(Span::styled(hint, Style::new().fg(Color::DarkGray)));
    }
    let mut lines = vec![Line::from(first)];
    match &view.link {
        Link::Up => {}
        Link::Connecting => lines.push(Line::from(" connecting to the daemon…")),
        Link::Down { reason, stale_secs } => {
            let stale = match stale_secs {
                Some(secs) => format!(" (showing data from {} ago)", age(*secs)),
                None => String::new(),
            };
            // The reason is what gets cut: "retrying" says the dashboard goes on.
            let frame = format!(" daemon unreachable: , retrying{stale}");
            let reason = fit(
                reason,
                usize::from(width).saturating_sub(frame.chars().count()),
            );
            lines.push(Line::styled(
                format!(" daemon unreachable: {reason}, retrying{stale}"),
                Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            ));
        }
    }
    lines
}

fn health_spans(h: &HealthReport, narrow: bool) -> Vec<Span<'static>> {
    let status = match h.status {
        HealthStatus::Ok => ("ok", Color::Green),
        HealthStatus::Degraded => ("degraded", Color::Yellow),
        HealthStatus::Stopping => ("stopping", Color::Red),
    };
    // The score first: on a narrow terminal what is cut is the rest.
    vec![
        Span::raw(match narrow {
            true => " score ".to_owned(),
            false => format!(" {} · score ", h.version),
        }),
        Span::styled(
            format!("{}/100 {}", h.score.score, h.score.level.as_str()),
            Style::new()
                .fg(level_color(h.score.level))
                .add_modifier(Modifier::BOLD),
        ),
        Span::raw(" · status "),
        Span::styled(status.0, Style::new().fg(status.1)),
        Span::raw(format!(" · up {}", age(h.uptime_secs))),
    ]
}

pub fn level_color(level: HealthLevel) -> Color {
    match level {
        HealthLevel::Ok => Color::Green,
        HealthLevel::Degraded => Color::Yellow,
        HealthLevel::Failing => Color::Red,
    }
}

/// `45s`, `12m`, `3h 5m`, `2d 4h`: short enough for a column.
pub fn age(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h {}m", secs / 3600, secs / 60 % 60),
        _ => format!("{}d {}h", secs / 86_400, secs / 3600 % 24),
    }
}

/// `text` cut to `width` columns, the last one `…` when something was cut.
pub fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    if width == 0 {
        return String::new();
    }
    let mut cut: String = text.chars().take(width - 1).collect();
    cut.push('…');
    cut
}

/// The inner area of a bordered block of `area` (nothing when it is too small for borders).
pub fn inner(area: Rect) -> Rect {
    if area.width < 2 || area.height < 2 {
        return Rect::new(area.x, area.y, 0, 0);
    }
    Rect::new(area.x + 1, area.y + 1, area.width - 2, area.height - 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_fits_the_height_and_drops_sparklines_before_alerts() {
        for banner in [false, true] {
            for height in 0..=60 {
                let p = plan(height, banner);
                assert_eq!(p.header + p.main + p.perf + p.alerts, height, "{p:?}");
                if p.perf > 0 {
                    assert!(p.alerts > 0, "sparklines kept but alerts dropped: {p:?}");
                }
            }
        }
        let standard = plan(24, false);
        assert!(
            standard.perf > 0 && standard.alerts > 0 && standard.main >= 8,
            "{standard:?}"
        );
        let tiny = plan(5, false);
        assert_eq!((tiny.perf, tiny.alerts, tiny.main), (0, 0, 4));
    }

    #[test]
    fn fit_cuts_with_an_ellipsis_only_what_is_too_long() {
        assert_eq!(fit("source", 6), "source");
        assert_eq!(fit("source-name", 6), "sourc…");
        assert_eq!(fit("abc", 0), "");
        assert_eq!(fit("ünïcødé", 4), "ünï…");
    }

    #[test]
    fn ages_are_short() {
        assert_eq!(age(59), "59s");
        assert_eq!(age(125), "2m");
        assert_eq!(age(3 * 3600 + 5 * 60), "3h 5m");
        assert_eq!(age(2 * 86_400 + 4 * 3600), "2d 4h");
    }
}
