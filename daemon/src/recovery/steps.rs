//! Running a plan's steps, rolling it back and committing it: what a `recovery` job does.
//!
//! Each step's state is stored (and flushed) before it starts and after it ends, so after a
//! crash the plan says which step was interrupted. Every step can run again: the restore
//! writes into the staging copy skipping what is already there and equal, the swap reads its
//! progress from the file system ([`super::swap`]). A job re-run by the queue after a crash
//! does not continue on its own: it stops and leaves the choice (`run` or `rollback`) to the
//! administrator.
//!
//! Failover: when the repository the plan reads from cannot be opened, or the fetch or restore
//! meets damaged or missing data, the plan switches to a replica that holds the snapshot and
//! says so in the plan.

use super::swap::{self, Layout};
use super::{select, Recovery, RecoveryError};
use crate::engine::dirfd::DirFd;
use crate::engine::restore::{blobs, compare, remove_temporaries, restore, Extras, RestoreOptions};
use crate::engine::EngineError;
use crate::error::Error;
use crate::ops::view::path_of;
use crate::ops::Run;
use crate::repo::Repository;
use crate::state::records::recovery::{parse_step_kind, PlanRecord, SwapJournal};
use backupd_common::paths::escape_path;
use backupd_common::protocol::{
    Overwrite, PlanInfo, PlanState, RecoveryAction, RecoveryJobRequest, StepKind,
};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Free space the staging copy needs beyond its bytes: 5 % and 64 MiB.
const SPACE_MARGIN: u64 = 64 << 20;

fn invalid(msg: impl Into<String>) -> Error {
    RecoveryError::Invalid(msg.into()).into()
}

fn io(what: &'static str, path: &[u8], source: std::io::Error) -> Error {
    RecoveryError::Io {
        what,
        path: escape_path(path),
        source,
    }
    .into()
}

/// Carries out `req` on its plan (blocking).
pub fn act(rec: &Recovery, req: RecoveryJobRequest, run: &Run<'_>) -> Result<PlanInfo, Error> {
    let plan = rec.get(&req.plan)?;
    match plan.plan_state() {
        PlanState::Committed | PlanState::RolledBack => {
            return Err(RecoveryError::State {
                plan: plan.id.clone(),
                state: plan.plan_state().as_str(),
                hint: "it is finished; make a new plan with `backupctl recovery plan`".into(),
            }
            .into())
        }
        PlanState::Interrupted
            if plan
                .steps
                .iter()
                .any(|s| s.state == "interrupted" && s.job == Some(run.job)) =>
        {
            return Err(RecoveryError::State {
                plan: plan.id.clone(),
                state: "interrupted",
                hint: format!(
                    "the daemon stopped while this job ran it; continue with `backupctl recovery \
                     run {0}` or undo with `backupctl recovery rollback {0}`",
                    plan.id
                ),
            }
            .into())
        }
        _ => {}
    }
    match req.action {
        RecoveryAction::Run { step } => run_steps(rec, &plan, step, run),
        RecoveryAction::Rollback => rollback(rec, &plan.id),
        RecoveryAction::Commit => {
            if plan.plan_state() != PlanState::Done {
                return Err(RecoveryError::State {
                    plan: plan.id.clone(),
                    state: plan.plan_state().as_str(),
                    hint: "only a plan whose steps are all done can be committed; run the rest \
                           or roll it back"
                        .into(),
                }
                .into());
            }
            commit(rec, &plan.id)
        }
    }
}

