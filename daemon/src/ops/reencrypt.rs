//! `repo key reencrypt`: seal again under the current data-key version what older versions
//! sealed (`engine::reencrypt`), then retire those versions (`Registry::key_retire`). Exclusive
//! claim: it replaces packs and index files every other job reads. Resumable: a re-run after a
//! crash or cancellation continues with what is still sealed by an old version.

use super::{Claim, Operation, Run};
use crate::engine::reencrypt::{reencrypt, ReencryptReport};
use crate::error::Error;
use crate::repo::registry::RegistryError;
use backupd_common::protocol::{Permission, ReencryptRequest, ReencryptResult, Response};

pub struct Reencrypt;

impl Operation for Reencrypt {
    type Args = ReencryptRequest;
    const TIMEOUT_KEY: &'static str = "reencrypt";
    const PERMISSION: Permission = Permission::RepoKey;
    const COALESCES: bool = true;

    fn claim(args: &ReencryptRequest) -> Option<Claim> {
        Some(Claim::on(&args.repo, true))
    }

    fn redact(_: &mut ReencryptRequest) {}

    fn run(r: ReencryptRequest, run: &Run<'_>) -> Result<Response, Error> {
        let (entry, repo) = run.env.repos.open(r.repo.as_deref())?;
        let report = reencrypt(&repo, r.retire_below, run.progress, run.cancel)?;
        if !report.remaining.is_empty() {
            let versions = report
                .remaining
                .iter()
                .map(|(v, n)| format!("version {v}: {n}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(RegistryError::KeyStillUsed {
                name: entry.name,
                versions,
            }
            .into());
        }
        let retired = if r.keep_keys {
            Vec::new()
        } else {
            let old: Vec<u32> = (1..report.below).collect();
            run.env
                .repos
                .key_retire(Some(&entry.name), &old, run.cancel)?
                .retired
        };
        tracing::info!(
            repo = %entry.name,
            packs = report.packs_rewritten,
            snapshots = report.snapshots_rewritten,
            retired = ?retired,
            "re-encryption finished"
        );
        Ok(Response::Reencrypt(Box::new(result(&report, retired))))
    }
}

/// The wire result of a re-encryption or migration.
pub fn result(report: &ReencryptReport, retired: Vec<u32>) -> ReencryptResult {
    ReencryptResult {
        current: report.current,
        below: report.below,
        packs_rewritten: report.packs_rewritten,
        packs_written: report.packs_written,
        blobs: report.blobs,
        bytes_read: report.bytes_read,
        bytes_written: report.bytes_written,
        index_files_rewritten: report.index_files_rewritten,
        snapshots_rewritten: report.snapshots_rewritten,
        snapshots_renamed: report
            .snapshots_renamed
            .iter()
            .map(|(a, b)| (a.to_hex(), b.to_hex()))
            .collect(),
        leftovers_removed: report.leftovers_removed,
        retired,
    }
}
