//! `backupctl snapshots`: the list, narrowed by the daemon (path, host, tags, source), then
//! grouped and cut to the newest N here. Human output is a table (comfy-table: aligned
//! columns whatever the width of hosts and paths).

use super::results::short;
use super::{Failure, Paths};
use crate::cli::{GroupBy, SnapshotsArgs};
use crate::client::Client;
use crate::exit::ExitCode;
use crate::json::repo::{SnapshotGroupView, SnapshotView};
use crate::output::Output;
use crate::progress::bytes;
use backupd_common::protocol::{SnapshotInfo, SnapshotsRequest};
use comfy_table::{presets, CellAlignment, Table};

/// A group's key: the field grouped by, its value as JSON, and a label for humans.
type GroupKey = (&'static str, serde_json::Value, String);

/// The snapshots of one group (all of them in one group without `--group-by`).
type Group<'a> = (Option<GroupKey>, Vec<&'a SnapshotInfo>);

/// One group's key as JSON (only the field grouped by) and as text.
fn key(s: &SnapshotInfo, by: GroupBy) -> GroupKey {
    match by {
        GroupBy::Host => ("host", s.host.clone().into(), format!("host {}", s.host)),
        GroupBy::Paths => (
            "paths",
            s.paths.clone().into(),
            format!("paths {}", s.paths.join(" ")),
        ),
        GroupBy::Source => (
            "source",
            s.source.clone().into(),
            match &s.source {
                Some(name) => format!("source {name}"),
                None => "no source".to_owned(),
            },
        ),
    }
}

/// Groups in order of first appearance, each oldest first, each cut to its `latest` newest.
pub fn group(list: &[SnapshotInfo], by: Option<GroupBy>, latest: Option<usize>) -> Vec<Group<'_>> {
    let mut groups: Vec<Group<'_>> = Vec::new();
    for s in list {
        let k = by.map(|by| key(s, by));
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, members)) => members.push(s),
            None => groups.push((k, vec![s])),
        }
    }
    if let Some(n) = latest {
        for (_, members) in &mut groups {
            let cut = members.len().saturating_sub(n);
            members.drain(..cut);
        }
    }
    groups
}

fn table(list: &[&SnapshotInfo]) -> String {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_header([
        "id", "time", "host", "source", "files", "size", "paths", "tags",
    ]);
    for s in list {
        t.add_row([
            short(&s.id).to_owned(),
            s.time.clone(),
            s.host.clone(),
            s.source.clone().unwrap_or_else(|| "-".into()),
            s.stats.files.to_string(),
            bytes(s.stats.bytes_total),
            s.paths.join(" "),
            s.tags.join(","),
        ]);
    }
    for col in [4, 5] {
        if let Some(c) = t.column_mut(col) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t.lines()
        .map(|l| l.trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

pub async fn run(
    client: &mut Client,
    a: &SnapshotsArgs,
    out: &Output,
    paths: Paths,
) -> Result<ExitCode, Failure> {
    let request = SnapshotsRequest {
        repo: a.repo.clone(),
        filter: a
            .filter
            .to_filter(a.path.as_ref().map(|p| paths.abs(p)).transpose()?),
    };
    let list = client.snapshots(request).await?;
    let groups = group(&list, a.group_by, a.latest);
    let human = || {
        let count: usize = groups.iter().map(|(_, m)| m.len()).sum();
        let mut parts = Vec::new();
        for (k, members) in &groups {
            let mut text = String::new();
            if let Some((_, _, label)) = k {
                text.push_str(&format!("{label}:\n"));
            }
            text.push_str(&table(members));
            parts.push(text);
        }
        parts.push(format!(
            "{count} {} (size: bytes of the files in each snapshot, as read)",
            if count == 1 { "snapshot" } else { "snapshots" }
        ));
        parts.join("\n\n")
    };
    if a.group_by.is_some() {
        let view: Vec<SnapshotGroupView> = groups
            .iter()
            .map(|(k, members)| SnapshotGroupView {
                group: k
                    .iter()
                    .map(|(name, value, _)| (name.to_string(), value.clone()))
                    .collect(),
                snapshots: members.iter().map(|s| SnapshotView::from(*s)).collect(),
            })
            .collect();
        out.value(&view, human);
    } else {
        let view: Vec<SnapshotView> = groups
            .iter()
            .flat_map(|(_, m)| m.iter().map(|s| SnapshotView::from(*s)))
            .collect();
        out.value(&view, human);
    }
    Ok(ExitCode::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use backupd_common::protocol::SnapshotStatsView;

    fn snap(id: &str, host: &str, path: &str) -> SnapshotInfo {
        SnapshotInfo {
            id: id.into(),
            time: String::new(),
            time_ns: 0,
            host: host.into(),
            username: String::new(),
            paths: vec![path.into()],
            tags: Vec::new(),
            parent: None,
            stats: SnapshotStatsView::default(),
            skipped: 0,
            source: None,
            owner_uid: None,
        }
    }

    #[test]
    fn latest_keeps_the_newest_of_each_group() {
        let list = [
            snap("1", "a", "/x"),
            snap("2", "b", "/x"),
            snap("3", "a", "/y"),
            snap("4", "a", "/x"),
        ];
        let ids = |g: &[&SnapshotInfo]| g.iter().map(|s| s.id.clone()).collect::<Vec<_>>();
        let all = group(&list, None, Some(2));
        assert_eq!(all.len(), 1);
        assert_eq!(ids(&all[0].1), ["3", "4"]);
        let by_host = group(&list, Some(GroupBy::Host), Some(1));
        assert_eq!(by_host.len(), 2);
        assert_eq!(ids(&by_host[0].1), ["4"]);
        assert_eq!(ids(&by_host[1].1), ["2"]);
        let by_paths = group(&list, Some(GroupBy::Paths), None);
        assert_eq!(ids(&by_paths[0].1), ["1", "2", "4"]);
    }
}