fn run_steps(
    rec: &Recovery,
    plan: &PlanRecord,
    step: Option<u32>,
    run: &Run<'_>,
) -> Result<PlanInfo, Error> {
    let first_open = plan.steps.iter().position(|s| s.state != "done");
    let todo: Vec<usize> = match step {
        None => match first_open {
            Some(i) => (i..plan.steps.len()).collect(),
            None => return Ok(rec.info(plan)),
        },
        Some(n) => {
            let i = (n as usize)
                .checked_sub(1)
                .filter(|i| *i < plan.steps.len())
                .ok_or_else(|| {
                    invalid(format!(
                        "plan {} has steps 1 to {}",
                        plan.id,
                        plan.steps.len()
                    ))
                })?;
            if let Some(open) = first_open.filter(|o| *o < i) {
                return Err(invalid(format!(
                    "step {n} ({}) needs step {} ({}) done first",
                    plan.steps[i].kind,
                    open + 1,
                    plan.steps[open].kind
                )));
            }
            vec![i]
        }
    };
    for i in todo {
        if run.cancel.is_cancelled() {
            return Err(EngineError::Cancelled.into());
        }
        let kind = parse_step_kind(&plan.steps[i].kind);
        let job = run.job;
        rec.update(&plan.id, |p| {
            p.state = "running".into();
            let s = &mut p.steps[i];
            s.state = "running".into();
            s.started_ns = Some(crate::repo::now_ns());
            s.finished_ns = None;
            s.job = Some(job);
            s.detail = None;
        })?;
        let outcome = run_step(rec, &plan.id, kind, run);
        let last = i + 1 == plan.steps.len();
        rec.update(&plan.id, |p| {
            let s = &mut p.steps[i];
            s.finished_ns = Some(crate::repo::now_ns());
            match &outcome {
                Ok(done) => {
                    s.state = "done".into();
                    s.detail = Some(done.detail.clone());
                    if let Some((files, bytes)) = done.counts {
                        s.files = files;
                        s.bytes = bytes;
                    }
                    p.state = if last { "done" } else { "planned" }.into();
                    if kind == StepKind::Swap {
                        p.swapped_ns = Some(crate::repo::now_ns());
                    }
                }
                Err(e) => {
                    s.state = "failed".into();
                    s.detail = Some(e.to_string());
                    p.state = "failed".into();
                }
            }
        })?;
        outcome?;
    }
    Ok(rec.status(&plan.id)?)
}

struct Done {
    detail: String,
    counts: Option<(u64, u64)>,
}

fn done(detail: impl Into<String>) -> Done {
    Done {
        detail: detail.into(),
        counts: None,
    }
}

fn run_step(rec: &Recovery, id: &str, kind: StepKind, run: &Run<'_>) -> Result<Done, Error> {
    match kind {
        StepKind::Preflight => preflight(rec, id),
        StepKind::Fetch => fetch(rec, id, run),
        StepKind::Restore => restore_staging(rec, id, run),
        StepKind::Verify => verify(rec, id, run, Where::Staging),
        StepKind::Swap => swap_in(rec, id),
        StepKind::PostCheck => verify(rec, id, run, Where::Target),
        StepKind::Cleanup => cleanup(rec, id),
    }
}

/// The repository the plan reads from now, switching to a replica holding the snapshot when it
/// cannot be opened.
fn source_repo(rec: &Recovery, id: &str) -> Result<Arc<Repository>, Error> {
    let plan = rec.get(id)?;
    match rec.repos.open(Some(&plan.reading_from)) {
        Ok((_, repo)) => Ok(repo),
        Err(e) => {
            let why = format!("{} cannot be opened: {e}", plan.reading_from);
            failover(rec, &plan, &why)?.ok_or_else(|| e.into())
        }
    }
}

/// Switches the plan to a replica (other than the one it reads from) holding its snapshot;
/// `None` when there is none.
fn failover(
    rec: &Recovery,
    plan: &PlanRecord,
    why: &str,
) -> Result<Option<Arc<Repository>>, Error> {
    let id = backupd_common::ids::SnapshotId::from_hex(&plan.snapshot)
        .ok_or_else(|| invalid("the plan's snapshot id is not hex"))?;
    let Some((name, repo)) = select::replicas_holding(rec, &plan.repo, &id)
        .into_iter()
        .find(|(n, _)| *n != plan.reading_from)
    else {
        return Ok(None);
    };
    let note = format!("failover to replica {name}: {why}");
    tracing::warn!(
        plan = plan.id,
        replica = name,
        reason = why,
        "recovery fails over to a replica"
    );
    rec.update(&plan.id, |p| {
        p.reading_from = name.clone();
        p.failover = Some(note.clone());
        p.notes.push(note.clone());
    })?;
    Ok(Some(repo))
}

fn options(rec: &Recovery, plan: &PlanRecord, target: PathBuf) -> Result<RestoreOptions, Error> {
    Ok(RestoreOptions {
        snapshot: plan.snapshot.clone(),
        subpath: Some(path_of(plan.path.clone())),
        target,
        includes: plan.includes.clone(),
        excludes: plan.excludes.clone(),
        only: if plan.limited {
            rec.only(&plan.id)?
        } else {
            None
        },
        // Back where it was: modes as recorded, setuid bits included.
        strip_setid: Some(false),
        ..Default::default()
    })
}

