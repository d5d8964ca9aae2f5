//! `backupctl stats`: what snapshots would restore (`restore-size`) or what the repository
//! stores for them (`raw`).

use super::Failure;
use crate::cli::{StatsArgs, StatsModeArg};
use crate::client::Client;
use crate::exit::ExitCode;
use crate::json::repo::{mode_name, StatsResultView};
use crate::output::{count, count_as, Output};
use crate::progress::bytes;
use backupd_common::protocol::{StatsMode, StatsRequest, StatsResult};

/// A ratio as `2.50x`, or `-` when there was nothing to divide by.
pub fn ratio(r: Option<f64>) -> String {
    r.map(|r| format!("{r:.2}x")).unwrap_or_else(|| "-".into())
}

fn text(s: &StatsResult) -> String {
    let n = s.snapshots.len();
    let mut t = format!(
        "{} of {}\n  restore size: {}, {}, {}, {} ({})",
        mode_name(s.mode),
        count(n as u64, "snapshot"),
        count(s.files, "file"),
        count(s.dirs, "dir"),
        count_as(s.other, "other", "others"),
        bytes(s.bytes),
        count(s.bytes, "byte")
    );
    if s.mode == StatsMode::Raw {
        t.push_str(&format!(
            "\n  {} ({} data, {} tree), {} plaintext, {} stored",
            count(s.blobs, "blob"),
            s.data_blobs,
            s.tree_blobs,
            bytes(s.raw_bytes),
            bytes(s.stored_bytes)
        ));
        if let (Some(packs), Some(pack_bytes)) = (s.packs, s.pack_bytes) {
            t.push_str(&format!(
                "\n  {}, {}",
                count(packs, "pack"),
                bytes(pack_bytes)
            ));
        }
        t.push_str(&format!(
            "\n  dedup ratio {} (file bytes / distinct data), compression ratio {} (plaintext / stored)",
            ratio(s.dedup_ratio),
            ratio(s.compression_ratio)
        ));
    }
    t
}

pub async fn run(client: &mut Client, a: &StatsArgs, out: &Output) -> Result<ExitCode, Failure> {
    let request = StatsRequest {
        repo: a.repo.clone(),
        snapshots: a.snapshots.clone(),
        filter: a.filter.to_filter(None),
        mode: match a.mode {
            StatsModeArg::RestoreSize => StatsMode::RestoreSize,
            StatsModeArg::Raw => StatsMode::Raw,
        },
    };
    let result = client.stats(request).await?;
    out.value(&StatsResultView::from(&result), || text(&result));
    Ok(ExitCode::Ok)
}
