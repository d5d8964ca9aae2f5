//! `backupctl queue history`: finished jobs from the daemon's job history, with filters.

use super::Failure;
use crate::cli::HistoryArgs;
use crate::client::Client;
use crate::output::count;
use crate::output::Output;
use crate::progress::bytes;
use backupd_common::protocol::{HistoryEntry, HistoryQuery, JobState};

const HEADER: &str =
    "    id finished                 outcome     kind          repo       source     try      took  files      added     stored  result";

pub async fn history(client: &mut Client, a: &HistoryArgs, out: &Output) -> Result<(), Failure> {
    let entries = client
        .history(HistoryQuery {
            limit: a.limit,
            since: a.since,
            source: a.source.clone(),
            repo: a.repo.clone(),
            kind: a.kind.clone(),
        })
        .await?;
    out.value(&crate::json::history::history(&entries), || table(&entries));
    Ok(())
}

fn table(entries: &[HistoryEntry]) -> String {
    if entries.is_empty() {
        return "no finished jobs".into();
    }
    let mut text = HEADER.to_owned();
    for e in entries {
        text.push('\n');
        text.push_str(&line(e));
    }
    text
}

/// The result in a word or two: what `queue job ID` shows in full.
fn result(e: &HistoryEntry) -> String {
    match (e.outcome, e.kind.as_str(), &e.snapshot) {
        (JobState::Succeeded, "backup", Some(s)) => {
            format!("snapshot {}", super::results::short(s))
        }
        (JobState::Succeeded, "restore", _) => format!("{} restored", count(e.files, "file")),
        (JobState::Succeeded, _, _) => "done".to_owned(),
        (outcome, _, _) => outcome.as_str().to_owned(),
    }
}

fn line(e: &HistoryEntry) -> String {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let mut line = format!(
        "{:>6} {:<24} {:<11} {:<13} {:<10} {:<10} {:>3} {:>9} {:>6} {:>10} {:>10}  {}",
        e.id,
        super::queue::time(e.finished_ns),
        e.outcome.as_str(),
        e.kind,
        dash(&e.repo),
        dash(&e.source),
        e.attempts,
        humantime::format_duration(std::time::Duration::from_millis(e.duration_ms)).to_string(),
        e.files,
        bytes(e.bytes_added),
        bytes(e.bytes_stored),
        result(e),
    );
    if let Some(error) = &e.error {
        let class = e.error_class.map(|c| c.as_str()).unwrap_or("error");
        line.push_str(&format!("\n       {class}: {error}"));
    }
    line
}
