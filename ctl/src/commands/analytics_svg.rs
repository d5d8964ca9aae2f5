//! The charts of `analytics report --format html`: small inline SVG drawn here, so the page
//! needs no script, no library and nothing from the network.
//!
//! Each function returns one `<svg>` element. Colours come from CSS classes the page defines
//! (`ok`, `failed`, `added`, `line`, `axis`, the gauge's zones); every text that reaches the
//! markup goes through [`escape`]. Inline SVG in HTML needs no `xmlns`, and leaving it out keeps
//! the page free of any URL.

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 28.0;

/// Text for HTML content and attribute values alike.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One stacked series of a bar chart: its CSS class, its legend name and a value per day.
pub struct Series<'a> {
    pub class: &'a str,
    pub name: &'a str,
    pub values: Vec<f64>,
}

fn finite(v: f64) -> f64 {
    if v.is_finite() {
        v.max(0.0)
    } else {
        0.0
    }
}

fn plot_w() -> f64 {
    WIDTH - LEFT - RIGHT
}

fn plot_h() -> f64 {
    HEIGHT - TOP - BOTTOM
}

fn y_of(v: f64, max: f64) -> f64 {
    TOP + plot_h() * (1.0 - v / max)
}

fn open(title: &str) -> String {
    format!(
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" \
         height=\"{HEIGHT}\" role=\"img\" aria-label=\"{t}\"><title>{t}</title>\
         <text class=\"caption\" x=\"{LEFT}\" y=\"14\">{t}</text>",
        t = escape(title)
    )
}

/// The y axis from 0 to `max` (labelled in `unit`) and the first, middle and last x labels.
fn axes(labels: &[String], max: f64, unit: &dyn Fn(f64) -> String) -> String {
    let bottom = TOP + plot_h();
    let mut s = format!(
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{bottom}\"/>\
         <line class=\"axis\" x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{}\" y2=\"{bottom}\"/>\
         <text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
         <text class=\"tick\" x=\"{}\" y=\"{bottom}\" text-anchor=\"end\">{}</text>",
        WIDTH - RIGHT,
        LEFT - 4.0,
        TOP + 4.0,
        escape(&unit(max)),
        LEFT - 4.0,
        escape(&unit(0.0)),
    );
    let n = labels.len();
    let slot = plot_w() / n.max(1) as f64;
    let mut shown: Vec<usize> = vec![0, n / 2, n.saturating_sub(1)];
    shown.dedup();
    for i in shown.into_iter().filter(|&i| i < n) {
        let x = LEFT + slot * (i as f64 + 0.5);
        s.push_str(&format!(
            "<text class=\"tick\" x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            HEIGHT - 8.0,
            escape(&labels[i])
        ));
    }
    s
}

fn legend(names: &[(&str, &str)]) -> String {
    let mut s = String::new();
    let mut x = WIDTH - RIGHT - 110.0 * names.len() as f64;
    for (class, name) in names {
        s.push_str(&format!(
            "<rect class=\"{}\" x=\"{x:.1}\" y=\"5\" width=\"10\" height=\"10\"/>\
             <text class=\"tick\" x=\"{:.1}\" y=\"14\">{}</text>",
            escape(class),
            x + 14.0,
            escape(name)
        ));
        x += 110.0;
    }
    s
}

