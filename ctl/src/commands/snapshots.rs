//! `backupctl snapshots`.

use super::results::short;
use super::{abs_bytes, Failure};
use crate::cli::SnapshotsArgs;
use crate::client::Client;
use crate::exit::ExitCode;
use crate::output::Output;
use backupd_common::protocol::SnapshotsRequest;

pub async fn run(
    client: &mut Client,
    a: &SnapshotsArgs,
    out: &Output,
) -> Result<ExitCode, Failure> {
    let request = SnapshotsRequest {
        repo: a.repo.clone(),
        path: a.path.as_ref().map(|p| abs_bytes(p)).transpose()?,
        tag: a.tag.clone(),
    };
    let list = client.snapshots(request).await?;
    out.value(&list, || {
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