fn target_path(plan: &PlanRecord) -> PathBuf {
    path_of(plan.target.clone())
}

fn work_path(plan: &PlanRecord) -> PathBuf {
    target_path(plan).join(OsStr::from_bytes(&swap::work_name(&plan.id)))
}

fn preflight(rec: &Recovery, id: &str) -> Result<Done, Error> {
    // After `source_repo`: a failover changes where the plan reads from.
    let repo = source_repo(rec, id)?;
    let plan = rec.get(id)?;
    repo.find_snapshot(&plan.snapshot, &Default::default())
        .map_err(EngineError::from)?;
    let target = target_path(&plan);
    // The nearest existing directory at or above the target: where the staging copy lands.
    let existing = target
        .ancestors()
        .find(|a| a.symlink_metadata().is_ok())
        .unwrap_or(Path::new("/"));
    if !existing.is_dir() {
        return Err(invalid(format!(
            "{} exists and is not a directory",
            existing.display()
        )));
    }
    nix::unistd::access(existing, nix::unistd::AccessFlags::W_OK).map_err(|e| {
        io(
            "cannot write into",
            existing.as_os_str().as_bytes(),
            e.into(),
        )
    })?;
    let vfs = nix::sys::statvfs::statvfs(existing).map_err(|e| {
        io(
            "cannot stat the file system of",
            existing.as_os_str().as_bytes(),
            e.into(),
        )
    })?;
    let free = vfs.blocks_available() as u64 * vfs.fragment_size() as u64;
    let need = plan.bytes + plan.bytes / 20 + SPACE_MARGIN;
    if free < need {
        return Err(invalid(format!(
            "{} has {} free; the staging copy needs {} (the data and a 5 % + 64 MiB margin). \
             Free space or recover a smaller selection",
            existing.display(),
            crate::repo::backend::human_bytes(free),
            crate::repo::backend::human_bytes(need)
        )));
    }
    let fit = plan
        .fitness
        .as_ref()
        .and_then(|f| f.get("score"))
        .and_then(|s| s.as_u64())
        .map_or(String::new(), |s| format!("; fitness {s}"));
    Ok(done(format!(
        "snapshot present in {}; {} free on the target's file system, {} needed{fit}",
        plan.reading_from,
        crate::repo::backend::human_bytes(free),
        crate::repo::backend::human_bytes(need)
    )))
}

/// Reads and verifies every blob the restore will need, before the target is touched.
fn fetch(rec: &Recovery, id: &str, run: &Run<'_>) -> Result<Done, Error> {
    let mut repo = source_repo(rec, id)?;
    for attempt in 0..2 {
        let plan = rec.get(id)?;
        repo.refresh_index().map_err(EngineError::from)?;
        let blobs = blobs(&repo, &options(rec, &plan, target_path(&plan))?)?;
        run.progress.set_totals(blobs.len() as u64, plan.bytes);
        let bad = std::sync::Mutex::new(Vec::new());
        let bytes = std::sync::atomic::AtomicU64::new(0);
        use rayon::prelude::*;
        blobs.par_iter().for_each(|b| {
            if run.cancel.is_cancelled() {
                return;
            }
            match repo.read_blob(b) {
                Ok(data) => {
                    bytes.fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    run.progress.add(1, data.len() as u64);
                }
                Err(e) => bad
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(e.to_string()),
            }
        });
        if run.cancel.is_cancelled() {
            return Err(EngineError::Cancelled.into());
        }
        let bad = bad.into_inner().unwrap_or_else(|p| p.into_inner());
        if bad.is_empty() {
            let n = bytes.into_inner();
            return Ok(Done {
                detail: format!(
                    "{} blob(s), {} read from {} and verified",
                    blobs.len(),
                    crate::repo::backend::human_bytes(n),
                    plan.reading_from
                ),
                counts: Some((blobs.len() as u64, n)),
            });
        }
        let why = format!(
            "{} of {} blob(s) unreadable in {} (first: {})",
            bad.len(),
            blobs.len(),
            plan.reading_from,
            bad[0]
        );
        match (attempt, failover(rec, &plan, &why)?) {
            (0, Some(replica)) => repo = replica,
            _ => {
                return Err(invalid(format!(
                    "{why}; no replica of {} holds the snapshot. Run `backupctl repo check \
                     --read-data` to see the damage",
                    plan.repo
                )))
            }
        }
    }
    Err(invalid("fetch: the replica is damaged as well"))
}