/// Bars per day, the series stacked bottom up.
pub fn bars(
    title: &str,
    labels: &[String],
    series: &[Series<'_>],
    unit: &dyn Fn(f64) -> String,
) -> String {
    let n = labels.len();
    let total = |i: usize| -> f64 {
        series
            .iter()
            .map(|s| finite(s.values.get(i).copied().unwrap_or(0.0)))
            .sum()
    };
    let max = (0..n).map(total).fold(0.0, f64::max);
    let max = if max > 0.0 { max } else { 1.0 };
    let slot = plot_w() / n.max(1) as f64;
    let mut s = open(title);
    s.push_str(&axes(labels, max, unit));
    if series.len() > 1 {
        let names: Vec<(&str, &str)> = series.iter().map(|s| (s.class, s.name)).collect();
        s.push_str(&legend(&names));
    }
    for (i, label) in labels.iter().enumerate() {
        let x = LEFT + slot * i as f64 + slot * 0.1;
        let mut base = 0.0;
        for se in series {
            let v = finite(se.values.get(i).copied().unwrap_or(0.0));
            if v == 0.0 {
                continue;
            }
            let (y_top, y_bottom) = (y_of(base + v, max), y_of(base, max));
            s.push_str(&format!(
                "<rect class=\"{}\" x=\"{x:.1}\" y=\"{y_top:.1}\" width=\"{:.1}\" \
                 height=\"{:.1}\"><title>{}: {} {}</title></rect>",
                escape(se.class),
                slot * 0.8,
                y_bottom - y_top,
                escape(label),
                escape(&unit(v)),
                escape(se.name)
            ));
            base += v;
        }
    }
    s.push_str("</svg>");
    s
}

/// A line through the days that have a value; a day without one breaks it.
pub fn line(
    title: &str,
    labels: &[String],
    values: &[Option<f64>],
    unit: &dyn Fn(f64) -> String,
) -> String {
    let n = labels.len();
    let max = values
        .iter()
        .flatten()
        .copied()
        .map(finite)
        .fold(0.0, f64::max);
    let max = if max > 0.0 { max } else { 1.0 };
    let slot = plot_w() / n.max(1) as f64;
    let mut s = open(title);
    s.push_str(&axes(labels, max, unit));
    let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for (i, v) in values.iter().enumerate().take(n) {
        match v {
            Some(v) => {
                let point = (LEFT + slot * (i as f64 + 0.5), y_of(finite(*v), max));
                if let Some(run) = runs.last_mut() {
                    run.push(point);
                }
                s.push_str(&format!(
                    "<circle class=\"dot\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\"><title>{}: {}\
                     </title></circle>",
                    point.0,
                    point.1,
                    escape(&labels[i]),
                    escape(&unit(finite(*v)))
                ));
            }
            None => runs.push(Vec::new()),
        }
    }
    for run in runs.iter().filter(|r| r.len() > 1) {
        let points: Vec<String> = run.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        s.push_str(&format!(
            "<polyline class=\"line\" points=\"{}\"/>",
            points.join(" ")
        ));
    }
    s.push_str("</svg>");
    s
}

/// A 0–100 risk score as a bar over its green, amber and red zones, with a marker.
pub fn gauge(title: &str, score: f64) -> String {
    let (w, h, left, right) = (640.0, 56.0, 10.0, 10.0);
    let span = w - left - right;
    let score = if score.is_finite() {
        score.clamp(0.0, 100.0)
    } else {
        0.0
    };
    let x = |v: f64| left + span * v / 100.0;
    let mut s = format!(
        "<svg class=\"gauge\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" \
         aria-label=\"{t}\"><title>{t}</title>",
        t = escape(title)
    );
    for (class, from, to) in [
        ("low", 0.0, 30.0),
        ("medium", 30.0, 60.0),
        ("high", 60.0, 100.0),
    ] {
        s.push_str(&format!(
            "<rect class=\"zone {class}\" x=\"{:.1}\" y=\"20\" width=\"{:.1}\" height=\"14\"/>",
            x(from),
            x(to) - x(from)
        ));
    }
    s.push_str(&format!(
        "<rect class=\"score\" x=\"{left}\" y=\"24\" width=\"{:.1}\" height=\"6\"/>\
         <line class=\"marker\" x1=\"{m:.1}\" y1=\"16\" x2=\"{m:.1}\" y2=\"38\"/>\
         <text class=\"tick\" x=\"{m:.1}\" y=\"12\" text-anchor=\"middle\">{score:.0}/100</text>\
         <text class=\"tick\" x=\"{left}\" y=\"50\">0</text>\
         <text class=\"tick\" x=\"{}\" y=\"50\" text-anchor=\"end\">100</text></svg>",
        x(score) - left,
        w - right,
        m = x(score),
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape("<a href=\"x\">Tom & 'Jerry'</a>"),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn a_day_without_a_value_breaks_the_line() {
        let labels: Vec<String> = (1..=4).map(|d| format!("day {d}")).collect();
        let svg = line(
            "t",
            &labels,
            &[Some(1.0), Some(2.0), None, Some(3.0)],
            &|v| v.to_string(),
        );
        assert_eq!(svg.matches("<polyline").count(), 1, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 3, "{svg}");
    }

    #[test]
    fn stacked_bars_draw_nothing_for_empty_days_and_survive_all_zero() {
        let labels: Vec<String> = (1..=3).map(|d| d.to_string()).collect();
        let series = [
            Series {
                class: "ok",
                name: "ok",
                values: vec![2.0, 0.0, 1.0],
            },
            Series {
                class: "failed",
                name: "failed",
                values: vec![1.0, 0.0, f64::NAN],
            },
        ];
        let svg = bars("jobs", &labels, &series, &|v| format!("{v:.0}"));
        // Three bar pieces plus the two legend swatches.
        assert_eq!(svg.matches("<rect").count(), 5, "{svg}");
        assert!(!svg.contains("NaN"), "{svg}");
        let empty = bars("jobs", &labels, &series[..0], &|v| format!("{v:.0}"));
        assert!(!empty.contains("NaN") && !empty.contains("inf"), "{empty}");
    }
}
