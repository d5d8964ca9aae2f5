//! Packs no index file names, and the safety window that decides what prune does with them.
//! A backup writes its index last, so its packs are unindexed while it runs; prune only
//! deletes unindexed packs older than [`STALE_AFTER`]. Check and prune both describe them from
//! [`classify`], so what check announces is what prune then does.

use super::EngineError;
use crate::repo::backend::{FileKind, Key};
use crate::repo::lock::STALE_AFTER;
use crate::repo::{format_rfc3339, now_ns, Repository};
use backupd_common::ids::PackId;
use backupd_common::plural;

/// Unindexed packs on either side of the safety window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unindexed {
    /// Older than the window: prune deletes them.
    pub old: Vec<String>,
    /// Younger (or of unknown age): prune keeps them for now.
    pub young: Vec<String>,
    /// When the youngest of `young` leaves the window (ns since the epoch).
    pub young_until_ns: Option<i64>,
}

/// The packs on disk that no index names, by age. `indexed` says whether a pack name is known.
pub fn classify(
    repo: &Repository,
    on_disk: &[String],
    indexed: impl Fn(&PackId) -> bool,
) -> Unindexed {
    let mut out = Unindexed::default();
    let now = now_ns();
    for name in on_disk {
        if PackId::from_hex(name).is_some_and(|id| indexed(&id)) {
            continue;
        }
        let age = repo
            .backend()
            .stat(Key::pack(name))
            .ok()
            .and_then(|info| info.age());
        match age {
            Some(age) if age > STALE_AFTER => out.old.push(name.clone()),
            _ => {
                let left = STALE_AFTER.saturating_sub(age.unwrap_or_default());
                let until = now.saturating_add(i64::try_from(left.as_nanos()).unwrap_or(i64::MAX));
                out.young_until_ns = Some(out.young_until_ns.map_or(until, |u| u.max(until)));
                out.young.push(name.clone());
            }
        }
    }
    out
}

/// The unindexed packs of `repo` as they are now.
pub fn unindexed(repo: &Repository) -> Result<Unindexed, EngineError> {
    let on_disk = repo.backend().list(FileKind::Pack)?;
    Ok(classify(repo, &on_disk, |id| {
        repo.with_index(|i| i.has_pack(id))
    }))
}

fn packs_are(count: usize) -> String {
    plural::count_as(count as u64, "pack is", "packs are")
}

fn window() -> String {
    format!("{}-minute", STALE_AFTER.as_secs() / 60)
}

/// What check says about packs younger than the window.
pub fn young_note(count: usize, until_ns: Option<i64>) -> String {
    format!(
        "{} not in the index and younger than the {} safety window (a \
         backup may still be writing them, and a retried backup reuses them); prune keeps them \
         and removes them after {} if no index names them by then",
        packs_are(count),
        window(),
        until_text(until_ns)
    )
}

/// What check says about packs older than the window.
pub fn old_note(count: usize) -> String {
    format!(
        "{} not in the index and older than the {} safety window (left by an \
         interrupted backup); prune removes them",
        packs_are(count),
        window()
    )
}

/// What prune says about the unindexed packs it kept.
pub fn kept_note(count: usize, until_ns: Option<i64>) -> String {
    format!(
        "kept {} not in the index, younger than the {} safety \
         window (a backup may still be writing them); prune removes them after {}",
        plural::count(count as u64, "pack"),
        window(),
        until_text(until_ns)
    )
}

fn until_text(until_ns: Option<i64>) -> String {
    until_ns.map_or_else(|| "the window has passed".to_owned(), format_rfc3339)
}