fn restore_staging(rec: &Recovery, id: &str, run: &Run<'_>) -> Result<Done, Error> {
    let plan = rec.get(id)?;
    let target = target_path(&plan);
    if target.symlink_metadata().is_err() {
        // Remember first: a crash right after the mkdir must still let rollback remove it.
        rec.update(id, |p| p.created_target = true)?;
        std::fs::create_dir_all(&target)
            .map_err(|e| io("cannot create the target", &plan.target, e))?;
    }
    let root =
        DirFd::open_path(&target).map_err(|e| io("cannot open the target", &plan.target, e))?;
    let layout = Layout::open(root, &swap::work_name(id), true)
        .map_err(|e| io("cannot create the work directory in", &plan.target, e))?;
    // A restore killed midway leaves temporary files; the staged files stay (equal ones are
    // kept by the re-run).
    let staged = layout
        .staging_dir()
        .map_err(|e| io("cannot open the staging directory in", &plan.target, e))?;
    let leftovers = remove_temporaries(&staged)
        .map_err(|e| io("cannot clean the staging directory in", &plan.target, e))?;
    if leftovers > 0 {
        tracing::info!(
            plan = id,
            leftovers,
            "temporary files of an interrupted restore removed"
        );
    }
    let staging = work_path(&plan).join("staging");
    let mut repo = source_repo(rec, id)?;
    for attempt in 0..2 {
        let plan = rec.get(id)?;
        let mut opts = options(rec, &plan, staging.clone())?;
        // A re-run (after a crash or a failover) keeps what is staged and equal.
        opts.overwrite = Overwrite::IfChanged;
        let result = restore(&repo, &opts, run.progress, run.cancel);
        let why = match result {
            Ok(o) if !o.is_partial() => {
                return Ok(Done {
                    detail: format!(
                        "{} file(s), {} restored into the staging copy from {} ({} already there)",
                        o.files,
                        crate::repo::backend::human_bytes(o.bytes),
                        plan.reading_from,
                        o.unchanged
                    ),
                    counts: Some((o.files + o.unchanged, o.bytes)),
                });
            }
            Ok(o) => format!(
                "{} entr(ies) could not be restored from {} (first: {}: {})",
                o.failed.len(),
                plan.reading_from,
                o.failed[0].0,
                o.failed[0].1
            ),
            Err(EngineError::Cancelled) => return Err(EngineError::Cancelled.into()),
            Err(e) => format!("{} failed: {e}", plan.reading_from),
        };
        match (attempt, failover(rec, &plan, &why)?) {
            (0, Some(replica)) => repo = replica,
            _ => return Err(invalid(why)),
        }
    }
    Err(invalid("restore: the replica failed as well"))
}

enum Where {
    Staging,
    Target,
}

fn verify(rec: &Recovery, id: &str, run: &Run<'_>, at: Where) -> Result<Done, Error> {
    // After `source_repo`: a failover changes where the plan reads from.
    let repo = source_repo(rec, id)?;
    let plan = rec.get(id)?;
    let dir = match at {
        Where::Staging => work_path(&plan).join("staging"),
        Where::Target => target_path(&plan),
    };
    let opts = options(rec, &plan, dir)?;
    // The staging copy must be exactly the selection; the target may hold more (a selective
    // plan leaves the rest alone; the work directory is in it).
    let extras = match at {
        Where::Staging => Extras::Refused,
        Where::Target => Extras::Allowed,
    };
    let c = compare(&repo, &opts, extras, run.progress, run.cancel)?;
    if let Some((path, why)) = c.mismatches.first() {
        return Err(invalid(format!(
            "{} entr(ies) differ from the snapshot (first: {path}: {why})",
            c.mismatches.len()
        )));
    }
    let place = match at {
        Where::Staging => "the staging copy",
        Where::Target => "the target",
    };
    Ok(Done {
        detail: format!(
            "{place} matches the snapshot: {} file(s), {} checked blob by blob",
            c.files,
            crate::repo::backend::human_bytes(c.bytes)
        ),
        counts: Some((c.files, c.bytes)),
    })
}

