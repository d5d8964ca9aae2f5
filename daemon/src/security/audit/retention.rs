//! Retention: past days compressed, days older than `audit.retention` removed from sled and
//! the files. Before anything is removed, a signed anchor records the last removed entry's
//! sequence number and hash, so the first kept entry still links to something verifiable.

use super::{files, Audit, AuditError, ANCHOR_KEY};
use crate::repo::format_rfc3339;

const DAY_NS: i64 = 86_400 * 1_000_000_000;

pub fn apply(audit: &Audit, now: i64, days: u64) -> Result<(), AuditError> {
    let today = format_rfc3339(now)[..10].to_owned();
    files::compress_before(&audit.dir, &today)?;
    let cutoff_ns = now.div_euclid(DAY_NS) * DAY_NS - days as i64 * DAY_NS;
    let cutoff = format_rfc3339(cutoff_ns)[..10].to_owned();

    // Find the last entry to go, sign the anchor, then remove: a crash in between leaves
    // entries the anchor already covers, which verify skips.
    let mut last_gone = None;
    let mut gone = Vec::new();
    for item in audit.entries.iter() {
        let (k, v) = item?;
        let e = super::decode(&v, "sled")?;
        if e.time[..10] >= *cutoff {
            break;
        }
        gone.push(k);
        last_gone = Some(e);
    }
    if let Some(e) = last_gone {
        let anchor = audit.key.sign("anchor", e.seq, &e.hash, now);
        files::write_anchor(&audit.dir, &anchor)?;
        audit
            .anchor
            .insert(ANCHOR_KEY, serde_json::to_vec(&anchor).unwrap_or_default())?;
        audit.anchor.flush()?;
        for k in gone {
            audit.entries.remove(k)?;
        }
        let mut keep = Vec::new();
        for item in audit.checkpoints.iter() {
            let (k, v) = item?;
            let cp = super::decode_checkpoint(&v)?;
            if cp.seq <= e.seq {
                audit.checkpoints.remove(k)?;
            } else {
                keep.push(cp);
            }
        }
        files::rewrite_checkpoints(&audit.dir, &keep)?;
        audit.entries.flush()?;
        tracing::info!(through = e.seq, before = %cutoff, "audit entries past retention removed");
    }
    files::remove_before(&audit.dir, &cutoff)?;
    Ok(())
}
