//! `backupctl snapshots`.

use super::results::short;
use super::{Failure, Paths};
use crate::cli::SnapshotsArgs;
use crate::client::Client;
use crate::exit::ExitCode;
use crate::json::repo::SnapshotView;
use crate::output::Output;
use backupd_common::protocol::SnapshotsRequest;

pub async fn run(
    client: &mut Client,
    a: &SnapshotsArgs,
    out: &Output,
    paths: Paths,
) -> Result<ExitCode, Failure> {
    let request = SnapshotsRequest {
        repo: a.repo.clone(),
        path: a.path.as_ref().map(|p| paths.abs(p)).transpose()?,
        tag: a.tag.clone(),
    };
    let list = client.snapshots(request).await?;
    let view: Vec<SnapshotView> = list.iter().map(SnapshotView::from).collect();
    out.value(&view, || {
        let mut text = format!(
            "{:<10} {:<21} {:<16} {:>9} paths",
            "id", "time", "host", "files"
        );
        for s in &list {
            text.push_str(&format!(
                "\n{:<10} {:<21} {:<16} {:>9} {}{}",
                short(&s.id),
                s.time,
                s.host,
                s.stats.files,
                s.paths.join(" "),
                if s.tags.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", s.tags.join(","))
                }
            ));
        }
        text
    });
    Ok(ExitCode::Ok)
}