fn layout(plan: &PlanRecord) -> Result<Layout, Error> {
    let root = DirFd::open_path(&target_path(plan))
        .map_err(|e| io("cannot open the target", &plan.target, e))?;
    Layout::open(root, &swap::work_name(&plan.id), false)
        .map_err(|e| io("cannot open the work directory in", &plan.target, e))
}

fn swap_in(rec: &Recovery, id: &str) -> Result<Done, Error> {
    let plan = rec.get(id)?;
    let l = layout(&plan)?;
    let journal = match rec.journal(id)? {
        Some(j) => j,
        None => {
            let full = !plan.limited && plan.includes.is_empty() && plan.excludes.is_empty();
            let units = swap::units(&l, full, &swap::work_name(id))
                .map_err(|e| io("cannot list for the swap", &plan.target, e))?;
            let mut j = SwapJournal { v: 1, units };
            rec.put_journal(id, &mut j)?;
            j
        }
    };
    let renames = swap::apply(&l, &journal.units, usize::MAX)
        .map_err(|e| io("swap failed in", &plan.target, e))?;
    let aside = journal.units.iter().filter(|u| u.had_original).count();
    Ok(done(format!(
        "{} entr(ies) swapped in {renames} rename(s); {aside} previous entr(ies) kept for rollback",
        journal.units.len()
    )))
}

fn cleanup(rec: &Recovery, id: &str) -> Result<Done, Error> {
    let plan = rec.get(id)?;
    let staging = work_path(&plan).join("staging");
    // What is left in the staging copy was not swapped in (nothing, after a complete swap).
    let left = std::fs::read_dir(&staging).map(|d| d.count()).unwrap_or(0);
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| {
            io(
                "cannot remove the staging copy",
                staging.as_os_str().as_bytes(),
                e,
            )
        })?;
        std::fs::create_dir(&staging).map_err(|e| {
            io(
                "cannot recreate the staging directory",
                staging.as_os_str().as_bytes(),
                e,
            )
        })?;
    }
    Ok(done(format!(
        "staging copy removed ({left} leftover entr(ies)); the previous state stays in {} until \
         `backupctl recovery commit {id}` (or {} days)",
        work_path(&plan).join("rollback").display(),
        super::KEEP_ROLLBACK.as_secs() / 86400
    )))
}

/// Puts the target back as it was before the plan ran and deletes the work directory.
fn rollback(rec: &Recovery, id: &str) -> Result<PlanInfo, Error> {
    let plan = rec.get(id)?;
    let work = work_path(&plan);
    if work.symlink_metadata().is_ok() {
        if let Some(j) = rec.journal(id)? {
            let l = layout(&plan)?;
            swap::undo(&l, &j.units).map_err(|e| io("rollback failed in", &plan.target, e))?;
        }
        std::fs::remove_dir_all(&work).map_err(|e| {
            io(
                "cannot remove the work directory",
                work.as_os_str().as_bytes(),
                e,
            )
        })?;
    }
    let mut note = "rolled back: the target is as it was before the plan ran".to_owned();
    if plan.created_target {
        let t = target_path(&plan);
        match std::fs::remove_dir(&t) {
            Ok(()) => note.push_str(" (the target directory it created is removed)"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => note.push_str(&format!(" (the target directory it created was left: {e})")),
        }
    }
    rec.update(id, |p| {
        p.state = "rolled-back".into();
        p.notes.push(note.clone());
    })?;
    Ok(rec.status(id)?)
}

/// Deletes the rollback copy: the recovery is final.
pub fn commit(rec: &Recovery, id: &str) -> Result<PlanInfo, Error> {
    let plan = rec.get(id)?;
    let work = work_path(&plan);
    if work.symlink_metadata().is_ok() {
        std::fs::remove_dir_all(&work).map_err(|e| {
            io(
                "cannot remove the rollback copy",
                work.as_os_str().as_bytes(),
                e,
            )
        })?;
    }
    rec.update(id, |p| {
        p.state = "committed".into();
        p.notes
            .push("committed: the rollback copy is deleted".into());
    })?;
    Ok(rec.status(id)?)
}
