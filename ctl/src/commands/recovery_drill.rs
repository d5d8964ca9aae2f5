//! `backupctl recovery drill` (and `queue add drill`): the job it submits, and its result as
//! text. Submitting and waiting are `jobs`' like every job's.

use crate::cli::recovery::DrillArgs;
use crate::output::count;
use crate::progress::bytes;
use backupd_common::protocol::{DrillRequest, DrillResult, JobKind};
use comfy_table::{presets, Table};

pub fn kind(a: &DrillArgs) -> JobKind {
    JobKind::Drill(DrillRequest {
        repo: a.repo.clone(),
        source: a.source.clone(),
        sample_percent: a.sample,
    })
}

/// One line, for `queue job` and listings.
pub fn summary(d: &DrillResult) -> String {
    format!(
        "{}: {} of {} sampled file(s) verified, {} mismatch(es), {}/s",
        if d.ok { "passed" } else { "FAILED" },
        d.verified,
        d.sampled_files,
        d.mismatches.len(),
        bytes(d.bytes_per_sec)
    )
}

/// The drill's report: what was restored and checked, the throughput, the mismatches.
pub fn text(job: u64, d: &DrillResult) -> String {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    let what = match &d.source {
        Some(s) => format!("source {s} in {}", d.repo),
        None => format!("repository {}", d.repo),
    };
    let rows: Vec<(&str, String)> = vec![
        ("drill", format!("job {job}, {what}")),
        (
            "snapshot",
            format!(
                "{} ({}), {} in {}",
                super::results::short(&d.snapshot),
                crate::json::time(d.snapshot_time_ns),
                bytes(d.snapshot_bytes),
                count(d.snapshot_files, "file")
            ),
        ),
        (
            "sample",
            format!("{}% = {}", d.sample_percent, count(d.sampled_files, "file")),
        ),
        (
            "restored",
            format!(
                "{} ({}) in {} ms",
                count(d.files_restored, "file"),
                bytes(d.bytes_restored),
                d.restore_ms
            ),
        ),
        (
            "verified",
            format!(
                "{} against the snapshot; {} equal to the live file, {} changed since",
                d.verified, d.live_compared, d.live_changed
            ),
        ),
        (
            "throughput",
            format!(
                "{}/s, {:.1} files/s{}",
                bytes(d.bytes_per_sec),
                d.files_per_sec,
                d.rto_per_gb_ms
                    .map(|ms| format!("; RTO per GB {}", human_ms(ms)))
                    .unwrap_or_default()
            ),
        ),
        ("duration", human_ms(d.duration_ms)),
        (
            "result",
            if d.ok {
                "passed; the scratch copy is deleted".to_owned()
            } else {
                format!("FAILED: {}", count(d.mismatches.len() as u64, "mismatch"))
            },
        ),
    ];
    for (k, v) in rows {
        t.add_row(vec![k.to_owned(), v]);
    }
    let mut text = t.to_string();
    if !d.mismatches.is_empty() {
        let mut m = Table::new();
        m.load_preset(presets::NOTHING);
        m.set_header(vec!["mismatch", "reason"]);
        for x in &d.mismatches {
            m.add_row(vec![x.path.clone(), x.reason.clone()]);
        }
        text.push('\n');
        text.push_str(&m.to_string());
    }
    for n in &d.notes {
        text.push_str(&format!("\nnote: {n}"));
    }
    text
}

/// Milliseconds as a short human duration: whole seconds from a second on (`1m 30s`), else
/// milliseconds (`250ms`).
pub fn human_ms(ms: u64) -> String {
    let d = if ms >= 1000 {
        std::time::Duration::from_secs((ms + 500) / 1000)
    } else {
        std::time::Duration::from_millis(ms)
    };
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_in_whole_seconds_from_a_second_on() {
        assert_eq!(super::human_ms(250), "250ms");
        assert_eq!(super::human_ms(4_048), "4s");
        assert_eq!(super::human_ms(213_600), "3m 34s");
    }
}
